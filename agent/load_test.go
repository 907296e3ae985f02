package agent

import (
	"bytes"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// nginxWriter writes lines from its own goroutine at speed, like a busy
// nginx: O_APPEND on a descriptor it keeps until told to reopen (USR1).
type nginxWriter struct {
	e      *env
	next   atomic.Int64
	mu     sync.Mutex // held while writing a chunk; reopen takes it
	f      *os.File
	stop   chan struct{}
	done   chan struct{}
	paused atomic.Bool
}

func (e *env) startWriter(perChunk int) *nginxWriter {
	e.w.Close()
	e.w = nil
	f, err := os.OpenFile(e.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	w := &nginxWriter{e: e, f: f, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var b bytes.Buffer
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			b.Reset()
			w.mu.Lock()
			first := int(w.next.Load())
			for i := first; i < first+perChunk; i++ {
				b.WriteString(line(i))
			}
			if _, err := w.f.Write(b.Bytes()); err != nil {
				w.mu.Unlock()
				e.t.Errorf("writer: %v", err)
				return
			}
			w.next.Store(int64(first + perChunk))
			w.mu.Unlock()
			time.Sleep(time.Millisecond) // pacing: ~perChunk thousand lines/s
		}
	}()
	return w
}

// reopen is nginx's USR1: the next lines go to whatever the path names now.
func (w *nginxWriter) reopen() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.f.Close()
	f, err := os.OpenFile(w.e.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		w.e.t.Fatal(err)
	}
	w.f = f
}

func (w *nginxWriter) halt() int {
	close(w.stop)
	<-w.done
	w.f.Close()
	return int(w.next.Load())
}

func (w *nginxWriter) waitWritten(n int) {
	w.e.waitFor("writer progress", func() bool { return int(w.next.Load()) >= n })
}

// TestRenameRotationsUnderLoad: a writer at tens of thousands of lines/s,
// five logrotate-style rotations (rename, keep writing to the old file a
// while, reopen), and sinks slow enough that the reader lags behind.
func TestRenameRotationsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	e := newEnv(t)
	e.cfg.MaxInFlightBytes = 256 << 10
	for _, s := range e.sinks {
		s.delay = time.Millisecond
	}
	e.start()
	w := e.startWriter(40)
	for r := 1; r <= 5; r++ {
		w.waitWritten(r * 8000)
		e.rename("access.log." + string(rune('0'+r)))
		w.waitWritten(r*8000 + 1000) // nginx writes on to the renamed file
		w.reopen()
	}
	n := w.halt()
	e.waitDelivered(n)
	t.Logf("rename rotation under load: %d lines written, 0 missing, %d duplicates (both sinks)", n, e.dups(n))
	if d := e.dups(n); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
}

// TestCopytruncateUnderLoad: logrotate's copytruncate while the writer
// goes on. Lines written between the copy and the truncate are in neither
// file (logrotate's window); every other line must arrive.
func TestCopytruncateUnderLoad(t *testing.T) {
	for _, lag := range []time.Duration{time.Millisecond, 4 * time.Millisecond} {
		t.Run("sink-delay-"+lag.String(), func(t *testing.T) { copytruncateUnderLoad(t, lag) })
	}
}

func copytruncateUnderLoad(t *testing.T, lag time.Duration) {
	if testing.Short() {
		t.Skip("load test")
	}
	e := newEnv(t)
	e.cfg.MaxInFlightBytes = 256 << 10
	for _, s := range e.sinks {
		s.delay = lag // slow sinks: the reader lags far behind the writer
	}
	e.start()
	w := e.startWriter(40)
	type window struct{ from, to int }
	var windows []window
	for r := 1; r <= 9; r++ {
		w.waitWritten(r * 10000)
		from := int(w.next.Load())
		e.copytruncate("access.log." + string(rune('0'+r)))
		windows = append(windows, window{from, int(w.next.Load()) + 40})
	}
	w.waitWritten(95000)
	n := w.halt()
	inWindow := func(seq int) bool {
		for _, win := range windows {
			if seq >= win.from && seq < win.to {
				return true
			}
		}
		return false
	}
	defer func() {
		if t.Failed() {
			for _, s := range e.sinks {
				m, _ := s.missing(n)
				var out []int
				for _, seq := range m {
					if !inWindow(seq) {
						out = append(out, seq)
					}
				}
				t.Logf("sink %s: %d missing outside windows, first %v", s.name, len(out), out[:min(len(out), 20)])
			}
		}
	}()
	e.waitFor("every line outside the copytruncate windows", func() bool {
		for _, s := range e.sinks {
			s.mu.Lock()
			low := s.lowSeq
			s.mu.Unlock()
			for low < n && inWindow(low) {
				low++
			}
			if low < n {
				// lowSeq stops at the first hole; look past window holes.
				m, _ := s.missing(n)
				for _, seq := range m {
					if !inWindow(seq) {
						return false
					}
				}
			}
		}
		return true
	})
	lost := 0
	for _, s := range e.sinks {
		m, _ := s.missing(n)
		lost += len(m)
	}
	_ = inWindow
	t.Logf("copytruncate under load: %d lines written, %d missing in logrotate's copy→truncate windows %v (both sinks), %d duplicates",
		n, lost, windows, e.dups(n))
}
