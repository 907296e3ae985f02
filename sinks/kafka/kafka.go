package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// Record header names. Every record carries host, log_file and format; the
// dead-letter records add log_offset and reason (and truncated, source_topic
// where they apply).
const (
	HeaderHost        = "host"
	HeaderLogFile     = "log_file"
	HeaderFormat      = "format"
	HeaderLogOffset   = "log_offset"
	HeaderReason      = "reason"
	HeaderTruncated   = "truncated"
	HeaderSourceTopic = "source_topic"
	// HeaderStage names why a dead-letter record is there: parse (the line
	// did not match the log_format), schema (its event does not fit the
	// Avro schema) or produce (the brokers rejected the record for good).
	HeaderStage = "stage"
	// HeaderSchemaID is the schema id the event was meant to be framed
	// with (stage schema).
	HeaderSchemaID = "schema_id"
)

// Stages of HeaderStage.
const (
	StageParse   = "parse"
	StageSchema  = "schema"
	StageProduce = "produce"
)

// ErrRejected wraps the error passed to Done for a record the brokers
// rejected for good when it could not be dead-lettered.
var ErrRejected = errors.New("kafka: record rejected for good")

// dlqHeadroom is what a dead-letter record keeps free for its headers and the
// batch overhead within batch_max_bytes; longer raw lines are truncated.
const dlqHeadroom = 8 << 10

// Sink produces events to Kafka. It implements sinks.Sink.
type Sink struct {
	cfg       Config
	log       *slog.Logger
	cl        *kgo.Client
	m         *metrics
	h         health
	counts    sinks.Counts
	budget    budget
	stopProbe chan struct{}
	promise   func(*kgo.Record, error) // s.onPromise, bound once
	host      []byte
	dlqMax    int

	closed atomic.Bool // Close was called: Send refuses new batches

	lastFailLog atomic.Int64 // unix nanos of the last failure logged; see logFailure
	failsQuiet  atomic.Int64 // failures not logged since

	// mu is held for reading around every Produce and for writing while
	// the client is closed, so nothing is produced to a closed client.
	mu           sync.RWMutex
	clientClosed bool

	states sync.Pool // *batchState
	rq     rerouteQueue

	avro bool       // value_format = "avro"
	reg  *registrar // set by UseSchemas with avro
}

var _ sinks.Sink = (*Sink)(nil)

// New validates cfg (after filling its defaults) and returns a sink with a
// connected-on-demand client. It does not contact the brokers: call Check for
// that. Metrics are registered with reg unless it is nil.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	return newSink(cfg, log, reg)
}

// newSink is New with extra franz-go options, for tests.
func newSink(cfg Config, log *slog.Logger, reg prometheus.Registerer, extra ...kgo.Opt) (*Sink, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		cfg:    cfg,
		log:    log.With("sink", "kafka"),
		m:      newMetrics(),
		host:   []byte(cfg.Hostname),
		dlqMax: int(cfg.BatchMaxBytes) - dlqHeadroom,
	}
	s.dlqMax = max(s.dlqMax, int(cfg.BatchMaxBytes)/2)
	s.avro = cfg.ValueFormat == ValueAvro
	s.budget.init(int64(cfg.MaxBufferedRecords), cfg.MaxBufferedBytes)
	s.promise = s.onPromise

	opts, err := s.clientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("sinks.kafka: %w", err)
	}
	s.cl = cl
	if err := s.m.register(reg, cl, &s.budget); err != nil {
		cl.Close()
		return nil, fmt.Errorf("sinks.kafka: registering metrics: %w", err)
	}
	s.rq.init()
	go s.rerouteLoop()
	s.stopProbe = make(chan struct{})
	go s.probe(s.stopProbe)
	return s, nil
}

