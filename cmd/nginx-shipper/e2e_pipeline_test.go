package main

import (
	"os"
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

	load := e2e.StartLoad(t, env.Nginx.Addr, e2e.LoadOptions{Rate: 2000})
	load.WaitAnswered(3000)
	reqs := merge(pre, load.Stop())
	waitLogged(t, reqs, env.Nginx.AccessLog())
	waitLogged(t, reqs, env.Nginx.CustomLog())
	want := map[string]map[int]bool{"access": e2e.Seqs(reqs), "custom": e2e.Seqs(reqs)}
	env.WaitDelivered(90*time.Second, want)

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
	} else if int(read) != len(reqs) {
		t.Errorf("nginx_shipper_lines_read_total{path=access.log} = %v, want %d", read, len(reqs))
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

	final := env.Final()
	checkFinal(t, final, want, true)
	for _, sink := range env.Sinks() {
		checkEvents(t, sink, env.Events(sink), reqs, true)
	}
	t.Logf("%d requests, %d S3 objects", len(reqs), env.S3Objects())
}
