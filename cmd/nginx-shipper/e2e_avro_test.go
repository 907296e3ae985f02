package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/nginx-shipper/nginx-shipper/agent"
	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks/kafka"
	"github.com/nginx-shipper/nginx-shipper/sinks/kafka/devregistry"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// nodeModules returns the folder .ci/deps installs kafkajs and
// @kafkajs/confluent-schema-registry into, skipping (or failing with
// NGINX_SHIPPER_REQUIRE_E2E=1) when they are missing.
func nodeModules(t *testing.T) string {
	t.Helper()
	root, err := e2e.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, ".tools", "node", "node_modules")
	for _, m := range []string{"kafkajs", "@kafkajs/confluent-schema-registry"} {
		if _, err := os.Stat(filepath.Join(dir, m, "package.json")); err != nil {
			e2e.Missing(t, "npm package %s not in %s", m, dir)
		}
	}
	return dir
}

// avscToEvent turns a record as avsc decoded it (through JSON) back into
// the JSON event it stands for: nulls left out, timestamp-millis and
// timestamp_offset rebuilt as the RFC 3339 string, Avro's "_1" back to "1".
func avscToEvent(rec map[string]any) (map[string]any, error) {
	out := map[string]any{}
	for k, v := range rec {
		switch {
		case v == nil, k == "timestamp_offset":
			continue
		case k == "timestamp":
			ms, ok1 := v.(float64)
			off, ok2 := rec["timestamp_offset"].(float64)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("timestamp %v, offset %v", v, rec["timestamp_offset"])
			}
			out[k] = time.UnixMilli(int64(ms)).In(time.FixedZone("", int(off)*60)).Format("2006-01-02T15:04:05.000-07:00")
			continue
		}
		if sub, ok := v.(map[string]any); ok {
			ev, err := avscToEvent(sub)
			if err != nil {
				return nil, err
			}
			v = ev
		}
		out[strings.TrimPrefix(k, "_")] = v
	}
	return out, nil
}