// clientOpts are the franz-go options for the main client (and, with other
// seeds, the clients Check uses).
func (s *Sink) clientOpts() ([]kgo.Opt, error) {
	opts, err := producerOpts(&s.cfg)
	if err != nil {
		return nil, err
	}
	return append(opts, kgo.WithLogger(kgoLogger{s.log}), kgo.WithHooks(hooks{s.m, &s.h})), nil
}

// ProducerOptions are the franz-go options the sink produces with for cfg
// (after Defaults and Validate): brokers, TLS and SASL, acks=all with the
// idempotent producer, compression (our own lz4 frames for lz4), batch size,
// linger, partitioner, request timeout, with the sink's budget
// (max_buffered_records, max_buffered_bytes) as franz-go's own blocking
// limits. For a bare producer that must produce exactly as the sink does:
// cmd/bench's fair ceiling. The sink itself lifts franz-go's limits and
// applies the budget in Send instead (see doc.go).
func ProducerOptions(cfg Config) ([]kgo.Opt, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts, err := producerOpts(&cfg)
	if err != nil {
		return nil, err
	}
	return append(opts, kgo.MaxBufferedRecords(cfg.MaxBufferedRecords), kgo.MaxBufferedBytes(int(cfg.MaxBufferedBytes))), nil
}

