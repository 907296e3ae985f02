package parser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// needBinary skips the test when a binary is missing, or fails it when
// NGINX_SHIPPER_REQUIRE_E2E=1.
func needBinary(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if _, err2 := os.Stat("/usr/sbin/" + name); err2 == nil {
			return
		}
		if os.Getenv("NGINX_SHIPPER_REQUIRE_E2E") == "1" {
			t.Fatalf("%s not found and NGINX_SHIPPER_REQUIRE_E2E=1: %v", name, err)
		}
		t.Skipf("%s not found (install it, e.g. apt-get install -y %s): %v", name, name, err)
	}
}

// freePorts finds n consecutive free ports on 127.0.0.1.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + rand.IntN(40000)
		ok := true
		var ls []net.Listener
		for i := 0; i < n && ok; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}

// TestRealNginx runs the installed nginx with testdata/nginx/nginx.conf.in,
// sends it the tricky requests of requests.py, and parses every line of
// every log it wrote with the format read from the same config: each must
// parse into valid JSON.
func TestRealNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	needBinary(t, "nginx")
	needBinary(t, "python3")
	out := t.TempDir()
	cmd := exec.Command("bash", "testdata/nginx/gen.sh")
	cmd.Env = append(os.Environ(), "OUT="+out, "PORT="+strconv.Itoa(freePorts(t, 3)))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, b)
	}
	events := 0
	for _, g := range goldenLogs {
		p := compileFromConf(t, g.format)
		data, err := os.ReadFile(filepath.Join(out, g.log+".log"))
		if err != nil {
			t.Fatal(err)
		}
		lines, offsets := readLines(data)
		if len(lines) < 25 {
			t.Errorf("%s: only %d lines", g.log, len(lines))
		}
		var r Result
		for i, line := range lines {
			ev, err := p.Parse(nil, line, Meta{Host: "web-1", File: g.log, Offset: offsets[i]}, &r)
			if err != nil {
				t.Errorf("%s line %d: %v\n%q", g.log, i+1, err, line)
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(ev, &m); err != nil {
				t.Errorf("%s line %d: %v\n%s", g.log, i+1, err, ev)
				continue
			}
			events++
			if g.log == "upstream" && bytes.Contains(line, []byte("/retry/x")) {
				got := fmt.Sprint(m["upstream_status"], m["status"])
				if got != "[502 502] 502" {
					t.Errorf("retry: upstream_status, status = %s, want [502 502] 502\n%s", got, ev)
				}
			}
			if strings.HasPrefix(g.log, "json") && bytes.Contains(line, []byte("quoted")) {
				ua, _ := m["request_headers"].(map[string]any)["user_agent"].(string)
				if ua != `Mozilla/5.0 "quoted" \back\slash` {
					t.Errorf("%s: user agent %q", g.log, ua)
				}
			}
		}
	}
	t.Logf("%d events from a live nginx", events)
}
