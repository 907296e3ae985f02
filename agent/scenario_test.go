package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// recSink is an in-test sink that records the sequence number of every line
// it is given (a line's URI is /seq/N) and acknowledges from another
// goroutine, like the real sinks. hold keeps acknowledgements back.
type recSink struct {
	name string

	mu        sync.Mutex
	seqs      map[int]int
	lowSeq    int           // every seq below it was delivered
	invalid   []sinks.Event // copies, Raw copied
	sent      int
	batches   int // Send calls with events
	maxN      int // most events in one batch
	maxB      int // most value bytes in one batch
	hold      bool
	held      []*sinks.Batch
	failOn    func(seq int) bool         // Done(err) for these
	failBatch func(b *sinks.Batch) error // Done(that error) for the whole batch when not nil
	onEvent   func(*sinks.Event)         // sees every valid event, in Send
	delay     time.Duration              // per batch, to make the reader lag
	acking    sync.WaitGroup             // acknowledgements in progress
	counts    sinks.Counts               // as a real sink keeps them
}

// Counts implements sinks.Counter.
func (s *recSink) Counts() *sinks.Counts { return &s.counts }

func newRecSink(name string) *recSink { return &recSink{name: name, seqs: map[int]int{}} }

func (s *recSink) Name() string { return s.name }

func seqOf(raw []byte) int {
	i := bytes.Index(raw, []byte("/seq/"))
	if i < 0 {
		return -1
	}
	j := i + 5
	for j < len(raw) && raw[j] >= '0' && raw[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(string(raw[i+5 : j]))
	if err != nil {
		return -1
	}
	return n
}

func (s *recSink) Send(ctx context.Context, b *sinks.Batch) error {
	s.mu.Lock()
	s.sent += len(b.Events)
	if len(b.Events) > 0 {
		s.batches++
	}
	s.maxN = max(s.maxN, len(b.Events))
	nb := 0 // value bytes
	var errs []error
	var batchErr error
	if s.failBatch != nil {
		batchErr = s.failBatch(b)
	}
	for i := range b.Events {
		ev := &b.Events[i]
		nb += len(ev.Value)
		var err error
		if ev.Err != nil {
			c := *ev
			c.Raw = append([]byte(nil), ev.Raw...)
			c.Value = nil
			s.invalid = append(s.invalid, c)
		} else {
			v := ev.Value
			if len(v) == 0 && ev.Avro != nil {
				v = ev.Avro // Options.AvroOnly: the Avro holds the request's /seq/N as is
			} else if !json.Valid(v) {
				panic(fmt.Sprintf("invalid JSON from parser: %s", ev.Value))
			}
			seq := seqOf(v)
			if s.onEvent != nil {
				s.onEvent(ev)
			}
			if s.failOn != nil && s.failOn(seq) {
				err = sinks.Failed(s.name, fmt.Errorf("injected failure for seq %d", seq))
			} else if batchErr != nil {
				err = batchErr
			} else {
				s.seqs[seq]++
				for s.seqs[s.lowSeq] > 0 {
					s.lowSeq++
				}
			}
		}
		errs = append(errs, err)
	}
	s.maxB = max(s.maxB, nb)
	if s.hold {
		s.held = append(s.held, b)
		s.mu.Unlock()
		return nil
	}
	delay := s.delay
	s.acking.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.acking.Done()
		if delay > 0 {
			time.Sleep(delay) // load shaping (a slow sink), not synchronisation
		}
		for i := range b.Events {
			if errs[i] != nil {
				s.counts.Failed(1)
			} else {
				s.counts.Acked(1)
			}
			b.Events[i].Done(errs[i])
		}
	}()
	return nil
}

func (s *recSink) release() {
	s.mu.Lock()
	held := s.held
	s.held, s.hold = nil, false
	s.mu.Unlock()
	for _, b := range held {
		s.counts.Acked(len(b.Events))
		b.DoneAll(nil)
	}
}

// Close completes everything, like a real sink's Close.
func (s *recSink) Close(ctx context.Context) error {
	s.release()
	s.acking.Wait()
	return nil
}

func (s *recSink) count(seq int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seqs[seq]
}

// missing returns the sequence numbers in [0, n) not delivered, and how many
// were delivered more than once.
func (s *recSink) missing(n int) (missing []int, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lowSeq < n && s.seqs[n-1] == 0 && len(s.seqs) < n {
		return []int{s.lowSeq}, 0 // cheap answer while lines are still missing
	}
	for i := 0; i < n; i++ {
		switch c := s.seqs[i]; {
		case c == 0:
			missing = append(missing, i)
		case c > 1:
			dups += c - 1
		}
	}
	return missing, dups
}

