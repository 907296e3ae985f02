package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// notifySocket is a unixgram socket standing in for systemd's
// NOTIFY_SOCKET: it records every datagram with the time it came.
type notifySocket struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	at   time.Time
	text string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	// Socket paths are limited to ~108 bytes: not under t.TempDir().
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := &notifySocket{path: filepath.Join(dir, "notify")}
	ns.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ns.conn.Read(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, notifyMsg{time.Now(), string(buf[:n])})
			ns.mu.Unlock()
		}
	}()
	return ns
}

func (ns *notifySocket) all() []notifyMsg {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return append([]notifyMsg(nil), ns.msgs...)
}

// index is the position of the first message at or after from containing s
// (-1: none).
func (ns *notifySocket) index(from int, s string) int {
	for i, m := range ns.all() {
		if i >= from && strings.Contains(m.text, s) {
			return i
		}
	}
	return -1
}

// startNotified runs `bin run -c cfg` with NOTIFY_SOCKET and WATCHDOG_USEC.
func startNotified(t *testing.T, bin, cfg string, ns *notifySocket, watchdog time.Duration) (*exec.Cmd, *e2e.SyncBuffer) {
	t.Helper()
	logs := &e2e.SyncBuffer{}
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC="+strconv.FormatInt(watchdog.Microseconds(), 10))
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

// TestWatchdogDuringReloadWithKafkaDown: the daemon under a stand-in for
// systemd (NOTIFY_SOCKET, WATCHDOG_USEC=1s) is reloaded while Kafka is down,
// so the reload takes the send grace plus the flush timeout plus the Kafka
// close, far longer than the watchdog interval. systemd must hear
// RELOADING=1 with MONOTONIC_USEC, EXTEND_TIMEOUT_USEC, WATCHDOG=1 at
// least every WATCHDOG_USEC throughout, READY=1 after; and STOPPING=1 at
// SIGTERM.
func TestWatchdogDuringReloadWithKafkaDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon and kfake")
	}
	bin := e2e.Shipper(t)
	k := &restartableKafka{t: t, dir: t.TempDir()}
	k.start()
	defer func() { k.stop() }()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	cfg := filepath.Join(dir, "shipper.toml")
	addr := e2e.FreeAddr(t)
	writeConfig(t, cfg, fmt.Sprintf(`[agent]
data_dir = %q
metrics_listen = %q
shutdown_timeout = "4s"
[[inputs]]
paths = [%q]
[sinks.kafka]
brokers = [%q]
topic = "out"
`, filepath.Join(dir, "data"), addr, logPath, strings.Join(k.addrs, `", "`)))
	if err := os.WriteFile(logPath, []byte("127.0.0.1 - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/1 HTTP/1.1\" 200 5 \"-\" \"wd\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := newNotifySocket(t)
	const wd = time.Second
	cmd, _ := startNotified(t, bin, cfg, ns, wd)
	e2e.WaitFor(t, 30*time.Second, "READY=1", func() (bool, string) { return ns.index(0, "READY=1") >= 0, "" })

	k.stop()
	// Lines waiting on Kafka make the stop wait its full flush timeout.
	f, _ := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	for i := 2; i < 200; i++ {
		fmt.Fprintf(f, "127.0.0.1 - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/%d HTTP/1.1\" 200 5 \"-\" \"wd\"\n", i)
	}
	f.Close()
	e2e.WaitFor(t, 20*time.Second, "lines in flight to the stopped Kafka", func() (bool, string) {
		v, _ := scrapeSum("http://"+addr+"/metrics", "nginx_shipper_in_flight_events")
		return v > 0, fmt.Sprint(v)
	})
	reloadAt := len(ns.all())
	start := time.Now()
	cmd.Process.Signal(syscall.SIGHUP)
	e2e.WaitFor(t, 60*time.Second, "READY=1 after the reload", func() (bool, string) {
		r := ns.index(reloadAt, "RELOADING=1")
		return r >= 0 && ns.index(r, "READY=1") >= 0, ""
	})
	took := time.Since(start)
	// Keep watching a while after the reload (Kafka still down).
	e2e.WaitFor(t, 20*time.Second, "pings after the reload", func() (bool, string) {
		r := ns.index(reloadAt, "READY=1")
		n := 0
		for _, m := range ns.all()[r:] {
			if m.text == "WATCHDOG=1" {
				n++
			}
		}
		return n >= 3, fmt.Sprint(n)
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}

	msgs := ns.all()
	r := ns.index(reloadAt, "RELOADING=1")
	if !strings.Contains(msgs[r].text, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", msgs[r].text)
	}
	if ns.index(r, "EXTEND_TIMEOUT_USEC=") < 0 {
		t.Error("no EXTEND_TIMEOUT_USEC during the reload")
	}
	if ns.index(r, "STOPPING=1") < 0 {
		t.Error("no STOPPING=1 at SIGTERM")
	}
	// The longest gap between pings from the first READY=1 to STOPPING=1.
	var last time.Time
	var gaps []time.Duration
	var maxGap time.Duration
	for _, m := range msgs[ns.index(0, "READY=1"):ns.index(r, "STOPPING=1")] {
		if m.text != "WATCHDOG=1" {
			continue
		}
		if !last.IsZero() {
			g := m.at.Sub(last)
			gaps = append(gaps, g.Round(time.Millisecond))
			maxGap = max(maxGap, g)
		}
		last = m.at
	}
	t.Logf("reload with Kafka down took %v (WATCHDOG_USEC %v); %d pings, longest gap %v; gaps %v",
		took.Round(time.Millisecond), wd, len(gaps)+1, maxGap.Round(time.Millisecond), gaps)
	if took < 3*wd {
		t.Errorf("the reload took %v: not longer than the watchdog interval, so the test proves nothing", took)
	}
	if maxGap >= wd {
		t.Errorf("%v without WATCHDOG=1 (WATCHDOG_USEC %v): systemd would have killed the daemon", maxGap, wd)
	}
}

// readyz fetches /readyz: status and decoded body.
func readyz(t *testing.T, addr string) (int, readyBody) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, readyBody{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body readyBody
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("/readyz body is not JSON: %v: %s", err, b)
	}
	return resp.StatusCode, body
}

// TestReadyzFollowsTheSinks: /readyz and nginx_shipper_sink_up follow Kafka
// (brokers stopped and started) and S3 (versitygw stopped and started) in
// both directions within seconds; the 503 body names the sink and why.
func TestReadyzFollowsTheSinks(t *testing.T) {
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
scan_interval = "100ms"
[[inputs]]
paths = [%q]
[sinks.kafka]
brokers = [%q]
topic = "out"
dial_timeout = "1s"
[sinks.s3]
bucket = %q
region = %q
endpoint = %q
force_path_style = true
prefix = "o/"
batch_max_age = "1s"
retry_max_backoff = "1s"
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
		for i := 0; i < n; i++ {
			fmt.Fprintf(f, "10.0.0.1 - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/%d HTTP/1.1\" 200 5 \"-\" \"ready\"\n", next)
			next++
		}
	}
	cmd, _ := startDaemon(t, bin, cfg)
	sinkUp := func(sink string) float64 {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		v, err := e2e.SumMetric(string(b), "nginx_shipper_sink_up", `sink="`+sink+`"`)
		if err != nil {
			return -1
		}
		return v
	}
	sinkOf := func(b readyBody, name string) sinkState {
		for _, s := range b.Sinks {
			if s.Sink == name {
				return s
			}
		}
		return sinkState{}
	}
	// waitState waits until /readyz and sink_up agree that sink is up (or
	// not) and returns how long that took.
	waitState := func(sink string, up bool) (time.Duration, readyBody) {
		t.Helper()
		start := time.Now()
		var body readyBody
		e2e.WaitFor(t, 60*time.Second, fmt.Sprintf("%s up=%v in /readyz and sink_up", sink, up), func() (bool, string) {
			write(5) // traffic, as in production
			code, b := readyz(t, addr)
			body = b
			s := sinkOf(b, sink)
			want := 0.0
			if up {
				want = 1
			}
			ok := s.Ready == up && sinkUp(sink) == want && (up || code == http.StatusServiceUnavailable)
			return ok, fmt.Sprintf("code %d body %+v", code, b)
		})
		return time.Since(start).Round(time.Millisecond), body
	}
	write(10)
	waitState("kafka", true)
	waitState("s3", true)

	k.stop()
	down, body := waitState("kafka", false)
	if s := sinkOf(body, "kafka"); s.Reason == "" || body.Ready {
		t.Errorf("503 body %+v: want kafka not ready with a reason", body)
	}
	k.start()
	up, _ := waitState("kafka", true)
	t.Logf("Kafka brokers stopped: /readyz 503 after %v (%s); started: 200 after %v", down, sinkOf(body, "kafka").Reason, up)

	srv.Stop()
	down, body = waitState("s3", false)
	if s := sinkOf(body, "s3"); s.Reason == "" {
		t.Errorf("503 body %+v: want s3 not ready with a reason", body)
	}
	srv.Start()
	up, _ = waitState("s3", true)
	t.Logf("S3 stopped: /readyz 503 after %v (%s); started: 200 after %v", down, sinkOf(body, "s3").Reason, up)
	e2e.WaitFor(t, 30*time.Second, "/readyz 200", func() (bool, string) {
		code, b := readyz(t, addr)
		return code == 200 && b.Ready && b.State == "running", fmt.Sprintf("%d %+v", code, b)
	})
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// TestStatusUpAndDown: `status --json` with the daemon running (files from
// the checkpoints and the metrics, sinks from /readyz) and after it stopped
// (data dir only, and it says so); the text form names the same.
func TestStatusUpAndDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon")
	}
	bin := e2e.Shipper(t)
	k := e2e.StartKafka(t, "st")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	addr := e2e.FreeAddr(t)
	cfg := filepath.Join(dir, "shipper.toml")
	writeConfig(t, cfg, fmt.Sprintf(`[agent]
data_dir = %q
metrics_listen = %q
checkpoint_interval = "100ms"
[[inputs]]
paths = [%q]
[sinks.kafka]
brokers = [%q]
topic = "st"
`, filepath.Join(dir, "data"), addr, logPath, k.Brokers[0]))
	var lines strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&lines, "10.0.0.1 - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/%d HTTP/1.1\" 200 5 \"-\" \"st\"\n", i)
	}
	if err := os.WriteFile(logPath, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	size := int64(lines.Len())
	status := func() (statusReport, string) {
		t.Helper()
		var out, errb strings.Builder
		if rc := realMain([]string{"status", "-c", cfg, "--json"}, nil, &out, &errb); rc != 0 {
			t.Fatalf("status exit %d: %s", rc, errb.String())
		}
		var rep statusReport
		if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out.String())
		}
		var text strings.Builder
		realMain([]string{"status", "-c", cfg}, nil, &text, &errb)
		return rep, text.String()
	}
	cmd, _ := startDaemon(t, bin, cfg)
	var rep statusReport
	e2e.WaitFor(t, 30*time.Second, "status: the file acknowledged, Kafka ready", func() (bool, string) {
		rep, _ = status()
		ok := rep.Daemon == "running" && len(rep.Files) == 1 && rep.Files[0].AckedOffset == size &&
			len(rep.Sinks) == 2 && rep.Sinks[0].Ready != nil && *rep.Sinks[0].Ready
		return ok, fmt.Sprintf("%+v", rep)
	})
	f := rep.Files[0]
	if f.Path != logPath || f.Size != size || f.LagBytes != 0 || f.ReadOffset == nil || *f.ReadOffset != size || f.Now != "same" {
		t.Errorf("file %+v: want %s, size = read = acked = %d, lag 0", f, logPath, size)
	}
	if rep.Sinks[0].Backlog == nil || rep.Sinks[0].AckedEvents == nil || *rep.Sinks[0].AckedEvents != 50 {
		t.Errorf("kafka %+v: want a backlog and 50 acknowledged", rep.Sinks[0])
	}
	if rep.Sinks[1].Enabled {
		t.Errorf("s3 %+v: not configured, want off", rep.Sinks[1])
	}
	if rep.CheckpointAgeSeconds < 0 {
		t.Error("checkpoint age unknown with the daemon running")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	// Grown while down: the lag is the new bytes.
	af, _ := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	af.WriteString("10.0.0.1 - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/50 HTTP/1.1\" 200 5 \"-\" \"st\"\n")
	af.Close()
	rep, text := status()
	if rep.Daemon != "not running" || !strings.Contains(rep.Why, "data dir only") {
		t.Errorf("daemon down: daemon %q why %q", rep.Daemon, rep.Why)
	}
	if len(rep.Files) != 1 || rep.Files[0].AckedOffset != size || rep.Files[0].LagBytes <= 0 || rep.Files[0].ReadOffset != nil {
		t.Errorf("daemon down: files %+v: want acked %d, lag > 0, read unknown", rep.Files, size)
	}
	if rep.Sinks[0].Ready != nil {
		t.Errorf("daemon down: kafka readiness %v, want unknown", *rep.Sinks[0].Ready)
	}
	for _, want := range []string{"daemon: not running", logPath, "kafka: unknown (daemon not reachable)", "checkpoint: written"} {
		if !strings.Contains(text, want) {
			t.Errorf("status text lacks %q:\n%s", want, text)
		}
	}
}

