package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// Input is one [[inputs]] table.
type Input struct {
	Paths  []string
	Format string // built-in name or log_format text
	Escape string
	// Timezone, Topic, S3Prefix: the input's keys of the same names; ""
	// leaves them out.
	Timezone, Topic, S3Prefix string

	Exclude      []string
	Container    string // "" (a plain file) | cri | docker | auto
	StderrFormat string // container inputs
}

// Config is what an e2e test configures; Render writes it as TOML in the
// contract's keys.
type Config struct {
	Hostname      string
	DataDir       string
	MetricsListen string
	// Agent timings (Go durations); empty keeps the daemon's default.
	ScanInterval, PollInterval, CheckpointInterval, RotateWait, ShutdownTimeout string

	Inputs []Input

	Kafka *KafkaSink // nil: no [sinks.kafka]
	S3    *S3Sink    // nil: no [sinks.s3]
	// Enrich is the body of an [enrich] table; "" for none.
	Enrich string
}

// KafkaSink is [sinks.kafka].
type KafkaSink struct {
	Brokers         []string
	Topic           string
	Key             string
	Compression     string
	DeadLetterTopic string
	// ValueFormat and RegistryURL: value_format and
	// [sinks.kafka.schema_registry] url (issue #13); "" leaves them out.
	ValueFormat, RegistryURL string
	EnrichedTopic            string // "" for none
}

// S3Sink is [sinks.s3].
type S3Sink struct {
	Bucket, Region, Endpoint, Prefix string
	BatchMaxBytes                    int
	BatchMaxAge                      string
	AccessKey, SecretKey             string // passed as AWS_* environment
	// Format is format (json | parquet, issue #16); "" leaves it out.
	Format string
}

// S3For returns an S3Sink for an s3test server.
func S3For(s *s3test.Server, prefix, maxAge string) *S3Sink {
	return &S3Sink{Bucket: s.Bucket, Region: s.Region, Endpoint: s.Endpoint, Prefix: prefix,
		BatchMaxAge: maxAge, AccessKey: s.AccessKey, SecretKey: s.SecretKey}
}

// q quotes s as a TOML basic string (JSON's escapes are TOML's).
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func qs(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = q(s)
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// Render returns the TOML text of c.
func (c *Config) Render() string {
	var b strings.Builder
	b.WriteString("# written by agent/e2e\n[agent]\n")
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s = %s\n", k, q(v))
		}
	}
	kv("hostname", c.Hostname)
	kv("data_dir", c.DataDir)
	fmt.Fprintf(&b, "metrics_listen = %s\n", q(c.MetricsListen))
	kv("scan_interval", c.ScanInterval)
	kv("poll_interval", c.PollInterval)
	kv("checkpoint_interval", c.CheckpointInterval)
	kv("rotate_wait", c.RotateWait)
	kv("shutdown_timeout", c.ShutdownTimeout)
	for _, in := range c.Inputs {
		fmt.Fprintf(&b, "\n[[inputs]]\npaths = %s\n", qs(in.Paths))
		kv("format", in.Format)
		kv("escape", in.Escape)
		kv("read_from", "beginning")
		kv("timezone", in.Timezone)
		kv("topic", in.Topic)
		kv("s3_prefix", in.S3Prefix)
		if len(in.Exclude) > 0 {
			fmt.Fprintf(&b, "exclude = %s\n", qs(in.Exclude))
		}
		kv("container", in.Container)
		kv("stderr_format", in.StderrFormat)
	}
	if k := c.Kafka; k != nil {
		fmt.Fprintf(&b, "\n[sinks.kafka]\nbrokers = %s\ntopic = %s\nkey = %s\n", qs(k.Brokers), q(k.Topic), q(k.Key))
		kv("compression", k.Compression)
		fmt.Fprintf(&b, "dead_letter_topic = %s\n", q(k.DeadLetterTopic))
		kv("value_format", k.ValueFormat)
		kv("enriched_topic", k.EnrichedTopic) // before the subtable
		if k.RegistryURL != "" {
			fmt.Fprintf(&b, "\n[sinks.kafka.schema_registry]\nurl = %s\n", q(k.RegistryURL))
		}
	}
	if s := c.S3; s != nil {
		fmt.Fprintf(&b, "\n[sinks.s3]\nforce_path_style = true\n")
		kv("bucket", s.Bucket)
		kv("region", s.Region)
		kv("endpoint", s.Endpoint)
		kv("prefix", s.Prefix)
		if s.BatchMaxBytes > 0 {
			fmt.Fprintf(&b, "batch_max_bytes = %d\n", s.BatchMaxBytes)
		}
		kv("batch_max_age", s.BatchMaxAge)
		kv("format", s.Format)
	}
	if c.Enrich != "" {
		fmt.Fprintf(&b, "\n[enrich]\n%s\n", c.Enrich)
	}
	return b.String()
}

// Process is one nginx-shipper process (`run -c FILE`), restartable on the
// same config and data_dir.
type Process struct {
	Bin    string
	Config string // path of the TOML file
	Cfg    *Config
	Dir    string // holds the config and the logs of each start

	t      testing.TB
	env    []string
	cmd    *exec.Cmd
	exited chan struct{}
	state  *os.ProcessState
	starts int
	log    *SyncBuffer // the current start's stderr
	logs   []string    // all starts' stderr, for failure messages
}

