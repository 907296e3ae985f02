package parser

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

func errEvent(t *testing.T, opts Options, line string) (map[string]any, *Result) {
	t.Helper()
	p := mustCompile(t, "error", opts)
	r := new(Result)
	out, err := p.Parse(nil, []byte(line), Meta{Host: "h"}, r)
	if err != nil {
		t.Fatalf("Parse(%q): %v", line, err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	return m, r
}

func TestErrorLogLines(t *testing.T) {
	utc := Options{Timezone: time.UTC}
	cases := []struct {
		name, line string
		want       map[string]any
	}{
		{"404 with full context",
			`2026/12/02 03:01:02 [error] 4711#4712: *17 open() "/srv/www/missing.html" failed (2: No such file or directory), client: 192.0.2.10, server: shop.example, request: "GET /missing.html?a=1,2 HTTP/1.1", host: "shop.example:8443", referrer: "https://shop.example/list, page 2"`,
			map[string]any{
				"timestamp": "2026-12-02T03:01:02.000+00:00", "level": "error", "pid": 4711.0, "tid": 4712.0, "connection": 17.0,
				"message":     `open() "/srv/www/missing.html" failed (2: No such file or directory)`,
				"remote_addr": "192.0.2.10", "server_name": "shop.example",
				"request": "GET /missing.html?a=1,2 HTTP/1.1", "request_method": "GET", "request_uri": "/missing.html?a=1,2", "server_protocol": "HTTP/1.1",
				"nginx_host": "shop.example:8443", "request_headers": map[string]any{"referer": "https://shop.example/list, page 2"},
				"upstream": nil, "subrequest": nil, "truncated": nil,
			}},
		{"upstream timed out, message with commas and colons",
			`2026/12/02 03:01:04 [error] 9#9: *3 upstream timed out (110: Connection timed out, really: yes) while reading response header from upstream, client: 2001:db8::7, server: api.example, request: "POST /v1/orders HTTP/2.0", upstream: "http://[2001:db8::99]:8080/v1/orders", host: "api.example"`,
			map[string]any{
				"message":     `upstream timed out (110: Connection timed out, really: yes) while reading response header from upstream`,
				"remote_addr": "2001:db8::7", "upstream": "http://[2001:db8::99]:8080/v1/orders", "nginx_host": "api.example",
				"request_method": "POST", "request_headers": nil,
			}},
		{"unix upstream and subrequest",
			`2026/12/02 03:01:05 [warn] 9#9: *4 an upstream response is buffered to a temporary file, client: 10.1.2.3, server: _, request: "GET /big HTTP/1.1", subrequest: "/auth", upstream: "fastcgi://unix:/run/php/fpm.sock:", host: "x"`,
			map[string]any{"level": "warn", "server_name": "_", "subrequest": "/auth", "upstream": "fastcgi://unix:/run/php/fpm.sock:"}},
		{"no connection id",
			`2026/12/02 03:01:06 [emerg] 1#1: bind() to 0.0.0.0:80 failed (98: Address already in use)`,
			map[string]any{"level": "emerg", "pid": 1.0, "connection": nil, "message": "bind() to 0.0.0.0:80 failed (98: Address already in use)", "remote_addr": nil}},
		{"connection without request: server is the listening address",
			`2026/12/02 03:01:07 [info] 22#22: *90 client timed out (110: Connection timed out) while SSL handshaking, client: 198.51.100.4, server: 0.0.0.0:443`,
			map[string]any{"level": "info", "connection": 90.0, "message": "client timed out (110: Connection timed out) while SSL handshaking", "remote_addr": "198.51.100.4", "server_name": "0.0.0.0:443"}},
		{"scanner request line with any method case, message quotes",
			`2026/12/02 03:01:08 [info] 22#22: *91 client sent invalid method while reading client request line, client: 203.0.113.5, server: _, request: "geti /x HTTP/1.1"`,
			map[string]any{"request_method": "geti", "request_uri": "/x"}},
		{"message ends in a quote, no context",
			`2026/12/02 03:01:09 [notice] 7#7: signal process started: "reload"`,
			map[string]any{"level": "notice", "message": `signal process started: "reload"`, "connection": nil}},
		{"empty server name",
			`2026/12/02 03:01:10 [error] 7#7: *5 limiting requests, excess: 5.120 by zone "one", client: 192.0.2.1, server: , request: "GET / HTTP/1.1", host: "h"`,
			map[string]any{"message": `limiting requests, excess: 5.120 by zone "one"`, "remote_addr": "192.0.2.1", "server_name": nil, "nginx_host": "h"}},
		{"debug level",
			`2026/12/02 03:01:11 [debug] 7#7: *5 http finalize request: 0, "/?" a:1, c:1`,
			map[string]any{"level": "debug", "message": `http finalize request: 0, "/?" a:1, c:1`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := errEvent(t, utc, tc.line)
			wantFields(t, m, tc.want)
		})
	}
}

func TestErrorLogTimezone(t *testing.T) {
	line := `2026/07/01 12:00:00 [error] 1#1: x`
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	m, r := errEvent(t, Options{Timezone: berlin}, line)
	if m["timestamp"] != "2026-07-01T12:00:00.000+02:00" {
		t.Errorf("summer in Berlin: %v", m["timestamp"])
	}
	if want := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC); !r.Time.Equal(want) {
		t.Errorf("Result.Time %v, want %v", r.Time, want)
	}
	m, _ = errEvent(t, Options{Timezone: berlin}, `2026/01/15 12:00:00 [error] 1#1: x`)
	if m["timestamp"] != "2026-01-15T12:00:00.000+01:00" {
		t.Errorf("winter in Berlin: %v", m["timestamp"])
	}
	m, _ = errEvent(t, Options{Timezone: time.UTC}, line)
	if m["timestamp"] != "2026-07-01T12:00:00.000+00:00" {
		t.Errorf("UTC: %v", m["timestamp"])
	}
}

func TestErrorLogRejects(t *testing.T) {
	p := mustCompile(t, "error", Options{Timezone: time.UTC})
	for _, tc := range []struct{ line, field string }{
		{`127.0.0.1 - - [02/Dec/2026:03:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"`, "time_error"},
		{`2026/13/02 03:01:02 [error] 1#1: x`, "time_error"},
		{`2026/12/02 03:01:02 [fatal] 1#1: x`, "level"},
		{`2026/12/02 03:01:02 [error] 1: x`, "pid"},
		{`2026/12/02 03:01:02 [error] 1#x: x`, "tid"},
		{`2026/12/02 03:01:02`, "time_error"},
		{"\x00\xff binary", "time_error"},
	} {
		_, err := p.Parse(nil, []byte(tc.line), Meta{}, new(Result))
		pe, ok := err.(*ParseError)
		if !ok || pe.Field != tc.field {
			t.Errorf("%q: error %v, want one naming %s", tc.line, err, tc.field)
		}
	}
}

// A line nginx cut at NGX_MAX_ERROR_STR is flagged, and the context that
// is there is kept.
func TestErrorLogTruncated(t *testing.T) {
	head := `2026/12/02 03:01:02 [error] 5#5: *8 client intended to send too large body: 99999999 bytes, client: 192.0.2.8, server: up.example, request: "POST /upload?`
	line := head + strings.Repeat("q", maxErrorLine-len(head))
	m, _ := errEvent(t, Options{Timezone: time.UTC}, line)
	wantFields(t, m, map[string]any{
		"truncated":   true,
		"message":     "client intended to send too large body: 99999999 bytes",
		"remote_addr": "192.0.2.8",
		"server_name": "up.example",
		"request":     line[len(head)-len("POST /upload?"):],
	})
	// Longer than nginx writes (lines of another writer joined to it): not cut by nginx.
	m, _ = errEvent(t, Options{Timezone: time.UTC}, `2026/12/02 03:01:02 [error] 5#5: *8 x, client: 192.0.2.8, server: s`+"\n"+strings.Repeat("z", maxErrorLine))
	wantFields(t, m, map[string]any{"truncated": nil, "remote_addr": "192.0.2.8"})
	// One byte shorter: nginx did not cut it.
	m, _ = errEvent(t, Options{Timezone: time.UTC}, line[:maxErrorLine-1])
	if _, ok := m["truncated"]; ok {
		t.Error("a 2046-byte line flagged truncated")
	}
	// Cut inside the host value, after a complete request.
	head = `2026/12/02 03:01:02 [error] 5#5: *8 x, client: 192.0.2.8, server: s, request: "GET / HTTP/1.1", host: "`
	line = head + strings.Repeat("h", maxErrorLine-len(head))
	m, _ = errEvent(t, Options{Timezone: time.UTC}, line)
	wantFields(t, m, map[string]any{"truncated": true, "request": "GET / HTTP/1.1", "nginx_host": strings.Repeat("h", maxErrorLine-len(head))})
}

// Joined continuation lines: the context is at the end of the last line.
func TestErrorLogMultilineEvent(t *testing.T) {
	p := mustCompile(t, "error", Options{Timezone: time.UTC})
	if !p.Multiline() || mustCompile(t, "combined", Options{}).Multiline() {
		t.Fatal("Multiline: want true for error only")
	}
	lines := []string{
		`2026/12/02 03:01:02 [error] 5#5: *8 FastCGI sent in stderr: "PHP message: PHP Fatal error:  Uncaught Exception: boom in /srv/app/index.php:3`,
		`Stack trace:`,
		`#0 {main}`,
		`  thrown in /srv/app/index.php on line 3" while reading response header from upstream, client: 192.0.2.9, server: app, request: "GET / HTTP/1.1", upstream: "fastcgi://unix:/run/php.sock:", host: "app"`,
	}
	for i, l := range lines {
		if p.StartsEvent([]byte(l)) != (i == 0) {
			t.Errorf("StartsEvent(line %d) = %v", i, !(i == 0))
		}
	}
	if !mustCompile(t, "combined", Options{}).StartsEvent([]byte("anything")) {
		t.Error("an access-log line does not start an event")
	}
	m, _ := errEvent(t, Options{Timezone: time.UTC}, strings.Join(lines, "\n"))
	wantFields(t, m, map[string]any{
		"message":  "FastCGI sent in stderr: \"PHP message: PHP Fatal error:  Uncaught Exception: boom in /srv/app/index.php:3\nStack trace:\n#0 {main}\n  thrown in /srv/app/index.php on line 3\" while reading response header from upstream",
		"upstream": "fastcgi://unix:/run/php.sock:",
	})
}

// A line another writer appended after a complete event: the context is
// read where it is, the message keeps every byte.
func TestErrorLogContextOnAnEarlierLine(t *testing.T) {
	line := "2026/12/02 03:01:02 [error] 5#5: *8 boom, client: 192.0.2.9, server: app, request: \"GET / HTTP/1.1\", host: \"app\"\nPHP Warning: stray, with, commas"
	m, _ := errEvent(t, Options{Timezone: time.UTC}, line)
	wantFields(t, m, map[string]any{
		"remote_addr": "192.0.2.9", "server_name": "app", "nginx_host": "app", "request_method": "GET",
		"message": line[len("2026/12/02 03:01:02 [error] 5#5: *8 "):],
	})
}

// The stream module's context: client, server (the listening address),
// upstream, and the proxy's byte counters, named as the stream access log
// names them.
func TestErrorLogStreamContext(t *testing.T) {
	m, _ := errEvent(t, Options{Timezone: time.UTC}, `2026/12/02 03:01:02 [error] 5#5: *8 connect() failed (111: Connection refused) while connecting to upstream, client: 192.0.2.9, server: 0.0.0.0:5432, upstream: "10.0.0.7:5432", bytes from/to client:0/0, bytes from/to upstream:0/0`)
	wantFields(t, m, map[string]any{
		"message": "connect() failed (111: Connection refused) while connecting to upstream", "remote_addr": "192.0.2.9",
		"server_name": "0.0.0.0:5432", "upstream": "10.0.0.7:5432",
		"bytes_received": 0.0, "bytes_sent": 0.0, "upstream_bytes_received": 0.0, "upstream_bytes_sent": 0.0,
	})
	m, _ = errEvent(t, Options{Timezone: time.UTC}, `2026/12/02 03:01:02 [info] 5#5: *9 udp upstream timed out while proxying connection, udp client: [2001:db8::9]:5353, server: [::]:53, upstream: "[2001:db8::53]:53", bytes from/to client:120/0, bytes from/to upstream:0/120`)
	wantFields(t, m, map[string]any{
		"message": "udp upstream timed out while proxying connection", "remote_addr": "[2001:db8::9]:5353", "server_name": "[::]:53",
		"bytes_received": 120.0, "bytes_sent": 0.0, "upstream_bytes_received": 0.0, "upstream_bytes_sent": 120.0,
	})
	// Counters in the message itself, not a trailer: left in the message.
	m, _ = errEvent(t, Options{Timezone: time.UTC}, `2026/12/02 03:01:02 [info] 5#5: *9 client disconnected, bytes from/to client:5/7, bytes from/to upstream:x/1`)
	wantFields(t, m, map[string]any{"bytes_received": nil, "message": "client disconnected, bytes from/to client:5/7, bytes from/to upstream:x/1"})
}

func TestErrorLogFieldsAndKey(t *testing.T) {
	p := mustCompile(t, "error", Options{KeyField: "remote_addr"})
	want := "timestamp level pid tid connection message remote_addr server_name request request_method request_uri server_protocol subrequest upstream nginx_host request_headers.referer " +
		"bytes_received bytes_sent upstream_bytes_received upstream_bytes_sent truncated"
	if got := strings.Join(p.Fields(), " "); got != want {
		t.Errorf("Fields:\n got %s\nwant %s", got, want)
	}
	if p.Format() != errorLogFormat {
		t.Errorf("Format %q", p.Format())
	}
	r := new(Result)
	if _, err := p.Parse(nil, []byte(`2026/12/02 03:01:02 [error] 5#5: *8 x, client: 192.0.2.8, server: s`), Meta{}, r); err != nil || string(r.Key) != "192.0.2.8" {
		t.Errorf("key %q, err %v", r.Key, err)
	}
	if _, ok := Builtin("error"); !ok {
		t.Error(`Builtin("error") unknown`)
	}
}

func TestErrorLogInvalidUTF8(t *testing.T) {
	m, _ := errEvent(t, Options{Timezone: time.UTC}, "2026/12/02 03:01:02 [info] 5#5: *8 client sent invalid header line: \"\xff\xfe\", client: 192.0.2.8, server: s")
	wantFields(t, m, map[string]any{"invalid_utf8": true, "message": "client sent invalid header line: \"\ufffd\ufffd\""})
}

var errorBenchLine = []byte(`2026/12/02 03:01:04 [error] 2481#2481: *81237 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 203.0.113.195, server: shop.example.com, request: "GET /api/v1/products/12345?ref=home HTTP/1.1", upstream: "http://10.0.0.5:8080/api/v1/products/12345?ref=home", host: "shop.example.com", referrer: "https://shop.example.com/catalog/shoes?page=2"`)

// BenchmarkParseError: one error.log line with full context, parsed and
// encoded into a reused buffer; lines/s per core = 1e9 / ns/op.
func BenchmarkParseError(b *testing.B) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		loc = time.UTC
	}
	p := mustCompile(b, "error", Options{Timezone: loc, KeyField: "remote_addr"})
	meta := Meta{Host: "web-1", File: "/var/log/nginx/error.log", Offset: 123456}
	var r Result
	dst, err := p.Parse(nil, errorBenchLine, meta, &r)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(errorBenchLine)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		dst, err = p.Parse(dst[:0], errorBenchLine, meta, &r)
		if err != nil {
			b.Fatal(err)
		}
	}
	// The CPU this process used, not the wall clock: on a shared machine
	// the rate per core is lines / CPU seconds.
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "lines/cpu-s")
	}
}

