package kafka

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/nginx-shipper/nginx-shipper/sinks/kafka/devregistry"
)

const combinedLine = `203.0.113.7 - - [25/Nov/2026:15:04:05 +0100] "GET /a?b=1 HTTP/1.1" 200 512 "-" "curl/8.5"`

// registry serves a checking registry (devregistry) on 127.0.0.1 until the
// test ends.
func registry(t testing.TB) (*devregistry.Registry, *httptest.Server, *sr.Client) {
	t.Helper()
	reg := devregistry.New()
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(srv.Close)
	cl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	return reg, srv, cl
}

func avroConfig(addrs []string, url string) Config {
	cfg := testConfig(addrs)
	cfg.DeadLetterTopic = topicDLQ
	cfg.ValueFormat = ValueAvro
	cfg.SchemaRegistry.URL = url
	return cfg
}

func combinedParser(t testing.TB) *parser.Parser {
	t.Helper()
	p, err := parser.Compile("combined", parser.Options{KeyField: "remote_addr"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// avroBatch builds an armed batch as the agent does with Options.Avro:
// each line parsed (Value, Key) and encoded in Avro behind five reserved
// bytes; a line that does not parse has Err, one whose event does not fit
// the schema has AvroErr, both with Raw.
func (e *env) avroBatch(p *parser.Parser, src *sinks.Source, lines ...string) *sinks.Batch {
	b := sinks.NewBatch(src)
	var off int64
	var r parser.Result
	for _, l := range lines {
		ev := b.Add()
		ev.Offset, ev.Time = off, time.Now()
		meta := parser.Meta{Host: "web-1", File: src.Path, Offset: off}
		off += int64(len(l)) + 1
		v, err := p.Parse(nil, []byte(l), meta, &r)
		if err != nil {
			ev.Err, ev.Raw = err, []byte(l)
			continue
		}
		ev.Value, ev.Key = v, append([]byte(nil), r.Key...)
		a, err := p.AppendAvro(make([]byte, 5), []byte(l), meta, &r)
		if err != nil {
			ev.AvroErr, ev.Raw = err, []byte(l)
			continue
		}
		ev.Avro = a
	}
	b.End = off
	b.Arm(1, e.acks.onDone)
	return b
}

// waitFor polls cond until it holds, failing after 20s with what().
func waitFor(t testing.TB, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached: %s", what())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readyString(s *Sink) string {
	if err := s.Ready(); err != nil {
		return err.Error()
	}
	return "ready"
}

// TestAvroRecordsAreConfluentFramed: with value_format avro the schema is
// registered at start under <topic>-value; every record is magic byte 0,
// the registered id and the Avro binary, which decodes with the schema
// the registry holds for that id to the JSON event of the line. A line
// that does not parse and one whose event does not fit the schema go to
// the dead-letter topic with stage, reason, schema id and intended topic;
// the metric counts each stage.
func TestAvroRecordsAreConfluentFramed(t *testing.T) {
	c := newCluster(t)
	_, srv, rcl := registry(t)
	e := newEnv(t, c, avroConfig(c.ListenAddrs(), srv.URL))
	p := combinedParser(t)
	if err := e.s.UseSchemas([]InputSchema{{Input: 0, Avro: p.Schema().Avro()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return readyString(e.s) }, func() bool { return e.s.Ready() == nil })
	ss, err := rcl.SchemaByVersion(context.Background(), topicMain+"-value", -1)
	if err != nil || ss.Version != 1 {
		t.Fatalf("subject %s-value: %+v, %v", topicMain, ss, err)
	}

	outOfRange := strings.Replace(combinedLine, " 200 512 ", " 200 9999999999999999999 ", 1)
	b := e.avroBatch(p, testSource, combinedLine, "garbage", outOfRange, strings.Replace(combinedLine, "/a?b=1", "/second", 1))
	e.mustSend(b)
	e.mustDone(b)

	recs := consume(t, c.ListenAddrs(), topicMain, 2)
	sch, err := avro.Parse(ss.Schema.Schema)
	if err != nil {
		t.Fatal(err)
	}
	var hdr sr.ConfluentHeader
	for i, rec := range recs {
		id, body, err := hdr.DecodeID(rec.Value)
		if err != nil || id != ss.ID || rec.Value[0] != 0 {
			t.Fatalf("record %d: id %d (registered %d), %v", i, id, ss.ID, err)
		}
		var got map[string]any
		if rest, err := sch.Decode(body, &got); err != nil || len(rest) != 0 {
			t.Fatalf("record %d: decoding: %v (%d bytes left)", i, err, len(rest))
		}
		if got["remote_addr"] != "203.0.113.7" || got["status"] != int64(200) || got["host"] != "web-1" {
			t.Fatalf("record %d: %v", i, got)
		}
		if string(rec.Key) != "203.0.113.7" {
			t.Fatalf("record %d: key %q", i, rec.Key)
		}
	}

	dlq := consume(t, c.ListenAddrs(), topicDLQ, 2)
	stages := map[string]string{}
	for _, rec := range dlq {
		stage, _ := header(rec, HeaderStage)
		stages[stage] = string(rec.Value)
		if stage == StageSchema {
			if id, _ := header(rec, HeaderSchemaID); id != strconv.Itoa(ss.ID) {
				t.Errorf("schema_id header %q, want %d", id, ss.ID)
			}
			if st, _ := header(rec, HeaderSourceTopic); st != topicMain {
				t.Errorf("source_topic header %q, want %s", st, topicMain)
			}
			if reason, _ := header(rec, HeaderReason); !strings.Contains(reason, "body_bytes_sent") || !strings.Contains(reason, "out of range") {
				t.Errorf("reason %q", reason)
			}
		}
	}
	if stages[StageParse] != "garbage" || stages[StageSchema] != outOfRange {
		t.Fatalf("dead-letter records by stage: %q", stages)
	}
	waitMetric(t, e.reg, 1, "nginx_shipper_kafka_invalid_events_total", "stage", StageParse, "action", "dead_letter")
	waitMetric(t, e.reg, 1, "nginx_shipper_kafka_invalid_events_total", "stage", StageSchema, "action", "dead_letter")
}

// TestRegistryDownAtStart: while the registry cannot be reached the sink
// is not ready (and says why), Send waits (backpressure) and nothing is
// produced; once the registry is up the schema is registered and the
// batch goes through. When the registry goes away later, the cached id
// keeps producing.
func TestRegistryDownAtStart(t *testing.T) {
	c := newCluster(t)
	addr := deadAddr(t)
	e := newEnv(t, c, avroConfig(c.ListenAddrs(), "http://"+addr))
	p := combinedParser(t)
	if err := e.s.UseSchemas([]InputSchema{{Input: 0, Avro: p.Schema().Avro()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return readyString(e.s) }, func() bool {
		err := e.s.RegistryReady()
		return err != nil && strings.Contains(err.Error(), "retrying") && strings.Contains(err.Error(), "connection refused") && strings.Contains(err.Error(), topicMain+"-value")
	})
	b := e.avroBatch(p, testSource, combinedLine)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := e.s.Send(ctx, b)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send while the registry is down: %v, want it to wait until ctx ends", err)
	}
	if n := topicEnd(t, c.ListenAddrs(), topicMain); n != 0 {
		t.Fatalf("%d records produced before the schema was registered", n)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: devregistry.New().Handler()}
	go srv.Serve(ln)
	b2 := e.avroBatch(p, testSource, combinedLine)
	e.mustSend(b2) // waits for the registration (backoff retries)
	e.mustDone(b2)
	if err := e.s.Ready(); err != nil {
		t.Fatalf("not ready after the registration: %v", err)
	}

	srv.Close() // the registry goes away: the cached id is enough
	b3 := e.avroBatch(p, testSource, combinedLine)
	e.mustSend(b3)
	e.mustDone(b3)
	if n := topicEnd(t, c.ListenAddrs(), topicMain); n != 2 {
		t.Fatalf("%d records, want 2", n)
	}
}

// TestRegistryRefusesSchema: a subject whose latest version our schema is
// incompatible with (409) refuses the input: not ready with a message
// naming the subject, the version and the registry's words; Send waits and
// returns ErrSchemaRefused when ctx ends; nothing is produced.
func TestRegistryRefusesSchema(t *testing.T) {
	c := newCluster(t)
	_, srv, rcl := registry(t)
	old := sr.Schema{Type: sr.TypeAvro, Schema: `{"type":"record","name":"access","namespace":"nginx_shipper","fields":[{"name":"status","type":["null","string"],"default":null}]}`}
	if _, err := rcl.CreateSchema(context.Background(), topicMain+"-value", old); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, c, avroConfig(c.ListenAddrs(), srv.URL))
	p := combinedParser(t)
	if err := e.s.UseSchemas([]InputSchema{{Input: 0, Avro: p.Schema().Avro()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return readyString(e.s) }, func() bool { return e.s.RegistryReady() != nil && strings.Contains(readyString(e.s), "refused") })
	msg := readyString(e.s)
	for _, want := range []string{topicMain + "-value", "version 1", "409", "incompatible", "status"} {
		if !strings.Contains(msg, want) {
			t.Errorf("readiness %q does not name %q", msg, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.s.Send(ctx, e.avroBatch(p, testSource, combinedLine)); !errors.Is(err, ErrSchemaRefused) {
		t.Fatalf("Send of a refused input: %v", err)
	}
	if n := topicEnd(t, c.ListenAddrs(), topicMain); n != 0 {
		t.Fatalf("%d records produced for a refused schema", n)
	}
}

// TestAutoRegisterFalse: without auto_register a subject with no version
// refuses the input; once the schema is registered (by someone else), the
// sink frames with its id and registers nothing itself.
func TestAutoRegisterFalse(t *testing.T) {
	c := newCluster(t)
	_, srv, rcl := registry(t)
	cfg := avroConfig(c.ListenAddrs(), srv.URL)
	off := false
	cfg.SchemaRegistry.AutoRegister = &off
	p := combinedParser(t)
	schemas := []InputSchema{{Input: 0, Avro: p.Schema().Avro()}}

	e := newEnv(t, c, cfg)
	if err := e.s.UseSchemas(schemas); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return readyString(e.s) }, func() bool { return strings.Contains(readyString(e.s), "auto_register is false") })
	if subs, _ := rcl.Subjects(context.Background()); len(subs) != 0 {
		t.Fatalf("auto_register = false registered %v", subs)
	}

	ss, err := rcl.CreateSchema(context.Background(), topicMain+"-value", sr.Schema{Type: sr.TypeAvro, Schema: p.Schema().Avro()})
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, c, cfg)
	if err := e2.s.UseSchemas(schemas); err != nil {
		t.Fatal(err)
	}
	b := e2.avroBatch(p, testSource, combinedLine)
	e2.mustSend(b)
	e2.mustDone(b)
	rec := consume(t, c.ListenAddrs(), topicMain, 1)[0]
	var hdr sr.ConfluentHeader
	if id, _, err := hdr.DecodeID(rec.Value); err != nil || id != ss.ID {
		t.Fatalf("framed with id %d, registered %d (%v)", id, ss.ID, err)
	}
}

// TestCheckSchemas: validate --connect asks for compatibility without
// registering: an incompatible subject is an error naming it and its
// version; a compatible or new one is fine; nothing is registered.
func TestCheckSchemas(t *testing.T) {
	_, srv, rcl := registry(t)
	p := combinedParser(t)
	cfg := avroConfig([]string{"127.0.0.1:9092"}, srv.URL)
	schemas := []InputSchema{{Input: 0, Avro: p.Schema().Avro()}}
	ctx := context.Background()
	if err := CheckSchemas(ctx, cfg, schemas); err != nil {
		t.Fatalf("new subject: %v", err)
	}
	if subs, _ := rcl.Subjects(ctx); len(subs) != 0 {
		t.Fatalf("CheckSchemas registered %v", subs)
	}
	old := sr.Schema{Type: sr.TypeAvro, Schema: `{"type":"record","name":"access","namespace":"nginx_shipper","fields":[{"name":"status","type":["null","string"],"default":null}]}`}
	if _, err := rcl.CreateSchema(ctx, topicMain+"-value", old); err != nil {
		t.Fatal(err)
	}
	err := CheckSchemas(ctx, cfg, schemas)
	if !errors.Is(err, ErrSchemaRefused) || !strings.Contains(err.Error(), topicMain+"-value") || !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("incompatible subject: %v", err)
	}
	if vs, _ := rcl.SubjectVersions(ctx, topicMain+"-value"); len(vs) != 1 {
		t.Fatalf("versions %v", vs)
	}
}

// TestSubjectStrategies: topic, record and topic_record name the subject
// as Confluent's strategies do.
func TestSubjectStrategies(t *testing.T) {
	s := `{"type":"record","name":"access","namespace":"nginx_shipper","fields":[]}`
	for strategy, want := range map[string]string{
		SubjectTopic: "t-value", SubjectRecord: "nginx_shipper.access-value", SubjectTopicRecord: "t-nginx_shipper.access",
	} {
		if got, err := Subject(strategy, "t", s); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", strategy, got, err, want)
		}
	}
}

// TestAvroConfigValidation: the keys are checked, each error naming its key.
func TestAvroConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.ValueFormat = "protobuf" }, "sinks.kafka.value_format"},
		{func(c *Config) { c.SchemaRegistry.URL = "" }, "sinks.kafka.schema_registry.url"},
		{func(c *Config) { c.SchemaRegistry.URL = "127.0.0.1:8081" }, "sinks.kafka.schema_registry.url"},
		{func(c *Config) { c.SchemaRegistry.URLs = []string{"ftp://x"} }, "sinks.kafka.schema_registry.urls[0]"},
		{func(c *Config) { c.SchemaRegistry.SubjectStrategy = "name" }, "sinks.kafka.schema_registry.subject_strategy"},
		{func(c *Config) { c.SchemaRegistry.Password = "p" }, "sinks.kafka.schema_registry.username"},
		{func(c *Config) { c.SchemaRegistry.PasswordFile = "/nonexistent" }, "sinks.kafka.schema_registry.password_file"},
		{func(c *Config) { c.SchemaRegistry.BearerTokenFile = "/nonexistent" }, "sinks.kafka.schema_registry.bearer_token_file"},
		{func(c *Config) { c.SchemaRegistry.TLS.CAFile = "/nonexistent" }, "sinks.kafka.schema_registry: schema_registry.tls.ca_file"},
	} {
		cfg := avroConfig([]string{"127.0.0.1:9092"}, "http://127.0.0.1:8081")
		tc.mod(&cfg)
		cfg.Defaults()
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error naming %s, got %v", tc.want, err)
		}
	}
	cfg := avroConfig([]string{"127.0.0.1:9092"}, "http://127.0.0.1:8081")
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid: %v", err)
	}
}

