package agent

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// span locates an event's bytes in its flight's arena while the batch is
// being built (the arena may move as it grows).
type span struct{ raw0, raw1, val0, val1, key0, key1 int }

// flight is a batch on its way: the sinks' Batch plus the arena its events'
// bytes live in and its place in its stream.
type flight struct {
	b     sinks.Batch
	arena []byte
	spans []span
	cost  int64 // bytes charged to the in-flight budget
	s     *stream

	done bool  // every sink called Done for every event
	err  error // the first error a sink reported

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
// of the bytes it holds: what a small flight costs in memory. It bounds the
// number of flights in flight when batches are small (many files, each
// with a few new lines).
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
		return fl
	}
	return newFlight()
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
// sink acknowledged. A flight that failed (a sink gave up on an event) stops
// the stream's checkpoint for good: the lines will be read again after a
// restart, never skipped.
type stream struct {
	reg     *Registry
	e       *entry
	log     *slog.Logger
	release func(*flight) // returns budget and recycles the flight

	mu    sync.Mutex
	q     []*flight
	stuck error
	idle  chan struct{} // closed and replaced when q becomes empty
}

func newStream(reg *Registry, e *entry, log *slog.Logger, release func(*flight)) *stream {
	return &stream{reg: reg, e: e, log: log, release: release, idle: make(chan struct{})}
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
	fl.done, fl.err = false, nil
	s.mu.Lock()
	s.q = append(s.q, fl)
	s.mu.Unlock()
}

// complete marks fl acknowledged and advances the checkpoint over every
// acknowledged flight at the head of the queue. Called from sink goroutines
// (Kafka promises, the S3 committer); it never blocks on them.
func (s *stream) complete(fl *flight, err error) {
	s.mu.Lock()
	fl.done, fl.err = true, err
	n := 0
	var end int64 = -1
	for n < len(s.q) && s.q[n].done {
		h := s.q[n]
		if h.err != nil && s.stuck == nil {
			s.stuck = h.err
			s.log.Error("a sink failed to deliver lines for good; the checkpoint of this file stops before them and they will be read again at the next start",
				"offset", h.b.Start, "err", h.err)
		}
		if s.stuck == nil {
			end = h.b.End
		}
		n++
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
	s.mu.Unlock()

	if end >= 0 {
		s.reg.update(func() {
			if end > s.e.Offset {
				s.e.Offset = end
			}
		})
	}
	for _, f := range popped {
		s.release(f)
	}
	if idle != nil {
		close(idle)
	}
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
