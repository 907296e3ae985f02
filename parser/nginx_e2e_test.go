package parser

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var updateNginxLogs = flag.Bool("update-nginx-logs", false, "TestRealNginx: copy the logs nginx wrote to testdata/nginx (and samples to ../testdata)")

// nginxBinary returns the nginx to run. A missing nginx skips the test, or
// fails it when NGINX_SHIPPER_REQUIRE_E2E=1.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("NGINX_SHIPPER_REQUIRE_E2E") == "1" {
		t.Fatal("nginx not found and NGINX_SHIPPER_REQUIRE_E2E=1 (apt-get install -y nginx)")
	}
	t.Skip("nginx not found: install it (apt-get install -y nginx) to run this test")
	return ""
}

// freePorts finds n consecutive free ports on 127.0.0.1.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + rand.IntN(40000)
		ok := true
		var ls []net.Listener
		for i := 0; i < n; i++ {
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

// runNginx starts nginx with testdata/nginx/nginx.conf.in in a fresh
// prefix, sends it the requests of nginxRequests, stops it gracefully and
// returns the directory holding the access logs it wrote.
func runNginx(t *testing.T) string {
	t.Helper()
	bin := nginxBinary(t)
	prefix := t.TempDir()
	// nginx workers run as nobody when the test runs as root: let them in.
	for _, d := range []string{prefix, filepath.Dir(prefix)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"logs", "tmp", "html/static", "formats"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(prefix, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite("html/static/a.txt", []byte("static file\n"))
	mustWrite("html/static/caf\xc3\xa9.txt", []byte("caf\xc3\xa9\n"))
	inc, err := os.ReadFile("testdata/nginx/formats/included.conf")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite("formats/included.conf", inc)
	tmpl, err := os.ReadFile("testdata/nginx/nginx.conf.in")
	if err != nil {
		t.Fatal(err)
	}
	port := freePorts(t, 3)
	conf := strings.NewReplacer(
		"@PREFIX@", prefix,
		"@PORT@", strconv.Itoa(port),
		"@BACKEND@", strconv.Itoa(port+1),
		"@CLOSED@", strconv.Itoa(port+2), // nothing listens there
	).Replace(string(tmpl))
	mustWrite("nginx.conf", []byte(conf))

	cmd := exec.Command(bin, "-p", prefix, "-c", filepath.Join(prefix, "nginx.conf"))
	cmd.Env = append(os.Environ(), "TZ=Europe/Berlin") // $time_local with an offset
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("nginx exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s: %v\n%s", addr, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, rq := range nginxRequests() {
		if err := rq.send(addr); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	cmd.Process.Signal(syscall.SIGQUIT) // graceful: finishes and flushes the logs
	select {
	case <-exited:
		stopped = true
	case <-time.After(30 * time.Second):
		t.Fatalf("nginx did not stop\n%s", stderr.String())
	}
	return filepath.Join(prefix, "logs")
}

type nginxRequest struct {
	raw       []byte
	halfClose bool // shut our side after sending (nginx waits otherwise)
	noRead    bool // close without reading: the client gives up
}

func (rq nginxRequest) send(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(rq.raw); err != nil {
		return err
	}
	if rq.halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	if rq.noRead {
		return nil
	}
	_, err = io.Copy(io.Discard, c) // until nginx closes (Connection: close)
	return err
}

func httpReq(method, uri string, headers []string, proto string, body string) nginxRequest {
	var b strings.Builder
	b.WriteString(method + " " + uri)
	if proto != "" {
		b.WriteString(" " + proto)
	}
	b.WriteString("\r\nHost: localhost\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("Connection: close\r\n\r\n" + body)
	return nginxRequest{raw: []byte(b.String())}
}

// nginxRequests are the tricky requests: each on its own connection, its
// bytes reaching nginx exactly as written here.
func nginxRequests() []nginxRequest {
	get := func(uri string, headers ...string) nginxRequest { return httpReq("GET", uri, headers, "HTTP/1.1", "") }
	basic := func(userpass string) string {
		return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(userpass))
	}
	raw := func(s string) nginxRequest { return nginxRequest{raw: []byte(s)} }
	tls := "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
	for i := 0; i < 32; i++ {
		tls += string(rune(i))
	}
	return []nginxRequest{
		get("/text", "User-Agent: curl/8.5.0"),
		httpReq("HEAD", "/text", []string{"User-Agent: curl/8.5.0"}, "HTTP/1.1", ""),
		httpReq("GET", "/text", []string{"User-Agent: old"}, "HTTP/1.0", ""),
		get("/static/a.txt", `User-Agent: Mozilla/5.0 "quoted" \back\slash`, `Referer: http://example.com/a?b="c"`),
		get("/static/caf\xc3\xa9.txt?q=%22hello%20world%22&u=\xe2\x82\xac", "User-Agent: Mozilla/5.0 (X11; Linux x86_64) \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"),
		get("/text", "User-Agent: ", "Referer: "), // empty headers
		get("/text"), // no User-Agent, no Referer
		get("/text", "User-Agent: bad utf8 \xff\xfe \xc3 end", "X-Forwarded-For: 203.0.113.7, 10.0.0.1"),
		get("/text", "User-Agent: tab\there", `X-Custom: a "b" c`),
		httpReq("POST", "/text", []string{"User-Agent: poster", "Content-Type: application/x-www-form-urlencoded"}, "HTTP/1.1", "a=1&b=2"),
		get("/text", basic("bob smith:pw")),
		get("/text", basic(`a"b\c:pw`)),
		get("/"+strings.Repeat("a", 8000), "User-Agent: long"),     // 8 KB URI, fits the buffers
		get("/"+strings.Repeat("b", 9000), "User-Agent: too long"), // 414
		get("/retry/x", "User-Agent: retry"),                       // refused, then 502
		get("/ok/y", "User-Agent: ok", "X-Custom: present"),
		get("/accel/z", "User-Agent: accel"), // internal redirect: " : " lists
		get("/missing", "User-Agent: x"),
		raw(tls + "\r\n\r\n"), // TLS to a plain port
		raw("GARBAGE\r\n\r\n"),
		raw("get /lower HTTP/1.1\r\nHost: x\r\n\r\n"),
		raw("GET /\x01ctl HTTP/1.1\r\nHost: x\r\n\r\n"),
		raw("GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n"),
		{raw: []byte("\r\n\r\n"), halfClose: true}, // empty request line
		raw("GET /text\r\n"),                       // HTTP/0.9
		httpReq("OPTIONS", "*", []string{"User-Agent: opt"}, "HTTP/1.1", ""),
		get("/text?x=1%00y", "User-Agent: json\"\\\x7f", "X-Custom: \xe2\x82\xac"),
		{raw: []byte("GET /text HTTP/1.1\r\nHost: localhost\r\n"), noRead: true}, // the client gives up: 400
	}
}

// TestRealNginx runs the installed nginx with testdata/nginx/nginx.conf.in,
// sends it tricky requests, and parses every line of every log it wrote
// with the format read from the same config: each must parse into valid
// JSON. With -update-nginx-logs it refreshes the committed samples
// (testdata/nginx/gen.sh).
func TestRealNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	logs := runNginx(t)
	events := 0
	for _, g := range goldenLogs {
		p := compileFromConf(t, g.format)
		data, err := os.ReadFile(filepath.Join(logs, g.log+".log"))
		if err != nil {
			t.Fatal(err)
		}
		lines, offsets := readLines(data)
		if len(lines) != len(nginxRequests()) {
			t.Errorf("%s: %d lines for %d requests", g.log, len(lines), len(nginxRequests()))
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
			if bytes.Contains(line, []byte("quoted")) && g.log != "upstream" {
				ua, _ := m["request_headers"].(map[string]any)["user_agent"].(string)
				if ua != `Mozilla/5.0 "quoted" \back\slash` {
					t.Errorf("%s: user agent %q", g.log, ua)
				}
			}
		}
		if *updateNginxLogs {
			if err := os.WriteFile(filepath.Join("testdata/nginx", g.log+".log"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			if sample, ok := map[string]string{"combined": "nginx-combined.log", "main": "nginx-main.log", "json_builtin": "nginx-json.log"}[g.log]; ok {
				if err := os.WriteFile(filepath.Join("../testdata", sample), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	t.Logf("%d events from a live nginx", events)
}