// env is one scenario: a log directory, a writer that behaves like nginx
// (O_APPEND, keeps its descriptor across renames until reopen), the agent
// and two recording sinks.
type env struct {
	t     *testing.T
	dir   string
	data  string
	log   string
	w     *os.File
	cfg   Config
	ins   []InputConfig
	sinks []*recSink
	a     *Agent
	stopF context.CancelFunc
	done  chan error
	logs  *syncBuf
	opts  Options // Log and KeyField are set by start
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "logs", "access.log"), logs: &syncBuf{}}
	os.MkdirAll(filepath.Dir(e.log), 0o755)
	e.cfg = Config{DataDir: e.data, Hostname: "test-host"}
	e.cfg.ScanInterval.Duration = 20 * time.Millisecond
	e.cfg.PollInterval.Duration = 20 * time.Millisecond
	e.cfg.CheckpointInterval.Duration = 20 * time.Millisecond
	e.cfg.RotateWait.Duration = 300 * time.Millisecond
	e.cfg.Defaults()
	e.ins = []InputConfig{{Paths: []string{e.log}, Format: "combined"}}
	e.ins[0].Defaults()
	e.sinks = []*recSink{newRecSink("a"), newRecSink("b")}
	e.reopen()
	t.Cleanup(func() {
		e.stop()
		if e.w != nil {
			e.w.Close()
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", e.logs.String())
		}
	})
	return e
}

func line(seq int) string {
	return fmt.Sprintf("127.0.0.%d - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/%d?q=%%20x HTTP/1.1\" 200 %d \"-\" \"test-agent/1.0 (\\x22quoted\\x22)\"\n", seq%250, seq, seq%5000)
}

// reopen makes the writer open the log path anew, like nginx on USR1.
func (e *env) reopen() {
	if e.w != nil {
		e.w.Close()
	}
	w, err := os.OpenFile(e.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	e.w = w
}

// write appends lines [from, to) through the writer's descriptor.
func (e *env) write(from, to int) {
	e.t.Helper()
	for from < to { // in pieces of about 64 KiB, as a logger writes
		n := min(to, from+500)
		e.mustWrite(lines(from, n))
		from = n
	}
}

// lines returns lines from to to (exclusive), each with its newline.
func lines(from, to int) []byte {
	var b bytes.Buffer
	for i := from; i < to; i++ {
		b.WriteString(line(i))
	}
	return b.Bytes()
}

func (e *env) mustWrite(p []byte) {
	e.t.Helper()
	if _, err := e.w.Write(p); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) rename(to string) {
	e.t.Helper()
	if err := os.Rename(e.log, filepath.Join(filepath.Dir(e.log), to)); err != nil {
		e.t.Fatal(err)
	}
}

// copytruncate does what logrotate's copytruncate does.
func (e *env) copytruncate(to string) {
	e.t.Helper()
	src, err := os.Open(e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(filepath.Dir(e.log), to))
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	if err := os.Truncate(e.log, 0); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) start() { e.startWith(nil) }

// startWith starts the agent with its metrics registered with reg (nil: none).
func (e *env) startWith(reg prometheus.Registerer) {
	e.t.Helper()
	ss := make([]sinks.Sink, len(e.sinks))
	for i, s := range e.sinks {
		ss[i] = s
	}
	opts := e.opts
	opts.Log, opts.KeyField = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), "remote_addr"
	opts.Registerer = reg
	a, err := New(e.cfg, e.ins, ss, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.a, e.stopF, e.done = a, cancel, make(chan error, 1)
	go func() { e.done <- a.Run(ctx) }()
}

// stop is a clean shutdown: stop reading, close the sinks, final checkpoint.
func (e *env) stop() {
	if e.a == nil {
		return
	}
	e.stopF()
	<-e.done
	for _, s := range e.sinks {
		s.Close(context.Background())
	}
	if err := e.a.Close(); err != nil {
		e.t.Errorf("final checkpoint: %v", err)
	}
	e.a = nil
}

// crash abandons the agent without closing sinks or writing a checkpoint,
// like kill -9 (what was checkpointed before stays; held events are lost).
func (e *env) crash() {
	e.stopF()
	<-e.done
	for _, s := range e.sinks {
		s.mu.Lock()
		s.held, s.hold = nil, false
		s.mu.Unlock()
	}
	e.a = nil
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDelivered waits until every seq in [0, n) reached every sink.
func (e *env) waitDelivered(n int) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		done := true
		for _, s := range e.sinks {
			if time.Now().Before(deadline) {
				s.mu.Lock()
				low := s.lowSeq
				s.mu.Unlock()
				if low < n {
					done = false
					continue
				}
			}
			if m, _ := s.missing(n); len(m) > 0 {
				done = false
				if time.Now().After(deadline) {
					e.t.Fatalf("sink %s: %d of %d lines missing, first %v", s.name, len(m), n, m[:min(len(m), 10)])
				}
			}
		}
		if done {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) dups(n int) int {
	total := 0
	for _, s := range e.sinks {
		_, d := s.missing(n)
		total += d
	}
	return total
}

// checkpoint returns the checkpointed offsets by path.
func (e *env) checkpoint() map[string]int64 {
	b, err := os.ReadFile(filepath.Join(e.data, "checkpoints.json"))
	if err != nil {
		return nil
	}
	var rf registryFile
	if json.Unmarshal(b, &rf) != nil {
		return nil
	}
	out := map[string]int64{}
	for _, f := range rf.Files {
		out[f.Path] = f.Offset
	}
	return out
}

func (e *env) size(name string) int64 {
	fi, err := os.Stat(filepath.Join(filepath.Dir(e.log), name))
	if err != nil {
		return -1
	}
	return fi.Size()
}

func (e *env) waitCheckpoint(path string, off int64) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("checkpoint of %s at %d", path, off), func() bool { return e.checkpoint()[path] == off })
}

