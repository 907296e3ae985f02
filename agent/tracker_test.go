package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// trackerEnv is a stream over a registry entry, with flights made by hand.
type trackerEnv struct {
	t        *testing.T
	reg      *Registry
	e        *entry
	s        *stream
	mu       sync.Mutex
	released int
}

func newTrackerEnv(t *testing.T) *trackerEnv {
	t.Helper()
	reg, _, err := OpenRegistry(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	env := &trackerEnv{t: t, reg: reg, e: &entry{Path: "/x", Dev: 1, Ino: 2}}
	reg.put(env.e)
	env.s = newStream(reg, env.e, slog.New(slog.DiscardHandler), func(*flight) {
		env.mu.Lock()
		env.released++
		env.mu.Unlock()
	})
	return env
}

// send makes a flight of n one-byte lines starting at start, armed for
// nSinks, pushed onto the stream.
func (env *trackerEnv) send(start int64, n, nSinks int) *flight {
	fl := newFlight()
	fl.b.Reset(&sinks.Source{Path: "/x"})
	for i := 0; i < n; i++ {
		e := fl.b.Add()
		e.Offset = start + int64(i)
	}
	fl.b.Start, fl.b.End = start, start+int64(n)
	env.s.push(fl)
	fl.b.Arm(nSinks, fl.onDone)
	return fl
}

func (env *trackerEnv) offset() int64 { return env.reg.offsetOf(env.e) }

func ackAll(fl *flight, err error) {
	for i := range fl.b.Events {
		fl.b.Events[i].Done(err)
	}
}

func TestTrackerInOrder(t *testing.T) {
	env := newTrackerEnv(t)
	a := env.send(0, 3, 1)
	b := env.send(3, 2, 1)
	ackAll(a, nil)
	if got := env.offset(); got != 3 {
		t.Fatalf("offset after first batch = %d, want 3", got)
	}
	ackAll(b, nil)
	if got := env.offset(); got != 5 {
		t.Fatalf("offset after second batch = %d, want 5", got)
	}
	if env.released != 2 {
		t.Fatalf("released %d flights, want 2", env.released)
	}
}

func TestTrackerOutOfOrderWaitsForHead(t *testing.T) {
	env := newTrackerEnv(t)
	a := env.send(0, 3, 2)
	b := env.send(3, 3, 2)
	ackAll(b, nil) // both sinks ack the second batch first
	ackAll(b, nil)
	if got := env.offset(); got != 0 {
		t.Fatalf("offset = %d before the first batch is acknowledged, want 0", got)
	}
	ackAll(a, nil) // sink 1 only
	if got := env.offset(); got != 0 {
		t.Fatalf("offset = %d with one sink still pending on the first batch, want 0", got)
	}
	ackAll(a, nil) // sink 2
	if got := env.offset(); got != 6 {
		t.Fatalf("offset = %d after every sink acknowledged everything, want 6", got)
	}
}

func TestTrackerOneSinkFailingStopsCheckpoint(t *testing.T) {
	env := newTrackerEnv(t)
	a := env.send(0, 2, 2)
	b := env.send(2, 2, 2)
	c := env.send(4, 2, 2)
	ackAll(a, nil)
	ackAll(a, nil)
	if got := env.offset(); got != 2 {
		t.Fatalf("offset = %d, want 2", got)
	}
	ackAll(b, nil)
	ackAll(b, errors.New("record rejected"))
	ackAll(c, nil)
	ackAll(c, nil)
	if got := env.offset(); got != 2 {
		t.Fatalf("offset = %d after a sink failed the second batch, want it to stay at 2", got)
	}
	if env.released != 3 {
		t.Fatalf("released %d flights, want 3 (a failed batch still frees its budget)", env.released)
	}
}

// TestTrackerNeverPassesUnacknowledged acks events in random order, from
// several goroutines, and checks after every ack that the checkpoint never
// passes the start of an event some sink has not acknowledged.
func TestTrackerNeverPassesUnacknowledged(t *testing.T) {
	for round := 0; round < 50; round++ {
		env := newTrackerEnv(t)
		const nSinks = 2
		var fls []*flight
		var off int64
		for i := 0; i < 20; i++ {
			n := 1 + rand.IntN(5)
			fls = append(fls, env.send(off, n, nSinks))
			off += int64(n)
		}
		type ack struct {
			fl *flight
			i  int
		}
		var acks []ack
		for _, fl := range fls {
			for i := range fl.b.Events {
				for s := 0; s < nSinks; s++ {
					acks = append(acks, ack{fl, i})
				}
			}
		}
		rand.Shuffle(len(acks), func(i, j int) { acks[i], acks[j] = acks[j], acks[i] })
		remaining := map[int64]int{} // offset -> sinks still to ack
		for _, a := range acks {
			remaining[a.fl.b.Events[a.i].Offset]++
		}
		var mu sync.Mutex
		for _, a := range acks {
			ev := &a.fl.b.Events[a.i]
			mu.Lock()
			remaining[ev.Offset]--
			mu.Unlock()
			ev.Done(nil)
			cp := env.offset()
			mu.Lock()
			for o, left := range remaining {
				if left > 0 && o < cp {
					mu.Unlock()
					t.Fatalf("round %d: checkpoint %d passed offset %d which %d sink(s) have not acknowledged", round, cp, o, left)
				}
			}
			mu.Unlock()
		}
		if got := env.offset(); got != off {
			t.Fatalf("round %d: final offset %d, want %d", round, got, off)
		}
	}
}

func TestTrackerConcurrentAcks(t *testing.T) {
	env := newTrackerEnv(t)
	var fls []*flight
	var off int64
	for i := 0; i < 200; i++ {
		fls = append(fls, env.send(off, 10, 2))
		off += 10
	}
	var wg sync.WaitGroup
	for s := 0; s < 2; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, fl := range fls {
				ackAll(fl, nil)
			}
		}()
	}
	wg.Wait()
	if got := env.offset(); got != off {
		t.Fatalf("offset %d, want %d", got, off)
	}
}