// cpuTime is the user and system CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestParseErrorDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation")
	}
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		loc = time.UTC
	}
	p := mustCompile(t, "error", Options{Timezone: loc, KeyField: "remote_addr"})
	trunc := append([]byte(`2026/12/02 03:01:02 [error] 5#5: *8 x, client: 192.0.2.8, server: s, request: "GET /`), strings.Repeat("a", 2000)...)[:maxErrorLine]
	for _, line := range [][]byte{errorBenchLine, trunc} {
		var r Result
		dst, err := p.Parse(nil, line, Meta{}, &r)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { dst, _ = p.Parse(dst[:0], line, Meta{}, &r) }); n != 0 {
			t.Errorf("%d allocations per line", int(n))
		}
	}
}

// FuzzParseError: whatever the bytes (joined lines included), no panic,
// and every event is valid JSON.
func FuzzParseError(f *testing.F) {
	f.Add(errorBenchLine)
	f.Add([]byte("2026/12/02 03:01:02 [error] 5#5: *8 a\nb, client: , server: , request: \""))
	f.Add([]byte(`2026/12/02 03:01:02 [error] 5#5: *8 , client: x, server: y, request: "", host: "", referrer: ""`))
	p := mustCompile(f, "error", Options{Timezone: time.UTC})
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Result
		out, err := p.Parse(nil, line, Meta{Host: "web-1"}, &r)
		checkEvent(t, out, err, line)
		if err == nil && !p.StartsEvent(line) {
			t.Fatalf("parsed a line that does not start an event: %q", line)
		}
	})
}