func TestDeliversEveryLineAndCheckpointsFileSize(t *testing.T) {
	e := newEnv(t)
	e.write(0, 5000)
	e.start()
	e.waitDelivered(5000)
	e.waitCheckpoint(e.log, e.size("access.log"))
	if d := e.dups(5000); d != 0 {
		t.Fatalf("%d duplicates without any failure", d)
	}
}

func TestNewFilesPickedUpWhileRunning(t *testing.T) {
	e := newEnv(t)
	e.ins[0].Paths = []string{filepath.Join(filepath.Dir(e.log), "*.log")}
	e.start()
	e.write(0, 100)
	other := filepath.Join(filepath.Dir(e.log), "other.log")
	var b bytes.Buffer
	for i := 100; i < 200; i++ {
		b.WriteString(line(i))
	}
	os.WriteFile(other, b.Bytes(), 0o644)
	e.waitDelivered(200)
}

func TestReadFromEndSkipsExistingButReadsNewLines(t *testing.T) {
	e := newEnv(t)
	e.ins[0].ReadFrom = "end"
	e.write(0, 100)
	e.start()
	e.waitCheckpoint(e.log, e.size("access.log"))
	e.write(100, 200)
	e.waitFor("new lines", func() bool { return e.sinks[0].count(199) == 1 && e.sinks[1].count(199) == 1 })
	for i := 0; i < 100; i++ {
		if e.sinks[0].count(i) != 0 {
			t.Fatalf("read_from=end shipped old line %d", i)
		}
	}
	for i := 100; i < 200; i++ {
		if e.sinks[0].count(i) != 1 {
			t.Fatalf("line %d delivered %d times", i, e.sinks[0].count(i))
		}
	}
}

func TestPartialLineWaitsForItsNewline(t *testing.T) {
	e := newEnv(t)
	e.start()
	l0, l1 := line(0), line(1)
	e.mustWrite([]byte(l0 + l1[:20]))
	e.waitDelivered(1)
	e.waitCheckpoint(e.log, int64(len(l0)))
	// The reader has seen the partial bytes: wait until it read them all.
	e.waitFor("partial bytes read", func() bool {
		return e.a != nil && readBytes(e.a, e.log) == float64(len(l0)+20)
	})
	if e.sinks[0].count(1) != 0 || len(e.sinks[0].invalid) != 0 {
		t.Fatal("a partial line was emitted before its newline")
	}
	e.mustWrite([]byte(l1[20:]))
	e.waitDelivered(2)
	e.waitCheckpoint(e.log, int64(len(l0)+len(l1)))
	if d := e.dups(2); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
}

func TestEventOffsetsAreExact(t *testing.T) {
	e := newEnv(t)
	e.write(0, 300)
	var off int64
	want := map[int]int64{}
	for i := 0; i < 300; i++ {
		want[i] = off
		off += int64(len(line(i)))
	}
	e.sinks[0].failOn = nil
	var mu sync.Mutex
	got := map[int]int64{}
	e.sinks[0].onEvent = func(ev *sinks.Event) {
		mu.Lock()
		got[seqOf(ev.Value)] = ev.Offset
		mu.Unlock()
		var v struct {
			Off int64 `json:"log_offset"`
		}
		if err := json.Unmarshal(ev.Value, &v); err != nil || v.Off != ev.Offset {
			t.Errorf("log_offset in JSON %d (err %v), event offset %d", v.Off, err, ev.Offset)
		}
	}
	e.start()
	e.waitDelivered(300)
	mu.Lock()
	defer mu.Unlock()
	for i, o := range want {
		if got[i] != o {
			t.Fatalf("line %d: offset %d, want %d", i, got[i], o)
		}
	}
}

