package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const baseConfig = `
[agent]
data_dir = "/var/lib/nginx-shipper"
[[inputs]]
paths = ["/var/log/nginx/access.log"]
[sinks.kafka]
brokers = ["127.0.0.1:9092"]
topic = "nginx-access"
[sinks.s3]
bucket = "logs"
`

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig("t.toml", []byte(baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	if !c.KafkaEnabled() || !c.S3Enabled() {
		t.Fatal("sinks with tables should be enabled")
	}
	if got := *c.Agent.MetricsListen; got != "127.0.0.1:9145" {
		t.Errorf("metrics_listen default %q", got)
	}
	in := c.Inputs[0]
	if in.Format != "combined" || in.ReadFrom != "beginning" {
		t.Errorf("input defaults: %+v", in)
	}
	if c.KeyField() != "remote_addr" {
		t.Errorf("kafka key default %q", c.KeyField())
	}
	if c.Sinks.S3.SpoolDir != "/var/lib/nginx-shipper/spool/s3" {
		t.Errorf("spool dir %q", c.Sinks.S3.SpoolDir)
	}
	if c.Agent.Hostname == "" {
		t.Error("hostname default empty")
	}
}

func TestConfigSinkSelection(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       string
		kafka, s3 bool
	}{
		{"kafka only", strings.Replace(baseConfig, "[sinks.s3]\nbucket = \"logs\"\n", "", 1), true, false},
		{"s3 only", strings.Replace(baseConfig, "[sinks.kafka]", "[sinks.kafka]\nenabled = false", 1), false, true},
		{"both", baseConfig, true, true},
	} {
		c, err := ParseConfig("t.toml", []byte(tc.cfg))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.KafkaEnabled() != tc.kafka || c.S3Enabled() != tc.s3 {
			t.Errorf("%s: kafka %v s3 %v", tc.name, c.KafkaEnabled(), c.S3Enabled())
		}
	}
}

func TestConfigEnvExpansion(t *testing.T) {
	t.Setenv("NS_TEST_TOPIC", "from-env")
	cfg := strings.Replace(baseConfig, `topic = "nginx-access"`, `topic = "${NS_TEST_TOPIC}"`, 1)
	// ${var} in a format is nginx's syntax, never expanded.
	cfg = strings.Replace(cfg, `paths = ["/var/log/nginx/access.log"]`, "paths = [\"/var/log/nginx/access.log\"]\nformat = '${remote_addr} [$time_local] \"$request\" ${status}'", 1)
	c, err := ParseConfig("t.toml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if c.Sinks.Kafka.Topic != "from-env" {
		t.Errorf("topic %q, want expanded", c.Sinks.Kafka.Topic)
	}
	if !strings.Contains(c.Inputs[0].Format, "${remote_addr}") {
		t.Errorf("format was expanded: %q", c.Inputs[0].Format)
	}
}

