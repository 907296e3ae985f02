package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// errEvent is error.log event seq: a first line and seq%4 continuation
// lines (a PHP stack trace), with the context at the end of the last.
func errEvent(seq int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "2026/12/02 03:%02d:%02d [error] 77#77: *%d FastCGI sent in stderr: \"PHP message: boom at /seq/%d", seq/60%60, seq%60, seq+1, seq)
	for i := 0; i < seq%4; i++ {
		fmt.Fprintf(&b, "\n#%d /srv/app/lib.php(%d): f%d()", i, 10+i, i)
	}
	fmt.Fprintf(&b, "\" while reading response header from upstream, client: 192.0.2.%d, server: app, request: \"GET /seq/%d HTTP/1.1\", upstream: \"fastcgi://unix:/run/php.sock:\", host: \"app\"\n", seq%250, seq)
	return b.String()
}

func newErrorEnv(t *testing.T, timeout time.Duration) *env {
	e := newEnv(t)
	e.ins[0].Format = "error"
	e.ins[0].Timezone = "UTC"
	e.ins[0].MultilineTimeout.Duration = timeout
	return e
}

func (e *env) writeErrors(from, to int) (offsets []int64) {
	e.t.Helper()
	off := e.size("access.log")
	var b strings.Builder
	for i := from; i < to; i++ {
		offsets = append(offsets, off+int64(b.Len()))
		b.WriteString(errEvent(i))
	}
	e.mustWrite([]byte(b.String()))
	return offsets
}

// Continuation lines join their event: one event per first line, the
// message holding the lines, log_offset the first line's, and the
// checkpoint the file's size once everything (the last event after
// multiline_timeout) was acknowledged.
func TestMultilineEventsJoined(t *testing.T) {
	e := newErrorEnv(t, 50*time.Millisecond)
	offs := e.writeErrors(0, 400)
	var mu sync.Mutex
	type got struct {
		off, logOff int64
		msg         string
		up          string
	}
	evs := map[int]got{}
	e.sinks[0].onEvent = func(ev *sinks.Event) {
		var v struct {
			Message  string `json:"message"`
			Upstream string `json:"upstream"`
			Off      int64  `json:"log_offset"`
		}
		if err := json.Unmarshal(ev.Value, &v); err != nil {
			t.Errorf("%s: %v", ev.Value, err)
		}
		mu.Lock()
		evs[seqOf(ev.Value)] = got{ev.Offset, v.Off, v.Message, v.Upstream}
		mu.Unlock()
	}
	e.start()
	e.waitDelivered(400) // the last one only after multiline_timeout
	e.waitCheckpoint(e.log, e.size("access.log"))
	if d := e.dups(400); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
	if n := len(e.sinks[0].invalid); n != 0 {
		t.Fatalf("%d lines went to the dead-letter path, first %q", n, e.sinks[0].invalid[0].Raw)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < 400; i++ {
		g := evs[i]
		if g.off != offs[i] || g.logOff != offs[i] {
			t.Fatalf("event %d: offset %d, log_offset %d, want %d", i, g.off, g.logOff, offs[i])
		}
		if n := strings.Count(g.msg, "\n"); n != i%4 || g.up != "fastcgi://unix:/run/php.sock:" {
			t.Fatalf("event %d: %d continuation lines (want %d), upstream %q: %q", i, n, i%4, g.up, g.msg)
		}
	}
}

// An event is not checkpointed while it waits for its next line; the next
// event's first line completes it.
func TestMultilineCheckpointWaitsForTheEvent(t *testing.T) {
	e := newErrorEnv(t, time.Hour)
	offs := e.writeErrors(0, 10)
	e.start()
	e.waitDelivered(9)
	e.waitCheckpoint(e.log, offs[9]) // event 9 waits: its lines are not covered
	if n := e.sinks[0].count(9); n != 0 {
		t.Fatalf("event 9 delivered %d times before its next line", n)
	}
	offs = e.writeErrors(10, 11)
	e.waitDelivered(10)
	e.waitCheckpoint(e.log, offs[0])
	// A restart reads the waiting event again from its first line.
	e.stop()
	e.writeErrors(11, 12)
	e.start()
	e.waitDelivered(11)
	if d := e.dups(11); d != 0 {
		t.Fatalf("%d duplicates after a clean restart", d)
	}
}

// An event larger than multiline_max_bytes stops growing: the
// continuation lines past the bound go to the dead-letter path (no date),
// nothing is lost; an orphan continuation line at the start of the file
// does too.
func TestMultilineBounds(t *testing.T) {
	e := newErrorEnv(t, 20*time.Millisecond)
	e.ins[0].MultilineMaxBytes = 1024
	var b strings.Builder
	b.WriteString("orphan continuation line\n")
	b.WriteString(strings.TrimSuffix(errEvent(0), "\n"))
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "\n#%d /srv/app/deep/recursion.php(%d): again()", i, i)
	}
	b.WriteString("\n")
	b.WriteString(errEvent(1))
	e.mustWrite([]byte(b.String()))
	var mu sync.Mutex
	msg0 := ""
	e.sinks[0].onEvent = func(ev *sinks.Event) {
		if seqOf(ev.Value) == 0 {
			var v struct{ Message string }
			json.Unmarshal(ev.Value, &v)
			mu.Lock()
			msg0 = v.Message
			mu.Unlock()
		}
	}
	e.start()
	e.waitDelivered(2)
	e.waitCheckpoint(e.log, e.size("access.log"))
	e.sinks[0].mu.Lock()
	defer e.sinks[0].mu.Unlock()
	inv := e.sinks[0].invalid
	if len(inv) < 2 || string(inv[0].Raw) != "orphan continuation line" || inv[0].Offset != 0 {
		t.Fatalf("dead-letter events: %d, first %q", len(inv), inv[0].Raw)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(msg0) > 1024 || len(msg0) < 512 {
		t.Errorf("event 0's message is %d bytes, want close to multiline_max_bytes (1024)", len(msg0))
	}
	again := strings.Count(msg0, "again()")
	for _, ev := range inv[1:] {
		if len(ev.Raw) > 1024 || !strings.HasPrefix(string(ev.Raw), "#") {
			t.Errorf("dead-letter event of %d bytes: %q", len(ev.Raw), ev.Raw)
		}
		again += strings.Count(string(ev.Raw), "again()")
	}
	if again != 100 {
		t.Errorf("%d of the 100 continuation lines arrived", again)
	}
}

