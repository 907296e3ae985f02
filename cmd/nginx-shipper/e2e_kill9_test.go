package main

import (
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

// TestE2EKill9Restart: while nginx serves a steady request loop, the agent
// is SIGKILLed twice (once mid-stream, once soon after its restart, while
// it recovers its S3 spool) and restarted on the same data_dir. Every line
// reaches Kafka and S3 at least once; duplicates are reported.
func TestE2EKill9Restart(t *testing.T) {
	skipShort(t)
	ph := newPhases(t)
	env := e2e.NewEnv(t, e2e.EnvOptions{})
	p := env.StartShipper()
	ph.done("setup")
	load := e2e.StartLoad(t, env.Nginx.Addr, e2e.LoadOptions{Rate: 1500})
	kc := env.KafkaConsumer()

	// Mid-stream: the agent has shipped some lines and is shipping more.
	e2e.WaitFor(t, 60*time.Second, "the first 1500 events in Kafka", func() (bool, string) {
		return kc.Len() >= 1500, ""
	})
	p.Kill9()
	t.Logf("kill -9 #1: %d records in Kafka; lines below the checkpoint: access.log %d, custom.log %d", kc.Len(),
		ackedLines(t, env.Cfg.DataDir, env.Nginx.AccessLog()), ackedLines(t, env.Cfg.DataDir, env.Nginx.CustomLog()))
	ph.done("first kill")
	load.WaitAnswered(1000) // nginx keeps logging while the agent is down
	p.Start()
	ph.done("1000 lines while down, restarted")

	// Soon after the restart, while it catches up and re-uploads its spool.
	n := kc.Len()
	e2e.WaitFor(t, 60*time.Second, "500 more events in Kafka after the restart", func() (bool, string) {
		return kc.Len() >= n+500, ""
	})
	p.Kill9()
	t.Logf("kill -9 #2: %d records in Kafka; lines below the checkpoint: access.log %d, custom.log %d", kc.Len(),
		ackedLines(t, env.Cfg.DataDir, env.Nginx.AccessLog()), ackedLines(t, env.Cfg.DataDir, env.Nginx.CustomLog()))
	ph.done("second kill")
	load.WaitAnswered(500)
	p.Start()
	load.WaitAnswered(1000)
	ph.done("restarted, 1000 more lines")

	reqs := load.Stop()
	waitLogged(t, reqs, env.Nginx.AccessLog())
	waitLogged(t, reqs, env.Nginx.CustomLog())
	want := map[string]map[int]bool{"access": e2e.Seqs(reqs), "custom": e2e.Seqs(reqs)}
	ph.done("load stopped, nginx logged all")
	env.WaitDelivered(120*time.Second, want)
	ph.done("both sinks caught up")
	if code := p.Term(60 * time.Second); code != 0 {
		t.Errorf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}
	dups := checkFinal(t, env.Final(), want, false)
	t.Logf("after 2 x kill -9: %d lines per stream; duplicates: kafka %d, s3 %d", len(reqs), dups["kafka"], dups["s3"])
	for _, sink := range env.Sinks() {
		checkEvents(t, sink, env.Events(sink), reqs, true)
	}
}
