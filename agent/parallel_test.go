package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
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

	mu       sync.Mutex
	last     map[string]map[*sinks.Source]int64 // sink → file (its reader's Source) → last offset seen
	restarts int                                // a file read again from 0 (truncated), allowed this many times
	bad      []string
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
				if prev, ok := last[b.Source]; ok && off <= prev {
					if off == 0 && e.restarts > 0 {
						e.restarts--
					} else if len(e.bad) < 10 {
						e.bad = append(e.bad, fmt.Sprintf("sink %s, %s: offset %d after %d", name, b.Source.Path, off, prev))
					}
				}
				last[b.Source] = off
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
	e.last = map[string]map[*sinks.Source]int64{}
	for _, s := range e.sinks {
		e.last[s.name] = map[*sinks.Source]int64{}
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

// waitCheckpointOf waits until the checkpoint of the file named name now
// (found by its inode: a renamed file keeps its old name there) is its
// size.
func (e *parallelEnv) waitCheckpointOf(name string) {
	e.t.Helper()
	fi, err := os.Stat(filepath.Join(filepath.Dir(e.log), name))
	if err != nil {
		e.t.Fatal(err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	e.waitFor(fmt.Sprintf("checkpoint of %s (inode %d) at %d", name, ino, fi.Size()), func() bool {
		b, err := os.ReadFile(filepath.Join(e.data, "checkpoints.json"))
		var rf registryFile
		if err != nil || json.Unmarshal(b, &rf) != nil {
			return false
		}
		for _, f := range rf.Files {
			if f.Ino == ino && f.Offset == fi.Size() {
				return true
			}
		}
		return false
	})
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
	w, o := e.jobs()
	e.crash()
	if w+o == 0 {
		t.Fatal("no job was parsed before the crash: the backlog was not parsed in jobs")
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

// TestParallelBacklogLongLines: lines longer than max_line_bytes inside a
// backlog (parsed by the workers) and one longer than the read buffer
// (skipped by the harvester) go to the dead-letter path once each, in file
// order with the others, and the checkpoint ends at the file's size.
func TestParallelBacklogLongLines(t *testing.T) {
	e := newParallelEnv(t, 0, 0)
	e.cfg.MaxLineBytes = 1024
	const n = 30_000
	long := map[int]bool{}
	var b bytes.Buffer
	for i := range n {
		switch {
		case i == n/2: // longer than the read buffer
			fmt.Fprintf(&b, "127.0.0.1 - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/%d?pad=%s HTTP/1.1\" 200 1 \"-\" \"x\"\n", i, strings.Repeat("a", 2*readChunk))
			long[i] = true
		case i%1000 == 7:
			fmt.Fprintf(&b, "127.0.0.1 - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/%d?pad=%s HTTP/1.1\" 200 1 \"-\" \"x\"\n", i, strings.Repeat("a", 3000))
			long[i] = true
		default:
			b.WriteString(line(i))
		}
	}
	e.mustWrite(b.Bytes())
	e.start()
	e.waitCheckpoint(e.log, e.size("access.log"))
	e.checkOrder()
	if w, o := e.jobs(); w+o == 0 {
		t.Fatal("no job was parsed in parallel")
	}
	for _, s := range e.sinks {
		s.mu.Lock()
		got := map[int]int{}
		for _, ev := range s.invalid {
			if !errors.Is(ev.Err, ErrLineTooLong) {
				t.Errorf("sink %s: unexpected dead-letter event at %d: %v", s.name, ev.Offset, ev.Err)
			}
			got[seqOf(ev.Raw)]++
		}
		for i := range n {
			if long[i] && got[i] != 1 {
				t.Errorf("sink %s: long line %d dead-lettered %d times", s.name, i, got[i])
			}
			if !long[i] && s.seqs[i] != 1 {
				t.Errorf("sink %s: line %d delivered %d times", s.name, i, s.seqs[i])
			}
		}
		s.mu.Unlock()
	}
}

// TestJobFill: a job takes whole lines only, up to its room and
// batchMaxEvents lines, and at least one line when empty.
func TestJobFill(t *testing.T) {
	lines := func(n, size int) []byte {
		var b bytes.Buffer
		for range n {
			b.WriteString(strings.Repeat("x", size-1) + "\n")
		}
		return b.Bytes()
	}
	for _, c := range []struct {
		name                string
		data                []byte
		room                int
		wantBytes, wantLine int
	}{
		{"all fit", lines(10, 100), 4096, 1000, 10},
		{"room cuts at a line's end", lines(10, 100), 450, 400, 4},
		{"one line longer than the room", lines(3, 1000), 100, 1000, 1},
		{"lines cap", lines(batchMaxEvents+10, 10), 1 << 20, batchMaxEvents * 10, batchMaxEvents},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := &parseJob{}
			n := j.fill(c.data, c.room)
			if n != c.wantBytes || j.lines != c.wantLine || len(j.raw) != n || !bytes.Equal(j.raw, c.data[:n]) {
				t.Fatalf("took %d bytes, %d lines (raw %d); want %d, %d", n, j.lines, len(j.raw), c.wantBytes, c.wantLine)
			}
			if c.wantBytes < len(c.data) {
				if m := j.fill(c.data[n:], c.room); m != 0 {
					t.Fatalf("a full job took %d more bytes", m)
				}
			}
		})
	}
}

// TestParallelBacklogRotated: a file renamed away (rotation) and one
// truncated (copytruncate) while the workers parse their backlog: each is
// drained first, read to its end or from logrotate's copy, and every line
// arrives once, in file order.
func TestParallelBacklogRotated(t *testing.T) {
	for _, how := range []string{"rename", "copytruncate"} {
		t.Run(how, func(t *testing.T) {
			e := newParallelEnv(t, 0, 0)
			const n, more = 60_000, 5_000
			e.write(0, n)
			e.start()
			e.waitFor("a sixth of the lines", func() bool {
				s := e.sinks[0]
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.sent >= n/6
			})
			if how == "rename" {
				e.rename("access.log.1")
				e.reopen()
			} else {
				e.mu.Lock()
				e.restarts = len(e.sinks) // the truncated file is read again from 0, once
				e.mu.Unlock()
				e.copytruncate("access.log.1")
			}
			e.write(n, n+more)
			e.waitDelivered(n + more)
			e.checkOrder()
			if d := e.dups(n + more); d != 0 {
				t.Fatalf("%d duplicates", d)
			}
			if w, o := e.jobs(); w+o == 0 {
				t.Fatal("no job was parsed in parallel")
			}
			e.waitCheckpointOf("access.log")
			e.waitCheckpointOf("access.log.1")
		})
	}
}
