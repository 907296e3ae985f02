package agent

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// nopSink acknowledges every batch at once: the agent's own cost.
type nopSink struct{ n atomic.Int64 }

func (s *nopSink) Name() string { return "nop" }
func (s *nopSink) Send(_ context.Context, b *sinks.Batch) error {
	s.n.Add(int64(len(b.Events)))
	b.DoneAll(nil)
	return nil
}
func (s *nopSink) Close(context.Context) error { return nil }

const bench15 = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" $request_time $upstream_response_time "$sent_http_content_type" $request_id`

func bench15Line(i int) string {
	return fmt.Sprintf(`10.%d.%d.%d - - [25/Nov/2026:15:04:05 +0000] "GET /products/%d?ref=home&utm_source=newsletter HTTP/1.1" 200 %d "https://www.example.com/category/shoes?page=2" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" "203.0.113.%d" 0.%03d 0.%03d "text/html; charset=utf-8" %032x`+"\n",
		i%256, (i/256)%256, i%200, i, 1000+i%50000, i%256, i%1000, i%900, i)
}

// BenchmarkAgentFileToNopSink measures file → harvester → parse+encode →
// batch → a sink that acknowledges at once, for the 15-variable format.
func BenchmarkAgentFileToNopSink(b *testing.B) {
	const lines = 200_000
	dir := b.TempDir()
	path := filepath.Join(dir, "access.log")
	f, _ := os.Create(path)
	w := bufio.NewWriter(f)
	var size int64
	for i := 0; i < lines; i++ {
		n, _ := w.WriteString(bench15Line(i))
		size += int64(n)
	}
	w.Flush()
	f.Close()
	b.SetBytes(size)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for it := 0; it < b.N; it++ {
		cfg := Config{DataDir: filepath.Join(dir, fmt.Sprint("data", it)), Hostname: "bench"}
		cfg.Defaults()
		cfg.ScanInterval.Duration = time.Hour
		sink := &nopSink{}
		a, err := New(cfg, []InputConfig{{Paths: []string{path}, Format: bench15, ReadFrom: "beginning"}}, []sinks.Sink{sink},
			Options{Log: slog.New(slog.DiscardHandler), KeyField: "remote_addr"})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { a.Run(ctx); close(done) }()
		for sink.n.Load() < lines {
			time.Sleep(time.Millisecond)
		}
		cancel()
		<-done
	}
	b.ReportMetric(float64(lines*b.N)/time.Since(start).Seconds(), "lines/s")
	b.ReportMetric(float64(lines*b.N)/(cpuTime()-cpu0).Seconds(), "lines/CPU-s")
}