// producerOpts are clientOpts without the sink's logger and hooks.
func producerOpts(c *Config) ([]kgo.Opt, error) {
	comp, err := compression(c.Compression)
	if err != nil {
		return nil, err
	}
	part, err := partitioner(c.Partitioner, c.BatchMaxBytes)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.DialTimeout(c.DialTimeout.Duration),
		// Delivery: acks=all with the idempotent producer (franz-go's
		// default with acks=all), unlimited retries and no delivery
		// timeout, so a broker outage is waited out, never dropped.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(0),
		kgo.ProduceRequestTimeout(c.RequestTimeout.Duration),
		comp,
		kgo.ProducerBatchMaxBytes(c.BatchMaxBytes),
		// At most two full record batches per produce request: franz-go
		// serializes a request into one buffer, which grew to 8-16 MB
		// with a batch for each of several partitions (and is regrown
		// after garbage collections empty its pool).
		kgo.BrokerMaxWriteBytes(2 * c.BatchMaxBytes),
		kgo.ProducerLinger(c.Linger.Duration),
		kgo.RecordPartitioner(part),
		// The sink's own budget (Send) is the backpressure, so that a
		// batch is taken whole or not at all. franz-go's limits are
		// lifted: its Produce must never block once the budget granted
		// a batch (Send holds s.mu, which Close waits for). See doc.go.
		kgo.MaxBufferedRecords(math.MaxInt32),
	}
	if c.TLS.on() {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	mech, err := c.SASL.mechanism()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// Name implements sinks.Sink.
func (s *Sink) Name() string { return "kafka" }

// Counts implements sinks.Counter: the events this sink acknowledged and
// failed.
func (s *Sink) Counts() *sinks.Counts { return &s.counts }

// Send implements sinks.Sink. It first waits, until ctx is done, for room in
// the max_buffered_records / max_buffered_bytes budget for the whole batch
// (a batch larger than the budget waits until nothing else is held). That
// wait is the backpressure path and the only place Send blocks; if ctx ends
// there Send returns ctx's error and has taken nothing. Once the room is
// granted every record of the batch is handed to franz-go, with a context
// that is never cancelled, so a batch is taken whole or not at all.
//
// Every event is acknowledged (Done) from franz-go's promise when the broker
// acknowledged its record(s) with acks=all: the event's record on topic, and
// its raw record on raw_topic when set. A line that did not parse
// (Event.Err) goes raw to dead_letter_topic, or, without one, is
// acknowledged at once and counted. A record the brokers reject for good is
// dead-lettered; see doc.go.
func (s *Sink) Send(ctx context.Context, b *sinks.Batch) error {
	if s.closed.Load() {
		return sinks.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var schemaID int32
	if s.avro {
		// The input's schema id, registered at start: until then (the
		// registry is down) reading waits here; a refused schema waits
		// until ctx ends. Nothing is produced unframed.
		if s.reg == nil {
			return fmt.Errorf("kafka: value_format avro: %w: UseSchemas was not called", ErrSchemaRefused)
		}
		id, err := s.reg.wait(ctx, b.Source.Input)
		if err != nil {
			return fmt.Errorf("kafka: waiting for the schema id: %w", err)
		}
		schemaID = id
	}
	dlq, raw := s.cfg.DeadLetterTopic != "", s.cfg.RawTopic != ""
	enr := s.cfg.EnrichedTopic != "" // [enrich]: the enriched events also go there
	var enrSchemaID int32
	if s.avro && enr && !s.reg.hasEnriched(b.Source.Input) {
		enr = false // no enriched schema for this input: nothing unframed goes there
	}
	if s.avro && enr {
		// enriched_topic's own subject: the enriched schema.
		id, err := s.reg.waitEnriched(ctx, b.Source.Input)
		if err != nil {
			return fmt.Errorf("kafka: waiting for the enriched schema id: %w", err)
		}
		enrSchemaID = id
	}
	var nrecs, nbytes int64
	for i := range b.Events {
		ev := &b.Events[i]
		switch {
		case ev.Err != nil || s.avro && ev.Avro == nil:
			if dlq {
				nrecs++
				nbytes += int64(min(max(len(ev.Raw), len(ev.Value)), s.dlqMax))
			}
		default:
			nrecs++
			nbytes += int64(len(s.value(ev)) + len(ev.Key))
			if raw {
				nrecs++
				nbytes += int64(len(ev.Raw) + len(ev.Key))
			}
			if v := s.enrichedValue(ev); enr && v != nil {
				nrecs++
				nbytes += int64(len(v) + len(ev.Key))
			}
		}
	}
	grantedRecs, grantedBytes, err := s.budget.acquire(ctx, nrecs, nbytes)
	if err != nil {
		return fmt.Errorf("kafka: waiting for buffer space: %w", err)
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.clientClosed {
		s.budget.release(grantedRecs, grantedBytes)
		return sinks.ErrClosed
	}

	st := s.getState(b, int(nrecs))
	st.grantedRecs, st.grantedBytes = grantedRecs, grantedBytes
	st.schemaID = schemaID
	st.start = time.Now()
	// One extra count, dropped below, so the batch cannot complete (and
	// st be reused) while Send still walks it.
	st.pending.Store(int64(len(b.Events)) + 1)

	var counted, countedSchema int
	ri := 0
	for i := range b.Events {
		ev := &b.Events[i]
		badSchema := ev.Err == nil && s.avro && ev.Avro == nil
		if (ev.Err != nil || badSchema) && !dlq {
			if badSchema {
				countedSchema++
			} else {
				counted++
			}
			st.eventDone() // acknowledged with the batch's successes
			continue
		}
		rs := &st.recs[ri]
		ri++
		rs.reset(st, ev)
		if ev.Err != nil {
			rs.role = roleInvalid
			rs.left.Store(1)
			s.fillDeadLetter(rs, &rs.rec, StageParse, ev.Err.Error(), "")
			s.cl.Produce(context.Background(), &rs.rec, s.promise)
			continue
		}
		if badSchema {
			rs.role = roleSchema
			rs.left.Store(1)
			meant := s.cfg.Topic
			if st.b.Source != nil && st.b.Source.Topic != "" {
				meant = st.b.Source.Topic // [[inputs]] topic
			}
			s.fillDeadLetter(rs, &rs.rec, StageSchema, schemaReason(ev), meant)
			s.cl.Produce(context.Background(), &rs.rec, s.promise)
			continue
		}
		rs.role = roleMain
		rs.rec.Topic = s.cfg.Topic
		if st.b.Source != nil && st.b.Source.Topic != "" {
			rs.rec.Topic = st.b.Source.Topic // [[inputs]] topic
		}
		rs.rec.Key = ev.Key
		rs.rec.Value = s.value(ev)
		if s.avro {
			frame(rs.rec.Value, schemaID)
		}
		rs.rec.Timestamp = ev.Time
		rs.rec.Headers = st.headers(rs.hdrs[:0])
		// The event is Done when every record made from it is acknowledged:
		// rs owns the count (left) of its raw and enriched records too.
		var rr, re *recState
		left := int32(1)
		if raw {
			rr = &st.recs[ri]
			ri++
			rr.reset(st, ev)
			rr.role = roleRaw
			rr.join = rs
			rr.rec.Topic = s.cfg.RawTopic
			rr.rec.Key = ev.Key
			rr.rec.Value = ev.Raw
			rr.rec.Timestamp = ev.Time
			rr.rec.Headers = st.headers(rr.hdrs[:0])
			left++
		}
		if enr && s.enrichedValue(ev) != nil {
			re = &st.recs[ri]
			ri++
			re.reset(st, ev)
			re.role = roleEnriched
			re.join = rs
			re.rec.Topic = s.cfg.EnrichedTopic
			re.rec.Key = ev.Key
			re.rec.Value = s.enrichedValue(ev)
			if s.avro {
				frame(re.rec.Value, enrSchemaID)
			}
			re.rec.Timestamp = ev.Time
			re.rec.Headers = st.headers(re.hdrs[:0])
			left++
		}
		rs.left.Store(left)
		s.cl.Produce(context.Background(), &rs.rec, s.promise)
		if rr != nil {
			s.cl.Produce(context.Background(), &rr.rec, s.promise)
		}
		if re != nil {
			s.cl.Produce(context.Background(), &re.rec, s.promise)
		}
	}
	if counted > 0 {
		s.m.invalid.WithLabelValues("counted").Add(float64(counted))
		s.m.invalidEvents.WithLabelValues(StageParse, "counted").Add(float64(counted))
	}
	if countedSchema > 0 {
		s.m.invalidEvents.WithLabelValues(StageSchema, "counted").Add(float64(countedSchema))
		s.logFailure("events that do not fit their Avro schema, with no dead_letter_topic: acknowledged and only counted",
			"file", b.Source.Path, "count", countedSchema)
	}
	st.eventDone()
	return nil
}

// value is the record value of a parsed event on topic: its JSON, or
// with value_format avro its wire-format Avro; with [enrich] and no
// enriched_topic, the enriched event when the agent made both.
func (s *Sink) value(ev *sinks.Event) []byte {
	enr := s.cfg.EnrichedTopic != ""
	if s.avro {
		if ev.EnrichedAvro != nil && !enr {
			return ev.EnrichedAvro
		}
		return ev.Avro
	}
	if ev.Enriched != nil && !enr {
		return ev.Enriched // [enrich] without enriched_topic: topic carries enriched events
	}
	return ev.Value
}

// enrichedValue is the record value of a parsed event on enriched_topic
// ([enrich]), nil when the agent made no enriched event.
func (s *Sink) enrichedValue(ev *sinks.Event) []byte {
	if s.avro {
		return ev.EnrichedAvro
	}
	return ev.Enriched
}

// schemaReason is the dead-letter reason of an event without Avro.
func schemaReason(ev *sinks.Event) string {
	if ev.AvroErr != nil {
		return ev.AvroErr.Error()
	}
	return "the agent wrote no Avro encoding of the event (sinks.Event.Avro is nil)"
}

// fillDeadLetter makes r the dead-letter record of rs's event: the raw line
// (truncated to fit a batch), with headers for where it comes from and why
// it is there: stage (parse, schema, produce), reason, and the topic it
// was meant for (source_topic: the topic that rejected it, or the topic of
// an event that does not fit its schema; "" for a line that did not
// parse), and the schema id for stage schema.
func (s *Sink) fillDeadLetter(rs *recState, r *kgo.Record, stage, reason, sourceTopic string) {
	ev, st := rs.ev, rs.st
	val := ev.Raw
	if val == nil {
		val = ev.Value // a parsed event the broker rejected: its JSON
		if len(val) == 0 {
			val = ev.Avro // the agent made Avro only
		}
	}
	trunc := ev.Truncated
	if len(val) > s.dlqMax {
		val, trunc = val[:s.dlqMax], true
	}
	h := make([]kgo.RecordHeader, 0, 9)
	h = st.headers(h)
	h = append(h,
		kgo.RecordHeader{Key: HeaderLogOffset, Value: strconv.AppendInt(nil, ev.Offset, 10)},
		kgo.RecordHeader{Key: HeaderStage, Value: []byte(stage)},
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason)})
	if stage == StageSchema {
		h = append(h, kgo.RecordHeader{Key: HeaderSchemaID, Value: strconv.AppendInt(nil, int64(st.schemaID), 10)})
	}
	if trunc {
		h = append(h, kgo.RecordHeader{Key: HeaderTruncated, Value: []byte("true")})
	}
	if sourceTopic != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(sourceTopic)})
	}
	*r = kgo.Record{
		Topic:     s.cfg.DeadLetterTopic,
		Key:       ev.Key,
		Value:     val,
		Headers:   h,
		Timestamp: ev.Time,
		Context:   rs,
	}
}

