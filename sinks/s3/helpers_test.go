package s3

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// testConfig is a config for srv with fast retries and commits.
func testConfig(t testing.TB, srv *s3test.Server) Config {
	t.Helper()
	cfg := Config{
		Bucket:          "test-bucket",
		Region:          "us-east-1",
		ForcePathStyle:  true,
		Prefix:          "nginx/dt=%Y-%m-%d/hour=%H/",
		SpoolDir:        t.TempDir(),
		Hostname:        "web-1",
		BatchMaxAge:     Duration{time.Hour},
		FsyncInterval:   Duration{2 * time.Millisecond},
		RetryMinBackoff: Duration{10 * time.Millisecond},
		RetryMaxBackoff: Duration{100 * time.Millisecond},
	}
	if srv != nil {
		cfg.Bucket = srv.Bucket
		cfg.Endpoint = srv.Endpoint
		cfg.Region = srv.Region
	}
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// harness is one sink under test with its registry.
type harness struct {
	t   testing.TB
	s   *Sink
	reg *prometheus.Registry
	cfg Config
}

func newHarness(t testing.TB, cfg Config, api API) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := newSink(cfg, testLogger(t), reg, api)
	if err != nil {
		t.Fatalf("newSink: %v", err)
	}
	h := &harness{t: t, s: s, reg: reg, cfg: s.cfg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.mu.Lock()
		crashed := s.crashed
		s.mu.Unlock()
		if !crashed {
			_ = s.Close(ctx)
		}
	})
	return h
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	panic("not a counter or gauge")
}

// acks counts completed batches and their errors.
type acks struct {
	mu     sync.Mutex
	events int
	errs   []error
}

func (a *acks) onDone(b *sinks.Batch, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events += len(b.Events)
	if err != nil {
		a.errs = append(a.errs, err)
	}
}

func (a *acks) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.events
}

// ev is an event to send.
type ev struct {
	value string
	t     time.Time
	err   error
	raw   string
}

// batch builds an armed batch of evs from src.
func batch(src *sinks.Source, evs []ev, a *acks) *sinks.Batch {
	b := sinks.NewBatch(src)
	for i, e := range evs {
		x := b.Add()
		x.Time = e.t
		x.Offset = int64(i * 100)
		if e.err != nil {
			x.Err = e.err
			x.Raw = []byte(e.raw)
		} else {
			x.Value = []byte(e.value)
			x.Raw = x.Value
		}
	}
	b.End = int64(len(evs) * 100)
	b.Arm(1, a.onDone)
	return b
}

// jsonEvents is n events of jsonEvent, all at t.
func jsonEvents(n int, t time.Time) []ev {
	evs := make([]ev, n)
	for i := range evs {
		evs[i] = ev{value: jsonEvent(i, t), t: t}
	}
	return evs
}

// jsonEvent is an event line of about 350 bytes, shaped like the parser's
// output for a combined log line, with fields varying like real traffic.
func jsonEvent(i int, t time.Time) string {
	h := uint64(i)*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	h ^= h >> 29
	r := func(n uint64) uint64 { h = h*6364136223846793005 + 1442695040888963407; return (h >> 33) % n }
	uas := [...]string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
		"curl/8.4.0", "Go-http-client/1.1", "python-requests/2.31.0",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	}
	paths := [...]string{"/api/v1/items/%d", "/static/js/app.%x.js", "/images/p/%d.jpg", "/search?q=%x&page=2", "/", "/login", "/api/v1/users/%d/orders"}
	statuses := [...]int{200, 200, 200, 200, 200, 304, 301, 404, 500, 499}
	path := paths[r(uint64(len(paths)))]
	if strings.Contains(path, "%") {
		path = fmt.Sprintf(path, r(1<<24))
	}
	ts := t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	return fmt.Sprintf(`{"timestamp":%q,"remote_addr":"%d.%d.%d.%d","request":"GET %s HTTP/1.1","request_method":"GET","request_uri":%q,"server_protocol":"HTTP/1.1","status":%d,"body_bytes_sent":%d,"request_time":%d.%03d,"request_headers":{"user_agent":%q,"referer":"https://example.com/"},"host":"web-1","log_file":"/var/log/nginx/access.log","log_offset":%d}`,
		ts, 10+r(200), r(256), r(256), 1+r(254), path, path, statuses[r(uint64(len(statuses)))], r(200000), r(3), r(1000),
		uas[r(uint64(len(uas)))], i*330)
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lakeLines downloads every object under prefix and returns its lines by key,
// checking each object is gzip with the right headers.
func lakeLines(t testing.TB, srv *s3test.Server, prefix string) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	objs, err := srv.Objects(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, o := range objs {
		if o.ContentType != "application/x-ndjson" || o.ContentEncoding != "gzip" {
			t.Errorf("%s: Content-Type %q, Content-Encoding %q", o.Key, o.ContentType, o.ContentEncoding)
		}
		if !strings.HasSuffix(o.Key, ".json.gz") {
			t.Errorf("%s: want .json.gz", o.Key)
		}
		raw, err := s3test.Gunzip(o.Body)
		if err != nil {
			t.Fatalf("%s: gunzip: %v", o.Key, err)
		}
		if len(raw) == 0 || raw[len(raw)-1] != '\n' {
			t.Fatalf("%s: does not end with a newline", o.Key)
		}
		out[o.Key] = strings.Split(string(bytes.TrimSuffix(raw, []byte("\n"))), "\n")
	}
	return out
}

// allLines flattens lakeLines, sorted.
func allLines(m map[string][]string) []string {
	var all []string
	for _, l := range m {
		all = append(all, l...)
	}
	slices.Sort(all)
	return all
}

// faultAPI wraps a real client. putHook, when set, runs before every
// PutObject and UploadPart; a non-nil error fails the call without reaching
// the server.
type faultAPI struct {
	API
	mu      sync.Mutex
	putHook func(ctx context.Context) error
	puts    int
}

func (f *faultAPI) hook(ctx context.Context) error {
	f.mu.Lock()
	h := f.putHook
	f.puts++
	f.mu.Unlock()
	if h != nil {
		return h(ctx)
	}
	return nil
}

func (f *faultAPI) setHook(h func(ctx context.Context) error) {
	f.mu.Lock()
	f.putHook = h
	f.mu.Unlock()
}

func (f *faultAPI) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if err := f.hook(ctx); err != nil {
		return nil, err
	}
	return f.API.PutObject(ctx, in, opts...)
}

func (f *faultAPI) UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	if err := f.hook(ctx); err != nil {
		return nil, err
	}
	return f.API.UploadPart(ctx, in, opts...)
}
