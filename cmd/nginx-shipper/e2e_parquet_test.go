package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// TestE2EParquetLake: a real nginx writes a combined and a custom log; the
// agent ships them to Kafka as JSON and to S3 with format = "parquet".
// DuckDB reads the objects (downloaded from the S3 server as stored) with
// hive_partitioning: every event is there once, with the schema's types,
// and equals the JSON event Kafka received for the same line.
func TestE2EParquetLake(t *testing.T) {
	skipShort(t)
	s3test.DuckDBModules(t)
	env := e2e.NewEnv(t, e2e.EnvOptions{})
	env.Cfg.S3.Format = "parquet"
	env.Cfg.S3.Prefix = "nginx/input={input}/dt=%Y-%m-%d/hour=%H/"
	reqs := e2e.Send(t, env.Nginx.Addr, 1, 800)
	waitLogged(t, reqs, env.Nginx.AccessLog(), env.Nginx.CustomLog())
	env.StartShipper()
	e2e.WaitFor(t, 60*time.Second, "every line in Kafka", func() (bool, string) {
		n := len(env.KafkaEvents())
		return n >= 2*len(reqs), fmt.Sprintf("%d of %d", n, 2*len(reqs))
	})
	if code := env.Shipper.Term(60 * time.Second); code != 0 { // the S3 sink uploads everything at shutdown
		t.Fatalf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}
	kafka := map[string]map[string]any{}
	for _, e := range env.KafkaEvents() {
		kafka[e.File+"@"+strconv.FormatInt(e.Offset, 10)] = e.Fields
	}
	dir, n, size := env.S3.DownloadParquet(t, "nginx/")
	for i, in := range env.Cfg.Inputs {
		p, err := parser.Compile(in.Format, parser.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s := p.Schema()
		evs := s3test.LakeEvents(t, filepath.Join(dir, "nginx", fmt.Sprintf("input=%d", i), "**", "*.parquet"), s)
		if len(evs) != len(reqs) {
			t.Errorf("input %d (%s): %d events in Parquet, %d requests", i, in.Format, len(evs), len(reqs))
		}
		for _, ev := range evs {
			key := fmt.Sprint(ev["log_file"]) + "@" + fmt.Sprint(ev["log_offset"])
			j, ok := kafka[key]
			if !ok {
				t.Fatalf("input %d: %s in Parquet but not in Kafka (or twice in Parquet)", i, key)
			}
			delete(kafka, key)
			for _, d := range s3test.EventDiff(s, j, ev) {
				t.Errorf("input %d, %s: %s", i, key, d)
			}
		}
	}
	if len(kafka) != 0 {
		t.Errorf("%d events in Kafka not in Parquet", len(kafka))
	}
	t.Logf("%d requests, %d Parquet objects, %d bytes", len(reqs), n, size)
}
