package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent"
	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
	"github.com/nginx-shipper/nginx-shipper/agent/enrich"
	"github.com/nginx-shipper/nginx-shipper/agent/enrich/enrichtest"
	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks/kafka"
	"github.com/nginx-shipper/nginx-shipper/sinks/kafka/devregistry"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
	"github.com/twmb/franz-go/pkg/sr"
)

// The enrichment end to end: real nginx logs requests that carry an
// X-Forwarded-For chain (xff.log, e2e.XFFFormat) from 127.0.0.1, a trusted
// proxy; the agent walks the chain, places the client with databases made
// by mmdbwriter (enrichtest) and parses the user agent.

// enrichTrusted is the test's trusted_proxies.
var enrichTrusted = []string{"127.0.0.1/32", "10.0.0.0/8"}

// xffFor is the X-Forwarded-For chain of request seq, and what the walk
// must find.
func xffFor(seq int) (hdr, client, city string) {
	switch seq % 5 {
	case 0:
		return "81.2.69.142", "81.2.69.142", "London"
	case 1: // through a trusted 10/8 proxy, an IPv6 client
		return "2a02:8100::1, 10.1.2.3", "2a02:8100::1", "Frankfurt am Main"
	case 2: // a forged entry left of the first untrusted hop is ignored
		return "81.2.69.142, 203.0.113.9", "203.0.113.9", "Tokyo"
	case 3: // no header: the peer
		return "", "127.0.0.1", ""
	default: // garbage stops the walk at the last good hop (private: no geo)
		return "not-an-address, 10.9.9.9", "10.9.9.9", ""
	}
}

// enrichRig is what the agent must make of each line of xff.log: the
// original and the enriched JSON event, by "log_file@log_offset", computed
// here with the same parser and enricher.
type enrichRig struct {
	cfg   enrich.Config
	toml  string
	input e2e.Input
}

func newEnrichRig(t *testing.T, n *e2e.Nginx) *enrichRig {
	dir := t.TempDir()
	city, asn := enrichtest.CityDB(t, dir), enrichtest.ASNDB(t, dir)
	return &enrichRig{
		cfg: enrich.Config{ClientIPHeader: "x_forwarded_for", TrustedProxies: enrichTrusted, GeoIPDatabase: city, ASNDatabase: asn},
		toml: fmt.Sprintf("client_ip_header = \"x_forwarded_for\"\ntrusted_proxies = [%q, %q]\ngeoip_database = %q\nasn_database = %q",
			enrichTrusted[0], enrichTrusted[1], city, asn),
		input: e2e.Input{Paths: []string{n.XFFLog()}, Format: e2e.XFFFormat},
	}
}

// send sends requests [from, to) with their X-Forwarded-For chains.
func (x *enrichRig) send(t *testing.T, n *e2e.Nginx, from, to int) map[int]e2e.Request {
	return e2e.SendEach(t, n.Addr, from, to, func(r *e2e.Request) { r.XForwardedFor, _, _ = xffFor(r.Seq) })
}

// want reads xff.log and returns each line's original and enriched event.
func (x *enrichRig) want(t *testing.T) (orig, enriched map[string]map[string]any) {
	t.Helper()
	ps, err := agent.CompileInputs([]agent.InputConfig{{Paths: x.input.Paths, Format: x.input.Format}}, "remote_addr", os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	en, err := enrich.New(x.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer en.Close()
	b, err := en.Bind(ps[0])
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(x.input.Paths[0])
	if err != nil {
		t.Fatal(err)
	}
	orig, enriched = map[string]map[string]any{}, map[string]map[string]any{}
	var st enrich.State
	var r parser.Result
	var off int64
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if l == "" {
			continue
		}
		line := []byte(strings.TrimSuffix(l, "\n"))
		ev, err := ps[0].Parse(nil, line, parser.Meta{Host: e2e.Hostname, File: x.input.Paths[0], Offset: off}, &r)
		if err != nil {
			t.Fatalf("xff.log line %q: %v", line, err)
		}
		key := fmt.Sprintf("%s@%d", x.input.Paths[0], off)
		orig[key] = decodeMap(t, ev)
		enriched[key] = decodeMap(t, en.AppendEvent(nil, ev, b, &st, line, &r))
		off += int64(len(l))
	}
	return orig, enriched
}

func decodeMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return m
}