// TestValidateConnect runs `nginx-shipper validate --connect` (the built
// binary) against Kafka and S3 up, then each down, then a missing topic:
// exit 0 with what it reached, or exit 1 naming the key and the problem.
func TestValidateConnect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kfake and versitygw")
	}
	bin := e2e.Shipper(t)
	srv := s3test.Start(t)
	k := &restartableKafka{t: t, dir: t.TempDir()}
	k.start()
	defer func() { k.stop() }()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "shipper.toml")
	conf := func(topic string) string {
		return fmt.Sprintf(`[agent]
data_dir = %q
[[inputs]]
paths = ["/var/log/nginx/access.log"]
[sinks.kafka]
brokers = [%q]
topic = %q
dial_timeout = "1s"
[sinks.s3]
bucket = %q
region = %q
endpoint = %q
force_path_style = true
`, filepath.Join(dir, "data"), strings.Join(k.addrs, `", "`), topic, srv.Bucket, srv.Region, srv.Endpoint)
	}
	run := func() (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, "validate", "--connect", "-c", cfg)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "AWS_EC2_METADATA_DISABLED=true")
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}
	expect := func(what string, wantCode int, wantOut, wantErr []string) {
		t.Helper()
		code, out, errs := run()
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, code, wantCode, out, errs)
		}
		for _, w := range wantOut {
			if !strings.Contains(out, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", what, w, out)
			}
		}
		for _, w := range wantErr {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", what, w, errs)
			}
		}
	}
	writeConfig(t, cfg, conf("out"))
	expect("both up", 0, []string{`kafka: brokers reachable, topic "out" exists`, fmt.Sprintf("s3: bucket %q reachable", srv.Bucket), "test is successful"}, nil)

	k.stop()
	expect("kafka down", 1, []string{fmt.Sprintf("s3: bucket %q reachable", srv.Bucket)},
		[]string{"sinks.kafka", "broker unreachable", k.addrs[0], "test failed"})
	k.start()

	srv.Stop()
	expect("s3 down", 1, []string{`kafka: brokers reachable`}, []string{"sinks.s3", "test failed"})
	srv.Start()

	writeConfig(t, cfg, conf("no-such-topic"))
	expect("missing topic", 1, nil, []string{"sinks.kafka", "no-such-topic", "topic does not exist"})
	writeConfig(t, cfg, conf("out"))
	expect("both back", 0, []string{"test is successful"}, nil)
}