// StartShipper writes cfg to a file and starts `nginx-shipper run -c FILE`.
// It waits until /metrics answers (cfg.MetricsListen must be set). The
// process is killed (by its PID) at cleanup if still running, and its log
// is printed when the test failed.
func StartShipper(t testing.TB, bin string, cfg *Config) *Process {
	t.Helper()
	dir := t.TempDir()
	p := &Process{Bin: bin, Config: filepath.Join(dir, "nginx-shipper.toml"), Cfg: cfg, Dir: dir, t: t}
	if err := os.WriteFile(p.Config, []byte(cfg.Render()), 0o644); err != nil {
		t.Fatal(err)
	}
	p.env = cleanAWSEnv(os.Environ())
	if cfg.S3 != nil {
		p.env = append(p.env, "AWS_ACCESS_KEY_ID="+cfg.S3.AccessKey, "AWS_SECRET_ACCESS_KEY="+cfg.S3.SecretKey,
			"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+filepath.Join(dir, "no-aws-config"),
			"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "no-aws-credentials"))
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() || os.Getenv("NGINX_SHIPPER_E2E_LOGS") == "1" {
			t.Logf("nginx-shipper config:\n%s", cfg.Render())
			n := 60
			if os.Getenv("NGINX_SHIPPER_E2E_LOGS") == "1" {
				n = 1000
			}
			for i, l := range p.logs {
				t.Logf("nginx-shipper log (start %d, last %d lines):\n%s", i+1, n, tail(l, n))
			}
		}
	})
	p.Start()
	return p
}

func cleanAWSEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "AWS_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Start starts the process (again) and waits until its /metrics answers.
func (p *Process) Start() {
	p.t.Helper()
	if p.cmd != nil {
		p.t.Fatalf("e2e: nginx-shipper already running")
	}
	p.starts++
	p.log = &SyncBuffer{}
	p.logs = append(p.logs, "")
	cmd := exec.Command(p.Bin, "run", "-c", p.Config)
	cmd.Env = p.env
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("e2e: start nginx-shipper: %v", err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	exited := p.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	WaitFor(p.t, 30*time.Second, "nginx-shipper's /metrics", func() (bool, string) {
		select {
		case <-exited:
			p.t.Fatalf("e2e: nginx-shipper exited at start (%v):\n%s", cmd.ProcessState, p.log.String())
		default:
		}
		_, err := p.scrape()
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// PID is the running process's id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Log returns the current start's stderr.
func (p *Process) Log() string { return p.log.String() }

func (p *Process) reaped() {
	<-p.exited
	p.state = p.cmd.ProcessState
	p.logs[p.starts-1] = p.log.String()
	p.cmd = nil
}

// Signal sends sig (e.g. SIGHUP) to the running process.
func (p *Process) Signal(sig syscall.Signal) {
	p.t.Helper()
	if p.cmd == nil {
		p.t.Fatalf("e2e: nginx-shipper not running")
	}
	if err := syscall.Kill(p.PID(), sig); err != nil {
		p.t.Fatalf("e2e: kill -%v %d: %v", sig, p.PID(), err)
	}
}

// Kill9 sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill9() {
	p.t.Helper()
	if p.cmd == nil {
		p.t.Fatalf("e2e: nginx-shipper not running")
	}
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
		p.t.Fatalf("e2e: kill -9 %d: %v", p.PID(), err)
	}
	p.reaped()
}

// Term sends SIGTERM and waits (up to timeout) for the exit; it returns the
// exit code (-1 when killed by a signal) and fails the test if the process
// did not exit in time (it is then killed).
func (p *Process) Term(timeout time.Duration) int {
	p.t.Helper()
	if p.cmd == nil {
		p.t.Fatalf("e2e: nginx-shipper not running")
	}
	if err := syscall.Kill(p.PID(), syscall.SIGTERM); err != nil {
		p.t.Fatalf("e2e: kill -TERM %d: %v", p.PID(), err)
	}
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Errorf("e2e: nginx-shipper did not exit within %v of SIGTERM; killing it", timeout)
		_ = p.cmd.Process.Kill()
	}
	p.reaped()
	return p.state.ExitCode()
}

// kill kills a still running process.
func (p *Process) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	p.reaped()
}

func (p *Process) scrape() (string, error) {
	if p.Cfg.MetricsListen == "" {
		return "", errors.New("metrics_listen is off")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.Cfg.MetricsListen+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("/metrics: %s: %s", resp.Status, b)
	}
	return string(b), nil
}

// Metric returns the sum of the samples of the metric name whose labels
// include every one of labels (`sink="kafka"`), from /metrics.
func (p *Process) Metric(name string, labels ...string) (float64, error) {
	text, err := p.scrape()
	if err != nil {
		return 0, err
	}
	return SumMetric(text, name, labels...)
}

// SumMetric sums, in Prometheus text exposition, the samples of name whose
// label set contains every one of labels.
func SumMetric(text, name string, labels ...string) (float64, error) {
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		series, val := line[:sp], line[sp+1:]
		n, lbl := series, ""
		if i := strings.IndexByte(series, '{'); i >= 0 {
			n, lbl = series[:i], series[i:]
		}
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(lbl, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("metric %s%v not exposed", name, labels)
	}
	return sum, nil
}

// Checkpoints reads data_dir/checkpoints.json: path → offset.
func Checkpoints(dataDir string) (map[string]int64, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "checkpoints.json"))
	if err != nil {
		return nil, err
	}
	var f struct {
		Files []struct {
			Path   string `json:"path"`
			Offset int64  `json:"offset"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("checkpoints.json: %w", err)
	}
	out := map[string]int64{}
	for _, e := range f.Files {
		out[e.Path] = e.Offset
	}
	return out, nil
}