func TestRenameRotationReadsOldFileToItsEnd(t *testing.T) {
	for _, globbed := range []bool{false, true} {
		t.Run(fmt.Sprintf("rotated-name-matches-glob=%v", globbed), func(t *testing.T) {
			e := newEnv(t)
			if globbed {
				e.ins[0].Paths = []string{e.log + "*"}
			}
			e.start()
			e.write(0, 2000)
			// A file renamed away before the agent ever saw it cannot be
			// known; wait until it is being read.
			e.waitFor("reading started", func() bool { return e.sinks[0].count(0) == 1 })
			e.rename("access.log.1")
			// nginx keeps writing to the renamed file until USR1.
			e.write(2000, 3000)
			e.reopen()
			e.write(3000, 4000)
			e.waitDelivered(4000)
			if d := e.dups(4000); d != 0 {
				t.Fatalf("%d duplicates", d)
			}
		})
	}
}

func TestRenameRotationWithLaggingReader(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxInFlightBytes = 1 << 16
	for _, s := range e.sinks {
		s.delay = 2 * time.Millisecond
	}
	e.write(0, 20000)
	e.start()
	e.waitFor("reading started", func() bool { return e.sinks[0].count(0) == 1 })
	e.rename("access.log.1")
	e.write(20000, 25000)
	e.reopen()
	e.write(25000, 30000)
	e.waitDelivered(30000)
	if d := e.dups(30000); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
}

func TestCopytruncate(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.write(0, 1000)
	e.waitDelivered(1000)
	e.copytruncate("access.log.1")
	e.write(1000, 2000)
	e.waitDelivered(2000)
	e.waitCheckpoint(e.log, e.size("access.log"))
	if d := e.dups(2000); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
}

// TestCopytruncateTwiceWhileBlocked: a sink outage keeps the reader blocked
// on the in-flight budget across two copytruncate rotations (an hourly
// logrotate and a two-hour outage). The middle generation was never read
// from the live file; it is in access.log.1 when the reader wakes, and must
// be read from there, like the first one from access.log.2. The scan runs
// hourly here: the blocked reader's file is watched every poll_interval
// whatever scan_interval is (watchStale). The scan used to note the
// generations, once the reader had not checked its file for 2 s; a
// generation that came and went faster was lost whole
// (TestCopytruncateUnderLoad, in CI).
func TestCopytruncateTwiceWhileBlocked(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxInFlightBytes = 64 << 10
	e.cfg.ScanInterval.Duration = time.Hour
	e.sinks[0].hold = true
	e.write(0, 3000) // generation A
	e.start()
	e.waitFor("reader blocked on the budget", func() bool { return e.a.budget.inUse() > (64<<10)/2 })
	e.copytruncate("access.log.1")
	e.write(3000, 4000) // generation B, only ever in the live file while the reader is blocked
	e.waitFor("the watcher noted generation B", func() bool {
		e.a.mu.Lock()
		defer e.a.mu.Unlock()
		for _, h := range e.a.open {
			h.genMu.Lock()
			n := len(h.gens)
			h.genMu.Unlock()
			if n > 0 {
				return true
			}
		}
		return false
	})
	dir := filepath.Dir(e.log)
	if err := os.Rename(filepath.Join(dir, "access.log.1"), filepath.Join(dir, "access.log.2")); err != nil {
		t.Fatal(err)
	}
	e.copytruncate("access.log.1")
	e.write(4000, 5000) // generation C

	e.sinks[0].release()
	e.waitDelivered(5000)
	if d := e.dups(5000); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
}

