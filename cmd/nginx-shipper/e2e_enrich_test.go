package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
	"github.com/nginx-shipper/nginx-shipper/agent/enrich/enrichtest"
)

// TestE2EEnrichedStreams: a real nginx, the agent with [enrich] and
// enriched_topic: every line reaches topic as the original, enriched_topic
// with client_ip and ua, and S3 (enriched = true by default) enriched;
// every line is acknowledged (checkpointed) only once all of that landed.
func TestE2EEnrichedStreams(t *testing.T) {
	skipShort(t)
	t.Run("enriched_topic", func(t *testing.T) { testE2EEnriched(t, "nginx-access-enriched") })
	// Without enriched_topic the single topic carries the enriched events
	// (made in place: no sink wants the originals).
	t.Run("one topic", func(t *testing.T) { testE2EEnriched(t, "") })
}

func testE2EEnriched(t *testing.T, enriched string) {
	dir := t.TempDir()
	env := e2e.NewEnv(t, e2e.EnvOptions{
		Inputs: func(n *e2e.Nginx) []e2e.Input {
			return []e2e.Input{{Paths: []string{n.AccessLog()}, Format: "combined"}}
		},
		EnrichedTopic: enriched,
		Enrich: fmt.Sprintf("trusted_proxies = [\"10.0.0.0/8\"]\ngeoip_database = %q\nasn_database = %q",
			enrichtest.CityDB(t, dir), enrichtest.ASNDB(t, dir)),
	})
	var enr *e2e.Consumer
	if enriched != "" {
		enr = env.Kafka.Consume(t, enriched)
	}
	reqs := e2e.Send(t, env.Nginx.Addr, 2_000_000, 2_000_300)
	env.StartShipper()
	waitLogged(t, reqs, env.Nginx.AccessLog())
	want := map[string]map[int]bool{"access": e2e.Seqs(reqs)}
	env.WaitDelivered(90*time.Second, want)
	if enr != nil {
		e2e.WaitFor(t, 60*time.Second, "every line on the enriched topic", func() (bool, string) {
			tl := e2e.TallyOf(enr.Events())
			return e2e.Covers(tl["access"], want["access"])
		})
	}
	if hits, err := env.Shipper.Metric("nginx_shipper_enrich_cache_lookups_total", `cache="ua",result="hit"`); err != nil || hits < float64(len(reqs))/2 {
		t.Errorf("user-agent cache hits = %v (%v), want most of %d lines (the load cycles through a few user agents)", hits, err, len(reqs))
	}
	if code := env.Shipper.Term(60 * time.Second); code != 0 {
		t.Fatalf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}
	final := env.Final()
	for sink, tl := range final {
		if missing, dups, _ := e2e.Diff(tl["access"], want["access"]); len(missing) > 0 || dups > 0 {
			t.Errorf("%s: %d missing, %d duplicated", sink, len(missing), dups)
		}
	}
	check := func(where string, evs []e2e.Event, wantEnriched bool) {
		t.Helper()
		n := 0
		for _, ev := range evs {
			if ev.Seq < 0 {
				continue
			}
			n++
			ip, has := ev.Fields["client_ip"]
			if has != wantEnriched {
				t.Fatalf("%s: seq %d has client_ip %v, want enriched=%v: %s", where, ev.Seq, has, wantEnriched, ev.Raw)
			}
			if !wantEnriched {
				continue
			}
			if ip != ev.Fields["remote_addr"] {
				t.Fatalf("%s: seq %d: client_ip %v, remote_addr %v (the peer is not trusted)", where, ev.Seq, ip, ev.Fields["remote_addr"])
			}
			if _, ok := ev.Fields["geo"]; ok {
				t.Fatalf("%s: seq %d: geo for a loopback client: %s", where, ev.Seq, ev.Raw)
			}
			ua, hasUA := ev.Fields["ua"].(map[string]any)
			hdrs, _ := ev.Fields["request_headers"].(map[string]any)
			agent, logged := hdrs["user_agent"]
			if hasUA != logged {
				t.Fatalf("%s: seq %d: ua %v with user agent logged %v: %s", where, ev.Seq, hasUA, logged, ev.Raw)
			}
			if agent == "curl/8.5.0" && ua["bot"] != true {
				t.Fatalf("%s: seq %d: curl not a bot: %s", where, ev.Seq, ev.Raw)
			}
		}
		if n < len(reqs) {
			t.Errorf("%s: %d events, want %d", where, n, len(reqs))
		}
	}
	check("topic", env.KafkaEvents(), enr == nil)
	if enr != nil {
		enr.WaitEnd(30 * time.Second)
		check("enriched_topic", enr.Events(), true)
	}
	s3evs, err := env.S3Events()
	if err != nil {
		t.Fatal(err)
	}
	check("s3", s3evs, true)
}