// onPromise is franz-go's promise for every record. franz-go calls promises
// one at a time; this one never blocks: a record to reroute to the
// dead-letter topic is queued for rerouteLoop.
func (s *Sink) onPromise(r *kgo.Record, err error) {
	rs := r.Context.(*recState)
	if err == nil {
		if rs.role == roleReroute {
			s.m.rejected.WithLabelValues(errKind(rs.cause), "dead_letter").Inc()
		} else if rs.role == roleInvalid {
			s.m.invalid.WithLabelValues("dead_letter").Inc()
			s.m.invalidEvents.WithLabelValues(StageParse, "dead_letter").Inc()
		} else if rs.role == roleSchema {
			s.m.invalidEvents.WithLabelValues(StageSchema, "dead_letter").Inc()
		}
		rs.finish(nil)
		return
	}
	kind := errKind(err)
	s.m.errors.WithLabelValues(kind).Inc()
	if errors.Is(err, kgo.ErrClientClosed) {
		rs.finish(sinks.Failed("kafka", fmt.Errorf("%w: %w", sinks.ErrClosed, err)))
		return
	}
	ev := rs.ev
	switch rs.role {
	case roleMain, roleRaw, roleEnriched:
		if s.cfg.DeadLetterTopic != "" {
			rs.cause = err
			rs.causeTopic = r.Topic
			s.rq.push(rs)
			return
		}
		s.m.rejected.WithLabelValues(kind, "failed").Inc()
		s.logFailure("record rejected for good and there is no dead_letter_topic: the line is not acknowledged",
			"topic", r.Topic, "file", rs.st.b.Source.Path, "offset", ev.Offset, "err", err)
		rs.finish(sinks.Failed("kafka", fmt.Errorf("%w by topic %s: %w", ErrRejected, r.Topic, err)))
	case roleInvalid, roleSchema:
		stage := StageSchema
		if rs.role == roleInvalid {
			stage = StageParse
			s.m.invalid.WithLabelValues("failed").Inc()
		}
		s.m.invalidEvents.WithLabelValues(stage, "failed").Inc()
		s.logFailure("producing an unparsed line to the dead-letter topic failed for good: the line is not acknowledged",
			"topic", r.Topic, "file", rs.st.b.Source.Path, "offset", ev.Offset, "err", err)
		rs.finish(sinks.Failed("kafka", fmt.Errorf("%w by dead-letter topic %s: %w", ErrRejected, r.Topic, err)))
	case roleReroute:
		s.m.rejected.WithLabelValues(errKind(rs.cause), "failed").Inc()
		s.logFailure("record rejected for good and the dead-letter produce failed too: the line is not acknowledged",
			"topic", rs.causeTopic, "reason", rs.cause, "dead_letter_topic", r.Topic,
			"file", rs.st.b.Source.Path, "offset", ev.Offset, "err", err)
		rs.finish(sinks.Failed("kafka", fmt.Errorf("%w by topic %s (%v), and by dead-letter topic %s: %w",
			ErrRejected, rs.causeTopic, rs.cause, r.Topic, err)))
	}
}

