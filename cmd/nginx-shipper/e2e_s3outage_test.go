package main

import (
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

// TestE2ES3Outage: versitygw is stopped mid-stream while nginx keeps
// logging, then started again. Kafka keeps receiving every line during the
// outage (the S3 sink's spool accepts them); after it every line is in S3
// too, none lost.
func TestE2ES3Outage(t *testing.T) {
	skipShort(t)
	ph := newPhases(t)
	env := e2e.NewEnv(t, e2e.EnvOptions{})
	p := env.StartShipper()
	ph.done("setup")
	load := e2e.StartLoad(t, env.Nginx.Addr, e2e.LoadOptions{Rate: 1000})
	e2e.WaitFor(t, 60*time.Second, "the first S3 objects", func() (bool, string) {
		evs, err := env.S3Events()
		if err != nil {
			return false, err.Error()
		}
		return len(evs) >= 500, ""
	})

	ph.done("first S3 objects")
	env.S3.Stop()
	load.WaitAnswered(2000)
	ph.done("2000 lines during the outage")
	// Kafka is unaffected: it holds every line logged so far, while S3 is
	// still down.
	during := e2e.SeqSet(e2e.LogSeqs(t, env.Nginx.AccessLog()))
	kc := env.KafkaConsumer()
	e2e.WaitFor(t, 60*time.Second, "Kafka to hold every line written during the S3 outage", func() (bool, string) {
		return e2e.Covers(e2e.TallyOf(kc.Events())["access"], during)
	})
	ph.done("Kafka caught up during the outage")
	if _, err := env.S3Events(); err == nil {
		t.Fatal("S3 still answers after Stop")
	}
	env.S3.Start()
	load.WaitAnswered(1000)

	reqs := load.Stop()
	waitLogged(t, reqs, env.Nginx.AccessLog())
	waitLogged(t, reqs, env.Nginx.CustomLog())
	want := map[string]map[int]bool{"access": e2e.Seqs(reqs), "custom": e2e.Seqs(reqs)}
	ph.done("load stopped, nginx logged all")
	env.WaitDelivered(120*time.Second, want)
	ph.done("S3 caught up after the outage")
	if code := p.Term(60 * time.Second); code != 0 {
		t.Errorf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}
	final := env.Final()
	// Kafka saw no failure: exactly once. S3 may store an object twice when
	// the server died after storing it but before answering.
	checkFinal(t, map[string]e2e.Tally{"kafka": final["kafka"]}, want, true)
	dups := checkFinal(t, map[string]e2e.Tally{"s3": final["s3"]}, want, false)
	t.Logf("S3 outage: %d lines per stream, S3 duplicates %d, %d objects", len(reqs), dups["s3"], env.S3Objects())
}