// TestFailedForGoodEndToEnd: Kafka (kfake) rejects every record for good
// (TOPIC_AUTHORIZATION_FAILED, no dead_letter_topic). The daemon writes the
// lines to data_dir/dead-letter/, the checkpoint reaches the end of the
// file, and the metrics and status say so. With the dead-letter directory
// unwritable, the file's checkpoint is blocked instead, and /readyz is 503
// naming the file.
func TestFailedForGoodEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon and kfake")
	}
	for _, blocked := range []bool{false, true} {
		t.Run(fmt.Sprintf("blocked=%v", blocked), func(t *testing.T) {
			bin := e2e.Shipper(t)
			k := &restartableKafka{t: t, dir: t.TempDir()}
			k.start()
			defer func() { k.stop() }()
			k.c.ControlKey(int16(0), func(req kmsg.Request) (kmsg.Response, error, bool) {
				k.c.KeepControl()
				preq := req.(*kmsg.ProduceRequest)
				resp := preq.ResponseKind().(*kmsg.ProduceResponse)
				for _, rt := range preq.Topics {
					st := kmsg.NewProduceResponseTopic()
					st.Topic, st.TopicID = rt.Topic, rt.TopicID
					for _, rp := range rt.Partitions {
						sp := kmsg.NewProduceResponseTopicPartition()
						sp.Partition, sp.ErrorCode, sp.BaseOffset = rp.Partition, kerr.TopicAuthorizationFailed.Code, -1
						st.Partitions = append(st.Partitions, sp)
					}
					resp.Topics = append(resp.Topics, st)
				}
				return resp, nil, true
			})
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			os.MkdirAll(data, 0o755)
			if blocked {
				os.WriteFile(filepath.Join(data, "dead-letter"), []byte("not a directory"), 0o644)
			}
			logPath := filepath.Join(dir, "access.log")
			addr := e2e.FreeAddr(t)
			cfg := filepath.Join(dir, "shipper.toml")
			writeConfig(t, cfg, fmt.Sprintf(`[agent]
data_dir = %q
metrics_listen = %q
checkpoint_interval = "100ms"
[[inputs]]
paths = [%q]
[sinks.kafka]
brokers = [%q]
topic = "out"
dead_letter_topic = ""
`, data, addr, logPath, strings.Join(k.addrs, `", "`)))
			var b strings.Builder
			for i := 0; i < 20; i++ {
				fmt.Fprintf(&b, "10.0.0.1 - - [25/Nov/2026:15:04:05 +0000] \"GET /seq/%d HTTP/1.1\" 200 5 \"-\" \"fg\"\n", i)
			}
			os.WriteFile(logPath, []byte(b.String()), 0o644)
			cmd, logs := startDaemon(t, bin, cfg)
			metric := func(name string, labels ...string) float64 {
				resp, err := http.Get("http://" + addr + "/metrics")
				if err != nil {
					return -1
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				v, _ := e2e.SumMetric(string(body), name, labels...)
				return v
			}
			if !blocked {
				e2e.WaitFor(t, 30*time.Second, "the lines dead-lettered and checkpointed", func() (bool, string) {
					cps, _ := e2e.Checkpoints(data)
					dl := metric("nginx_shipper_dead_lettered_events_total", `sink="kafka"`)
					return cps[logPath] == int64(b.Len()) && dl == 20, fmt.Sprintf("checkpoint %d dead-lettered %v", cps[logPath], dl)
				})
				files, _ := filepath.Glob(filepath.Join(data, "dead-letter", "*.jsonl"))
				if len(files) != 1 {
					t.Fatalf("dead-letter files %v", files)
				}
				content, _ := os.ReadFile(files[0])
				if n := strings.Count(string(content), "\n"); n != 20 || !strings.Contains(string(content), "TOPIC_AUTHORIZATION_FAILED") || !strings.Contains(string(content), `"sink":"kafka"`) {
					t.Errorf("dead-letter file has %d lines:\n%s", n, content)
				}
				if v := metric("nginx_shipper_sink_errors_total", `sink="kafka"`); v != 20 {
					t.Errorf("sink_errors_total{sink=kafka} = %v, want 20", v)
				}
				if !strings.Contains(logs.String(), "dead_letter_file=") {
					t.Errorf("no error log naming the dead-letter file")
				}
			} else {
				e2e.WaitFor(t, 30*time.Second, "/readyz 503 naming the blocked file", func() (bool, string) {
					code, body := readyz(t, addr)
					ok := code == 503 && len(body.Files) == 1 && body.Files[0].Path == logPath && body.Files[0].Blocked != ""
					return ok, fmt.Sprintf("%d %+v", code, body)
				})
				if v := metric("nginx_shipper_file_blocked", `path="`+logPath+`"`); v != 1 {
					t.Errorf("file_blocked = %v, want 1", v)
				}
				if v := metric("nginx_shipper_file_unacked_bytes", `path="`+logPath+`"`); v != float64(b.Len()) {
					t.Errorf("file_unacked_bytes = %v, want %d", v, b.Len())
				}
				cps, _ := e2e.Checkpoints(data)
				if cps[logPath] != 0 {
					t.Errorf("checkpoint %d moved past lines neither delivered nor dead-lettered", cps[logPath])
				}
			}
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		})
	}
}
