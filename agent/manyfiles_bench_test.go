package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// cpuTime is the process's CPU time (user + system) so far: wall time
// includes the fsyncs' waits and whatever else the machine runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCheckpointSave is the cost of one checkpoint write with n
// entries, all changed (every file growing): at checkpoint_interval (1s),
// cpu-ns/op is the share of a core it takes (1e7 = 1 %).
func BenchmarkCheckpointSave(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			reg, _, err := OpenRegistry(b.TempDir(), slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			var es []*entry
			for i := range n {
				e := &entry{Path: fmt.Sprintf("/var/log/nginx/vhost-%05d.access.log", i), Dev: 2049, Ino: uint64(1e6 + i),
					FP: "0123456789abcdef0123456789abcdef", FPLen: 1024, Offset: int64(i) * 1000, Seen: time.Now()}
				reg.put(e)
				es = append(es, e)
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; b.Loop(); i++ {
				reg.update(func() { es[i%n].Offset++ })
				if err := reg.Save(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			fi, _ := os.Stat(reg.path)
			b.ReportMetric(float64(fi.Size()), "file-bytes")
		})
	}
}

// BenchmarkScanIdle is the cost of one scan of n files that were all read
// to their end (the common case of thousands of vhost logs): at
// scan_interval (1s), cpu-ns/op is the share of a core it takes. It also
// reports the heap the agent keeps per idle file.
func BenchmarkScanIdle(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			logs := filepath.Join(dir, "logs")
			os.MkdirAll(logs, 0o755)
			for i := range n {
				os.WriteFile(filepath.Join(logs, fmt.Sprintf("vhost-%05d.log", i)), []byte(line(i)), 0o644)
			}
			cfg := Config{DataDir: filepath.Join(dir, "data"), Hostname: "h"}
			cfg.ScanInterval.Duration = time.Hour // scans are run by the benchmark
			cfg.CloseInactive.Duration = time.Millisecond
			cfg.Defaults()
			ins := []InputConfig{{Paths: []string{filepath.Join(logs, "*.log")}}}
			ins[0].Defaults()
			s := newRecSink("a")
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			a, err := New(cfg, ins, []sinks.Sink{s}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			deadline := time.Now().Add(5 * time.Minute)
			for {
				a.mu.Lock()
				open := len(a.open) + a.opening
				a.mu.Unlock()
				s.mu.Lock()
				got := s.sent
				s.mu.Unlock()
				if got == n && open == 0 && a.nQueued.Load() == 0 {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("files not all read and closed: %d of %d lines, %d open", got, n, open)
				}
				a.wakeScan()
				time.Sleep(10 * time.Millisecond)
			}
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
			b.ResetTimer()
			cpu0 := cpuTime()
			for b.Loop() {
				a.scan(ctx, false)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(heap, "heap-bytes/file")
			cancel()
			<-done
		})
	}
}
