package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// restartableKafka is a kfake cluster on fixed ports with its data on disk,
// so it can be stopped (an outage) and started again with its records.
type restartableKafka struct {
	t     *testing.T
	dir   string
	ports []int
	c     *kfake.Cluster
	addrs []string
}

func (k *restartableKafka) start() {
	k.t.Helper()
	opts := []kfake.Opt{kfake.DataDir(k.dir), kfake.SeedTopics(3, "out")}
	if k.ports != nil {
		opts = append(opts, kfake.Ports(k.ports...))
	} else {
		opts = append(opts, kfake.Ports(0))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		k.t.Fatalf("kfake: %v", err)
	}
	k.c = c
	if k.ports == nil {
		k.addrs = c.ListenAddrs()
		for _, a := range k.addrs {
			p, _ := strconv.Atoi(a[strings.LastIndexByte(a, ':')+1:])
			k.ports = append(k.ports, p)
		}
	}
}

func (k *restartableKafka) stop() { k.c.Close() }

// seqs reads the topic from the beginning and counts every /seq/N.
func (k *restartableKafka) seqs(t *testing.T, want int) map[int]int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addrs...), kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	counts := map[int]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for distinct := 0; distinct < want; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			ev, err := e2e.DecodeEvent(r.Value)
			if err == nil {
				if counts[ev.Seq] == 0 {
					distinct++
				}
				counts[ev.Seq]++
			}
		})
	}
	return counts
}

// TestOutagesKafkaS3Both: the whole agent against Kafka down, S3 down and
// both down, while lines are written. With Kafka down reading stops at the
// in-flight limit (memory stays flat); with S3 down the spool takes the
// lines; when they come back everything flows, and nothing is lost.
func TestOutagesKafkaS3Both(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon, kfake and versitygw")
	}
	bin := e2e.Shipper(t)
	srv := s3test.Start(t)
	k := &restartableKafka{t: t, dir: t.TempDir()}
	k.start()
	defer func() { k.stop() }()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	addr := e2e.FreeAddr(t)
	cfg := filepath.Join(dir, "shipper.toml")
	writeConfig(t, cfg, fmt.Sprintf(`[agent]
data_dir = %q
metrics_listen = %q
max_in_flight_bytes = 1048576
scan_interval = "100ms"
checkpoint_interval = "200ms"
[[inputs]]
paths = [%q]
[sinks.kafka]
brokers = [%q]
topic = "out"
compression = "lz4"
[sinks.s3]
bucket = %q
region = %q
endpoint = %q
force_path_style = true
prefix = "o/"
batch_max_age = "1s"
`, filepath.Join(dir, "data"), addr, logPath, strings.Join(k.addrs, `", "`), srv.Bucket, srv.Region, srv.Endpoint))
	os.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	defer os.Unsetenv("AWS_ACCESS_KEY_ID")
	defer os.Unsetenv("AWS_SECRET_ACCESS_KEY")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next := 0
	write := func(n int) {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "10.0.0.%d - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/%d?pad=%s HTTP/1.1\" 200 5 \"-\" \"outage\"\n", next%200, next, strings.Repeat("x", 100))
			next++
		}
		if _, err := f.WriteString(b.String()); err != nil {
			t.Fatal(err)
		}
	}
	cmd, logs := startDaemon(t, bin, cfg)
	metric := func(name string) float64 {
		v, _ := scrapeSum("http://"+addr+"/metrics", name)
		return v
	}
	rss := func() int {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				n, _ := strconv.Atoi(strings.Fields(l)[1])
				return n / 1024
			}
		}
		return 0
	}
	acked := func(n int) func() (bool, string) {
		return func() (bool, string) {
			a := metric(`nginx_shipper_events_acked_total`)
			return a >= float64(2*n), fmt.Sprintf("acked %v of %d", a, 2*n)
		}
	}
	write(2000)
	e2e.WaitFor(t, 30*time.Second, "the first lines in both sinks", acked(2000))

	// Kafka down: reading stops at the in-flight limit.
	k.stop()
	write(30000) // ~5 MiB of log, far above the 1 MiB in flight
	e2e.WaitFor(t, 30*time.Second, "the in-flight budget to fill", func() (bool, string) {
		v := metric("nginx_shipper_in_flight_bytes")
		return v > 512<<10, fmt.Sprint(v)
	})
	readDown := metric("nginx_shipper_lines_read_total")
	if readDown >= float64(next) {
		t.Fatalf("all %d lines were read with Kafka down: reading did not stop at the in-flight limit", next)
	}
	if v := metric("nginx_shipper_in_flight_bytes"); v > 2<<20 {
		t.Fatalf("in-flight bytes %v with Kafka down, limit 1 MiB", v)
	}
	rssDown := rss()
	k.start()
	e2e.WaitFor(t, 60*time.Second, "everything after Kafka returned", acked(next))

	// S3 down: the spool takes the lines; Kafka goes on.
	srv.Stop()
	write(5000)
	e2e.WaitFor(t, 30*time.Second, "Kafka to get the lines while S3 is down", func() (bool, string) {
		v := metric(`nginx_shipper_kafka_records_produced_total`)
		return v >= float64(next), fmt.Sprint(v)
	})
	srv.Start()
	e2e.WaitFor(t, 60*time.Second, "everything after S3 returned", acked(next))

	// Both down.
	k.stop()
	srv.Stop()
	write(10000)
	e2e.WaitFor(t, 30*time.Second, "the in-flight budget to fill with both down", func() (bool, string) {
		v := metric("nginx_shipper_in_flight_bytes")
		return v > 512<<10, fmt.Sprint(v)
	})
	k.start()
	srv.Start()
	e2e.WaitFor(t, 90*time.Second, "everything after both returned", acked(next))

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	kc := k.seqs(t, next)
	rd := e2e.NewS3Reader(t, srv, "o/")
	if err := rd.Refresh(nil); err != nil {
		t.Fatal(err)
	}
	sc := map[int]int{}
	for _, ev := range rd.Events() {
		sc[ev.Seq]++
	}
	want := map[int]bool{}
	for i := 0; i < next; i++ {
		want[i] = true
	}
	for name, counts := range map[string]map[int]int{"kafka": kc, "s3": sc} {
		missing, dups, _ := e2e.Diff(counts, want)
		t.Logf("outages, %s: %d lines written, %d missing, %d duplicates", name, next, len(missing), dups)
		if len(missing) > 0 {
			t.Errorf("%s: %d lines lost, first %v", name, len(missing), e2e.First(missing, 10))
		}
	}
	t.Logf("with Kafka down: %v of %d lines read, RSS %d MiB", readDown, 32000, rssDown)
	if t.Failed() {
		t.Logf("daemon log:\n%s", logs.String())
	}
}

// scrapeSum fetches a Prometheus endpoint and sums the samples of name.
func scrapeSum(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return e2e.SumMetric(string(b), name)
}
