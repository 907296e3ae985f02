// Package kafka is the Kafka sink: it produces every parsed event (a JSON
// object) to one topic with franz-go, and acknowledges each event only when
// the brokers have acknowledged its record with acks=all.
//
// # Delivery
//
// The producer is idempotent with acks=all, unlimited retries and no
// delivery timeout: a broker or cluster outage is waited out, and nothing
// is ever dropped because a timer expired (librdkafka's message.timeout.ms
// is the classic way to lose data; there is no equivalent here). Records of
// one key keep their order (idempotence keeps it across retries).
//
// Events complete in franz-go's promise, which never blocks. A failed
// event is Done with its error at once; the others of a batch are
// acknowledged together (Batch.DoneN) when its last event completes. An
// event completes:
//
//   - a parsed event: when its record on topic is acknowledged, and, with
//     raw_topic, its raw line's record there too;
//   - a line that did not parse (Event.Err): its raw line goes to
//     dead_letter_topic with headers reason, log_file, log_offset (and
//     truncated); without a dead_letter_topic it is acknowledged with the
//     batch and counted
//     (nginx_shipper_kafka_invalid_lines_total{action="counted"});
//   - a record the brokers reject for good (too large, not authorized,
//     unknown topic, any non-retriable error): its raw line is produced to
//     dead_letter_topic, with the reason and source_topic headers, by the
//     sink's one reroute goroutine (never from the promise). If that
//     succeeds the event is Done(nil): the line is safe in the dead-letter
//     topic and the file's checkpoint moves on. If it fails too, or there
//     is no dead_letter_topic, the event is Done with an error wrapping
//     ErrRejected, so the checkpoint does not pass it; it is logged (at
//     most every 10s) and counted (rejected_records_total{action="failed"}).
//
// Dead-letter values longer than batch_max_bytes minus 8 KiB are truncated
// (header truncated: true), so the dead-letter path does not fail for the
// same reason as a too-large record.
//
// # Backpressure and cancellation
//
// Send first acquires, for the whole batch, room in the sink's budget of
// max_buffered_records records and max_buffered_bytes key+value bytes. That
// wait is the backpressure path; ctx cancels it, and then Send returns an
// error having taken none of the batch. Once granted, every record is
// handed to franz-go's Produce with a context that is never cancelled: a
// batch is taken whole or not at all, and a taken record is never failed
// by a cancellation. franz-go's own MaxBufferedRecords/MaxBufferedBytes
// limits are lifted (the budget bounds memory instead): a blocking Produce
// after the grant could not be cancelled without failing records already
// taken, and would hold up Close.
//
// # Allocation
//
// The kgo.Records of a batch live in one pooled slice per batch, each
// carrying its way back to its event in Record.Context, and the promise is
// one bound method: producing allocates nothing per record in the steady
// state. Success metrics are counted per produced batch by a franz-go hook.
//
// # Shutdown
//
// Close refuses new batches, flushes until its ctx is done, then closes the
// client: what is still pending is completed with an error wrapping
// sinks.ErrClosed, so it is not checkpointed and is read again after the
// restart.
//
// # Avro and the schema registry
//
// With value_format = "avro" a record's value is the Confluent wire format:
// magic byte 0, the 4-byte big-endian schema id, the Avro binary. The agent
// encodes the Avro itself, from the parser's match (sinks.Event.Avro, five
// bytes reserved in front); Send writes the magic byte and the id of the
// batch's input into those five bytes, in place: no copy, no encoding here.
//
// UseSchemas, called once at start (and so again on every reload, which
// builds a new sink), hands the sink each input's schema; one goroutine
// (registrar) registers them with franz-go's pkg/sr client
// (POST /subjects/{subject}/versions; with auto_register = false it looks up
// the latest version, asks the registry whether it is compatible with our
// schema, and frames with the id of our schema under the subject). The
// subject follows subject_strategy: topic (<topic>-value), record
// (<namespace>.<name>-value) or topic_record. Nothing is asked of the
// registry per record: the id is cached for the sink's life, so a registry
// outage after start does not stop production.
//
// Until an input's schema is registered, Send for that input waits (ctx
// cancels it; it has then taken nothing): reading waits, nothing is produced
// unframed. The registrar retries an unreachable registry (or a 5xx) with
// exponential backoff from 0.5s to 30s, and RegistryReady (part of Ready,
// hence /readyz) says which subject waits and why. A refusal (409
// incompatible, 422 invalid, or no usable version with auto_register =
// false) is final for the sink: RegistryReady and the log name the
// subject, the version it conflicts with and the registry's words, and Send
// for that input waits until ctx ends and returns an error wrapping
// ErrSchemaRefused: the input is not read until a reload. CheckSchemas is
// the same question without registering (POST /compatibility/...), for
// `validate --connect`.
//
// [enrich] with enriched_topic: InputSchema.EnrichedAvro (the original's
// fields, then agent/enrich's, nullable with default null: a BACKWARD
// extension) is registered under enriched_topic's subject, and the
// enriched records (sinks.Event.EnrichedAvro, the same five reserved bytes)
// are framed with its id, the originals on topic with theirs. Without
// enriched_topic the input's schema is the enriched one and Event.Avro (or
// EnrichedAvro, when the agent made both for another sink) goes to topic.
//
// Validation: for Avro, encoding is the check. An event the agent could
// not encode (Event.AvroErr: a value out of range for its type) goes, raw,
// to dead_letter_topic with stage=schema, reason, schema_id and
// source_topic (the topic it was meant for) headers; lines that did not
// parse carry stage=parse, records the brokers refused stage=produce.
// invalid_events_total{stage, action} counts both validation stages.
//
// # Checks
//
// Check connects to every seed and advertised broker and checks the topics
// exist; `validate --connect` and start-up call it.
//
// # A bare producer like the sink
//
// ProducerOptions gives the franz-go options the sink produces with for a
// config (the budget as franz-go's own blocking limits), so that a bare
// client produces exactly as the sink does: cmd/bench's fair ceiling.
package kafka