// logFailure logs an event that failed for good, at most one every 10s
// with the number left unlogged in between: a topic that refuses everything
// must not flood the journal (the metrics count every one).
func (s *Sink) logFailure(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.lastFailLog.Load()
	if now-last < int64(10*time.Second) || !s.lastFailLog.CompareAndSwap(last, now) {
		s.failsQuiet.Add(1)
		return
	}
	s.log.Error(msg, append(args, "similar_failures_not_logged", s.failsQuiet.Swap(0))...)
}

// rerouteQueue hands records rejected for good from the promise (which must
// not block, nor produce) to one goroutine, rerouteLoop, that produces their
// lines to the dead-letter topic. One goroutine, not one per record: a topic
// that refuses everything must not start a goroutine per buffered record.
// The queue holds at most the records in the sink's budget.
type rerouteQueue struct {
	mu   sync.Mutex
	q    []*recState
	wake chan struct{} // capacity 1
	stop chan struct{} // closed by Close once nothing is pending
	done chan struct{} // closed when rerouteLoop returned
}

func (q *rerouteQueue) init() {
	q.wake = make(chan struct{}, 1)
	q.stop = make(chan struct{})
	q.done = make(chan struct{})
}

// push queues rs; it never blocks.
func (q *rerouteQueue) push(rs *recState) {
	q.mu.Lock()
	q.q = append(q.q, rs)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// rerouteLoop runs from New until Close stops it.
func (s *Sink) rerouteLoop() {
	defer close(s.rq.done)
	var batch []*recState
	for {
		select {
		case <-s.rq.wake:
		case <-s.rq.stop:
			return
		}
		s.rq.mu.Lock()
		batch, s.rq.q = s.rq.q, batch[:0]
		s.rq.mu.Unlock()
		for i, rs := range batch {
			s.reroute(rs)
			batch[i] = nil
		}
	}
}

// reroute produces rs's line to the dead-letter topic after its record was
// rejected for good. It runs on rerouteLoop (never in a promise).
func (s *Sink) reroute(rs *recState) {
	r := new(kgo.Record)
	s.fillDeadLetter(rs, r, StageProduce, "rejected by "+rs.causeTopic+": "+rs.cause.Error(), rs.causeTopic)
	rs.role = roleReroute
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.clientClosed {
		rs.finish(fmt.Errorf("%w (rejected by %s: %w)", sinks.ErrClosed, rs.causeTopic, rs.cause))
		return
	}
	s.cl.Produce(context.Background(), r, s.promise)
}

// Close implements sinks.Sink: it refuses new batches, waits until ctx is
// done for every event taken to be acknowledged, then closes the client,
// which fails what is still pending (Done with an error wrapping
// sinks.ErrClosed). It returns ctx's error if it had to give up waiting.
func (s *Sink) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		// Closed before (or concurrently): wait for the first Close.
		if err := s.budget.waitIdle(ctx); err != nil {
			return fmt.Errorf("kafka: close: %w", err)
		}
		return nil
	}
	err := s.cl.Flush(ctx)
	if err == nil {
		// Reroutes to the dead-letter topic may start after Flush saw
		// an empty buffer; wait for every batch to complete.
		err = s.budget.waitIdle(ctx)
	}
	if err != nil {
		s.log.Warn("closing with events not yet acknowledged; they are failed and will be sent again after restart",
			"buffered_records", s.cl.BufferedProduceRecords(), "err", err)
	}
	s.mu.Lock()
	s.clientClosed = true
	s.mu.Unlock()
	close(s.stopProbe)
	s.cl.Close()
	// Closing failed every buffered record through its promise; reroutes
	// still queued find the client closed. Both complete quickly.
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if werr := s.budget.waitIdle(wctx); werr != nil {
		s.log.Error("events still pending after the client closed", "err", werr)
		err = errors.Join(err, werr)
	}
	close(s.rq.stop)
	<-s.rq.done
	if s.reg != nil {
		s.reg.stop()
	}
	if err != nil {
		return fmt.Errorf("kafka: close: %w", err)
	}
	return nil
}