// checkEnrichment checks one enriched event against what its request
// carried, independently of the enricher: the client the walk must find,
// its city from the test databases, curl as a bot.
func checkEnrichment(t *testing.T, where string, ev map[string]any, reqs map[int]e2e.Request) {
	t.Helper()
	uri, _ := ev["request_uri"].(string)
	seq := e2e.ParseSeq(uri)
	r, ok := reqs[seq]
	if !ok {
		t.Fatalf("%s: an event for no request: %v", where, ev)
	}
	_, client, city := xffFor(seq)
	if ev["client_ip"] != client {
		t.Fatalf("%s: seq %d: client_ip %v, want %s (X-Forwarded-For %q)", where, seq, ev["client_ip"], client, r.XForwardedFor)
	}
	geo, hasGeo := ev["geo"].(map[string]any)
	if hasGeo != (city != "") || hasGeo && geo["city"] != city {
		t.Fatalf("%s: seq %d: geo %v, want city %q", where, seq, ev["geo"], city)
	}
	if city == "London" && geo["asn"] != float64(20712) {
		t.Fatalf("%s: seq %d: geo %v, want asn 20712", where, seq, geo)
	}
	ua, hasUA := ev["ua"].(map[string]any)
	if r.UserAgent == "curl/8.5.0" && (!hasUA || ua["bot"] != true) {
		t.Fatalf("%s: seq %d: curl: ua %v, want a bot", where, seq, ev["ua"])
	}
}

// TestE2EEnrichedStreams: a real nginx, the agent with [enrich] and
// enriched_topic: every line reaches topic as the original, enriched_topic
// enriched (client_ip walked from X-Forwarded-For, geo from the test's
// databases, ua), and S3 (enriched = true by default) enriched, each event
// equal to what the parser and enricher make of its line; every line is
// acknowledged (checkpointed) only once all of that landed.
func TestE2EEnrichedStreams(t *testing.T) {
	skipShort(t)
	t.Run("enriched_topic", func(t *testing.T) { testE2EEnriched(t, "nginx-access-enriched") })
	// Without enriched_topic the single topic carries the enriched events
	// (made in place: no sink wants the originals).
	t.Run("one topic", func(t *testing.T) { testE2EEnriched(t, "") })
}

