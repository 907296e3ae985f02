package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

// writer appends combined-format lines with /seq/N to a file at a steady
// pace until stopped, like a busy nginx.
type writer struct {
	t    *testing.T
	path string
	next atomic.Int64
	stop chan struct{}
	wg   sync.WaitGroup
}

func startWriter(t *testing.T, path string, first int) *writer {
	w := &writer{t: t, path: path, stop: make(chan struct{})}
	w.next.Store(int64(first))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer f.Close()
		tick := time.NewTicker(2 * time.Millisecond) // pacing the load, ~10k lines/s
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			var b strings.Builder
			for i := 0; i < 20; i++ {
				n := w.next.Add(1) - 1
				fmt.Fprintf(&b, "127.0.0.1 - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/%d HTTP/1.1\" 200 5 \"-\" \"reload-test\"\n", n)
			}
			if _, err := f.WriteString(b.String()); err != nil {
				t.Errorf("write: %v", err)
				return
			}
		}
	}()
	return w
}

// halt stops the writer and returns the seqs written: [first, n).
func (w *writer) halt() int {
	close(w.stop)
	w.wg.Wait()
	return int(w.next.Load())
}

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloadWhileLinesFlow: SIGHUP with a changed config (another topic, an
// input added) and with a broken one, while lines are written; every line
// reaches Kafka exactly once, and the broken config changes nothing.
func TestReloadWhileLinesFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon")
	}
	bin := e2e.Shipper(t)
	k := e2e.StartKafka(t, "t1", "t2")
	dir := t.TempDir()
	logA, logB := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	metrics := e2e.FreeAddr(t)
	cfgPath := filepath.Join(dir, "shipper.toml")
	conf := func(topic string, paths ...string) string {
		var in strings.Builder
		for _, p := range paths {
			fmt.Fprintf(&in, "[[inputs]]\npaths = [%q]\n", p)
		}
		return fmt.Sprintf(`[agent]
hostname = "reload-host"
data_dir = %q
metrics_listen = %q
scan_interval = "100ms"
checkpoint_interval = "100ms"
%s
[sinks.kafka]
brokers = [%q]
topic = %q
compression = "none"
`, filepath.Join(dir, "data"), metrics, in.String(), k.Brokers[0], topic)
	}
	writeConfig(t, cfgPath, conf("t1", logA))
	wa := startWriter(t, logA, 0)
	cmd, logs := startDaemon(t, bin, cfgPath)
	c1, c2 := k.Consume(t, "t1"), k.Consume(t, "t2")

	e2e.WaitFor(t, 20*time.Second, "events in t1", func() (bool, string) { return c1.Len() > 500, fmt.Sprint(c1.Len()) })

	// A changed config: other topic, a second input.
	writeConfig(t, cfgPath, conf("t2", logA, logB))
	wb := startWriter(t, logB, 1_000_000)
	cmd.Process.Signal(syscall.SIGHUP)
	e2e.WaitFor(t, 20*time.Second, "events of both inputs in t2", func() (bool, string) {
		a, b := 0, 0
		for _, ev := range c2.Events() {
			if ev.Seq >= 1_000_000 {
				b++
			} else {
				a++
			}
		}
		return a > 200 && b > 200, fmt.Sprintf("a=%d b=%d", a, b)
	})

	// A broken config is rejected; the running one goes on.
	writeConfig(t, cfgPath, conf("t2", logA, logB)+"\nbogus_key = 1\n")
	before := c2.Len()
	cmd.Process.Signal(syscall.SIGHUP)
	e2e.WaitFor(t, 10*time.Second, "the rejection in the log", func() (bool, string) {
		return strings.Contains(logs.String(), "reload rejected"), ""
	})
	e2e.WaitFor(t, 10*time.Second, "lines still flowing", func() (bool, string) { return c2.Len() > before+200, "" })

	na, nb := wa.halt(), wb.halt()
	want := map[int]bool{}
	for i := 0; i < na; i++ {
		want[i] = true
	}
	for i := 1_000_000; i < nb; i++ {
		want[i] = true
	}
	e2e.WaitFor(t, 30*time.Second, "every line in t1 or t2", func() (bool, string) {
		counts := map[int]int{}
		for _, ev := range append(c1.Events(), c2.Events()...) {
			counts[ev.Seq]++
		}
		return e2e.Covers(counts, want)
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
	counts := map[int]int{}
	for _, ev := range append(c1.Events(), c2.Events()...) {
		counts[ev.Seq]++
	}
	missing, dups, unexpected := e2e.Diff(counts, want)
	if testing.Verbose() {
		t.Logf("daemon log:\n%s", logs.String())
	}
	t.Logf("reload: %d lines written, %d missing, %d duplicates", len(want), len(missing), dups)
	if len(missing) > 0 || dups > 0 || len(unexpected) > 0 {
		t.Fatalf("missing %v, duplicates %d, unexpected %v", e2e.First(missing, 10), dups, e2e.First(unexpected, 10))
	}
}

// TestMetricsEndpoint scrapes /metrics, parses it with the Prometheus text
// parser, and checks /healthz and /readyz.
func TestMetricsEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon")
	}
	bin := e2e.Shipper(t)
	k := e2e.StartKafka(t, "m")
	dir := t.TempDir()
	logA := filepath.Join(dir, "a.log")
	addr := e2e.FreeAddr(t)
	cfgPath := filepath.Join(dir, "shipper.toml")
	writeConfig(t, cfgPath, fmt.Sprintf(`[agent]
data_dir = %q
metrics_listen = %q
[[inputs]]
paths = [%q]
[sinks.kafka]
brokers = [%q]
topic = "m"
`, filepath.Join(dir, "data"), addr, logA, k.Brokers[0]))
	os.WriteFile(logA, []byte("127.0.0.1 - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/1 HTTP/1.1\" 200 5 \"-\" \"m\"\ngarbage\n"), 0o644)
	cmd, logs := startDaemon(t, bin, cfgPath)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var fams map[string]*dtoFamily
	e2e.WaitFor(t, 20*time.Second, "both lines acknowledged in /metrics", func() (bool, string) {
		code, body := get("/metrics")
		if code != 200 {
			return false, fmt.Sprint(code)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		f, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("/metrics is not valid Prometheus text: %v", err)
		}
		fams = map[string]*dtoFamily{}
		for n, mf := range f {
			fams[n] = &dtoFamily{mf.GetType().String(), len(mf.GetMetric())}
		}
		acked := sum(f["nginx_shipper_events_acked_total"])
		return acked >= 2, fmt.Sprint("acked ", acked)
	})
	for _, name := range []string{
		"nginx_shipper_lines_read_total", "nginx_shipper_bytes_read_total", "nginx_shipper_parse_errors_total",
		"nginx_shipper_events_parsed_total", "nginx_shipper_file_lag_bytes", "nginx_shipper_events_acked_total",
		"nginx_shipper_in_flight_events", "nginx_shipper_checkpoint_age_seconds", "nginx_shipper_open_files",
		"process_resident_memory_bytes", "go_goroutines", "nginx_shipper_sink_up",
	} {
		if fams[name] == nil {
			t.Errorf("metric %s missing from /metrics", name)
		}
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d %s", code, body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
}

type dtoFamily struct {
	typ string
	n   int
}

func sum(mf *dto.MetricFamily) float64 {
	total := 0.0
	for _, m := range mf.GetMetric() {
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

// startDaemon runs `bin run -c cfg`; the process is killed at cleanup if
// still running, and its log printed if the test failed.
func startDaemon(t *testing.T, bin, cfg string) (*exec.Cmd, *e2e.SyncBuffer) {
	t.Helper()
	logs := &e2e.SyncBuffer{}
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	return cmd, logs
}
