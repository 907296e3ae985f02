package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

// runBin runs the built binary and returns stdout, stderr and exit code.
func runBin(t *testing.T, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(e2e.Shipper(t), args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return so.String(), se.String(), code
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// lineOf returns the 1-based line of the first line of text containing s.
func lineOf(text, s string) int {
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	return 0
}

// TestE2EValidateAndParse runs the binary's validate, parse and version
// commands as an SRE would.
func TestE2EValidateAndParse(t *testing.T) {
	dir := t.TempDir()
	good := (&e2e.Config{
		Hostname: "web-1", DataDir: filepath.Join(dir, "data"), MetricsListen: "127.0.0.1:0",
		Inputs: []e2e.Input{{Paths: []string{"/var/log/nginx/access.log"}, Format: "combined"},
			{Paths: []string{"/var/log/nginx/custom*.log"}, Format: e2e.CustomFormat}},
		Kafka: &e2e.KafkaSink{Brokers: []string{"127.0.0.1:9"}, Topic: "nginx-access", Key: "remote_addr", Compression: "zstd"},
		S3:    &e2e.S3Sink{Bucket: "logs", Region: "us-east-1", Endpoint: "http://127.0.0.1:9", Prefix: "nginx/dt=%Y-%m-%d/", BatchMaxAge: "5m"},
	}).Render()

	t.Run("validate good config", func(t *testing.T) {
		var outs []string
		for _, flag := range []string{"-c", "--config"} {
			out, errOut, code := runBin(t, nil, "validate", flag, writeFile(t, dir, "good.toml", good))
			if code != 0 {
				t.Fatalf("validate %s good.toml: exit %d, stderr:\n%s", flag, code, errOut)
			}
			outs = append(outs, out+errOut)
		}
		for _, out := range outs {
			if !regexp.MustCompile(`(?i)\bok\b`).MatchString(out) {
				// The contract: "like nginx -t: exit 0 and say OK" (nginx -t
				// prints "syntax is ok" and "test is successful").
				t.Errorf("validate good.toml: exit 0 but does not say OK (contract):\n%s", out)
			}
		}
	})

	for _, tc := range []struct {
		name, text string
		want       []string // each must be in stderr
	}{
		{"unknown key", strings.Replace(good, "topic = ", "topics = \"x\"\ntopic = ", 1),
			[]string{"sinks.kafka.topics", ":" + itoa(lineOf(strings.Replace(good, "topic = ", "topics = \"x\"\ntopic = ", 1), "topics = ")) + ":"}},
		{"two unknown keys", strings.Replace(strings.Replace(good, "[agent]\n", "[agent]\nhostnmae = \"x\"\n", 1), "bucket = ", "buckt = \"y\"\nbucket = ", 1),
			[]string{"agent.hostnmae", "sinks.s3.buckt"}},
		{"missing topic", regexp.MustCompile(`(?m)^topic = .*\n`).ReplaceAllString(good, ""),
			[]string{"sinks.kafka.topic"}},
		{"missing topic and bad compression", strings.Replace(regexp.MustCompile(`(?m)^topic = .*\n`).ReplaceAllString(good, ""), `"zstd"`, `"brotli"`, 1),
			[]string{"sinks.kafka.topic", "sinks.kafka.compression"}},
		{"bad duration", strings.Replace(good, `batch_max_age = "5m"`, `batch_max_age = "5 minutes"`, 1),
			[]string{"batch_max_age"}},
		{"TOML syntax error", strings.Replace(good, `hostname = "web-1"`, `hostname = web-1`, 1),
			[]string{":" + itoa(lineOf(good, `hostname = "web-1"`)) + ":"}},
	} {
		t.Run("validate "+tc.name, func(t *testing.T) {
			path := writeFile(t, dir, "bad.toml", tc.text)
			out, errOut, code := runBin(t, nil, "validate", "-c", path)
			if code == 0 {
				t.Fatalf("validate: exit 0 for a bad config; stdout:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("validate: stderr does not name %q:\n%s", w, errOut)
				}
			}
		})
	}

	t.Run("validate missing file", func(t *testing.T) {
		_, errOut, code := runBin(t, nil, "validate", "-c", filepath.Join(dir, "nope.toml"))
		if code == 0 || !strings.Contains(errOut, "nope.toml") {
			t.Errorf("exit %d, stderr %q; want non-zero naming the file", code, errOut)
		}
	})

	t.Run("version", func(t *testing.T) {
		out, errOut, code := runBin(t, nil, "version")
		if code != 0 || !strings.Contains(out, "nginx-shipper") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("version: exit %d, stdout %q, stderr %q; want 0 with the name and %s", code, out, errOut, runtime.Version())
		}
	})

	t.Run("parse garbage", func(t *testing.T) {
		good := `127.0.0.1 - - [25/Nov/2026:16:32:04 +0100] "GET /seq/1 HTTP/1.1" 200 6 "-" "curl/8.5.0"` + "\n"
		in := good + "this is not an access log line\n" + good + "\n"
		out, errOut, code := runBin(t, []byte(in), "parse", "--format", "combined")
		if code != 1 {
			t.Errorf("parse: exit %d, want 1", code)
		}
		if !regexp.MustCompile(`\bline 2\b`).MatchString(errOut) || !regexp.MustCompile(`\bline 4\b`).MatchString(errOut) {
			t.Errorf("parse: stderr does not name lines 2 and 4:\n%s", errOut)
		}
		if n := strings.Count(out, "\n"); n != 2 {
			t.Errorf("parse: %d events on stdout, want 2:\n%s", n, out)
		}
	})

	t.Run("parse nginx-written lines", func(t *testing.T) {
		n := e2e.StartNginx(t)
		reqs := e2e.Send(t, n.Addr, 0, 300)
		waitLogged(t, reqs, n.AccessLog())
		waitLogged(t, reqs, n.CustomLog())
		host, _ := os.Hostname()
		for _, f := range []struct{ path, format string }{{n.AccessLog(), "combined"}, {n.CustomLog(), e2e.CustomFormat}} {
			for _, viaStdin := range []bool{false, true} {
				args := []string{"parse", "--format", f.format}
				var stdin []byte
				if viaStdin {
					stdin, _ = os.ReadFile(f.path)
				} else {
					args = append(args, f.path)
				}
				out, errOut, code := runBin(t, stdin, args...)
				if code != 0 {
					t.Fatalf("parse %s (stdin %v): exit %d:\n%s", filepath.Base(f.path), viaStdin, code, errOut)
				}
				var evs []e2e.Event
				sc := bufio.NewScanner(strings.NewReader(out))
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					ev, err := e2e.DecodeEvent(sc.Bytes())
					if err != nil {
						t.Fatal(err)
					}
					if viaStdin {
						ev.File = f.path // for the stream name; parse names stdin "-"
					}
					evs = append(evs, ev)
				}
				if len(evs) != len(reqs) {
					t.Fatalf("parse %s: %d events, want %d", f.path, len(evs), len(reqs))
				}
				for _, ev := range evs {
					for _, e := range e2e.CheckFields(ev, reqs[ev.Seq], host) {
						t.Errorf("parse %s seq %d: %s", filepath.Base(f.path), ev.Seq, e)
					}
				}
				if !viaStdin {
					checkEventsHost(t, "parse", evs, reqs, true, host)
				}
			}
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }
