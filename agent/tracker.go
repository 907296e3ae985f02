package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// span locates an event's bytes in its flight's arena while the batch is
// being built (the arena may move as it grows).
type span struct{ raw0, raw1, val0, val1, key0, key1, avro0, avro1, enr0, enr1, eav0, eav1 int }

// flight is a batch on its way: the sinks' Batch plus the arena its events'
// bytes live in and its place in its stream.
type flight struct {
	b     sinks.Batch
	arena []byte
	spans []span
	cost  int64 // bytes charged to the in-flight budget
	s     *stream

	done         bool      // every sink called Done for every event
	err          error     // the first error a sink reported
	deadLettered bool      // failed for good and handed to the dead-letter file
	retries      int       // times sent again to a sink that failed it retriably
	readAt       time.Time // when the flight was taken for its first line

	onDone func(*sinks.Batch, error) // fl.complete, bound once
}

func newFlight() *flight {
	// A new flight starts small and grows with its batch: with many files
	// open, most batches are a few lines, and a full-size arena for each
	// of them (1.4 MiB with the events) would be hundreds of MiB. The
	// pool below keeps grown flights, so a busy file does not regrow them
	// batch after batch.
	fl := &flight{
		arena: make([]byte, 0, 16<<10),
		spans: make([]span, 0, 64),
	}
	fl.b.Events = make([]sinks.Event, 0, 64)
	fl.onDone = fl.complete
	return fl
}

// flightOverhead is charged to the in-flight budget for every flight on top
// of its buffers (flightSize): what a flight in flight holds besides them
// (the flight itself, its place in its stream, the sinks' state for the
// batch). It bounds the number of flights in flight when batches are small
// (many files, each with a few new lines).
const flightOverhead = 16 << 10

// flightPool keeps the flights the agent is done with, for the next batches.
// Not a sync.Pool: that one empties at every other garbage collection, and
// the arenas regrown after each (the largest allocations of the agent) were
// most of the garbage that made the collections. The in-flight budget bounds
// how many flights are in use, so a few kept ones serve a busy agent; an
// agent idle for a while keeps one.
type flightPool struct {
	mu      sync.Mutex
	free    []*flight
	bytes   int // what the kept flights hold (flightSize)
	lastGet time.Time
}

// flightsKeptBytes bounds the memory of the flights kept: about a dozen full
// ones (what the default in-flight budget holds, plus the ones being
// filled), or hundreds of small ones (many files, a few lines each).
const flightsKeptBytes = 12 * (batchMaxBytes + batchMaxBytes/8 + batchMaxEvents*(int(unsafe.Sizeof(sinks.Event{}))+int(unsafe.Sizeof(span{}))))

// flightSize is the memory a flight holds.
func flightSize(fl *flight) int {
	return cap(fl.arena) + cap(fl.b.Events)*int(unsafe.Sizeof(sinks.Event{})) + cap(fl.spans)*int(unsafe.Sizeof(span{}))
}

func (p *flightPool) get() *flight {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastGet = time.Now()
	if n := len(p.free); n > 0 {
		fl := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.bytes -= flightSize(fl)
		fl.readAt = p.lastGet
		return fl
	}
	fl := newFlight()
	fl.readAt = p.lastGet
	return fl
}

func (p *flightPool) put(fl *flight) {
	if cap(fl.arena) > 4*batchMaxBytes {
		return // grown for a huge line: let it go
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if sz := flightSize(fl); p.bytes+sz <= flightsKeptBytes {
		p.free = append(p.free, fl)
		p.bytes += sz
	}
}

// trim drops all kept flights but one when none was taken for idle.
func (p *flightPool) trim(idle time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) > 1 && time.Since(p.lastGet) > idle {
		clear(p.free[1:])
		p.free = p.free[:1]
		p.bytes = flightSize(p.free[0])
	}
}

func (fl *flight) complete(_ *sinks.Batch, err error) { fl.s.complete(fl, err) }

// stream orders the flights of one reading of one file and advances its
// checkpoint entry to the end of the longest prefix of flights that every
// sink acknowledged.
//
// A flight a sink failed retriably (sinks.ErrRetriable: the S3 spool could
// not be written) is sent again to that sink alone, with backoff, until it
// succeeds or the agent stops; the checkpoint waits for it meanwhile (its
// wait shows in nginx_shipper_file_ack_wait_seconds). A flight a sink
// failed for good (the sinks retry what can be retried themselves: Kafka
// every retriable error, S3 every upload) goes to the agent's dead-letter file (data_dir/dead-letter/) and then
// counts as acknowledged: the checkpoint moves on. A flight failed because
// the sinks were closed (shutdown, reload) stops the checkpoint before it:
// its lines are read again at the next start. So does a failed flight whose
// dead-letter write failed; that stream is then "blocked" (metric, /readyz,
// an alert), never silently.
type stream struct {
	reg *Registry
	e   *entry
	// log is the agent's logger, file the path the stream began under: its
	// messages name the file (a logger of its own, slog's With, was 300 B
	// of heap for each of thousands of files, for messages seldom logged).
	log     *slog.Logger
	file    string
	release func(*flight) // returns budget and recycles the flight
	ops     *streamOps    // nil: no dead-letter path, no metrics (unit tests)

	mu    sync.Mutex
	q     []*flight
	stuck error
	idle  chan struct{} // closed and replaced when q becomes empty
	sent  int64         // end of the last flight pushed
	acked int64         // end of the last flight the checkpoint passed; -1 before the first
	live  bool          // in ops.live (flights pending or stuck)
}

func newStream(reg *Registry, e *entry, log *slog.Logger, release func(*flight)) *stream {
	return &stream{reg: reg, e: e, log: log, file: e.Path, release: release, idle: make(chan struct{}), acked: -1}
}

// settled reports whether none of the stream's batches is in flight.
func (s *stream) settled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q) == 0
}

// push appends fl, in read order, before it is handed to the sinks.
func (s *stream) push(fl *flight) {
	fl.s = s
	fl.done, fl.err, fl.deadLettered, fl.retries = false, nil, false, 0
	s.mu.Lock()
	s.q = append(s.q, fl)
	if s.acked < 0 {
		s.acked = fl.b.Start
	}
	s.sent = fl.b.End
	join := s.ops != nil && !s.live
	s.live = s.live || join
	s.mu.Unlock()
	if join {
		s.ops.join(s)
	}
}

// complete marks fl acknowledged and advances the checkpoint over every
// acknowledged flight at the head of the queue. Called from sink goroutines
// (Kafka promises, the S3 committer); it never blocks on them: a flight to
// dead-letter is written by a goroutine of its own, which completes it.
func (s *stream) complete(fl *flight, err error) {
	if err != nil && s.ops != nil && s.ops.retry != nil && errors.Is(err, sinks.ErrRetriable) && forGood(err) {
		go s.ops.retry(fl, err)
		return
	}
	if err != nil && s.ops != nil && s.ops.dl != nil && forGood(err) && !fl.deadLettered {
		fl.deadLettered = true
		go func() { s.settle(fl, s.ops.dl.write(s, fl, err)) }()
		return
	}
	s.settle(fl, err)
}

// forGood reports whether err is a sink's failure for good rather than the
// sinks being closed under the batch (shutdown, reload).
func forGood(err error) bool {
	return !errors.Is(err, sinks.ErrClosed) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// settle is complete's second half: fl is done with err (nil: acknowledged
// by every sink, or dead-lettered).
func (s *stream) settle(fl *flight, err error) {
	now := time.Now()
	s.mu.Lock()
	fl.done, fl.err = true, err
	n := 0
	var end int64 = -1
	for n < len(s.q) && s.q[n].done {
		h := s.q[n]
		if h.err != nil && s.stuck == nil {
			s.stuck = h.err
			if forGood(h.err) {
				s.log.Error("a sink failed lines for good and they could not be dead-lettered: the checkpoint of this file stops before them (they are read again at the next start); see nginx_shipper_file_blocked",
					"path", s.file, "sink", sinks.SinkOf(h.err), "offset", h.b.Start, "cause", h.err)
			} else {
				s.log.Warn("sinks closed before acknowledging lines: the checkpoint stops before them; they are read again at the next start",
					"path", s.file, "sink", sinks.SinkOf(h.err), "offset", h.b.Start, "cause", h.err)
			}
		}
		if s.stuck == nil {
			end = h.b.End
			if s.ops != nil && !h.deadLettered {
				s.ops.m.observeAck(h, now)
			}
		}
		n++
	}
	if end >= 0 {
		s.acked = end
	}
	popped := append([]*flight(nil), s.q[:n]...)
	rest := copy(s.q, s.q[n:])
	// The queue's array must not keep the flights it moved past: they are
	// recycled (or dropped) now, and a stream lives as long as its file is
	// known. With 1,000 idle files, one stale flight each was 97 MB.
	clear(s.q[rest:])
	s.q = s.q[:rest]
	var idle chan struct{}
	if len(s.q) == 0 && n > 0 {
		idle = s.idle
		s.idle = make(chan struct{})
	}
	leave := s.live && len(s.q) == 0 && s.stuck == nil
	if leave {
		s.live = false
	}
	s.mu.Unlock()

	if end >= 0 {
		s.reg.update(func() {
			if end > s.e.Offset {
				s.e.Offset = end
			}
		})
	}
	if leave {
		s.ops.leave(s)
	}
	for _, f := range popped {
		s.release(f)
	}
	if idle != nil {
		close(idle)
	}
}

// state is what the stream's metrics and /readyz show: bytes handed to the
// sinks and not acknowledged, how long the oldest flight has waited, and
// the error that stopped its checkpoint (nil: none).
func (s *stream) state(now time.Time) (path string, unacked int64, wait time.Duration, stuck error) {
	path = s.path()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.q) > 0 {
		wait = now.Sub(s.q[0].readAt)
	}
	if s.acked >= 0 {
		unacked = s.sent - s.acked
	}
	return path, unacked, wait, s.stuck
}

// budget bounds the bytes in flight. acquire blocks while the budget is
// spent; waiters are served first come, first served, so a reader with a
// large batch is not overtaken for ever by readers with small ones.
type budget struct {
	mu      sync.Mutex
	used    int64
	max     int64
	waiters []*budgetWaiter // FIFO
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when the bytes were granted
}

func newBudget(max int64) *budget { return &budget{max: max} }

// acquire takes n bytes (at most max: a single huge batch still passes once
// the budget is empty).
func (b *budget) acquire(ctx context.Context, n int64) error {
	n = min(n, b.max)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.max {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.used -= n
	default:
		i := slices.Index(b.waiters, w)
		b.waiters = slices.Delete(b.waiters, i, i+1)
	}
	b.grant() // those behind it may fit now
	return ctx.Err()
}

func (b *budget) release(n int64) {
	n = min(n, b.max)
	b.mu.Lock()
	b.used -= n
	b.grant()
	b.mu.Unlock()
}

// grant hands the budget to the waiters at the head of the queue that fit.
// b.mu is held.
func (b *budget) grant() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.max {
		w := b.waiters[0]
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// path is the entry's path (the registry's lock guards it: a rename found
// by a scan updates it).
func (s *stream) path() string {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	return s.e.Path
}
