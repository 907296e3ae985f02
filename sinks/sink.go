// Package sinks defines what the agent hands to a sink and how a sink
// acknowledges it.
//
// The agent reads lines in batches: a Batch holds consecutive lines of one
// file. It hands every batch to every enabled sink with Send. A sink calls
// Event.Done exactly once for every event of every batch it accepted, when
// the event is durably accepted (nil) or has failed for good (non-nil), or
// acknowledges several at once (Batch.DoneAll, Batch.DoneN). The batch
// counts down; when every sink has acknowledged every event, the agent's
// checkpoint tracker may move past the batch's lines.
//
// Ownership: the bytes of a Batch (Value, Key, Raw, Avro) belong to the
// agent and are reused once the batch is complete; the one exception is
// the Kafka sink writing the schema id into Avro's reserved header. A sink must not read or hold them
// after it called Done for the event.
package sinks

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Sink is one destination: Kafka or S3.
type Sink interface {
	// Name is a short stable name ("kafka", "s3") used in logs and metrics.
	Name() string
	// Send hands a batch to the sink. It may block, to apply backpressure,
	// until the sink can take it or ctx is done. If Send returns nil the sink
	// has taken every event of the batch and will call Done for each exactly
	// once, possibly later and from another goroutine. If it returns an error
	// it has taken none of them and calls Done for none.
	// Send is called from one goroutine per file; it must be safe for
	// concurrent use.
	Send(ctx context.Context, b *Batch) error
	// Close flushes what the sink holds and returns once Done was called for
	// every event it took, or when ctx is done; events still pending then are
	// completed with an error (so they are not checkpointed).
	Close(ctx context.Context) error
}

// ErrClosed is passed to Done for events a sink could not deliver before it
// was closed.
var ErrClosed = errors.New("sink closed before delivery")

// Source says where a line comes from. One Source is shared by all events of
// a file; it is never modified after it is handed to a sink.
type Source struct {
	Path   string // the path the line was read from
	Input  int    // index of the [[inputs]] entry
	Format string // the log_format name (or "custom")
	// Topic and S3Prefix route the input's events: the Kafka topic and the
	// S3 key prefix template ([[inputs]] topic, s3_prefix). Empty: the
	// sink's own (sinks.kafka.topic, sinks.s3.prefix). Dead-letter records
	// keep the sinks' shared dead-letter topic and prefix.
	Topic    string
	S3Prefix string
}

// Event is one line of a log file on its way to the sinks.
type Event struct {
	// Value is the JSON object of the parsed event, without a trailing
	// newline. It is nil when Err is set, and empty when the agent was told
	// no sink wants it (only the Kafka sink, in Avro: see Avro).
	Value []byte
	// Enriched is Value with the [enrich] fields (client_ip, geo, ua)
	// added before its closing brace; nil without [enrich] or when Err is
	// set. Sinks send it instead of, or (Kafka enriched_topic) besides,
	// Value.
	Enriched []byte
	// Key is the Kafka record key (the configured event field), or nil.
	Key []byte
	// Raw is the line as read, without its newline. When Truncated is set it
	// holds only the first max_line_bytes bytes. It is always set when Err
	// is; for parsed lines only when the agent keeps raw lines (a Kafka raw
	// topic), else nil: use Value.
	Raw []byte
	// Time is the event's time from the log line, or the time it was read
	// when the line has no time or did not parse.
	Time time.Time
	// Err is set when the line did not parse (or was too long): the event
	// belongs on the dead-letter path, raw.
	Err error
	// Truncated is set when the line was longer than the maximum and Raw was
	// cut.
	Truncated bool
	// Offset is the byte offset of the line's start in its file.
	Offset int64
	// Avro is the event in the Confluent wire format when a sink asked for
	// Avro (the Kafka sink with value_format = "avro"), else nil: five
	// bytes reserved for the magic byte and the schema id, which the Kafka
	// sink fills in place (its schema id for the batch's input), then the
	// Avro binary of the same event as Value. Nil when Err or AvroErr is set.
	Avro []byte
	// AvroErr is set when the line parsed (Value is set) but its event
	// does not fit its Avro schema (a *parser.SchemaError): the event
	// belongs on the dead-letter path (stage "schema"); Raw is set.
	AvroErr error
	// EnrichedAvro is Avro's enriched twin ([enrich] beside a sink that
	// needs the original, as Enriched is Value's): the same five reserved
	// bytes, the original's Avro, then the enrichment fields' (the
	// enriched schema appends them). Without such a sink, Avro itself is
	// the enriched record and EnrichedAvro is nil.
	EnrichedAvro []byte

	batch *Batch
}

