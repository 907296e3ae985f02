package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/nginx-shipper/nginx-shipper/sinks/kafka/devregistry"
)

func runSchema(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := realMain(append([]string{"schema"}, args...), nil, &out, &errb)
	return out.String(), errb.String(), code
}

// TestSchemaCommand: --as avro prints an Avro schema that parses, with the
// format's fields; json-schema a 2020-12 document; athena and hive the
// CREATE EXTERNAL TABLE with the prefix's partitions and the JSON SerDe.
func TestSchemaCommand(t *testing.T) {
	out, errs, code := runSchema(t, "--format", `$remote_addr [$time_local] "$request" $status $upstream_response_time "$http_user_agent"`, "--as", "avro")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	s, err := avro.Parse(out)
	if err != nil {
		t.Fatalf("not an Avro schema: %v\n%s", err, out)
	}
	for _, f := range []string{`"timestamp-millis"`, `"timestamp_offset"`, `"request_headers"`, `"user_agent"`, `"upstream_response_time"`, `"log_offset"`} {
		if !strings.Contains(out, f) {
			t.Errorf("avro schema lacks %s", f)
		}
	}
	_ = s

	out, _, code = runSchema(t, "--format", "combined", "--as", "json-schema")
	var js map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil || js["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Fatalf("json-schema: exit %d\n%s", code, out)
	}

	out, _, code = runSchema(t, "--format", "combined", "--as", "athena", "--bucket", "lake", "--prefix", "nginx/dt=%Y-%m-%d/hour=%H/")
	for _, want := range []string{"CREATE EXTERNAL TABLE IF NOT EXISTS `nginx_access`", "`status` bigint", "struct<referer:string,user_agent:string>",
		"PARTITIONED BY (`dt` string, `hour` string)", "org.openx.data.jsonserde.JsonSerDe", "LOCATION 's3://lake/nginx/'",
		"'storage.location.template'='s3://lake/nginx/dt=${dt}/hour=${hour}/'"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("athena DDL lacks %q:\n%s", want, out)
		}
	}
	out, _, code = runSchema(t, "--format", "combined", "--as", "hive")
	if code != 0 || !strings.Contains(out, "org.apache.hive.hcatalog.data.JsonSerDe") || !strings.Contains(out, "MSCK REPAIR TABLE `nginx_access`") {
		t.Errorf("hive DDL:\n%s", out)
	}

	for _, bad := range [][]string{{"--as", "avro"}, {"--format", "combined", "--as", "xml"}, {"--format", "$a$b"},
		{"--format", "combined", "--as", "athena", "--prefix", "x/dt=%Y/plain/"}} {
		if _, errs, code := runSchema(t, bad...); code == 0 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", bad, code, errs)
		}
	}
}

// TestSchemaCommandConfig: with -c, one schema per input, and the table's
// location and partitions from [sinks.s3].
func TestSchemaCommandConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	writeConfig(t, cfg, `
[agent]
data_dir = "`+dir+`"
[[inputs]]
paths = ["/var/log/nginx/access.log"]
format = "combined"
[[inputs]]
paths = ["/var/log/nginx/api.log"]
format = '$remote_addr $request_id'
[sinks.s3]
bucket = "lake"
prefix = "web/dt=%Y-%m-%d/"
`)
	out, errs, code := runSchema(t, "-c", cfg, "--as", "athena")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.Count(out, "CREATE EXTERNAL TABLE") != 2 || !strings.Contains(out, "`nginx_access_1`") ||
		!strings.Contains(out, "`request_id` string") || !strings.Contains(out, "LOCATION 's3://lake/web/'") {
		t.Fatalf("DDL per input:\n%s", out)
	}
	out, _, code = runSchema(t, "-c", cfg, "--as", "avro")
	dec := json.NewDecoder(strings.NewReader(out))
	n := 0
	for dec.More() {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if code != 0 || n != 2 {
		t.Fatalf("%d schemas for 2 inputs (exit %d)", n, code)
	}
}

