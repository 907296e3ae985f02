package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

// TestE2EPipelineBothSinks: a real nginx writes a combined and a custom log
// for a few thousand requests with tricky headers; the agent ships both to
// Kafka and S3. Every line arrives exactly once in each sink, with every
// field typed and decoded as the contract says.
func TestE2EPipelineBothSinks(t *testing.T) {
	skipShort(t)
	env := e2e.NewEnv(t, e2e.EnvOptions{Compression: "zstd"})
	// Lines written before the agent starts are read from the beginning.
	pre := e2e.Send(t, env.Nginx.Addr, 1_000_000, 1_000_300)
	env.StartShipper()

	dlq := env.Kafka.Consume(t, env.DLT)
	load := e2e.StartLoad(t, env.Nginx.Addr, e2e.LoadOptions{Rate: 2000})
	load.WaitAnswered(1000)
	// Lines that do not parse, between nginx's own (O_APPEND, one write
	// each, as nginx does): raw to the dead-letter topic, nowhere else.
	garbage := []string{"not an access log line", `127.0.0.1 - - [garbage] "GET /x HTTP/1.1" abc`, `éè "quoted" \ end`}
	appendLines(t, env.Nginx.AccessLog(), garbage...)
	load.WaitAnswered(2000)
	reqs := merge(pre, load.Stop())
	waitLogged(t, reqs, env.Nginx.AccessLog())
	waitLogged(t, reqs, env.Nginx.CustomLog())
	want := map[string]map[int]bool{"access": e2e.Seqs(reqs), "custom": e2e.Seqs(reqs)}
	env.WaitDelivered(90*time.Second, want)
	e2e.WaitFor(t, 30*time.Second, "the garbage lines in the dead-letter topic", func() (bool, string) {
		return dlq.Len() >= len(garbage), ""
	})

	for _, sink := range env.Sinks() {
		acked, err := env.Shipper.Metric("nginx_shipper_events_acked_total", `sink="`+sink+`"`)
		if err != nil {
			t.Errorf("metrics: %v", err)
		} else if int(acked) < 2*len(reqs) {
			t.Errorf("nginx_shipper_events_acked_total{sink=%q} = %v, want >= %d", sink, acked, 2*len(reqs))
		}
	}
	if read, err := env.Shipper.Metric("nginx_shipper_lines_read_total", `path="`+env.Nginx.AccessLog()+`"`); err != nil {
		t.Errorf("metrics: %v", err)
	} else if int(read) != len(reqs)+len(garbage) {
		t.Errorf("nginx_shipper_lines_read_total{path=access.log} = %v, want %d", read, len(reqs)+len(garbage))
	}

	if code := env.Shipper.Term(60 * time.Second); code != 0 {
		t.Fatalf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}
	cps, err := e2e.Checkpoints(env.Cfg.DataDir)
	if err != nil {
		t.Fatalf("checkpoints after SIGTERM: %v", err)
	}
	for _, f := range []string{env.Nginx.AccessLog(), env.Nginx.CustomLog()} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if cps[f] != fi.Size() {
			t.Errorf("checkpoint of %s = %d, want its size %d (everything acknowledged)", f, cps[f], fi.Size())
		}
	}

	dlq.WaitEnd(30 * time.Second)
	got := map[string]int{}
	for _, v := range dlq.Values() {
		got[string(v)]++
	}
	for _, g := range garbage {
		if got[g] != 1 {
			t.Errorf("dead-letter topic has %d records %q, want 1 (it holds %q)", got[g], g, dlq.Values())
		}
	}
	if len(dlq.Values()) != len(garbage) {
		t.Errorf("dead-letter topic holds %d records, want %d: %q", len(dlq.Values()), len(garbage), dlq.Values())
	}

	final := env.Final()
	checkFinal(t, final, want, true)
	for _, sink := range env.Sinks() {
		checkEvents(t, sink, env.Events(sink), reqs, true)
	}
	t.Logf("%d requests, %d S3 objects", len(reqs), env.S3Objects())
}

// appendLines appends lines to a log file with one O_APPEND write each, as
// nginx writes.
func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if strings.Contains(l, "\n") {
			t.Fatalf("line with a newline: %q", l)
		}
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}
