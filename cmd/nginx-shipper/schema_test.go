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
