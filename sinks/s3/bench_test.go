package s3

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"

	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// discardAPI stores nothing: it reads each body and records its size (and,
// when bodies is not nil, the body by key).
type discardAPI struct {
	mu     sync.Mutex
	sizes  []int64
	bodies map[string][]byte
}

func (d *discardAPI) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.sizes = append(d.sizes, int64(len(b)))
	if d.bodies != nil {
		d.bodies[aws.ToString(in.Key)] = b
	}
	d.mu.Unlock()
	return &s3.PutObjectOutput{}, nil
}

func (d *discardAPI) UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	return nil, fmt.Errorf("discardAPI: no multipart")
}

func (d *discardAPI) CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return nil, fmt.Errorf("discardAPI: no multipart")
}

func (d *discardAPI) CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	return nil, fmt.Errorf("discardAPI: no multipart")
}

func (d *discardAPI) AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return nil, fmt.Errorf("discardAPI: no multipart")
}

func (d *discardAPI) HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	return &s3.HeadBucketOutput{}, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSend measures events/s through Send into the spool, each event
// acknowledged only after the group commit (gzip member + fsync) covering it,
// from 4 concurrent senders with batches of 500 events of ~330 bytes. It
// reports CPU seconds per million events (whole process: copy, gzip, fsync,
// uploads to a discarding API), the mean object size and how full objects
// are against batch_max_bytes.
func BenchmarkSend(b *testing.B) {
	for _, level := range []int{1, 6} {
		b.Run(fmt.Sprintf("gzip=%d", level), func(b *testing.B) {
			cfg := testConfig(b, nil)
			cfg.Bucket = "bench"
			cfg.CompressionLevel = level
			cfg.FsyncInterval = Duration{50 * time.Millisecond}
			cfg.BatchMaxBytes = 64 << 20
			api := &discardAPI{}
			s, err := newSink(cfg, testLogger(b), nil, api)
			if err != nil {
				b.Fatal(err)
			}
			const perBatch, senders = 500, 4
			now := time.Now()
			free := make(chan *sinks.Batch, 64)
			var wg sync.WaitGroup
			src := &sinks.Source{Path: "/var/log/nginx/access.log"}
			for i := range cap(free) {
				bt := sinks.NewBatch(src)
				for j := range perBatch {
					e := bt.Add()
					tm := now.Add(time.Duration(i*perBatch+j) * time.Millisecond)
					e.Value = []byte(jsonEvent(i*perBatch+j, tm))
					e.Time = tm
				}
				free <- bt
			}
			onDone := func(bt *sinks.Batch, err error) {
				if err != nil {
					panic(err)
				}
				wg.Done()
				free <- bt
			}
			batches := b.N/perBatch + 1
			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			var sw sync.WaitGroup
			per := make(chan struct{}, batches)
			for range batches {
				per <- struct{}{}
			}
			close(per)
			wg.Add(batches)
			for range senders {
				sw.Add(1)
				go func() {
					defer sw.Done()
					for range per {
						bt := <-free
						bt.Arm(1, onDone)
						if err := s.Send(context.Background(), bt); err != nil {
							panic(err)
						}
					}
				}()
			}
			sw.Wait()
			wg.Wait()
			el, cpu := time.Since(t0), cpuTime()-cpu0
			b.StopTimer()
			events := float64(batches * perBatch)
			b.ReportMetric(events/el.Seconds(), "events/s")
			b.ReportMetric(cpu.Seconds()/events*1e6, "cpu-s/Mevents")
			b.ReportMetric(value(s.m.commits), "commits")
			if err := s.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			var size int64
			for _, n := range api.sizes {
				size += n
			}
			if n := len(api.sizes); n > 0 {
				raw := value(s.m.bytesSpooled)
				b.ReportMetric(float64(size)/float64(n), "object-bytes")
				b.ReportMetric(raw/float64(n)/float64(cfg.BatchMaxBytes), "fill")
				b.ReportMetric(raw/float64(size), "ratio")
			}
		})
	}
}

// BenchmarkUpload measures upload MB/s (compressed) of one closed batch to
// versitygw: PutObject below multipart_threshold, multipart above it.
func BenchmarkUpload(b *testing.B) {
	srv := s3test.Start(b)
	for _, tc := range []struct {
		name string
		size int64
		mp   int64
	}{{"put-8MiB", 8 << 20, 64 << 20}, {"multipart-32MiB", 32 << 20, 16 << 20}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := testConfig(b, srv)
			cfg.MultipartThreshold = tc.mp
			s, err := newSink(cfg, testLogger(b), nil, srv.Client())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			// A ready batch of incompressible data (the bytes' shape does not
			// matter to the upload).
			bf := &batchFile{id: "bench", meta: batchMeta{Key: "bench/" + tc.name, Kind: "events"}, size: tc.size}
			data := make([]byte, tc.size)
			for i := range data {
				data[i] = byte(i * 7919 >> 3)
			}
			if err := os.WriteFile(filepath.Join(cfg.SpoolDir, "bench"+extReady), data, 0o640); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(tc.size)
			b.ResetTimer()
			for range b.N {
				if err := s.uploadOnce(context.Background(), bf, &pqConverter{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			out, err := srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(bf.meta.Key)})
			if err != nil || aws.ToInt64(out.ContentLength) != tc.size {
				b.Fatalf("head: %v, %v", out, err)
			}
		})
	}
}

// BenchmarkGzip measures the CPU seconds gzip alone takes per million events
// (~350-byte JSON lines), compressed as the committer does: one member per
// 4 MiB group.
func BenchmarkGzip(b *testing.B) {
	now := time.Now()
	var data []byte
	const n = 100000
	for i := range n {
		data = append(data, jsonEvent(i, now.Add(time.Duration(i)*time.Millisecond))...)
		data = append(data, '\n')
	}
	for _, level := range []int{1, 6} {
		b.Run(fmt.Sprintf("level=%d", level), func(b *testing.B) {
			zw, _ := gzip.NewWriterLevel(io.Discard, level)
			cw := &countingWriter{w: io.Discard}
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				for off := 0; off < len(data); off += groupBytes {
					zw.Reset(cw)
					zw.Write(data[off:min(off+groupBytes, len(data))])
					zw.Close()
				}
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(cpu.Seconds()/float64(b.N*n)*1e6, "cpu-s/Mevents")
			b.ReportMetric(float64(b.N*len(data))/float64(cw.n), "ratio")
		})
	}
}
