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
// # Checks
//
// Check connects to every seed and advertised broker and checks the topics
// exist; `validate --connect` and start-up call it.
package kafka