// TestConfigErrors checks every error message the config loader and the
// agent's tables produce: each names its key (and line where known).
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(string) string
		want []string
	}{
		{"toml syntax", func(s string) string { return s + "\n[agent\n" }, []string{"t.toml:13:", "end table name"}},
		{"unknown key with line", func(s string) string {
			return strings.Replace(s, `topic = "nginx-access"`, "topic = \"nginx-access\"\ntopik = \"x\"", 1)
		}, []string{"t.toml:9: unknown key sinks.kafka.topik"}},
		{"unknown table", func(s string) string { return s + "\n[sinks.elastic]\nurl = \"x\"\n" }, []string{"unknown key sinks.elastic"}},
		{"unset env", func(s string) string {
			return strings.Replace(s, `bucket = "logs"`, `bucket = "${NS_SURELY_UNSET_VAR}"`, 1)
		},
			[]string{"sinks.s3.bucket: environment variable NS_SURELY_UNSET_VAR is not set"}},
		{"no inputs", func(s string) string {
			return strings.Replace(s, "[[inputs]]\npaths = [\"/var/log/nginx/access.log\"]\n", "", 1)
		}, []string{"inputs: at least one [[inputs]] table is required"}},
		{"empty paths", func(s string) string {
			return strings.Replace(s, `paths = ["/var/log/nginx/access.log"]`, `paths = []`, 1)
		},
			[]string{"inputs[0].paths: must list at least one glob pattern"}},
		{"relative path", func(s string) string { return strings.Replace(s, `"/var/log/nginx/access.log"`, `"access.log"`, 1) },
			[]string{`inputs[0].paths: "access.log" must be an absolute path`}},
		{"bad glob", func(s string) string { return strings.Replace(s, `"/var/log/nginx/access.log"`, `"/var/log/[.log"`, 1) },
			[]string{`inputs[0].paths: "/var/log/[.log" is not a valid glob`}},
		{"bad escape", func(s string) string { return strings.Replace(s, "[[inputs]]", "[[inputs]]\nescape = \"html\"", 1) },
			[]string{`inputs[0].escape: unknown escape "html"`}},
		{"bad read_from", func(s string) string {
			return strings.Replace(s, "[[inputs]]", "[[inputs]]\nread_from = \"middle\"", 1)
		},
			[]string{`inputs[0].read_from: must be beginning or end, got "middle"`}},
		{"bad format", func(s string) string {
			return strings.Replace(s, "[[inputs]]", "[[inputs]]\nformat = '$remote_addr $'", 1)
		},
			[]string{"inputs[0].format:"}},
		{"missing nginx.conf", func(s string) string {
			return strings.Replace(s, "[[inputs]]", "[[inputs]]\nformat = 'nginx.conf:/nonexistent/nginx.conf:main'", 1)
		}, []string{"inputs[0].format:", "/nonexistent/nginx.conf"}},
		{"relative data_dir", func(s string) string { return strings.Replace(s, `"/var/lib/nginx-shipper"`, `"data"`, 1) },
			[]string{`agent.data_dir: must be an absolute path, got "data"`}},
		{"bad log_level", func(s string) string { return strings.Replace(s, "[agent]", "[agent]\nlog_level = \"loud\"", 1) },
			[]string{`agent.log_level: must be debug, info, warn or error, got "loud"`}},
		{"bad log_format", func(s string) string { return strings.Replace(s, "[agent]", "[agent]\nlog_format = \"xml\"", 1) },
			[]string{`agent.log_format: must be text or json, got "xml"`}},
		{"bad duration", func(s string) string { return strings.Replace(s, "[agent]", "[agent]\nscan_interval = \"soon\"", 1) },
			[]string{"t.toml:3:", `not a duration`}},
		{"negative duration", func(s string) string { return strings.Replace(s, "[agent]", "[agent]\nrotate_wait = \"-1s\"", 1) },
			[]string{"agent.rotate_wait: must be positive, got -1s"}},
		{"tiny max_line_bytes", func(s string) string { return strings.Replace(s, "[agent]", "[agent]\nmax_line_bytes = 10", 1) },
			[]string{"agent.max_line_bytes: must be at least 256, got 10"}},
		{"tiny in-flight", func(s string) string { return strings.Replace(s, "[agent]", "[agent]\nmax_in_flight_bytes = 10", 1) },
			[]string{"agent.max_in_flight_bytes: must be at least 65536, got 10"}},
		{"max_open_files", func(s string) string { return strings.Replace(s, "[agent]", "[agent]\nmax_open_files = -1", 1) },
			[]string{"agent.max_open_files: must be at least 1, got -1"}},
		{"memory_limit", func(s string) string { return strings.Replace(s, "[agent]", "[agent]\nmemory_limit = 1000", 1) },
			[]string{"agent.memory_limit: must be at least 16 MiB (16777216), or -1 for none, got 1000"}},
		{"kafka topic missing", func(s string) string { return strings.Replace(s, `topic = "nginx-access"`, ``, 1) },
			[]string{"sinks.kafka.topic"}},
		{"kafka brokers missing", func(s string) string { return strings.Replace(s, `brokers = ["127.0.0.1:9092"]`, ``, 1) },
			[]string{"sinks.kafka.brokers"}},
		{"s3 format", func(s string) string {
			return strings.Replace(s, `bucket = "logs"`, "bucket = \"logs\"\nformat = \"avro\"", 1)
		},
			[]string{`sinks.s3.format: must be "json" or "parquet", got "avro"`}},
		{"s3 bucket missing", func(s string) string { return strings.Replace(s, `bucket = "logs"`, ``, 1) },
			[]string{"sinks.s3.bucket"}},
		{"several problems at once", func(s string) string {
			s = strings.Replace(s, "[agent]", "[agent]\nlog_level = \"loud\"", 1)
			return strings.Replace(s, `topic = "nginx-access"`, ``, 1)
		}, []string{"agent.log_level", "sinks.kafka.topic"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("t.toml", []byte(tc.edit(baseConfig)))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte(baseConfig), 0o600)
	var out, errb bytes.Buffer
	if code := realMain([]string{"validate", "-c", good}, nil, &out, &errb); code != 0 {
		t.Fatalf("validate good: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "test is successful") || !strings.Contains(out.String(), `format "combined"`) {
		t.Fatalf("validate output: %s", out.String())
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte(strings.Replace(baseConfig, "[agent]", "[agent]\nfoo = 1\nlog_level = \"x\"", 1)), 0o600)
	out.Reset()
	errb.Reset()
	if code := realMain([]string{"validate", "--config", bad}, nil, &out, &errb); code == 0 {
		t.Fatal("validate bad: exit 0")
	}
	if !strings.Contains(errb.String(), "unknown key agent.foo") || !strings.Contains(errb.String(), "test failed") {
		t.Fatalf("validate bad stderr: %s", errb.String())
	}
}

func TestParseCommand(t *testing.T) {
	in := "127.0.0.1 - - [25/Nov/2026:15:04:05 +0000] \"GET /x HTTP/1.1\" 200 5 \"-\" \"curl\"\nnot a line\n"
	var out, errb bytes.Buffer
	code := realMain([]string{"parse", "--format", "combined", "--host", "h1"}, strings.NewReader(in), &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (one line failed)", code)
	}
	if !strings.Contains(out.String(), `"status":200`) || !strings.Contains(out.String(), `"host":"h1"`) || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("stdout: %s", out.String())
	}
	if !strings.HasPrefix(errb.String(), "line 2: ") {
		t.Fatalf("stderr: %s", errb.String())
	}
}

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if realMain([]string{"version"}, nil, &out, &out) != 0 || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("version: %s", out.String())
	}
}