// TestCopytruncateAgainWhileHandlingOne: the file is truncated again
// while the reader handles a truncation (its flush waits for room in
// flight when the sinks are slow, and a busy file fills and rotates
// meanwhile). The generation it saw at the truncation was never read from
// the live file; it is in its copy, and must be read from there. CI lost
// its 9,920 lines once (TestCopytruncateUnderLoad), when the reader took
// the next generation's head only after the blocking steps.
func TestCopytruncateAgainWhileHandlingOne(t *testing.T) {
	e := newEnv(t)
	e.write(0, 1000) // generation A
	e.start()
	e.waitDelivered(1000)
	var hookErr error
	var once sync.Once
	bWritten := make(chan struct{}) // B is whole in the file
	testHookTruncating = func(path string) {
		if path != e.log {
			return
		}
		once.Do(func() {
			select {
			case <-bWritten:
			case <-time.After(time.Minute):
				hookErr = errors.New("generation B was not written within a minute")
				return
			}
			// Here, on the reader's goroutine: generation B (seen at the
			// truncation) goes to access.log.2, and C follows it.
			dir := filepath.Dir(e.log)
			b, err := os.ReadFile(e.log)
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, "access.log.2"), b, 0o644)
			}
			if err == nil {
				err = os.Truncate(e.log, 0)
			}
			if err == nil {
				_, err = e.w.Write(lines(2000, 3000))
			}
			hookErr = err
		})
	}
	t.Cleanup(func() { testHookTruncating = nil })
	// logrotate copies A; then generation B takes its place in the same
	// file, longer than A, in one write from offset 0 (a truncation and
	// fast writes, which the reader sees at once as B: truncated and
	// written apart, it could see the file empty at the truncation).
	dir := filepath.Dir(e.log)
	a, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "access.log.1"), a, 0o644); err != nil {
		t.Fatal(err)
	}
	b := lines(1000, 2000)
	if len(b) <= len(a) {
		t.Fatalf("generation B (%d bytes) is not longer than A (%d)", len(b), len(a))
	}
	f, err := os.OpenFile(e.log, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	close(bWritten)
	e.waitDelivered(3000)
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if d := e.dups(3000); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
	if !strings.Contains(e.logs.String(), "file truncated again while handling a truncation; reading the generation in between from its copy") {
		t.Errorf("the second truncation was not logged:\n%s", e.logs.String())
	}
}

func TestRestartResumesFromCheckpoint(t *testing.T) {
	e := newEnv(t)
	e.write(0, 1000)
	e.start()
	e.waitDelivered(1000)
	e.stop()
	e.write(1000, 2000)
	e.start()
	e.waitDelivered(2000)
	if d := e.dups(2000); d != 0 {
		t.Fatalf("%d duplicates after a clean restart", d)
	}
}

func TestCrashRestartDeliversEverything(t *testing.T) {
	e := newEnv(t)
	e.write(0, 3000)
	e.sinks[1].hold = true // sink b never acknowledges before the crash
	e.start()
	e.waitFor("sink a got everything", func() bool { m, _ := e.sinks[0].missing(3000); return len(m) == 0 })
	e.crash()
	if cp := e.checkpoint()[e.log]; cp != 0 {
		t.Fatalf("checkpoint %d moved past lines sink b never acknowledged", cp)
	}
	e.write(3000, 4000)
	e.start()
	e.waitDelivered(4000)
	t.Logf("duplicates after crash: %d (sink a re-received what b had not acknowledged)", e.dups(4000))
}

func TestRotatedWhileAgentDown(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.write(0, 500)
	e.waitDelivered(500)
	e.stop()
	// While down: more lines, rotation twice, more lines to each.
	e.write(500, 700)
	e.rename("access.log.1")
	e.write(700, 800)
	e.reopen()
	e.write(800, 900)
	os.Rename(e.log+".1", e.log+".2")
	e.rename("access.log.1")
	e.reopen()
	e.write(900, 1000)
	e.start()
	e.waitDelivered(1000)
	if d := e.dups(1000); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
}

func TestLongLineGoesToDeadLetterTruncated(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxLineBytes = 1024
	e.write(0, 10)
	long := bytes.Repeat([]byte("A"), 300_000)
	e.mustWrite(append(long, '\n'))
	e.write(10, 20)
	e.start()
	e.waitDelivered(20)
	s := e.sinks[0]
	s.mu.Lock()
	inv := append([]sinks.Event(nil), s.invalid...)
	s.mu.Unlock()
	if len(inv) != 1 || !inv[0].Truncated || len(inv[0].Raw) != 1024 {
		t.Fatalf("dead-letter events %d, want one truncated to 1024 bytes: %+v", len(inv), inv)
	}
	e.waitCheckpoint(e.log, e.size("access.log"))
}

func TestGarbageAndBinaryLinesAreDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.write(0, 5)
	e.mustWrite([]byte("\x00\x01\xff\xfe garbage \x16\x03\x01\n\nnot a log line at all\n"))
	e.write(5, 10)
	e.start()
	e.waitDelivered(10)
	e.waitCheckpoint(e.log, e.size("access.log"))
	s := e.sinks[0]
	s.mu.Lock()
	n := len(s.invalid)
	s.mu.Unlock()
	if n != 3 {
		t.Fatalf("%d dead-letter events, want 3 (binary, empty, text)", n)
	}
}

