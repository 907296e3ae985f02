package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// The error format, the timezone and per-input routing keys.
func TestConfigErrorInputAndRouting(t *testing.T) {
	cfg := strings.Replace(baseConfig, "[sinks.kafka]", `[[inputs]]
paths = ["/var/log/nginx/error.log"]
format = "error"
timezone = "Europe/Berlin"
topic = "nginx-error"
s3_prefix = "nginx-error/dt=%Y-%m-%d/"
multiline_max_bytes = 4096
multiline_timeout = "250ms"
[sinks.kafka]
dead_letter_topic = "nginx-invalid"`, 1)
	c, err := ParseConfig("t.toml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	in := c.Inputs[1]
	if in.Topic != "nginx-error" || in.S3Prefix != "nginx-error/dt=%Y-%m-%d/" || in.MultilineMaxBytes != 4096 || in.MultilineTimeout.Duration != 250*time.Millisecond {
		t.Errorf("input: %+v", in)
	}
	if loc := in.Location(); loc.String() != "Europe/Berlin" {
		t.Errorf("location %v", loc)
	}
	if d := c.Inputs[0]; d.Timezone != "Local" || d.Location() != time.Local || d.Topic != "" || d.MultilineMaxBytes != 64<<10 || d.MultilineTimeout.Duration != time.Second {
		t.Errorf("defaults: %+v", d)
	}
}

func TestConfigRoutingErrors(t *testing.T) {
	input := func(keys string) func(string) string {
		return func(s string) string { return strings.Replace(s, "[[inputs]]", "[[inputs]]\n"+keys, 1) }
	}
	for _, tc := range []struct {
		name string
		edit func(string) string
		want string
	}{
		{"bad topic", input(`topic = "nginx error"`), `inputs[0].topic: "nginx error": topic names use only`},
		{"topic is the dead-letter topic", func(s string) string {
			s = strings.Replace(s, `topic = "nginx-access"`, "topic = \"nginx-access\"\ndead_letter_topic = \"bad\"", 1)
			return input(`topic = "bad"`)(s)
		}, "inputs[0].topic: must differ from sinks.kafka.dead_letter_topic"},
		{"topic without kafka", func(s string) string {
			return input(`topic = "x"`)(strings.Replace(s, "[sinks.kafka]", "[sinks.kafka]\nenabled = false", 1))
		}, "inputs[0].topic: is set but [sinks.kafka] is not enabled"},
		{"bad s3_prefix", input(`s3_prefix = "e/{nope}/"`), "inputs[0].s3_prefix: unknown placeholder {nope}"},
		{"s3_prefix absolute", input(`s3_prefix = "/e/"`), "inputs[0].s3_prefix: must not start with /"},
		{"s3_prefix without s3", func(s string) string {
			return input(`s3_prefix = "e/"`)(strings.Replace(s, "[sinks.s3]\nbucket = \"logs\"\n", "", 1))
		}, "inputs[0].s3_prefix: is set but [sinks.s3] is not enabled"},
		{"bad timezone", input(`timezone = "Mars/Olympus"`), `inputs[0].timezone: "Mars/Olympus" is not "Local" or an IANA time zone name`},
		{"tiny multiline_max_bytes", input(`multiline_max_bytes = 10`), "inputs[0].multiline_max_bytes: must be at least 256, got 10"},
		{"negative multiline_timeout", input(`multiline_timeout = "-1s"`), "inputs[0].multiline_timeout: must be positive"},
		{"error format with another escape", input("format = \"error\"\nescape = \"json\""), "inputs[0].format: escape=json conflicts with the format's own escape (none)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("t.toml", []byte(tc.edit(baseConfig)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// parse --format error joins continuation lines as the agent does and
// reads times in --timezone.
func TestParseCommandErrorFormat(t *testing.T) {
	in := "  orphan\n" +
		"2026/12/02 03:01:02 [error] 7#7: *3 FastCGI sent in stderr: \"PHP message: boom\n" +
		"#0 {main}\" while reading response header from upstream, client: 192.0.2.1, server: app\n" +
		"2026/12/02 03:01:03 [emerg] 1#1: bind() failed\n"
	var out, errb bytes.Buffer
	code := realMain([]string{"parse", "--format", "error", "--timezone", "America/New_York", "--host", "h1"}, strings.NewReader(in), &out, &errb)
	if code != 1 || errb.String() == "" || !strings.HasPrefix(errb.String(), "line 1: ") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d events: %s", len(lines), out.String())
	}
	for _, want := range []string{`"timestamp":"2026-12-02T03:01:02.000-05:00"`, `"message":"FastCGI sent in stderr: \"PHP message: boom\n#0 {main}\" while reading response header from upstream"`, `"remote_addr":"192.0.2.1"`, `"log_offset":9`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("event %s lacks %s", lines[0], want)
		}
	}
	if code := realMain([]string{"parse", "--format", "error", "--timezone", "Nowhere/City"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Errorf("bad --timezone: exit %d", code)
	}
}

// validate --connect checks that each input's own topic exists.
func TestValidateConnectChecksInputTopics(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "nginx-access", "nginx-error"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	write := func(topic string) string {
		p := filepath.Join(dir, topic+".toml")
		cfg := fmt.Sprintf(`[agent]
data_dir = %q
[[inputs]]
paths = ["/var/log/nginx/access.log"]
[[inputs]]
paths = ["/var/log/nginx/error.log"]
format = "error"
topic = %q
[sinks.kafka]
brokers = [%q]
topic = "nginx-access"
dead_letter_topic = ""
`, dir, topic, c.ListenAddrs()[0])
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var out, errb bytes.Buffer
	if code := realMain([]string{"validate", "--connect", "-c", write("nginx-error")}, nil, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), `kafka: topic "nginx-error" of input 1 exists`) || !strings.Contains(out.String(), `routed to: topic "nginx-error"`) {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := realMain([]string{"validate", "--connect", "-c", write("nginx-missing")}, nil, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "inputs[1].topic: ") || !strings.Contains(errb.String(), "nginx-missing") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
}
