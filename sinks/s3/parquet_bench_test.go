package s3

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// benchBatch is n jsonEvent lines as a spooled batch (gzip level 1, one
// member per 500 events, as group commits write them) and their NDJSON
// size.
func benchBatch(b *testing.B, n int) (spool []byte, raw int64) {
	b.Helper()
	t0 := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	for i := 0; i < n; i += 500 {
		zw, _ := gzip.NewWriterLevel(&out, 1)
		for k := i; k < min(i+500, n); k++ {
			l := jsonEvent(k, t0.Add(time.Duration(k)*time.Millisecond)) + "\n"
			raw += int64(len(l))
			io.WriteString(zw, l)
		}
		zw.Close()
	}
	return out.Bytes(), raw
}

// BenchmarkParquetConvert converts a batch of 100,000 events (about 47 MB
// of NDJSON) from the spool's gzip NDJSON to Parquet, as the uploader does:
// gunzip, JSON to rows, parquet-go with dictionaries, zstd or snappy.
// Reports CPU seconds per million events (one goroutine: ns/event * 1e-3)
// and the object sizes per event against the gzip NDJSON of the spool.
func BenchmarkParquetConvert(b *testing.B) {
	const n = 100_000
	spool, raw := benchBatch(b, n)
	for _, codec := range []string{ParquetZstd, ParquetSnappy} {
		b.Run(codec, func(b *testing.B) {
			plan := newPQPlan(syntheticSchema)
			var c pqConverter
			var res pqResult
			b.ReportAllocs()
			b.SetBytes(raw)
			for b.Loop() {
				var err error
				res, err = c.convert(plan, bytes.NewReader(spool), io.Discard, pqOptions{codec: codec, rowGroupBytes: 16 << 20})
				if err != nil {
					b.Fatal(err)
				}
			}
			if res.rows != n || res.dropped != 0 {
				b.Fatalf("rows %d dropped %d", res.rows, res.dropped)
			}
			perEvent := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / n
			b.ReportMetric(perEvent, "ns/event")
			b.ReportMetric(perEvent*1e6/1e9, "cpu-s/Mevents")
			b.ReportMetric(float64(res.size)/n, "parquet-B/event")
			b.ReportMetric(float64(len(spool))/n, "gzip1-B/event")
			b.ReportMetric(float64(raw)/n, "ndjson-B/event")
		})
	}
}

// BenchmarkParquetConvertMemory converts a 62 MiB batch (140,000 events)
// with row groups of 8 to 64 MiB of NDJSON and reports the peak of the
// live heap above the start (sampled every 5ms; run with GOGC=20 so
// garbage does not hide it) and the object size: the conversion's memory
// follows the row group, not the object.
func BenchmarkParquetConvertMemory(b *testing.B) {
	spool, raw := benchBatch(b, 140_000)
	for _, rg := range []int64{8 << 20, 16 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("rowgroup=%dMiB", rg>>20), func(b *testing.B) {
			plan := newPQPlan(syntheticSchema)
			var c pqConverter
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			var peak atomic.Uint64
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				var m runtime.MemStats
				for {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
					runtime.ReadMemStats(&m)
					if m.HeapAlloc > peak.Load() {
						peak.Store(m.HeapAlloc)
					}
				}
			}()
			var res pqResult
			for b.Loop() {
				var err error
				if res, err = c.convert(plan, bytes.NewReader(spool), io.Discard, pqOptions{codec: ParquetZstd, rowGroupBytes: rg}); err != nil {
					b.Fatal(err)
				}
			}
			close(stop)
			<-done
			b.ReportMetric(float64(peak.Load()-min(peak.Load(), base.HeapAlloc))/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(raw)/(1<<20), "ndjson-MiB")
			b.ReportMetric(float64(res.size)/(1<<20), "parquet-MiB")
			b.ReportMetric(float64(res.groups), "row-groups")
		})
	}
}
