package s3

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// lakeInput is one input of a lake test: its schema and its JSON events.
type lakeInput struct {
	schema parser.Schema
	lines  []string
}

// eventTime is the time of a JSON event (its partition).
func eventTime(t testing.TB, line string) time.Time {
	t.Helper()
	var e struct{ Timestamp string }
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatal(err)
	}
	tm, err := time.Parse(time.RFC3339Nano, e.Timestamp)
	if err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	return tm
}

// sendLake sends every input's events (batches of 50) to a parquet sink
// and closes it, so every object is uploaded.
func sendLake(t testing.TB, h *harness, ins []lakeInput) {
	t.Helper()
	var schemas []InputSchema
	for i, in := range ins {
		schemas = append(schemas, InputSchema{Input: i, Schema: in.schema})
	}
	h.s.UseSchemas(schemas)
	var a acks
	total := 0
	for i, in := range ins {
		evs := make([]ev, len(in.lines))
		for k, l := range in.lines {
			evs[k] = ev{value: l, t: eventTime(t, l)}
		}
		sendAll(t, h.s, &sinks.Source{Path: fmt.Sprintf("/var/log/nginx/%d.log", i), Input: i}, evs, 50, &a)
		total += len(evs)
	}
	waitFor(t, 30*time.Second, "all events acknowledged", func() bool { return a.count() == total })
	if len(a.errs) > 0 {
		t.Fatalf("acks with errors: %v", a.errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func downloadLake(t testing.TB, srv *s3test.Server, prefix string) (string, int, int64) {
	t.Helper()
	return srv.DownloadParquet(t, prefix)
}

// checkLake reads the objects of every input with DuckDB
// (s3test.LakeEvents): the column types are the schema's, and every event
// equals its JSON, field by field, types included, once.
func checkLake(t *testing.T, dir string, ins []lakeInput) {
	t.Helper()
	for i, in := range ins {
		glob := filepath.Join(dir, "nginx", fmt.Sprintf("input=%d", i), "**", "*.parquet")
		got := s3test.LakeEvents(t, glob, in.schema)
		if len(got) != len(in.lines) {
			t.Fatalf("input %d: DuckDB read %d events, %d were sent", i, len(got), len(in.lines))
		}
		byOffset := map[string]map[string]any{}
		for _, l := range in.lines {
			m := normJSON(t, l)
			byOffset[m["log_offset"].(json.Number).String()] = m
		}
		for k, ev := range got {
			off := fmt.Sprint(ev["log_offset"])
			jev, ok := byOffset[off]
			if !ok {
				t.Fatalf("input %d row %d: log_offset %s was not sent (or is read twice)", i, k, off)
			}
			delete(byOffset, off)
			for _, d := range s3test.EventDiff(in.schema, jev, ev) {
				t.Errorf("input %d, event at offset %s: %s", i, off, d)
			}
		}
	}
}

// TestParquetLakeDuckDB: events of real nginx lines (the parser's golden
// files, two formats as two inputs) go through the sink with format
// parquet into versitygw; DuckDB reads the objects, downloaded as they are
// stored, with hive_partitioning: the types are the schema's and every
// event equals its JSON.
func TestParquetLakeDuckDB(t *testing.T) {
	s3test.DuckDBModules(t) // skip before starting anything
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.Format = FormatParquet
	cfg.Prefix = "nginx/input={input}/dt=%Y-%m-%d/hour=%H/"
	h := newHarness(t, cfg, srv.Client())
	ins := []lakeInput{
		{goldenSchema(t, "upstream"), goldenLines(t, "upstream")},
		{goldenSchema(t, "full15"), goldenLines(t, "full15")},
		{goldenSchema(t, "jsonlog"), goldenLines(t, "json")},
	}
	sendLake(t, h, ins)
	dir, n, _ := downloadLake(t, srv, "nginx/")
	if n < len(ins) {
		t.Fatalf("%d objects, want at least %d", n, len(ins))
	}
	checkLake(t, dir, ins)
	if v := value(h.s.m.pqConverted); v != float64(n) {
		t.Errorf("parquet_conversions_total %v, %d objects", v, n)
	}
}

// syntheticSchema is the schema of jsonEvent's events.
var syntheticSchema = parser.Schema{Name: "access", Fields: []parser.Field{
	{Name: "timestamp", Type: parser.TypeTimestamp},
	{Name: "remote_addr", Type: parser.TypeString},
	{Name: "request", Type: parser.TypeString},
	{Name: "request_method", Type: parser.TypeString},
	{Name: "request_uri", Type: parser.TypeString},
	{Name: "server_protocol", Type: parser.TypeString},
	{Name: "status", Type: parser.TypeLong},
	{Name: "body_bytes_sent", Type: parser.TypeLong},
	{Name: "request_time", Type: parser.TypeDouble},
	{Name: "request_headers", Type: parser.TypeRecord, Fields: []parser.Field{
		{Name: "user_agent", Type: parser.TypeString}, {Name: "referer", Type: parser.TypeString}}},
	{Name: "host", Type: parser.TypeString},
	{Name: "log_file", Type: parser.TypeString},
	{Name: "log_offset", Type: parser.TypeLong},
}}

// TestParquetTwoColumnsReadFraction: "status and URI by hour" reads a
// fraction of the bytes: DuckDB, counting what it reads from the files,
// reads far less for two columns than for all of them; and a filter on the
// time skips row groups by their statistics.
func TestParquetTwoColumnsReadFraction(t *testing.T) {
	s3test.DuckDBModules(t)
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.Format = FormatParquet
	cfg.Prefix = "nginx/input={input}/dt=%Y-%m-%d/hour=%H/"
	cfg.ParquetRowGroupBytes = 1 << 20 // several row groups per object, for the statistics
	h := newHarness(t, cfg, srv.Client())
	t0 := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	lines := make([]string, 30000)
	for i := range lines {
		lines[i] = jsonEvent(i, t0.Add(time.Duration(i)*200*time.Millisecond)) // 100 minutes: two hours
	}
	sendLake(t, h, []lakeInput{{syntheticSchema, lines}})
	dir, n, size := downloadLake(t, srv, "nginx/")
	if n != 2 {
		t.Fatalf("%d objects, want 2 (two hours)", n)
	}
	glob := filepath.Join(dir, "nginx", "**", "*.parquet")
	src := fmt.Sprintf("read_parquet('%s', hive_partitioning = true)", glob)
	res := s3test.DuckDB(t,
		"SELECT count(*) AS n FROM "+src, // reads the footers
		"SELECT hour, status, count(*) AS n FROM "+src+" WHERE request_uri LIKE '/api/%' GROUP BY ALL",
		"SELECT * FROM "+src,
		"SELECT status FROM "+src,
		// The first 2,000 events (6m40s): the time's min/max statistics let
		// DuckDB skip the other row groups.
		"SELECT status FROM "+src+" WHERE timestamp < TIMESTAMPTZ '2026-11-25 13:06:40+00'",
	)
	two, all := res[1].Read, res[2].Read
	col, early := res[3].Read, res[4].Read
	t.Logf("status: %d bytes read for every row, %d for the first 2,000 events (%d rows)", col, early, len(res[4].Rows))
	if len(res[4].Rows) != 2000 {
		t.Errorf("%d events before 13:06:40, want 2000", len(res[4].Rows))
	}
	if early*3 > col {
		t.Errorf("a filter on the time read %d bytes of the status column's %d: row groups not skipped", early, col)
	}
	t.Logf("objects %d bytes; DuckDB read %d bytes for status and request_uri, %d for every column", size, two, all)
	if len(res[1].Rows) == 0 || len(res[2].Rows) != len(lines) {
		t.Fatalf("queries returned %d groups and %d rows", len(res[1].Rows), len(res[2].Rows))
	}
	if all < size/2 {
		t.Fatalf("SELECT * read %d bytes of %d: the byte count does not see the reads", all, size)
	}
	if two*3 > all {
		t.Errorf("two columns read %d bytes, all %d: want under a third", two, all)
	}
}

// blockingFile is a converted Parquet file whose writes stop, once n bytes
// are written, until release is closed: the process "dies" there.
type blockingFile struct {
	f       *os.File
	n       int64
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingFile) Write(p []byte) (int, error) {
	if int64(len(p)) <= b.n {
		k, err := b.f.Write(p)
		b.n -= int64(k)
		return k, err
	}
	k, err := b.f.Write(p[:b.n])
	b.n -= int64(k)
	if err == nil {
		b.once.Do(func() { close(b.reached) })
		<-b.release
		err = io.ErrClosedPipe
	}
	return k, err
}

func (b *blockingFile) Close() error { return b.f.Close() }

// TestParquetCrashDuringConversion: a process killed while it converts a
// batch leaves a torn Parquet file in the spool and nothing in S3; the next
// start deletes the torn file, converts the batch again and uploads a
// complete object holding every event once.
func TestParquetCrashDuringConversion(t *testing.T) {
	s3test.DuckDBModules(t)
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.Format = FormatParquet
	cfg.Prefix = "nginx/input={input}/dt=%Y-%m-%d/hour=%H/"
	cfg.UploadConcurrency = 1
	in := lakeInput{goldenSchema(t, "upstream"), goldenLines(t, "upstream")}
	cfg.BatchMaxEvents = len(in.lines) // the batch closes, and its upload starts, when the last event is in
	h1 := newHarness(t, cfg, srv.Client())
	bf := &blockingFile{n: 2000, reached: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(bf.release) }) }
	t.Cleanup(release) // before h1's cleanup, which waits for the uploader
	h1.s.pqCreate = func(path string) (io.WriteCloser, error) {
		f, err := createFile(path)
		if err != nil {
			return nil, err
		}
		bf.f = f.(*os.File)
		return bf, nil
	}
	h1.s.UseSchemas([]InputSchema{{Input: 0, Schema: in.schema}})
	evs := make([]ev, len(in.lines))
	for k, l := range in.lines {
		evs[k] = ev{value: l, t: eventTime(t, l)}
	}
	var a acks
	sendAll(t, h1.s, &sinks.Source{Path: "/var/log/nginx/0.log", Input: 0}, evs, 50, &a)
	waitFor(t, 10*time.Second, "all events acknowledged", func() bool { return a.count() == len(evs) })
	// The full batch is closed; its upload starts converting and stops midway.
	select {
	case <-bf.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the conversion never started")
	}
	// The disk as kill -9 leaves it: a copy of the spool now.
	spool2 := t.TempDir()
	var torn string
	for _, name := range spoolFiles(t, cfg.SpoolDir) {
		b, err := os.ReadFile(filepath.Join(cfg.SpoolDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, extParquet) {
			torn = name
			if len(b) != 2000 {
				t.Fatalf("torn parquet file has %d bytes, want 2000", len(b))
			}
		}
		if err := os.WriteFile(filepath.Join(spool2, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if torn == "" {
		t.Fatalf("no %s file in the spool: %v", extParquet, spoolFiles(t, cfg.SpoolDir))
	}
	objs, err := srv.Objects(context.Background(), "nginx/")
	if err != nil || len(objs) != 0 {
		t.Fatalf("objects in S3 during the conversion: %d (%v); want none", len(objs), err)
	}
	release() // the conversion fails from now on, as does every retry
	h1.s.crash()

	cfg2 := cfg
	cfg2.SpoolDir = spool2
	// The start deletes the torn file (TestRecoverDeletesTornParquet); the
	// uploader then converts the batch again under the same name at once,
	// so its presence here would say nothing.
	h2 := newHarness(t, cfg2, srv.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h2.s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	dir, n, _ := downloadLake(t, srv, "nginx/")
	if n != 1 {
		t.Fatalf("%d objects, want 1", n)
	}
	checkLake(t, dir, []lakeInput{in})
	if left := spoolFiles(t, spool2); len(left) != 0 {
		t.Errorf("spool not empty after the upload: %v", left)
	}
}

// TestParquetMetaWithoutSchema: a parquet batch whose meta lost its schema
// (edited by hand) is shipped as gzip NDJSON under a .json.gz key rather
// than stuck or lost.
func TestParquetMetaWithoutSchema(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.Format = FormatParquet
	h1 := newHarness(t, cfg, srv.Client())
	h1.s.UseSchemas([]InputSchema{{Input: 0, Schema: syntheticSchema}})
	t0 := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	evs := jsonEvents(10, t0)
	var a acks
	sendAll(t, h1.s, &sinks.Source{Path: "/var/log/a.log"}, evs, 10, &a)
	waitFor(t, 10*time.Second, "all events acknowledged", func() bool { return a.count() == len(evs) })
	h1.s.crash()
	var metas []string
	for _, name := range spoolFiles(t, cfg.SpoolDir) {
		if strings.HasSuffix(name, extMeta) {
			metas = append(metas, name)
		}
	}
	if len(metas) != 1 {
		t.Fatalf("metas %v", metas)
	}
	p := filepath.Join(cfg.SpoolDir, metas[0])
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["format"] != "parquet" || m["schema"] == nil {
		t.Fatalf("meta %s: %v", b, err)
	}
	delete(m, "schema")
	b, _ = json.Marshal(m)
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, cfg, srv.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h2.s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(evs))
}

// TestRecoverDeletesTornParquet: a start deletes the .parquet.tmp a crash
// left in the spool (the batch, still .ready, is converted again), and
// keeps the batch files.
func TestRecoverDeletesTornParquet(t *testing.T) {
	cfg := testConfig(t, nil)
	if err := os.MkdirAll(cfg.SpoolDir, 0o750); err != nil {
		t.Fatal(err)
	}
	torn := filepath.Join(cfg.SpoolDir, "0001-x"+extParquet)
	if err := os.WriteFile(torn, make([]byte, 2000), 0o640); err != nil {
		t.Fatal(err)
	}
	newHarness(t, cfg, &discardAPI{}) // no batch: nothing is converted again
	if _, err := os.Stat(torn); !os.IsNotExist(err) {
		t.Fatalf("torn Parquet file still there after recover (%v)", err)
	}
}
