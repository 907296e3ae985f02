package kafka

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// benchEvents returns n realistic nginx events (about 400 bytes of JSON,
// varied like real traffic, so compression ratios mean something).
func benchEvents(n int) (keys, values [][]byte) {
	r := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "/api/v1/items", "/static/app.js", "/login", "/api/v1/cart", "/img/logo.png", "/healthz"}
	agents := []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
		"curl/8.5.0", "Go-http-client/1.1",
	}
	for i := range n {
		addr := fmt.Sprintf("10.%d.%d.%d", r.IntN(4), r.IntN(256), r.IntN(256))
		v := fmt.Sprintf(`{"timestamp":"2026-11-25T15:%02d:%02d.%03d+00:00","remote_addr":%q,"request":"GET %s?id=%d HTTP/1.1",`+
			`"request_method":"GET","request_uri":"%s?id=%d","server_protocol":"HTTP/1.1","status":%d,"body_bytes_sent":%d,`+
			`"request_time":%.3f,"request_headers":{"referer":"https://example.com/","user_agent":%q},`+
			`"host":"web-1","log_file":"/var/log/nginx/access.log","log_offset":%d}`,
			i/60000%60, i/1000%60, i%1000, addr, paths[i%len(paths)], r.IntN(100000), paths[i%len(paths)], r.IntN(100000),
			[]int{200, 200, 200, 304, 404, 500}[r.IntN(6)], r.IntN(50000), r.Float64(), agents[r.IntN(len(agents))], i*420)
		keys = append(keys, []byte(addr))
		values = append(values, []byte(v))
	}
	return keys, values
}

const benchBatch = 500

// cpuTime is the CPU time (user and system) the process used so far: the
// sink or bare producer and kfake together, less sensitive than wall time to
// other processes on a busy machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var benchCodecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// BenchmarkProduce measures produce throughput to an in-process kfake
// (BlackholeProduce: the broker checks and acknowledges, stores nothing)
// with acks=all and idempotence, per codec: through the sink (batches of
// 500 events, as the agent sends them) and from a bare franz-go producer
// with the same options (one Produce per record, allocated per record as
// franz-go's examples do): the ceiling.
func BenchmarkProduce(b *testing.B) {
	keys, values := benchEvents(20000)
	var size int64
	for _, v := range values {
		size += int64(len(v))
	}
	avg := size / int64(len(values))
	for _, codecName := range benchCodecs {
		b.Run("sink/"+codecName, func(b *testing.B) { benchSink(b, codecName, keys, values, avg) })
		b.Run("bare/"+codecName, func(b *testing.B) { benchBare(b, codecName, keys, values, avg) })
	}
}

func benchCluster(b *testing.B) *kfake.Cluster {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(4, topicMain), kfake.BlackholeProduce())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

func benchSink(b *testing.B, codecName string, keys, values [][]byte, avg int64) {
	c := benchCluster(b)
	cfg := testConfig(c.ListenAddrs())
	cfg.Compression = codecName
	s, err := New(cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())

	// A ring of batches, each re-armed when the sink completed it, like
	// the agent's reuse of its batches.
	free := make(chan *sinks.Batch, 64)
	var wg sync.WaitGroup
	onDone := func(bt *sinks.Batch, err error) {
		if err != nil {
			panic(err)
		}
		wg.Done()
		free <- bt
	}
	for range cap(free) {
		free <- sinks.NewBatch(testSource)
	}
	b.SetBytes(avg)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	next := 0
	for sent := 0; sent < b.N; {
		bt := <-free
		bt.Reset(testSource)
		n := min(benchBatch, b.N-sent)
		for range n {
			ev := bt.Add()
			ev.Key, ev.Value, ev.Raw = keys[next], values[next], values[next]
			ev.Offset = int64(next)
			next = (next + 1) % len(values)
		}
		bt.Arm(1, onDone)
		wg.Add(1)
		if err := s.Send(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	wg.Wait()
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/record")
}

func benchBare(b *testing.B, codecName string, keys, values [][]byte, avg int64) {
	c := benchCluster(b)
	comp, _ := codec(codecName)
	part, _ := partitioner("sticky", 1_000_000)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(comp),
		kgo.ProducerBatchMaxBytes(1_000_000),
		kgo.ProducerLinger(time.Millisecond),
		kgo.RecordPartitioner(part),
		kgo.MaxBufferedRecords(100_000),
		kgo.DefaultProduceTopic(topicMain),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	host, file, format := []byte("web-1"), []byte(testSource.Path), []byte(testSource.Format)
	var wg sync.WaitGroup
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			panic(err)
		}
		wg.Done()
	}
	b.SetBytes(avg)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	wg.Add(b.N)
	for i := range b.N {
		j := i % len(values)
		cl.Produce(context.Background(), &kgo.Record{
			Key: keys[j], Value: values[j],
			Headers: []kgo.RecordHeader{{Key: HeaderHost, Value: host}, {Key: HeaderLogFile, Value: file}, {Key: HeaderFormat, Value: format}},
		}, promise)
	}
	wg.Wait()
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/record")
}
