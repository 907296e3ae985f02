package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// manyFiles is n log files written like nginx writes them (O_APPEND), line
// seq of round r going to file seq%n: together they hold the seqs [0, next).
type manyFiles struct {
	t     *testing.T
	dir   string
	ws    []*os.File
	next  int
	mu    sync.Mutex
	wrote map[int]time.Time // when each round's lines were written
}

func (e *env) manyFiles(n int) *manyFiles {
	e.t.Helper()
	dir := filepath.Dir(e.log)
	m := &manyFiles{t: e.t, dir: dir, wrote: map[int]time.Time{}}
	e.w.Close() // the scenario's own access.log is not one of them
	e.w = nil
	os.Remove(e.log)
	for i := range n {
		w, err := os.OpenFile(m.path(i), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			e.t.Fatal(err)
		}
		m.ws = append(m.ws, w)
	}
	e.ins = []InputConfig{{Paths: []string{filepath.Join(dir, "*.log")}, Format: "combined"}}
	e.ins[0].Defaults()
	e.t.Cleanup(func() {
		for _, w := range m.ws {
			w.Close()
		}
	})
	return m
}

func (m *manyFiles) path(i int) string { return filepath.Join(m.dir, fmt.Sprintf("vhost-%04d.log", i)) }

// rounds appends r lines to every file.
func (m *manyFiles) rounds(r int) {
	m.t.Helper()
	n := len(m.ws)
	var b bytes.Buffer
	for range r {
		round := m.next / n
		m.mu.Lock()
		m.wrote[round] = time.Now()
		m.mu.Unlock()
		for i := range n {
			b.Reset()
			b.WriteString(line(m.next))
			m.next++
			if _, err := m.ws[i].Write(b.Bytes()); err != nil {
				m.t.Fatal(err)
			}
		}
	}
}

// reopen makes the writer of file i open its path anew (nginx on USR1).
func (m *manyFiles) reopen(i int) {
	m.t.Helper()
	m.ws[i].Close()
	w, err := os.OpenFile(m.path(i), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		m.t.Fatal(err)
	}
	m.ws[i] = w
}

// lagMeter records, per file, the longest time from a line's write to its
// arrival at a sink.
type lagMeter struct {
	m      *manyFiles
	mu     sync.Mutex
	maxLag map[int]time.Duration // by file
	got    map[int]int           // lines seen, by file
}

func (m *manyFiles) lagMeter(s *recSink) *lagMeter {
	l := &lagMeter{m: m, maxLag: map[int]time.Duration{}, got: map[int]int{}}
	s.onEvent = func(ev *sinks.Event) {
		seq := seqOf(ev.Value)
		n := len(m.ws)
		m.mu.Lock()
		at, ok := m.wrote[seq/n]
		m.mu.Unlock()
		l.mu.Lock()
		defer l.mu.Unlock()
		l.got[seq%n]++
		if ok {
			l.maxLag[seq%n] = max(l.maxLag[seq%n], time.Since(at))
		}
	}
	return l
}

// each reports whether every file has had at least k lines delivered.
func (l *lagMeter) each(k int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.m.ws {
		if l.got[i] < k {
			return false
		}
	}
	return true
}

func (l *lagMeter) worst() (time.Duration, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var w time.Duration
	file := -1
	for i, d := range l.maxLag {
		if d > w {
			w, file = d, i
		}
	}
	return w, file
}

// More live files than slots: every file is read while all of them keep
// growing (before, the files beyond max_open_files were never opened: none
// of them ever goes idle), every line arrives once, and each file's lag is
// bounded by its turns.
func TestMoreLiveFilesThanSlots(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxOpenFiles = 2
	const files = 8
	m := e.manyFiles(files)
	lag := m.lagMeter(e.sinks[0])
	e.start()

	stop := make(chan struct{})
	writing := make(chan struct{})
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }); <-writing }
	t.Cleanup(halt) // before the files are closed
	go func() {
		defer close(writing)
		tick := time.NewTicker(2 * time.Millisecond) // the pace of the writers, not synchronisation
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				m.rounds(1)
			}
		}
	}()
	// While every file still grows, every file is read, again and again.
	e.waitFor("every live file read while all keep growing", func() bool { return lag.each(200) })
	halt()
	total := m.next
	e.waitDelivered(total)
	if d := e.dups(total); d != 0 {
		t.Fatalf("%d duplicates: a file given up and opened again must resume where it stopped reading", d)
	}
	w, file := lag.worst()
	t.Logf("%d files, %d slots, %d lines: worst lag %v (file %d); %v slot releases", files, e.cfg.MaxOpenFiles, total, w, file, counterValue(e.a.m.slotReleases))
	// ceil(8/2) = 4 turns of slotTurn, plus scans and polls: far below
	// this, which only a starved file reaches.
	if w > 20*time.Second {
		t.Fatalf("file %d waited %v for its turn", file, w)
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "max_open_files reached; file waits"); n != 0 {
		t.Fatalf("%d per-file waiting warnings", n)
	}
	if n := strings.Count(logs, "files wait for a free slot"); n > 2 {
		t.Fatalf("waiting summary logged %d times; want at most one a minute", n)
	}
}