// TestRegistryTLSAndAuth: the registry is reached over mutual TLS with
// basic auth from password_file, or with a bearer token from
// bearer_token_file; a wrong password is not a refusal but a readiness
// reason naming the registry's answer, retried.
func TestRegistryTLSAndAuth(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	serve := func(auth string) string {
		srv := httptest.NewUnstartedServer(devregistry.New(srfake.WithAuth(auth)).Handler())
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	p := combinedParser(t)
	schemas := []InputSchema{{Input: 0, Avro: p.Schema().Avro()}}
	tlsCfg := TLSConfig{CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("shipper:s3cret"))

	c := newCluster(t)
	cfg := avroConfig(c.ListenAddrs(), serve(basic))
	cfg.SchemaRegistry.TLS = tlsCfg
	cfg.SchemaRegistry.Username, cfg.SchemaRegistry.PasswordFile = "shipper", file("pw", "s3cret")
	if err := CheckSchemas(context.Background(), cfg, schemas); err != nil {
		t.Fatalf("mTLS + basic auth: %v", err)
	}
	e := newEnv(t, c, cfg)
	if err := e.s.UseSchemas(schemas); err != nil {
		t.Fatal(err)
	}
	b := e.avroBatch(p, testSource, combinedLine)
	e.mustSend(b)
	e.mustDone(b)

	bearer := avroConfig(c.ListenAddrs(), serve("Bearer tok-123"))
	bearer.SchemaRegistry.TLS = tlsCfg
	bearer.SchemaRegistry.BearerTokenFile = file("token", "tok-123")
	if err := CheckSchemas(context.Background(), bearer, schemas); err != nil {
		t.Fatalf("bearer token: %v", err)
	}

	wrong := cfg
	wrong.SchemaRegistry.PasswordFile = file("pw2", "wrong")
	e2 := newEnv(t, c, wrong)
	if err := e2.s.UseSchemas(schemas); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return readyString(e2.s) }, func() bool {
		err := e2.s.RegistryReady()
		return err != nil && strings.Contains(err.Error(), "retrying") && strings.Contains(err.Error(), "HTTP 403") && strings.Contains(err.Error(), "not authorized")
	})
}

// Each topic gets its subject: an input with its own topic ([[inputs]]
// topic, issue 15) registers under <its topic>-value, the others under the
// sink's topic.
func TestSubjectPerInputTopic(t *testing.T) {
	cfg := avroConfig([]string{"127.0.0.1:9092"}, "http://127.0.0.1:8081")
	cfg.Defaults()
	s := `{"type":"record","name":"access","namespace":"nginx_shipper","fields":[]}`
	r, err := newRegistrar(&cfg.SchemaRegistry, "nginx-access", "", slog.New(slog.DiscardHandler), []InputSchema{
		{Input: 0, Avro: s},
		{Input: 1, Avro: s, Topic: "nginx-error"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.byIn[0].subject; got != "nginx-access-value" {
		t.Errorf("input 0: subject %q", got)
	}
	if got := r.byIn[1].subject; got != "nginx-error-value" {
		t.Errorf("input 1 (topic nginx-error): subject %q", got)
	}
}