func testE2EEnriched(t *testing.T, enriched string) {
	var x *enrichRig
	env := e2e.NewEnv(t, e2e.EnvOptions{
		Inputs: func(n *e2e.Nginx) []e2e.Input {
			x = newEnrichRig(t, n)
			return []e2e.Input{x.input}
		},
		EnrichedTopic: enriched,
	})
	env.Cfg.Enrich = x.toml // the rig made its databases when NewEnv asked for the inputs
	var enr *e2e.Consumer
	if enriched != "" {
		enr = env.Kafka.Consume(t, enriched)
	}
	reqs := x.send(t, env.Nginx, 2_000_000, 2_000_300)
	env.StartShipper()
	waitLogged(t, reqs, env.Nginx.XFFLog())
	want := map[string]map[int]bool{"xff": e2e.Seqs(reqs)}
	env.WaitDelivered(90*time.Second, want)
	if enr != nil {
		e2e.WaitFor(t, 60*time.Second, "every line on the enriched topic", func() (bool, string) {
			tl := e2e.TallyOf(enr.Events())
			return e2e.Covers(tl["xff"], want["xff"])
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
		if missing, dups, _ := e2e.Diff(tl["xff"], want["xff"]); len(missing) > 0 || dups > 0 {
			t.Errorf("%s: %d missing, %d duplicated", sink, len(missing), dups)
		}
	}
	orig, enrWant := x.want(t)
	check := func(where string, evs []e2e.Event, wantEnriched bool) {
		t.Helper()
		n := 0
		for _, ev := range evs {
			if ev.Seq < 0 {
				continue
			}
			n++
			key := fmt.Sprintf("%s@%d", ev.File, ev.Offset)
			w := orig[key]
			if wantEnriched {
				w = enrWant[key]
			}
			got := decodeMap(t, ev.Raw)
			if !reflect.DeepEqual(got, w) {
				t.Fatalf("%s: line %s:\n got %s\nwant %v", where, key, ev.Raw, w)
			}
			if wantEnriched {
				checkEnrichment(t, where, got, reqs)
			} else if _, ok := got["client_ip"]; ok {
				t.Fatalf("%s: an original with client_ip: %s", where, ev.Raw)
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

// TestE2EEnrichedStreamsAvro: as TestE2EEnrichedStreams with value_format
// avro and a schema registry (devregistry): topic's records decode, with
// the original schema registered under topic's subject, to the original
// events; enriched_topic's, with the enriched schema under its own
// subject, to the enriched events (read by kafkajs with
// @kafkajs/confluent-schema-registry, a consumer nobody here wrote); the
// enriched schema registers as a BACKWARD-compatible next version of the
// original; S3 holds the enriched JSON events.
func TestE2EEnrichedStreamsAvro(t *testing.T) {
	skipShort(t)
	node := e2e.LookTool(t, "node", "/usr/bin/node")
	mods := nodeModules(t)
	const topic, enrTopic = "nginx-access", "nginx-access-enriched"
	n := e2e.StartNginx(t)
	x := newEnrichRig(t, n)
	k := e2e.StartKafka(t, topic, enrTopic, "nginx-access-invalid")
	srv := httptest.NewServer(devregistry.New().Handler())
	t.Cleanup(srv.Close)
	s3srv := s3test.Start(t)
	dir := t.TempDir()
	cfg := &e2e.Config{
		Hostname: e2e.Hostname, DataDir: filepath.Join(dir, "data"), MetricsListen: e2e.FreeAddr(t),
		ScanInterval: "100ms", PollInterval: "50ms", CheckpointInterval: "200ms", ShutdownTimeout: "20s",
		Inputs: []e2e.Input{x.input},
		Kafka: &e2e.KafkaSink{Brokers: k.Brokers, Topic: topic, Key: "remote_addr", Compression: "none",
			DeadLetterTopic: "nginx-access-invalid", ValueFormat: kafka.ValueAvro, RegistryURL: srv.URL, EnrichedTopic: enrTopic},
		S3:     e2e.S3For(s3srv, "nginx/dt=%Y-%m-%d/", "1s"),
		Enrich: x.toml,
	}
	reqs := x.send(t, n, 3_000_000, 3_000_200)
	waitLogged(t, reqs, n.XFFLog())
	p := e2e.StartShipper(t, e2e.Shipper(t), cfg)
	orig, enrWant := x.want(t)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	decoded := func(topic string) map[string]map[string]any {
		t.Helper()
		got, ids := kafkajsDecoded(t, ctx, node, mods, k.Brokers[0], srv.URL, topic, len(reqs))
		if len(ids) != 1 {
			t.Errorf("%s: records with schema ids %v, want one", topic, ids)
		}
		return got
	}
	for _, c := range []struct {
		topic string
		want  map[string]map[string]any
	}{{topic, orig}, {enrTopic, enrWant}} {
		got := decoded(c.topic)
		if len(got) != len(c.want) {
			t.Fatalf("%s: %d lines decoded, want %d", c.topic, len(got), len(c.want))
		}
		for key, w := range c.want {
			if !reflect.DeepEqual(got[key], w) {
				gj, _ := json.Marshal(got[key])
				wj, _ := json.Marshal(w)
				t.Fatalf("%s: line %s: decoded by kafkajs/avsc\n %s\nJSON event\n %s", c.topic, key, gj, wj)
			}
			if c.topic == enrTopic {
				checkEnrichment(t, c.topic, got[key], reqs)
			}
		}
	}

	// Each topic its own subject, one version each; the enriched schema is
	// a BACKWARD-compatible extension of the original.
	rcl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	schemas := map[string]string{}
	for _, subj := range []string{topic + "-value", enrTopic + "-value"} {
		vers, err := rcl.SubjectVersions(ctx, subj)
		if err != nil || len(vers) != 1 {
			t.Fatalf("subject %s versions %v, %v; want 1", subj, vers, err)
		}
		ss, err := rcl.SchemaByVersion(ctx, subj, vers[0])
		if err != nil {
			t.Fatal(err)
		}
		schemas[subj] = ss.Schema.Schema
	}
	if schemas[topic+"-value"] == schemas[enrTopic+"-value"] {
		t.Fatal("the enriched subject holds the original schema")
	}
	for i, subj := range []string{topic + "-value", enrTopic + "-value"} {
		ss, err := rcl.CreateSchema(ctx, "backward-check-value", sr.Schema{Type: sr.TypeAvro, Schema: schemas[subj]})
		if err != nil || ss.Version != i+1 {
			t.Fatalf("the %s schema as version %d of a BACKWARD subject: %+v, %v", subj, i+1, ss, err)
		}
	}

	// S3 holds the enriched JSON events.
	s3r := e2e.NewS3Reader(t, s3srv, "nginx/")
	e2e.WaitFor(t, 60*time.Second, "the enriched events in S3", func() (bool, string) {
		err := s3r.Refresh(nil)
		return err == nil && len(s3r.Events()) == len(reqs), fmt.Sprintf("%d of %d events (%v)", len(s3r.Events()), len(reqs), err)
	})
	for _, ev := range s3r.Events() {
		key := fmt.Sprintf("%s@%d", ev.File, ev.Offset)
		if got := decodeMap(t, ev.Raw); !reflect.DeepEqual(got, enrWant[key]) {
			t.Fatalf("S3: line %s:\n got %s\nwant %v", key, ev.Raw, enrWant[key])
		}
	}
	if code := p.Term(60 * time.Second); code != 0 {
		t.Errorf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}
}