// Record roles.
const (
	roleMain     uint8 = iota // the parsed event, to topic
	roleRaw                   // the line as read, to raw_topic
	roleInvalid               // a line that did not parse, to dead_letter_topic
	roleReroute               // a rejected main/raw record's line, to dead_letter_topic
	roleSchema                // a parsed line whose event does not fit its Avro schema, to dead_letter_topic
	roleEnriched              // the enriched event ([enrich]), to enriched_topic
)

// batchState is the sink's state for one batch it took. It is pooled: its
// recs are the batch's kgo.Records, so producing allocates nothing per
// record in the steady state.
type batchState struct {
	s                         *Sink
	b                         *sinks.Batch
	recs                      []recState
	pending                   atomic.Int64 // events not yet complete (+1 while in Send)
	failed                    atomic.Int64 // events that completed with an error (Done'd one by one)
	grantedRecs, grantedBytes int64
	schemaID                  int32 // value_format avro: the batch's input's schema id
	start                     time.Time
	path, format              []byte // header values, copied once per batch
}

// recState is one record and the way back to its event. It is the record's
// Context, which carries it through franz-go to the promise; as a context it
// is never cancelled and holds no values, so franz-go never fails a record
// on it. Its context methods read no field: franz-go may still hold the
// context after the promise (a goroutine waiting for an unknown topic's
// metadata), while the recState is reused.
type recState struct {
	rec   kgo.Record
	st    *batchState
	ev    *sinks.Event
	role  uint8
	join  *recState    // the record that owns the event's count (itself, or the main record for raw)
	left  atomic.Int32 // on the owner: records of the event not yet complete
	errp  atomic.Pointer[error]
	hdrs  [3]kgo.RecordHeader
	cause error // why a main/raw record was rerouted
	// causeTopic is the topic that rejected it.
	causeTopic string
}

// Deadline, Done, Err and Value make *recState a context.Context that is
// never done.
func (*recState) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*recState) Done() <-chan struct{}       { return nil }
func (*recState) Err() error                  { return nil }
func (*recState) Value(any) any               { return nil }

var _ context.Context = (*recState)(nil)

func (rs *recState) reset(st *batchState, ev *sinks.Event) {
	rs.rec = kgo.Record{Context: rs}
	rs.st, rs.ev, rs.join = st, ev, rs
	rs.errp.Store(nil)
	rs.cause, rs.causeTopic = nil, ""
}

// finish completes one record of rs's event with err; the event is Done
// once all of its records finished, with the first error.
func (rs *recState) finish(err error) {
	j := rs.join
	if err != nil {
		e := err // a copy, so that only failures allocate
		j.errp.CompareAndSwap(nil, &e)
	}
	if j.left.Add(-1) != 0 {
		return
	}
	st := rs.st
	if p := j.errp.Load(); p != nil {
		// Counted before Done, as the acknowledged are in eventDone:
		// whoever sees the event done finds it counted.
		st.failed.Add(1)
		st.s.counts.Failed(1)
		j.ev.Done(*p)
	}
	st.eventDone()
}

// eventDone counts one event of the batch as complete; the last one
// acknowledges the events that did not fail, all at once (a failed event
// was Done with its error when it failed), releases the budget and returns
// st to the pool. One acknowledgement per batch rather than one per event:
// each Done would touch the event, a cache miss away in the reader's arena.
func (st *batchState) eventDone() {
	if st.pending.Add(-1) != 0 {
		return
	}
	ok := len(st.b.Events) - int(st.failed.Load())
	s := st.s
	s.counts.Acked(ok)
	st.b.DoneN(nil, ok)
	st.failed.Store(0)
	s.m.latency.Observe(time.Since(st.start).Seconds())
	s.budget.release(st.grantedRecs, st.grantedBytes)
	clear(st.recs) // drop references to the agent's bytes
	st.b = nil
	s.states.Put(st)
}