// Done acknowledges the event for one sink. Each sink calls it exactly once
// per event. It never blocks.
func (e *Event) Done(err error) { e.batch.done(err, 1) }

// Batch is a run of consecutive lines of one file, [Start, End) in bytes.
type Batch struct {
	Source *Source
	Events []Event
	Start  int64 // offset of the first byte covered by the batch
	End    int64 // offset just past the last line covered (the next line's start)

	pending atomic.Int64
	failed  atomic.Pointer[error]
	onDone  func(*Batch, error)
}

// NewBatch returns an empty batch for src; see Arm.
func NewBatch(src *Source) *Batch { return &Batch{Source: src} }

// Arm prepares the batch for sending to n sinks and sets the function called,
// exactly once, when every sink has called Done for every event (or
// DoneAll). onDone's error is the first non-nil error any sink reported.
// A batch with no events (the bytes it covers held no line to send) has
// nothing to wait for: onDone is called before Arm returns.
func (b *Batch) Arm(nSinks int, onDone func(*Batch, error)) {
	b.failed.Store(nil)
	b.onDone = onDone
	n := int64(len(b.Events) * nSinks)
	b.pending.Store(n)
	if n == 0 {
		onDone(b, nil)
	}
}

// DoneAll acknowledges every event of the batch for one sink at once: the
// same as calling Done(err) on each event. A sink that acknowledges a whole
// batch together (the S3 spool after fsync) uses it. On an empty batch it
// does nothing.
func (b *Batch) DoneAll(err error) { b.DoneN(err, len(b.Events)) }

// DoneN acknowledges n of the batch's events for one sink at once, without
// naming them: the same as calling Done(err) on n events whose Done the sink
// does not call otherwise. A sink that counts its acknowledgements itself
// (Kafka: one promise per record) uses it to touch the batch once.
func (b *Batch) DoneN(err error, n int) {
	if n > 0 {
		b.done(err, int64(n))
	}
}

func (b *Batch) done(err error, n int64) {
	if err != nil {
		e := err
		b.failed.CompareAndSwap(nil, &e)
	}
	left := b.pending.Add(-n)
	if left == 0 {
		var e error
		if p := b.failed.Load(); p != nil {
			e = *p
		}
		b.onDone(b, e)
	} else if left < 0 {
		panic("sinks: Done called more than once for an event")
	}
}

// Reset empties the batch for reuse, keeping its capacity.
func (b *Batch) Reset(src *Source) {
	b.Source = src
	b.Events = b.Events[:0]
	b.Start, b.End = 0, 0
	b.onDone = nil
}

// Add appends a zero event bound to the batch and returns it for the caller
// to fill. The pointer is valid until the next Add.
func (b *Batch) Add() *Event {
	b.Events = append(b.Events, Event{})
	e := &b.Events[len(b.Events)-1]
	e.batch = b
	return e
}

// Counts are a sink's own tally of the events it completed: acknowledged
// (Done(nil)) and failed (Done(err)). The agent exports them per sink as
// nginx_shipper_events_acked_total and nginx_shipper_sink_errors_total; a
// batch's fan-out result alone cannot tell which sink failed. The zero value
// is ready; safe for concurrent use; one atomic add per batch.
type Counts struct{ acked, failed atomic.Int64 }

// Acked counts n events acknowledged.
func (c *Counts) Acked(n int) { c.acked.Add(int64(n)) }

// Failed counts n events failed.
func (c *Counts) Failed(n int) { c.failed.Add(int64(n)) }

// Load returns the events acknowledged and failed so far.
func (c *Counts) Load() (acked, failed int64) { return c.acked.Load(), c.failed.Load() }

// Counter is implemented by a sink that keeps its Counts.
type Counter interface {
	Counts() *Counts
}

// ErrRetriable marks a sink's failure that may succeed if the batch is
// sent to that sink again (the S3 spool could not be written: disk full).
// The agent then sends the batch again to that sink alone, with backoff,
// and does not move the checkpoint past it meanwhile. Failures without it
// are for good.
var ErrRetriable = errors.New("retriable")

// Error is the error a sink passes to Done: it names the sink, so the
// agent's log and dead-letter records can say which sink failed.
type Error struct {
	Sink string
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Failed wraps err as an *Error of sink (nil stays nil).
func Failed(sink string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Sink: sink, Err: err}
}

// SinkOf returns the name of the sink that failed with err ("" when err
// names none).
func SinkOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Sink
	}
	return ""
}