// A file renamed while it waits for a slot is read to its end by identity,
// the lines nginx writes to it after the rename included, and so is the
// new file under its name.
func TestRotationWhileWaitingForASlot(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxOpenFiles = 1
	e.cfg.MaxInFlightBytes = 64 << 10
	m := e.manyFiles(2)
	e.sinks[0].hold = true
	m.rounds(600) // file 0 alone fills the budget: its reader blocks, holding the only slot
	e.start()
	e.waitFor("one reader blocked on the budget and one file waiting", func() bool {
		return e.a.budget.inUse() > (64<<10)/2 && e.a.nQueued.Load() == 1
	})
	// file 1 waits; rotate it by rename, as logrotate does, and let
	// nginx write on to the old file before it reopens its logs.
	if err := os.Rename(m.path(1), m.path(1)+".1"); err != nil {
		t.Fatal(err)
	}
	m.rounds(50)
	m.reopen(1)
	m.rounds(50)
	e.waitFor("the waiting file found by identity under its new name", func() bool {
		e.a.mu.Lock()
		defer e.a.mu.Unlock()
		return len(e.a.queueRot) == 1 && strings.HasSuffix(e.a.queueRot[0].path, ".1")
	})
	e.sinks[0].release()
	e.waitDelivered(m.next)
	if d := e.dups(m.next); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
	if n := counterValue(e.a.m.unreadLost); n != 0 {
		t.Fatalf("released_unread_bytes_total = %v", n)
	}
}

// A file deleted while it waits for a slot cannot be read any more (no
// descriptor was open): that is said, counted and logged, never silent.
func TestDeletedWhileWaitingIsCountedAndLogged(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxOpenFiles = 1
	e.cfg.MaxInFlightBytes = 64 << 10
	m := e.manyFiles(2)
	e.sinks[0].hold = true
	m.rounds(600)
	e.start()
	e.waitFor("one file waiting", func() bool { return e.a.budget.inUse() > (64<<10)/2 && e.a.nQueued.Load() == 1 })
	size := e.size(filepath.Base(m.path(1)))
	if err := os.Remove(m.path(1)); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the loss counted", func() bool { return counterValue(e.a.m.unreadLost) == float64(size) })
	if !strings.Contains(e.logs.String(), "file deleted while it waited for a slot") {
		t.Fatal("the loss was not logged")
	}
	e.sinks[0].release()
}

// Thousands of files: all read with a small cap, checkpointed, and after a
// restart each is resumed from its own entry (no line twice).
func TestRestartWithThousandsOfCheckpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("many files")
	}
	e := newEnv(t)
	e.cfg.MaxOpenFiles = 32
	const files = 1500
	m := e.manyFiles(files)
	m.rounds(2)
	e.start()
	e.waitDelivered(m.next)
	e.waitFor("every file checkpointed at its size", func() bool {
		cp := e.checkpoint()
		if len(cp) != files {
			return false
		}
		for i := range files {
			if cp[m.path(i)] != e.size(filepath.Base(m.path(i))) {
				return false
			}
		}
		return true
	})
	e.stop()
	m.rounds(2)
	e.start()
	e.waitDelivered(m.next)
	if d := e.dups(m.next); d != 0 {
		t.Fatalf("%d duplicates after a restart with %d checkpoint entries", d, files)
	}
	if got := len(e.checkpoint()); got != files {
		t.Fatalf("checkpoint has %d entries, want %d", got, files)
	}
}

// TestTurnsKeepPerFileSeries: a file that takes turns for a slot keeps its
// per-file series between turns, so lines_read_total counts every line it
// was read for, not those since its last turn (its series were deleted
// when it gave its slot up and made again at its next turn: every counter
// restarted at zero each turn).
func TestTurnsKeepPerFileSeries(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxOpenFiles = 1
	const files, rounds = 3, 40
	m := e.manyFiles(files)
	reg := prometheus.NewRegistry()
	e.startWith(reg)
	for range rounds / 4 {
		m.rounds(4)
		e.waitDelivered(m.next) // every file had a turn since the last write
	}
	if r := counterValue(e.a.m.slotReleases); r < files {
		t.Fatalf("%v slot releases: the files did not take turns", r)
	}
	for i := range files {
		if got := gathered(t, reg, "nginx_shipper_lines_read_total", "path", m.path(i)); got != rounds {
			t.Errorf("lines_read_total{path=%q} = %v, want %d", m.path(i), got, rounds)
		}
	}
}