// TestValidateConnectChecksSchemas: validate --connect with value_format
// avro asks the registry about compatibility and registers nothing; an
// incompatible subject fails with a message naming it and the version.
func TestValidateConnectChecksSchemas(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "nginx-access"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := httptest.NewServer(devregistry.New().Handler())
	defer srv.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	writeConfig(t, cfg, `
[agent]
data_dir = "`+dir+`"
[[inputs]]
paths = ["/var/log/nginx/access.log"]
format = "combined"
[sinks.kafka]
brokers = ["`+c.ListenAddrs()[0]+`"]
topic = "nginx-access"
value_format = "avro"
[sinks.kafka.schema_registry]
url = "`+srv.URL+`"
subject_strategy = "topic"
`)
	var out, errb bytes.Buffer
	if code := realMain([]string{"validate", "--connect", "-c", cfg}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "schema registry accepts") {
		t.Errorf("output: %s", out.String())
	}
	rcl, _ := sr.NewClient(sr.URLs(srv.URL))
	ctx := context.Background()
	if subs, _ := rcl.Subjects(ctx); len(subs) != 0 {
		t.Fatalf("validate registered %v", subs)
	}
	old := sr.Schema{Type: sr.TypeAvro, Schema: `{"type":"record","name":"access","namespace":"nginx_shipper","fields":[{"name":"status","type":["null","string"],"default":null}]}`}
	if _, err := rcl.CreateSchema(ctx, "nginx-access-value", old); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := realMain([]string{"validate", "--connect", "-c", cfg}, nil, &out, &errb); code == 0 ||
		!strings.Contains(errb.String(), "nginx-access-value") || !strings.Contains(errb.String(), "version 1") {
		t.Fatalf("incompatible subject: exit %d, %s", code, errb.String())
	}
	_ = os.Remove(cfg)
}

// TestSchemaCommandParquet: --as athena|hive prints the table over the
// Parquet objects (STORED AS PARQUET, the timestamp a timestamp column plus
// its offset) with --s3-format parquet, or with -c when sinks.s3.format is
// parquet.
func TestSchemaCommandParquet(t *testing.T) {
	for _, as := range []string{"athena", "hive"} {
		out, errs, code := runSchema(t, "--format", "combined", "--as", as, "--bucket", "lake", "--s3-format", "parquet")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		for _, want := range []string{"CREATE EXTERNAL TABLE IF NOT EXISTS `nginx_access`", "STORED AS PARQUET\n", "`timestamp` timestamp,",
			"`timestamp_offset` int,", "`status` bigint", "`request_headers` struct<referer:string,user_agent:string>",
			"PARTITIONED BY (`dt` string, `hour` string)", "LOCATION 's3://lake/nginx/'"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s parquet DDL lacks %q:\n%s", as, want, out)
			}
		}
		if strings.Contains(out, "JsonSerDe") || strings.Contains(out, "TextInputFormat") {
			t.Errorf("%s parquet DDL reads JSON:\n%s", as, out)
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	writeConfig(t, cfg, `
[agent]
data_dir = "`+dir+`"
[[inputs]]
paths = ["/var/log/nginx/access.log"]
format = "combined"
[sinks.s3]
bucket = "lake"
format = "parquet"
`)
	out, errs, code := runSchema(t, "-c", cfg, "--as", "athena")
	if code != 0 || !strings.Contains(out, "STORED AS PARQUET") || !strings.Contains(out, "'projection.enabled'='true'") {
		t.Fatalf("-c with format parquet: exit %d %s\n%s", code, errs, out)
	}
	if out, _, _ := runSchema(t, "-c", cfg, "--as", "athena", "--s3-format", "json"); !strings.Contains(out, "JsonSerDe") {
		t.Errorf("--s3-format json does not override the config:\n%s", out)
	}
	if _, errs, code := runSchema(t, "--format", "combined", "--as", "hive", "--s3-format", "orc"); code != 2 || !strings.Contains(errs, "--s3-format") {
		t.Errorf("--s3-format orc: exit %d, %q", code, errs)
	}
}

// TestSchemaEnrichedS3: with [enrich], the S3 objects' schema (the Parquet
// columns, the table DDL) has client_ip, geo and ua; with enriched = false
// it has not.
func TestSchemaEnrichedS3(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	conf := `
[agent]
data_dir = "` + dir + `"
[[inputs]]
paths = ["/var/log/nginx/access.log"]
format = "combined"
[enrich]
user_agent = true
[sinks.s3]
bucket = "lake"
format = "parquet"
`
	writeConfig(t, cfg, conf)
	out, errs, code := runSchema(t, "-c", cfg, "--as", "hive")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"`client_ip` string", "`geo` struct<country_code:string,country:string,region:string,city:string,latitude:double,longitude:double,asn:bigint,as_org:string>",
		"`ua` struct<browser:string,browser_version:string,os:string,os_version:string,device:string,bot:boolean>", "STORED AS PARQUET"} {
		if !strings.Contains(out, want) {
			t.Errorf("DDL lacks %q:\n%s", want, out)
		}
	}
	c, err := LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ss := c.s3Schemas()
	if len(ss) != 1 || ss[0].Schema.Fields[len(ss[0].Schema.Fields)-1].Name != "ua" {
		t.Fatalf("s3 schemas: %+v", ss)
	}
	writeConfig(t, cfg, strings.Replace(conf, `format = "parquet"`, "format = \"parquet\"\nenriched = false", 1))
	if out, _, _ := runSchema(t, "-c", cfg, "--as", "hive"); strings.Contains(out, "client_ip") {
		t.Errorf("enriched = false, yet the DDL has client_ip:\n%s", out)
	}
}

