// An outside consumer for the end-to-end tests: kafkajs reads the topic
// from the broker, @kafkajs/confluent-schema-registry (avsc) fetches each
// record's writer schema from the registry by the id in its Confluent
// header and decodes it. It prints one JSON object per record:
// {"partition":P,"offset":"O","schema_id":ID,"value":DECODED}, and exits 0
// once it has read COUNT records (1 on error, 2 after 60s).
//
//   node kafkajs-avro-consumer.js BROKER REGISTRY_URL TOPIC COUNT
const { Kafka, logLevel } = require('kafkajs');
const { SchemaRegistry } = require('@kafkajs/confluent-schema-registry');

const [broker, registryUrl, topic, countArg] = process.argv.slice(2);
const want = Number(countArg);
const out = [];
let finished = false;
const finish = (code, msg) => {
  if (finished) return;
  finished = true;
  if (msg) process.stderr.write(msg + '\n');
  process.stdout.write(out.join(''), () => process.exit(code));
};
const timer = setTimeout(() => finish(2, `timeout: ${out.length} of ${want} records`), Number(process.env.CONSUMER_TIMEOUT_MS || 60000));

(async () => {
  const kafka = new Kafka({ clientId: 'e2e-kafkajs', brokers: [broker], logLevel: logLevel.ERROR });
  const registry = new SchemaRegistry({ host: registryUrl });
  const consumer = kafka.consumer({ groupId: `e2e-kafkajs-${process.pid}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      if (finished) return;
      const value = await registry.decode(message.value);
      if (finished) return;
      const id = message.value.readUInt32BE(1);
      out.push(JSON.stringify({ partition, offset: message.offset, schema_id: id, value }) + '\n');
      if (out.length >= want) {
        // Not consumer.disconnect(): it waits for this eachMessage to
        // return, which would wait for it (a kafkajs deadlock).
        clearTimeout(timer);
        finish(0);
      }
    },
  });
})().catch((e) => finish(1, String(e && e.stack || e)));