// headers appends the common headers (host, log_file, format) to h.
func (st *batchState) headers(h []kgo.RecordHeader) []kgo.RecordHeader {
	return append(h,
		kgo.RecordHeader{Key: HeaderHost, Value: st.s.host},
		kgo.RecordHeader{Key: HeaderLogFile, Value: st.path},
		kgo.RecordHeader{Key: HeaderFormat, Value: st.format})
}

func (s *Sink) getState(b *sinks.Batch, nrecs int) *batchState {
	st, _ := s.states.Get().(*batchState)
	if st == nil {
		st = &batchState{s: s}
	}
	st.b = b
	if cap(st.recs) < nrecs {
		st.recs = make([]recState, nrecs)
	}
	st.recs = st.recs[:nrecs]
	// New slices, not appended in place: records of the previous use of
	// st are complete, but a header slice must never change under a
	// record still held by franz-go, so fresh backing arrays are cheap
	// insurance (two small allocations per batch).
	st.path = []byte(b.Source.Path)
	st.format = []byte(b.Source.Format)
	return st
}

// kgoLogger passes franz-go's warnings and errors to slog (its info and
// debug logs only when slog is at debug level).
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var l slog.Level
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelInfo:
		l = slog.LevelInfo
	default:
		l = slog.LevelDebug
	}
	k.l.Log(context.Background(), l, msg, keyvals...)
}

// RegistryReady reports why the schema registry part of the sink is not
// ready (value_format avro): a schema not yet registered (the registry is
// unreachable: reading waits) or refused. nil when ready or with json. It
// is a reason of its own, for whatever Ready combines.
func (s *Sink) RegistryReady() error {
	if !s.avro {
		return nil
	}
	if s.reg == nil {
		return errors.New("value_format avro: no schema given (UseSchemas)")
	}
	if err := s.reg.ready(); err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	return nil
}

// UseSchemas gives the sink, with value_format avro, the Avro schema of
// every input's events and starts registering them (auto_register) or
// looking them up, in the background, retrying with backoff while the
// registry is unreachable. Call it once, after New and before the first
// Send; Send waits for its input's schema id. With json it does nothing.
func (s *Sink) UseSchemas(schemas []InputSchema) error {
	if !s.avro {
		return nil
	}
	r, err := newRegistrar(&s.cfg.SchemaRegistry, s.cfg.Topic, s.cfg.EnrichedTopic, s.log, schemas)
	if err != nil {
		return fmt.Errorf("sinks.kafka.schema_registry: %w", err)
	}
	s.reg = r
	r.start()
	return nil
}

// CheckSchemas asks the schema registry whether it would accept every
// schema (POST /compatibility/subjects/.../versions/latest), without
// registering anything: `validate --connect`. With json it does nothing.
func CheckSchemas(ctx context.Context, cfg Config, schemas []InputSchema) error {
	cfg.Defaults()
	if cfg.ValueFormat != ValueAvro {
		return nil
	}
	r, err := newRegistrar(&cfg.SchemaRegistry, cfg.Topic, cfg.EnrichedTopic, slog.New(slog.DiscardHandler), schemas)
	if err != nil {
		return fmt.Errorf("sinks.kafka.schema_registry: %w", err)
	}
	return r.check(ctx)
}