// TestE2EAvroOutsideConsumer: the agent ships two inputs (combined, and the
// full15 format with upstream lists and header records) of lines real
// nginx wrote as Avro with a schema registry. Both schemas are registered
// under nginx-access-value (the second a BACKWARD-compatible version 2 of
// the first); a consumer nobody here wrote, kafkajs with
// @kafkajs/confluent-schema-registry (avsc), reads the topic from the
// broker and the schemas from the registry, and every record it decodes
// equals the JSON event of the same line, each line exactly once. A line
// that does not parse and one whose value is out of range for its type
// are in the dead-letter topic with their stage.
func TestE2EAvroOutsideConsumer(t *testing.T) {
	skipShort(t)
	node := e2e.LookTool(t, "node", "/usr/bin/node")
	mods := nodeModules(t)
	root, _ := e2e.ModuleRoot()

	k := e2e.StartKafka(t, "nginx-access", "nginx-access-invalid")
	srv := httptest.NewServer(devregistry.New().Handler())
	t.Cleanup(srv.Close)
	s3srv := s3test.Start(t) // S3 too: the agent makes the JSON and the Avro from one match

	dir := t.TempDir()
	confPath := filepath.Join(root, "parser", "testdata", "nginx", "nginx.conf.in")
	ins := []agent.InputConfig{
		{Format: "combined", Paths: []string{filepath.Join(dir, "combined.log")}},
		{Format: "nginx.conf:" + confPath + ":full15", Paths: []string{filepath.Join(dir, "full15.log")}},
	}
	var bad []string
	for i, name := range []string{"combined", "full15"} {
		data, err := os.ReadFile(filepath.Join(root, "parser", "testdata", "nginx", name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// body_bytes_sent of the first line, made too large for a long.
			first := string(data[:bytes.IndexByte(data, '\n')])
			huge := regexp.MustCompile(`(" \d{3}) \d+ "`).ReplaceAllString(first, `$1 9999999999999999999 "`)
			if huge == first {
				t.Fatalf("cannot make an out-of-range line from %q", first)
			}
			bad = []string{"this is not an nginx line", huge}
			data = append(data, []byte(strings.Join(bad, "\n")+"\n")...)
		}
		if err := os.WriteFile(ins[i].Paths[0], data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	parsers, err := agent.CompileInputs(ins, "", os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	// The JSON event of every line, by file and offset.
	want := map[string]map[string]any{}
	for i, in := range ins {
		data, _ := os.ReadFile(in.Paths[0])
		var off int64
		var r parser.Result
		for _, l := range strings.SplitAfter(string(data), "\n") {
			if l == "" {
				continue
			}
			line := strings.TrimSuffix(l, "\n")
			js, err := parsers[i].Parse(nil, []byte(line), parser.Meta{Host: e2e.Hostname, File: in.Paths[0], Offset: off}, &r)
			if err == nil {
				if _, aerr := parsers[i].AppendAvro(nil, []byte(line), parser.Meta{}, &r); aerr == nil {
					var ev map[string]any
					if err := json.Unmarshal(js, &ev); err != nil {
						t.Fatal(err)
					}
					want[fmt.Sprintf("%s@%d", in.Paths[0], off)] = ev
				}
			}
			off += int64(len(l))
		}
	}

	cfg := &e2e.Config{
		Hostname: e2e.Hostname, DataDir: filepath.Join(dir, "data"), MetricsListen: e2e.FreeAddr(t),
		ScanInterval: "100ms", PollInterval: "50ms", CheckpointInterval: "200ms", ShutdownTimeout: "20s",
		Kafka: &e2e.KafkaSink{Brokers: k.Brokers, Topic: "nginx-access", Key: "remote_addr", Compression: "gzip",
			DeadLetterTopic: "nginx-access-invalid", ValueFormat: kafka.ValueAvro, RegistryURL: srv.URL},
		S3: e2e.S3For(s3srv, "nginx/dt=%Y-%m-%d/", "1s"),
	}
	for _, in := range ins {
		cfg.Inputs = append(cfg.Inputs, e2e.Input{Paths: in.Paths, Format: in.Format})
	}
	p := e2e.StartShipper(t, e2e.Shipper(t), cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	seen, ids := kafkajsDecoded(t, ctx, node, mods, k.Brokers[0], srv.URL, "nginx-access", len(want))
	for key, w := range want {
		if got, ok := seen[key]; !ok {
			t.Fatalf("line %s: no record", key)
		} else if !reflect.DeepEqual(got, w) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(w)
			t.Fatalf("line %s: decoded by kafkajs/avsc\n %s\nJSON event\n %s", key, gj, wj)
		}
	}
	if len(seen) != len(want) || len(ids) != 2 {
		t.Fatalf("%d of %d lines decoded, schema ids %v", len(seen), len(want), ids)
	}

	// The two bad lines are in the dead-letter topic, by stage.
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ConsumeTopics("nginx-access-invalid"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	stages := map[string]string{}
	for len(stages) < 2 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == kafka.HeaderStage {
					stages[string(h.Value)] = string(r.Value)
				}
			}
		})
	}
	if stages[kafka.StageParse] != bad[0] || stages[kafka.StageSchema] != bad[1] {
		t.Fatalf("dead-letter records by stage: %q, want parse %q and schema %q", stages, bad[0], bad[1])
	}
	// S3 has the JSON events of every parsed line, the schema-stage one too.
	s3r := e2e.NewS3Reader(t, s3srv, "nginx/")
	e2e.WaitFor(t, 60*time.Second, "the JSON events in S3", func() (bool, string) {
		err := s3r.Refresh(nil)
		return err == nil && len(s3r.Events()) == len(want)+1, fmt.Sprintf("%d of %d events (%v)", len(s3r.Events()), len(want)+1, err)
	})
	for _, ev := range s3r.Events() {
		w, ok := want[fmt.Sprintf("%s@%d", ev.File, ev.Offset)]
		var got map[string]any
		if err := json.Unmarshal(ev.Raw, &got); err != nil {
			t.Fatal(err)
		}
		if ok && !reflect.DeepEqual(got, w) {
			t.Fatalf("S3 event differs from the parser's:\n%s", ev.Raw)
		}
	}
	if code := p.Term(60 * time.Second); code != 0 {
		t.Errorf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}
}

// TestE2EAvroReloadRegistersNewVersion (Kafka only: the agent encodes Avro
// only, without the JSON): the schema is registered at start
// and again on reload (SIGHUP), never per record: a log_format that gained
// $request_id and a header becomes version 2 of the subject (BACKWARD, the
// checking registry's default), and the records written after the reload
// carry its id.
func TestE2EAvroReloadRegistersNewVersion(t *testing.T) {
	skipShort(t)
	k := e2e.StartKafka(t, "nginx-access", "nginx-access-invalid")
	posts := 0
	var postsMu sync.Mutex
	reg := devregistry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			postsMu.Lock()
			posts++
			postsMu.Unlock()
		}
		reg.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	log := filepath.Join(dir, "access.log")
	line1 := `127.0.0.1 - - [25/Nov/2026:15:04:05 +0000] "GET /one HTTP/1.1" 200 5 "-" "curl"` + "\n"
	if err := os.WriteFile(log, []byte(strings.Repeat(line1, 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &e2e.Config{
		Hostname: e2e.Hostname, DataDir: filepath.Join(dir, "data"), MetricsListen: e2e.FreeAddr(t),
		ScanInterval: "100ms", PollInterval: "50ms", CheckpointInterval: "200ms", ShutdownTimeout: "20s",
		Inputs: []e2e.Input{{Paths: []string{log}, Format: "combined"}},
		Kafka: &e2e.KafkaSink{Brokers: k.Brokers, Topic: "nginx-access", Key: "remote_addr", Compression: "gzip",
			DeadLetterTopic: "nginx-access-invalid", ValueFormat: kafka.ValueAvro, RegistryURL: srv.URL},
	}
	p := e2e.StartShipper(t, e2e.Shipper(t), cfg)
	rcl, _ := sr.NewClient(sr.URLs(srv.URL))
	ctx := context.Background()
	cons := k.Consume(t, "nginx-access")
	idsOf := func(n int) map[int]int {
		e2e.WaitFor(t, 60*time.Second, fmt.Sprintf("%d records", n), func() (bool, string) {
			return cons.Len() >= n, fmt.Sprintf("%d records", cons.Len())
		})
		ids := map[int]int{}
		for _, v := range cons.Values() {
			ids[int(binary.BigEndian.Uint32(v[1:5]))]++
		}
		return ids
	}
	if ids := idsOf(50); len(ids) != 1 || ids[1] != 50 {
		t.Fatalf("schema ids of the first 50 records: %v, want all 1", ids)
	}
	postsMu.Lock()
	before := posts
	postsMu.Unlock()
	if before != 1 {
		t.Fatalf("%d POSTs to the registry for 50 records, want 1 (the registration)", before)
	}

	combined, _ := parser.Builtin("combined")
	cfg.Inputs[0].Format = combined + ` "$http_x_forwarded_for" $request_id`
	if err := os.WriteFile(p.Config, []byte(cfg.Render()), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	e2e.WaitFor(t, 30*time.Second, "version 2 of nginx-access-value", func() (bool, string) {
		vs, err := rcl.SubjectVersions(ctx, "nginx-access-value")
		return len(vs) == 2, fmt.Sprintf("versions %v, %v", vs, err)
	})
	line2 := strings.TrimSuffix(line1, "\n") + ` "10.0.0.1" 0123456789abcdef0123456789abcdef` + "\n"
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strings.Repeat(line2, 10)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if ids := idsOf(60); ids[1] != 50 || ids[2] != 10 {
		t.Fatalf("schema ids of the 60 records: %v, want 50 with id 1 and 10 with id 2", ids)
	}
	if code := p.Term(60 * time.Second); code != 0 {
		t.Errorf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}
}

// kafkajsDecoded runs the outside consumer (kafkajs +
// @kafkajs/confluent-schema-registry, testdata/kafkajs-avro-consumer.js) on
// topic until it has n records, and returns them decoded, as events by
// "log_file@log_offset", with the schema ids they were framed with. A line
// delivered twice fails the test.
func kafkajsDecoded(t *testing.T, ctx context.Context, node, mods, broker, registry, topic string, n int) (map[string]map[string]any, map[float64]bool) {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "kafkajs-avro-consumer.js"), broker, registry, topic, fmt.Sprint(n))
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kafkajs consumer of %s: %v\n%s", topic, err, stderr.String())
	}
	got := map[string]map[string]any{}
	ids := map[float64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			SchemaID float64        `json:"schema_id"`
			Value    map[string]any `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("consumer output %q: %v", sc.Text(), err)
		}
		ids[rec.SchemaID] = true
		ev, err := avscToEvent(rec.Value)
		if err != nil {
			t.Fatalf("%v in %s", err, sc.Text())
		}
		key := fmt.Sprintf("%v@%v", ev["log_file"], ev["log_offset"])
		if _, dup := got[key]; dup {
			t.Fatalf("%s: line %s delivered twice", topic, key)
		}
		got[key] = ev
	}
	return got, ids
}