// TestFailedForGoodIsDeadLettered: a sink fails a line for good; the
// batch goes to data_dir/dead-letter/ (naming the file, the sink and the
// cause) and the checkpoint moves past it, so a restart does not send
// everything since again. Per-sink counts tell which sink failed.
func TestFailedForGoodIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.sinks[1].failOn = func(seq int) bool { return seq == 70 }
	reg := prometheus.NewRegistry()
	e.startWith(reg)
	e.write(0, 50)
	e.waitDelivered(50)
	e.waitCheckpoint(e.log, e.size("access.log"))
	e.write(50, 100)
	e.waitCheckpoint(e.log, e.size("access.log"))
	e.stop()

	ents, _ := filepath.Glob(filepath.Join(e.data, "dead-letter", "*.jsonl"))
	if len(ents) != 1 {
		t.Fatalf("dead-letter files %v, want one", ents)
	}
	b, _ := os.ReadFile(ents[0])
	var found bool
	n := 0
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r deadLetterRecord
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("dead-letter line %q: %v", l, err)
		}
		n++
		if r.Path != e.log || r.Sink != "b" || !strings.Contains(r.Error, "injected failure for seq 70") {
			t.Fatalf("dead-letter record %s: want path %s, sink b, the cause", l, e.log)
		}
		if seqOf(r.Event) == 70 {
			found = true
		}
	}
	if !found {
		t.Fatalf("seq 70 is not in the dead-letter file:\n%s", b)
	}
	if got := gathered(t, reg, "nginx_shipper_dead_lettered_events_total", "sink", "b"); got != float64(n) {
		t.Errorf("dead_lettered_events_total{sink=b} = %v, want %d", got, n)
	}
	if got := gathered(t, reg, "nginx_shipper_sink_errors_total", "sink", "b"); got != 1 {
		t.Errorf("sink_errors_total{sink=b} = %v, want 1", got)
	}
	if got := gathered(t, reg, "nginx_shipper_sink_errors_total", "sink", "a"); got != 0 {
		t.Errorf("sink_errors_total{sink=a} = %v, want 0", got)
	}
	if a, b := gathered(t, reg, "nginx_shipper_events_acked_total", "sink", "a"), gathered(t, reg, "nginx_shipper_events_acked_total", "sink", "b"); a != 100 || b != 99 {
		t.Errorf("events_acked_total a=%v b=%v, want 100 and 99", a, b)
	}
	if !strings.Contains(e.logs.String(), "dead_letter_file=") || !strings.Contains(e.logs.String(), "sink=b") {
		t.Errorf("no error log naming the sink and the dead-letter file:\n%s", e.logs.String())
	}
	// A restart sends nothing again.
	before := e.sinks[0].count(10)
	e.sinks[1].failOn = nil
	e.start()
	e.write(100, 110)
	e.waitFor("lines after the restart", func() bool { return e.sinks[0].count(109) == 1 && e.sinks[1].count(109) == 1 })
	if got := e.sinks[0].count(10); got != before {
		t.Errorf("seq 10 delivered %d times after the restart, was %d", got, before)
	}
}

