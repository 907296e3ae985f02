package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// parallelEnv is a scenario with a backlog in several files, big enough that
// their reads fill the read buffer and go to the parse workers, and sinks
// that check each file's offsets arrive strictly increasing.
type parallelEnv struct {
	*env
	paths []string
	per   int

	mu   sync.Mutex
	last map[string]map[string]int64 // sink → path → last offset seen
	bad  []string
}

func newParallelEnv(t *testing.T, files, per int) *parallelEnv {
	if runtime.GOMAXPROCS(0) < 2 {
		prev := runtime.GOMAXPROCS(2) // the workers exist from two cores on
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
	e := &parallelEnv{env: newEnv(t), per: per}
	dir := filepath.Dir(e.log)
	e.ins[0].Paths = []string{filepath.Join(dir, "*.log")}
	// The budget binds: jobs wait for room while acknowledgements lag.
	e.cfg.MaxInFlightBytes = 4 << 20
	for k := range files {
		p := filepath.Join(dir, fmt.Sprintf("f%d.log", k))
		var b bytes.Buffer
		for i := k * per; i < (k+1)*per; i++ {
			b.WriteString(line(i))
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		e.paths = append(e.paths, p)
	}
	e.resetOrder()
	for _, s := range e.sinks {
		name := s.name
		s.failBatch = func(b *sinks.Batch) error { // called for every batch, under s.mu
			e.mu.Lock()
			defer e.mu.Unlock()
			last := e.last[name]
			for i := range b.Events {
				off := b.Events[i].Offset
				if prev, ok := last[b.Source.Path]; ok && off <= prev && len(e.bad) < 10 {
					e.bad = append(e.bad, fmt.Sprintf("sink %s, %s: offset %d after %d", name, b.Source.Path, off, prev))
				}
				last[b.Source.Path] = off
			}
			return nil
		}
	}
	return e
}

// resetOrder forgets the offsets seen: a new run reads from the checkpoint.
func (e *parallelEnv) resetOrder() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.last = map[string]map[string]int64{}
	for _, s := range e.sinks {
		e.last[s.name] = map[string]int64{}
	}
}

func (e *parallelEnv) checkOrder() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.bad) > 0 {
		e.t.Fatalf("batches out of file order:\n%v", e.bad)
	}
}

func (e *parallelEnv) waitCheckpoints() {
	e.t.Helper()
	for _, p := range e.paths {
		e.waitCheckpoint(p, e.size(filepath.Base(p)))
	}
}

// jobs is how many jobs the workers and the harvesters parsed.
func (e *parallelEnv) jobs() (byWorker, byOwner int64) {
	if e.a.pool == nil {
		return 0, 0
	}
	return e.a.pool.byWorker.Load(), e.a.pool.byOwner.Load()
}

// TestParallelBacklogInOrderExactlyOnce: three files with a backlog are
// parsed by the workers and the harvesters together; every line reaches
// every sink once, each file's batches in file order, and the checkpoints
// end at the files' sizes.
func TestParallelBacklogInOrderExactlyOnce(t *testing.T) {
	const files, per = 3, 40_000
	e := newParallelEnv(t, files, per)
	e.sinks[1].delay = 2 * time.Millisecond // acknowledgements lag: the budget fills
	e.start()
	e.waitDelivered(files * per)
	e.waitCheckpoints()
	e.checkOrder()
	if d := e.dups(files * per); d != 0 {
		t.Fatalf("%d duplicates without any failure", d)
	}
	w, o := e.jobs()
	if w == 0 {
		t.Fatalf("no job was parsed by a worker (harvesters parsed %d): the backlog was not parsed in parallel", o)
	}
	t.Logf("jobs parsed by workers %d, by harvesters %d", w, o)
}

// TestParallelBacklogCrashLosesNothing: the agent is killed while the
// workers parse the backlog and started again: every line is delivered
// (some twice, at least once), in file order within each run, and the
// checkpoints end at the files' sizes.
func TestParallelBacklogCrashLosesNothing(t *testing.T) {
	const files, per = 3, 40_000
	e := newParallelEnv(t, files, per)
	e.start()
	e.waitFor("a third of the lines", func() bool {
		s := e.sinks[0]
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.sent >= files*per/3
	})
	w, _ := e.jobs()
	e.crash()
	if w == 0 {
		t.Fatal("no job was parsed by a worker before the crash")
	}
	e.checkOrder()
	e.resetOrder()
	e.start()
	e.waitDelivered(files * per)
	e.waitCheckpoints()
	e.checkOrder()
}

// TestTrickleParsedInline: a file that is caught up (each read finds a few
// lines) never goes to the workers.
func TestTrickleParsedInline(t *testing.T) {
	e := newParallelEnv(t, 0, 0)
	e.cfg.Linger.Duration = 10 * time.Millisecond
	e.start()
	for i := 0; i < 2000; i += 100 {
		e.write(i, i+100)
		e.waitDelivered(i + 100)
	}
	if w, o := e.jobs(); w+o != 0 {
		t.Fatalf("a trickle went to the parse workers: %d jobs by workers, %d by the harvester", w, o)
	}
}
