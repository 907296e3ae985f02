package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
	"github.com/nginx-shipper/nginx-shipper/agent/enrich/enrichtest"
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
	testE2EParquet(t, e2e.NewEnv(t, e2e.EnvOptions{}), nil)
}

// TestE2EParquetLakeEnriched: the same with [enrich] (GeoIP, ASN, user
// agent): the objects hold the enriched events, and client_ip, geo and ua
// are columns equal to the JSON Kafka received.
func TestE2EParquetLakeEnriched(t *testing.T) {
	skipShort(t)
	s3test.DuckDBModules(t)
	dir := t.TempDir()
	env := e2e.NewEnv(t, e2e.EnvOptions{
		Inputs: func(n *e2e.Nginx) []e2e.Input {
			return []e2e.Input{{Paths: []string{n.AccessLog()}, Format: "combined"}}
		},
		Enrich: fmt.Sprintf("trusted_proxies = [\"10.0.0.0/8\"]\ngeoip_database = %q\nasn_database = %q",
			enrichtest.CityDB(t, dir), enrichtest.ASNDB(t, dir)),
	})
	testE2EParquet(t, env, enrichedFields)
}

func testE2EParquet(t *testing.T, env *e2e.Env, extra []parser.Field) {
	env.Cfg.S3.Format = "parquet"
	env.Cfg.S3.Prefix = "nginx/input={input}/dt=%Y-%m-%d/hour=%H/"
	reqs := e2e.Send(t, env.Nginx.Addr, 1, 800)
	for _, in := range env.Cfg.Inputs {
		waitLogged(t, reqs, in.Paths...)
	}
	env.StartShipper()
	e2e.WaitFor(t, 60*time.Second, "every line in Kafka", func() (bool, string) {
		n := len(env.KafkaEvents())
		return n >= len(env.Cfg.Inputs)*len(reqs), fmt.Sprintf("%d of %d", n, len(env.Cfg.Inputs)*len(reqs))
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
		s.Fields = append(s.Fields, extra...)
		enriched := 0
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
			if ev["ua"] != nil && ev["client_ip"] != nil {
				enriched++
			}
		}
		if extra != nil && enriched < len(evs)/2 {
			t.Errorf("input %d: only %d of %d events have ua and client_ip", i, enriched, len(evs))
		}
	}
	if len(kafka) != 0 {
		t.Errorf("%d events in Kafka not in Parquet", len(kafka))
	}
	t.Logf("%d requests, %d Parquet objects, %d bytes", len(reqs), n, size)
}