// TestSchemaContainerS3: a container input's objects hold its stdout
// events, its stderr_format events and the container fields: the S3
// schema (Parquet columns, DDL) has them all, each name once.
func TestSchemaContainerS3(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	writeConfig(t, cfg, `
[agent]
data_dir = "`+dir+`"
[[inputs]]
paths = ["/var/log/pods/*/*/*.log"]
format = "combined"
container = "cri"
stderr_format = "error"
[sinks.s3]
bucket = "lake"
format = "parquet"
`)
	c, err := LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ss := c.s3Schemas()
	if len(ss) != 1 {
		t.Fatalf("%d schemas", len(ss))
	}
	seen := map[string]int{}
	for _, f := range ss[0].Schema.Fields {
		seen[f.Name]++
	}
	for _, name := range []string{"remote_addr", "status", "request_headers", "level", "message", "stream", "container_time", "kubernetes", "log_offset"} {
		if seen[name] != 1 {
			t.Errorf("field %s %d times in %v", name, seen[name], seen)
		}
	}
	out, errs, code := runSchema(t, "-c", cfg, "--as", "athena")
	if code != 0 || !strings.Contains(out, "`kubernetes` struct<namespace:string,pod:string,pod_uid:string,container:string,restart_count:bigint,node:string>") ||
		!strings.Contains(out, "`level` string") {
		t.Errorf("exit %d %s\n%s", code, errs, out)
	}
}

// TestSchemaEnrichedAvro: [enrich] with value_format avro validates; with
// enriched_topic the Kafka sink gets the original schema for topic and
// the enriched one (the original's fields, then client_ip, geo, ua) for
// enriched_topic; without it topic's schema is the enriched one; `schema
// --as avro` prints both.
func TestSchemaEnrichedAvro(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	conf := `
[agent]
data_dir = "` + dir + `"
[[inputs]]
paths = ["/var/log/nginx/access.log"]
format = "combined"
[enrich]
user_agent = true
[sinks.kafka]
brokers = ["127.0.0.1:9092"]
topic = "nginx-access"
enriched_topic = "nginx-access-enriched"
value_format = "avro"
[sinks.kafka.schema_registry]
url = "http://127.0.0.1:8081"
`
	writeConfig(t, cfg, conf)
	c, err := LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lastField := func(avro string) string {
		var s struct{ Fields []struct{ Name string } }
		if err := json.Unmarshal([]byte(avro), &s); err != nil || len(s.Fields) == 0 {
			t.Fatalf("%v: %s", err, avro)
		}
		return s.Fields[len(s.Fields)-1].Name
	}
	is := c.inputSchemas()
	if len(is) != 1 || lastField(is[0].Avro) != "invalid_utf8" || is[0].EnrichedAvro == "" || lastField(is[0].EnrichedAvro) != "ua" ||
		!strings.HasPrefix(is[0].EnrichedAvro, strings.TrimSuffix(is[0].Avro, "]}")) {
		t.Fatalf("input schemas: %+v", is)
	}
	out, errs, code := runSchema(t, "-c", cfg, "--as", "avro")
	dec := json.NewDecoder(strings.NewReader(out))
	var docs []string
	for dec.More() {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(v))
	}
	if code != 0 || len(docs) != 2 || lastField(docs[0]) != "invalid_utf8" || lastField(docs[1]) != "ua" {
		t.Fatalf("exit %d (%s): %d schemas:\n%s", code, errs, len(docs), out)
	}

	writeConfig(t, cfg, strings.Replace(conf, `enriched_topic = "nginx-access-enriched"`, "", 1))
	if c, err = LoadConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if is := c.inputSchemas(); len(is) != 1 || is[0].EnrichedAvro != "" || lastField(is[0].Avro) != "ua" {
		t.Fatalf("without enriched_topic: %+v", is)
	}
}