// TestBlockedWhenDeadLetterFails: the dead-letter directory cannot be
// written; the file's checkpoint stops before the failed batch, and that is
// visible: nginx_shipper_file_blocked, Files() and an error log naming the
// file, the sink and the cause. After a restart the lines are sent again.
func TestBlockedWhenDeadLetterFails(t *testing.T) {
	e := newEnv(t)
	os.MkdirAll(e.data, 0o755)
	if err := os.WriteFile(filepath.Join(e.data, "dead-letter"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	failed := true
	e.sinks[1].failOn = func(seq int) bool { mu.Lock(); defer mu.Unlock(); return failed && seq == 70 }
	reg := prometheus.NewRegistry()
	e.startWith(reg)
	e.write(0, 100)
	e.waitFor("the file blocked", func() bool {
		return gathered(t, reg, "nginx_shipper_file_blocked", "path", e.log) == 1
	})
	fs := e.a.Files()
	if len(fs) != 1 || fs[0].Path != e.log || !strings.Contains(fs[0].Blocked, "seq 70") || fs[0].UnackedBytes <= 0 {
		t.Fatalf("Files() = %+v, want %s blocked with unacked bytes", fs, e.log)
	}
	if got := gathered(t, reg, "nginx_shipper_file_unacked_bytes", "path", e.log); got != float64(fs[0].UnackedBytes) {
		t.Errorf("file_unacked_bytes = %v, Files says %d", got, fs[0].UnackedBytes)
	}
	l := e.logs.String()
	if !strings.Contains(l, "could not be dead-lettered") || !strings.Contains(l, "sink=b") || !strings.Contains(l, "path="+e.log) {
		t.Errorf("no error log naming the file, the sink and the cause:\n%s", l)
	}
	e.stop()
	cp := e.checkpoint()[e.log]
	data, _ := os.ReadFile(e.log)
	if s := seqOf(data[cp:]); s == -1 || s > 70 {
		t.Fatalf("checkpoint %d (at seq %d) is past the line that was neither delivered nor dead-lettered (70)", cp, s)
	}
	mu.Lock()
	failed = false
	mu.Unlock()
	e.start()
	e.waitDelivered(100)
}

// gathered is the value of the series name{k=v} in reg (0 when absent).
func gathered(t *testing.T, reg *prometheus.Registry, name, k, v string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					if m.Counter != nil {
						return m.Counter.GetValue()
					}
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func TestBackpressureBoundsInFlight(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxInFlightBytes = 1 << 20
	e.sinks[0].hold = true
	const n = 25000 // ~3 MiB of log
	e.write(0, n)
	e.start()
	e.waitFor("budget spent", func() bool { return e.a.budget.inUse() > (1<<20)/2 })
	// The reader is blocked on the budget: what was sent stays bounded.
	s := e.sinks[1]
	e.waitFor("reader blocked", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.sent > 0
	})
	if used := e.a.budget.inUse(); used > 1<<20 {
		t.Fatalf("in-flight bytes %d above the limit", used)
	}
	s.mu.Lock()
	sent := s.sent
	s.mu.Unlock()
	if sent >= n {
		t.Fatalf("all %d lines were read while a sink held every acknowledgement", n)
	}
	t0 := time.Now()
	e.sinks[0].release()
	defer func() { t.Logf("drained in %s", time.Since(t0)) }()
	e.waitFor("held acks flow", func() bool {
		e.sinks[0].release() // release what arrives after
		e.sinks[0].mu.Lock()
		defer e.sinks[0].mu.Unlock()
		e.sinks[1].mu.Lock()
		defer e.sinks[1].mu.Unlock()
		return e.sinks[0].lowSeq >= n && e.sinks[1].lowSeq >= n
	})
}

func readBytes(a *Agent, path string) float64 {
	return counterValue(a.m.bytesRead.WithLabelValues(path))
}

func TestIdleFileClosedAndReopenedWhenItGrows(t *testing.T) {
	e := newEnv(t)
	e.cfg.CloseInactive.Duration = 100 * time.Millisecond
	e.start()
	e.write(0, 10)
	e.waitDelivered(10)
	e.waitFor("idle file closed", func() bool {
		e.a.mu.Lock()
		defer e.a.mu.Unlock()
		return len(e.a.open) == 0
	})
	e.write(10, 20)
	e.waitDelivered(20)
	if d := e.dups(20); d != 0 {
		t.Fatalf("%d duplicates after reopening an idle file", d)
	}
}

func TestDeletedFileReadToItsEndThenReleased(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.write(0, 100)
	e.waitDelivered(100)
	os.Remove(e.log)
	e.write(100, 200) // nginx writes on to the deleted file until USR1
	e.waitDelivered(200)
	e.waitFor("deleted file released", func() bool {
		e.a.mu.Lock()
		defer e.a.mu.Unlock()
		return len(e.a.open) == 0
	})
}

func TestCheckpointWriteFailureIsLoggedCountedAndRecovers(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.write(0, 100)
	e.waitDelivered(100)
	e.waitCheckpoint(e.log, e.size("access.log"))
	// Make the checkpoint file unwritable: a non-empty directory in its
	// place makes the rename fail (as a full or read-only disk would fail
	// the write), whatever our privileges.
	cp := filepath.Join(e.data, "checkpoints.json")
	os.Remove(cp)
	os.MkdirAll(filepath.Join(cp, "blocker"), 0o755)
	e.write(100, 200)
	e.waitDelivered(200)
	e.waitFor("checkpoint error counted", func() bool { return counterValue(e.a.m.checkpointErr) > 0 })
	if !strings.Contains(e.logs.String(), "checkpoint not written") {
		t.Fatalf("no log line about the failed checkpoint")
	}
	os.RemoveAll(cp)
	e.waitCheckpoint(e.log, e.size("access.log"))
	e.stop()
	e.start()
	e.write(200, 300)
	e.waitDelivered(300)
	if d := e.dups(300); d != 0 {
		t.Fatalf("%d duplicates: the checkpoint was reset", d)
	}
}

// TestLingerBatchesATrickle: lines written one at a time, a few
// milliseconds apart, reach the sinks in a few batches (linger), not one
// batch per poll: every batch costs the sinks a request, frames and a
// commit.
func TestLingerBatchesATrickle(t *testing.T) {
	e := newEnv(t)
	e.cfg.Linger.Duration = 200 * time.Millisecond
	e.start()
	const n = 100
	for i := range n {
		e.write(i, i+1)
		time.Sleep(3 * time.Millisecond) // the writer's pace, not synchronisation
	}
	e.waitDelivered(n)
	for _, s := range e.sinks {
		s.mu.Lock()
		got := s.batches
		s.mu.Unlock()
		// About 300ms of writes in 200ms lingers: 2 or 3 batches (a slow
		// machine only makes fewer). One per 10-20ms poll would be 15+.
		if got > 6 {
			t.Errorf("sink %s got the %d lines in %d batches, want at most 6", s.name, n, got)
		}
		t.Logf("sink %s: %d lines in %d batches", s.name, n, got)
	}
}

// TestBatchesStayWithinTheirLimits: reading a backlog in 256 KiB chunks,
// a batch is handed on as soon as it is full, mid-chunk: never more than
// batchMaxEvents events or batchMaxBytes (plus its last event) of values.
func TestBatchesStayWithinTheirLimits(t *testing.T) {
	e := newEnv(t)
	const n = 20000
	e.write(0, n)
	e.start()
	e.waitDelivered(n)
	for _, s := range e.sinks {
		s.mu.Lock()
		maxN, maxB, batches := s.maxN, s.maxB, s.batches
		s.mu.Unlock()
		if maxN > batchMaxEvents {
			t.Errorf("sink %s: a batch of %d events, limit %d", s.name, maxN, batchMaxEvents)
		}
		if maxB > batchMaxBytes+4096 {
			t.Errorf("sink %s: a batch of %d value bytes, limit %d plus one event", s.name, maxB, batchMaxBytes)
		}
		if maxN < batchMaxEvents/2 {
			t.Errorf("sink %s: at most %d events per batch from a backlog; batches are not being filled", s.name, maxN)
		}
		t.Logf("sink %s: %d batches, at most %d events and %d value bytes", s.name, batches, maxN, maxB)
	}
}

// TestFileSeriesGoWithTheFile: a file let go (idle past close_inactive)
// leaves no per-file series behind, and nothing unread; the latency
// histograms saw every line.
func TestFileSeriesGoWithTheFile(t *testing.T) {
	e := newEnv(t)
	e.cfg.CloseInactive.Duration = 2 * time.Second
	reg := prometheus.NewRegistry()
	e.startWith(reg)
	e.write(0, 100)
	e.waitDelivered(100)
	e.waitFor("lines_read_total of the file", func() bool {
		return gathered(t, reg, "nginx_shipper_lines_read_total", "path", e.log) == 100
	})
	e.waitFor("the file let go and its series deleted", func() bool {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			for _, m := range mf.Metric {
				for _, lp := range m.Label {
					if lp.GetName() == "path" {
						return false
					}
				}
			}
		}
		return true
	})
	var events, batches uint64
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "nginx_shipper_event_ack_latency_seconds":
			events = mf.Metric[0].Histogram.GetSampleCount()
		case "nginx_shipper_read_ack_latency_seconds":
			batches = mf.Metric[0].Histogram.GetSampleCount()
		case "nginx_shipper_released_unread_bytes_total":
			if v := mf.Metric[0].Counter.GetValue(); v != 0 {
				t.Errorf("released_unread_bytes_total = %v, want 0", v)
			}
		}
	}
	if events != 100 || batches == 0 {
		t.Errorf("event_ack_latency_seconds saw %d events (want 100), read_ack_latency_seconds %d batches", events, batches)
	}
}

