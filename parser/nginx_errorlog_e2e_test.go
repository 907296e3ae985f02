package parser

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
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

// errorLogConf makes nginx write the error lines SREs look for first: a
// missing file, an upstream that refuses and one that never answers, a body
// too large, a bad request, an SSL handshake failure and too few
// worker_connections.
const errorLogConf = `
daemon off;
master_process on;
worker_processes 1;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/logs/error.log info;
events { worker_connections 16; }
http {
    access_log off;
    client_body_temp_path @PREFIX@/tmp/body;
    proxy_temp_path @PREFIX@/tmp/proxy;
    fastcgi_temp_path @PREFIX@/tmp/fastcgi;
    uwsgi_temp_path @PREFIX@/tmp/uwsgi;
    scgi_temp_path @PREFIX@/tmp/scgi;
    client_max_body_size 16;
    server {
        listen 127.0.0.1:@PORT@;
        listen 127.0.0.1:@TLS@ ssl;
        ssl_certificate @PREFIX@/cert.pem;
        ssl_certificate_key @PREFIX@/key.pem;
        server_name errors.test;
        root @PREFIX@/html;
        location /refused/ { proxy_pass http://127.0.0.1:@CLOSED@; }
        location /slow/ { proxy_pass http://127.0.0.1:@SILENT@; proxy_read_timeout 300ms; }
        location /upload { proxy_pass http://127.0.0.1:@CLOSED@; }
    }
}
`

// writeTestCert writes a self-signed certificate and its key for nginx.
func writeTestCert(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "errors.test"}, DNSNames: []string{"errors.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o644)
}

