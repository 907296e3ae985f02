package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

// TestE2EReloadAndCleanRestart: under load, the agent reloads its config
// (SIGHUP) and is later stopped with SIGTERM and started again. Neither is a
// crash: every line arrives exactly once in each sink.
func TestE2EReloadAndCleanRestart(t *testing.T) {
	skipShort(t)
	env := e2e.NewEnv(t, e2e.EnvOptions{})
	p := env.StartShipper()
	load := e2e.StartLoad(t, env.Nginx.Addr, e2e.LoadOptions{Rate: 1500})
	kc := env.KafkaConsumer()
	e2e.WaitFor(t, 60*time.Second, "1000 events in Kafka", func() (bool, string) { return kc.Len() >= 1000, "" })

	p.Signal(syscall.SIGHUP)
	e2e.WaitFor(t, 30*time.Second, "the reload in the agent's log", func() (bool, string) {
		return strings.Contains(strings.ToLower(p.Log()), "reload"), "no line mentions a reload"
	})
	n := kc.Len()
	e2e.WaitFor(t, 60*time.Second, "1000 more events after the reload", func() (bool, string) { return kc.Len() >= n+1000, "" })

	if code := p.Term(60 * time.Second); code != 0 {
		t.Fatalf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}
	load.WaitAnswered(1000) // logged while the agent is stopped
	p.Start()
	load.WaitAnswered(1000)

	reqs := load.Stop()
	waitLogged(t, reqs, env.Nginx.AccessLog())
	waitLogged(t, reqs, env.Nginx.CustomLog())
	want := map[string]map[int]bool{"access": e2e.Seqs(reqs), "custom": e2e.Seqs(reqs)}
	env.WaitDelivered(90*time.Second, want)
	if code := p.Term(60 * time.Second); code != 0 {
		t.Errorf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}
	// Lost lines fail above; a reload and a clean stop must not duplicate.
	dups := checkFinal(t, env.Final(), want, false)
	if dups["kafka"]+dups["s3"] > 0 {
		t.Errorf("duplicates without a crash (kafka %d, s3 %d) across a SIGHUP reload and a clean restart", dups["kafka"], dups["s3"])
	}
}