// TestUnknownKeyLine: an unknown key that shares its last name with a valid
// key of another table is reported at its own line, under its own table
// (issue 19: `format` under [sinks.s3] was reported at the input's format;
// format is an S3 key now, so the input's paths stands in).
func TestUnknownKeyLine(t *testing.T) {
	cfg := `[agent]
data_dir = "/var/lib/nginx-shipper"

[[inputs]]
paths = ["/var/log/nginx/access.log"]
format = "combined"

[sinks.s3]
bucket = "logs"
paths = ["/x"]
tls = { enabled = true, nope = 1 }
"quoted" = 1

[sinks.s3.extra]
x = """
format = "inside a string"
"""
`
	_, err := ParseConfig("t.toml", []byte(cfg))
	if err == nil {
		t.Fatal("config with unknown keys accepted")
	}
	for _, want := range []string{
		"t.toml:10: unknown key sinks.s3.paths", // the input's paths is on line 5
		"t.toml:11: unknown key sinks.s3.tls",
		"t.toml:12: unknown key sinks.s3.quoted",
		"t.toml:14: unknown key sinks.s3.extra",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "t.toml:6:") || strings.Contains(err.Error(), "t.toml:16:") {
		t.Errorf("error names the wrong line:\n%v", err)
	}
}

// TestConfigS3GroupBytes: the S3 sink's group commit starts once a quarter
// of agent.max_in_flight_bytes is pending (at most 4 MiB), so that a group
// fills before the agent's budget stops its reading.
func TestConfigS3GroupBytes(t *testing.T) {
	for _, c := range []struct {
		agent string
		want  int64
	}{{"", 2 << 20}, {"max_in_flight_bytes = 1048576", 256 << 10}, {"max_in_flight_bytes = 67108864", 4 << 20}} {
		cfg, err := ParseConfig("t.toml", []byte(strings.Replace(baseConfig, "[agent]", "[agent]\n"+c.agent, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Sinks.S3.GroupBytes; got != c.want {
			t.Errorf("[agent] %q: sinks.s3 group commit at %d bytes, want %d", c.agent, got, c.want)
		}
	}
}