// TestRetriableFailureIsSentAgain: a sink fails a batch retriably
// (sinks.ErrRetriable, as the S3 sink does when its spool cannot be
// written); the agent sends it again to that sink alone until it takes it:
// nothing is dead-lettered, the other sink gets each line once, and the
// checkpoint reaches the end of the file.
func TestRetriableFailureIsSentAgain(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	fails := 0
	e.sinks[1].failBatch = func(b *sinks.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		for i := range b.Events {
			if seqOf(b.Events[i].Value) == 70 && fails < 3 {
				fails++
				return sinks.Failed("b", fmt.Errorf("spool: %w: disk full", sinks.ErrRetriable))
			}
		}
		return nil
	}
	e.start()
	e.write(0, 100)
	e.waitDelivered(100)
	e.waitCheckpoint(e.log, e.size("access.log"))
	mu.Lock()
	n := fails
	mu.Unlock()
	if n != 3 {
		t.Fatalf("%d failed attempts, want 3", n)
	}
	if d := e.dups(100); d != 0 {
		t.Errorf("%d duplicates: the retry went to the sink that had taken the batch", d)
	}
	if ents, _ := filepath.Glob(filepath.Join(e.data, "dead-letter", "*")); len(ents) != 0 {
		t.Errorf("dead-letter files %v for a retriable failure", ents)
	}
	if !strings.Contains(e.logs.String(), "sending them to it again") {
		t.Errorf("no log of the retry:\n%s", e.logs.String())
	}
}