// Joining costs no allocation per line.
func TestMultilineExtentDoesNotAllocate(t *testing.T) {
	p, err := parser.Compile("error", parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	j := newJoiner(&input{parser: p, cfg: InputConfig{}})
	data := []byte(errEvent(3) + errEvent(5) + "2026/12/02 03:")
	nl := strings.IndexByte(string(data), '\n')
	if n := testing.AllocsPerRun(100, func() { j.extent(data, 0, nl, 0) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
	end, lines, ok := j.extent(data, 0, nl, 0)
	if !ok || lines != 4 || end != len(errEvent(3))-1 {
		t.Errorf("extent: end %d lines %d ok %v", end, lines, ok)
	}
	if newJoiner(&input{parser: mustParser(t, "combined")}) != nil {
		t.Error("a joiner for an access-log format")
	}
}

func mustParser(t *testing.T, f string) *parser.Parser {
	p, err := parser.Compile(f, parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BenchmarkAgentErrorLogToNopSink measures file → harvester → joining →
// parse+encode → a sink that acknowledges at once, for error.log events of
// which one in four has continuation lines (errEvent).
func BenchmarkAgentErrorLogToNopSink(b *testing.B) {
	const events = 100_000
	dir := b.TempDir()
	path := filepath.Join(dir, "error.log")
	var sb strings.Builder
	for i := 0; i <= events; i++ { // the last one waits for a next line: not counted
		sb.WriteString(errEvent(i))
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(sb.Len()))
	b.ResetTimer()
	start := time.Now()
	for it := 0; it < b.N; it++ {
		cfg := Config{DataDir: filepath.Join(dir, fmt.Sprint("data", it)), Hostname: "bench"}
		cfg.Defaults()
		cfg.ScanInterval.Duration = time.Hour
		sink := &nopSink{}
		in := InputConfig{Paths: []string{path}, Format: "error", Timezone: "UTC"}
		in.Defaults()
		a, err := New(cfg, []InputConfig{in}, []sinks.Sink{sink}, Options{Log: slog.New(slog.DiscardHandler), KeyField: "remote_addr"})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { a.Run(ctx); close(done) }()
		for sink.n.Load() < events {
			time.Sleep(time.Millisecond)
		}
		cancel()
		<-done
	}
	b.ReportMetric(float64(events*b.N)/time.Since(start).Seconds(), "events/s")
}

// More error logs than max_open_files: readers park and resume (their
// waiting events are read again from disk), and every event, each file's
// last included, is delivered once and checkpointed.
func TestMultilineWithFewerSlotsThanFiles(t *testing.T) {
	e := newErrorEnv(t, 50*time.Millisecond)
	e.cfg.MaxOpenFiles = 1
	dir := filepath.Dir(e.log)
	e.ins[0].Paths = []string{filepath.Join(dir, "err*.log")}
	const files, per = 4, 50
	for f := 0; f < files; f++ {
		var b strings.Builder
		for i := f * per; i < (f+1)*per; i++ {
			b.WriteString(errEvent(i))
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("err%d.log", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	e.waitDelivered(files * per)
	for f := 0; f < files; f++ {
		p := filepath.Join(dir, fmt.Sprintf("err%d.log", f))
		fi, _ := os.Stat(p)
		e.waitCheckpoint(p, fi.Size())
	}
	if d := e.dups(files * per); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
}