// acquireQueued starts b.acquire(ctx, n) and waits until it is the
// wantQueued-th waiter. Its result arrives on the returned channel.
func acquireQueued(t *testing.T, b *budget, ctx context.Context, n int64, wantQueued int) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- b.acquire(ctx, n) }()
	e2e.WaitFor(t, 10*time.Second, fmt.Sprintf("acquire(%d) to queue", n), func() (bool, string) {
		b.mu.Lock()
		q := len(b.waiters)
		b.mu.Unlock()
		return q >= wantQueued, fmt.Sprintf("%d waiting, %d of %d in use", q, b.inUse(), b.max)
	})
	return done
}

// TestBudgetIsFirstComeFirstServed: a large acquire waiting for the budget
// is not overtaken by smaller ones that arrive after it and would fit,
// however many there are; it is served as soon as it fits.
func TestBudgetIsFirstComeFirstServed(t *testing.T) {
	b := newBudget(100)
	ctx := context.Background()
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	big := acquireQueued(t, b, ctx, 80, 1)
	// A small one arrives after it: it fits (60+30 <= 100) but must wait.
	small := acquireQueued(t, b, ctx, 30, 2)
	b.release(60)
	if err := <-big; err != nil {
		t.Fatal(err)
	}
	select {
	case <-small:
		t.Fatal("the small acquire got the budget while the big one held 80 of 100")
	default:
	}
	b.release(80)
	if err := <-small; err != nil {
		t.Fatal(err)
	}
	if got := b.inUse(); got != 30 {
		t.Fatalf("in use %d, want 30", got)
	}
}

// TestBudgetCancelledWaiterLetsOthersThrough: a waiter at the head of the
// queue that gives up (its ctx ends) does not block those behind it.
func TestBudgetCancelledWaiterLetsOthersThrough(t *testing.T) {
	b := newBudget(100)
	if err := b.acquire(context.Background(), 50); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	big := acquireQueued(t, b, ctx, 90, 1)
	small := acquireQueued(t, b, context.Background(), 40, 2)
	cancel()
	if err := <-big; err == nil {
		t.Fatal("the cancelled acquire succeeded")
	}
	if err := <-small; err != nil {
		t.Fatal(err)
	}
	if got := b.inUse(); got != 90 {
		t.Fatalf("in use %d, want 90", got)
	}
}

// A stream whose batches all completed keeps no reference to them: streams
// live as long as their files are known, a flight is up to 1.4 MiB, and the
// flights are recycled.
func TestTrackerKeepsNoCompletedFlight(t *testing.T) {
	env := newTrackerEnv(t)
	a := env.send(0, 10, 1)
	b := env.send(10, 10, 1)
	ackAll(b, nil)
	ackAll(a, nil)
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.q[:cap(s.q)] {
		if f != nil {
			t.Fatalf("slot %d of the stream's queue still holds a completed flight", i)
		}
	}
}