// TestRealNginxErrorLog runs the installed nginx, provokes each error, and
// parses the error.log it wrote with the built-in "error" format.
func TestRealNginxErrorLog(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := nginxBinary(t)
	prefix := t.TempDir()
	for _, d := range []string{prefix, filepath.Dir(prefix)} {
		os.Chmod(d, 0o755) // workers run as nobody when the test runs as root
	}
	for _, d := range []string{"logs", "tmp", "html"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeTestCert(t, prefix)
	// An upstream that accepts and never answers: "upstream timed out".
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	port := freePorts(t, 3)
	conf := strings.NewReplacer("@PREFIX@", prefix, "@PORT@", strconv.Itoa(port), "@TLS@", strconv.Itoa(port+1),
		"@CLOSED@", strconv.Itoa(port+2), "@SILENT@", strconv.Itoa(silent.Addr().(*net.TCPAddr).Port)).Replace(errorLogConf)
	if err := os.WriteFile(filepath.Join(prefix, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", prefix, "-c", filepath.Join(prefix, "nginx.conf"))
	cmd.Env = append(os.Environ(), "TZ=Europe/Berlin") // error.log times are local
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()
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
	send := func(a string, raw string) {
		t.Helper()
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte(raw))
		var buf [4096]byte
		for { // until nginx closes
			if _, err := c.Read(buf[:]); err != nil {
				return
			}
		}
	}
	get := func(uri string, hdr ...string) string {
		return "GET " + uri + " HTTP/1.1\r\nHost: errors.test\r\n" + strings.Join(append(hdr, ""), "\r\n") + "Connection: close\r\n\r\n"
	}
	send(addr, get("/missing.html", "Referer: https://errors.test/list?a=1, b=2"))
	send(addr, get("/refused/x?q=1"))
	send(addr, get("/slow/y"))
	send(addr, "POST /upload HTTP/1.1\r\nHost: errors.test\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"+strings.Repeat("x", 100))
	send(addr, "geti /x HTTP/1.1\r\nHost: errors.test\r\n\r\n")
	send("127.0.0.1:"+strconv.Itoa(port+1), "\x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x09\x09garbage-not-a-client-hello....................\r\n")
	// More idle connections than worker_connections.
	var idle []net.Conn
	for i := 0; i < 24; i++ {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			idle = append(idle, c)
		}
	}
	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			b, _ := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
			if bytes.Contains(b, []byte(what)) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx wrote no %q:\n%s", what, b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLog("worker_connections are not enough")
	for _, c := range idle {
		c.Close()
	}
	cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-exited:
		stopped = true
	case <-time.After(30 * time.Second):
		t.Fatalf("nginx did not stop\n%s", stderr.String())
	}

	data, err := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	p := mustCompile(t, "error", Options{Timezone: berlin})
	lines, offsets := readLines(data)
	var evs []map[string]any
	var r Result
	for i, line := range lines {
		if !p.StartsEvent(line) {
			t.Errorf("line %d does not start an event: %q", i+1, line)
			continue
		}
		out, err := p.Parse(nil, line, Meta{Host: "web-1", File: "error.log", Offset: offsets[i]}, &r)
		if err != nil {
			t.Errorf("line %d: %v\n%q", i+1, err, line)
			continue
		}
		if d := time.Since(r.Time); d < -time.Minute || d > 10*time.Minute {
			t.Errorf("line %d: time %v is %v from now: the zone is wrong", i+1, r.Time, d)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("line %d: %v\n%s", i+1, err, out)
		}
		evs = append(evs, m)
	}
	find := func(msg string) map[string]any {
		t.Helper()
		for _, m := range evs {
			if s, _ := m["message"].(string); strings.Contains(s, msg) {
				return m
			}
		}
		t.Errorf("no event with message %q in:\n%s", msg, data)
		return map[string]any{}
	}
	check := func(m map[string]any, want map[string]any) {
		t.Helper()
		for k, w := range want {
			g := m[k]
			if k == "request_headers" {
				g = fmt.Sprint(g)
				w = fmt.Sprint(w)
			}
			if fmt.Sprint(g) != fmt.Sprint(w) {
				t.Errorf("%s = %v, want %v\nevent %v", k, g, w, m)
			}
		}
	}
	check(find(`/missing.html" failed (2: No such file or directory)`), map[string]any{
		"level": "error", "remote_addr": "127.0.0.1", "server_name": "errors.test", "request_method": "GET",
		"request_uri": "/missing.html", "nginx_host": "errors.test",
		"request_headers": map[string]any{"referer": "https://errors.test/list?a=1, b=2"},
	})
	check(find("connect() failed (111: Connection refused) while connecting to upstream"), map[string]any{
		"level": "error", "request_uri": "/refused/x?q=1", "upstream": "http://127.0.0.1:" + strconv.Itoa(port+2) + "/refused/x?q=1",
	})
	check(find("upstream timed out (110: Connection timed out) while reading response header from upstream"), map[string]any{
		"level": "error", "request_uri": "/slow/y",
	})
	check(find("client intended to send too large body: 100 bytes"), map[string]any{
		"level": "error", "request_method": "POST", "request_uri": "/upload",
	})
	check(find("client sent invalid method"), map[string]any{"level": "info", "remote_addr": "127.0.0.1"})
	ssl := find("SSL_do_handshake() failed")
	check(ssl, map[string]any{"level": "info", "remote_addr": "127.0.0.1", "server_name": "127.0.0.1:" + strconv.Itoa(port+1)})
	// warn with ", reusing connections" (idle connections closed), alert
	// when none could be reused.
	if lv := find("worker_connections are not enough")["level"]; lv != "warn" && lv != "alert" {
		t.Errorf("worker_connections: level %v, want warn or alert", lv)
	}
	for _, m := range evs {
		if _, ok := m["pid"].(float64); !ok {
			t.Errorf("no pid: %v", m)
		}
	}
	t.Logf("%d error.log events from a live nginx", len(evs))
}

// TestRealNginxErrorLogOfTrickyRequests: every line nginx wrote to its
// error log (level info) while answering TestRealNginx's tricky requests
// (TLS to a plain port, garbage, control bytes, 414, refused upstreams)
// parses with the error format.
func TestRealNginxErrorLogOfTrickyRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	logs := runNginx(t)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(logs), "error.log"))
	if err != nil {
		t.Fatal(err)
	}
	p := mustCompile(t, "error", Options{})
	lines, offsets := readLines(data)
	levels := map[string]int{}
	var r Result
	for i, line := range lines {
		out, err := p.Parse(nil, line, Meta{Host: "web-1", Offset: offsets[i]}, &r)
		if err != nil {
			t.Errorf("line %d: %v\n%q", i+1, err, line)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		levels[fmt.Sprint(m["level"])]++
		if c, ok := m["connection"]; ok && bytes.Contains(line, []byte(", client: ")) && m["remote_addr"] != "127.0.0.1" {
			t.Errorf("line %d (connection %v): remote_addr %v\n%s", i+1, c, m["remote_addr"], line)
		}
	}
	if len(lines) < 5 {
		t.Fatalf("nginx wrote only %d error lines", len(lines))
	}
	t.Logf("%d error.log lines by level: %v", len(lines), levels)
}
