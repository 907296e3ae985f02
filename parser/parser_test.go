package parser

import (
	"encoding/json"
	"errors"
	"testing"
)

func mustCompile(t testing.TB, format string, opts Options) *Parser {
	t.Helper()
	p, err := Compile(format, opts)
	if err != nil {
		t.Fatalf("Compile(%q): %v", format, err)
	}
	return p
}

var testMeta = Meta{Host: "web-1", File: "/var/log/nginx/access.log", Offset: 42}

func TestParseCases(t *testing.T) {
	cases := []struct {
		name, format string
		esc          Escape
		line         string
		want         string
	}{
		{"combined", "combined", EscapeDefault,
			`127.0.0.1 - - [25/Nov/2026:15:04:05 +0100] "GET /a\x22b?x=%20 HTTP/1.1" 200 612 "-" "curl/8.0 \x5C \xE2\x82\xAC"`,
			`{"remote_addr":"127.0.0.1","timestamp":"2026-11-25T15:04:05.000+01:00","request":"GET /a\"b?x=%20 HTTP/1.1","request_method":"GET","request_uri":"/a\"b?x=%20","server_protocol":"HTTP/1.1","status":200,"body_bytes_sent":612,"request_headers":{"user_agent":"curl/8.0 \\ €"},"host":"web-1","log_file":"/var/log/nginx/access.log","log_offset":42}`},
		{"garbage request", "combined", EscapeDefault,
			`127.0.0.1 - bob smith [25/Nov/2026:15:04:05 +0000] "\x16\x03\x01" 400 0 "-" "-"`,
			`{"remote_addr":"127.0.0.1","remote_user":"bob smith","timestamp":"2026-11-25T15:04:05.000+00:00","request":"\u0016\u0003\u0001","status":400,"body_bytes_sent":0,"host":"web-1","log_file":"/var/log/nginx/access.log","log_offset":42}`},
		{"invalid utf8", "combined", EscapeDefault,
			`::1 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.0" 200 1 "-" "\xFF"`,
			`{"remote_addr":"::1","timestamp":"2026-11-25T15:04:05.000+00:00","request":"GET / HTTP/1.0","request_method":"GET","request_uri":"/","server_protocol":"HTTP/1.0","status":200,"body_bytes_sent":1,"request_headers":{"user_agent":"\ufffd"},"host":"web-1","log_file":"/var/log/nginx/access.log","log_offset":42,"invalid_utf8":true}`},
		{"escape none quotes", "combined", EscapeNone,
			`1.2.3.4 - - [25/Nov/2026:15:04:05 +0000] "GET /a" 200 b HTTP/1.1" 200 5 "r" "ua "with" quotes"`,
			`{"remote_addr":"1.2.3.4","timestamp":"2026-11-25T15:04:05.000+00:00","request":"GET /a\" 200 b HTTP/1.1","request_method":"GET","request_uri":"/a\" 200 b","server_protocol":"HTTP/1.1","status":200,"body_bytes_sent":5,"request_headers":{"referer":"r","user_agent":"ua \"with\" quotes"},"host":"web-1","log_file":"/var/log/nginx/access.log","log_offset":42}`},
		{"upstream lists", `$remote_addr $upstream_addr $upstream_status $upstream_response_time $msec $host`, EscapeDefault,
			`10.0.0.1 127.0.0.1:81, 127.0.0.1:82 : unix:/s 502, 502 : 200 0.001, - : 0.010 1764083045.123 example.com`,
			`{"remote_addr":"10.0.0.1","upstream_addr":["127.0.0.1:81","127.0.0.1:82","unix:/s"],"upstream_status":[502,502,200],"upstream_response_time":[0.001,null,0.010],"timestamp":"2025-11-25T15:04:05.123+00:00","msec":1764083045.123,"nginx_host":"example.com","host":"web-1","log_file":"/var/log/nginx/access.log","log_offset":42}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, tc.format, Options{Escape: tc.esc})
			var r Result
			got, err := p.Parse([]byte("prefix:"), []byte(tc.line), testMeta, &r)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if string(got[:7]) != "prefix:" {
				t.Fatalf("dst prefix lost: %q", got)
			}
			got = got[7:]
			if string(got) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("invalid JSON: %s", got)
			}
		})
	}
}

func TestParseErrorPosition(t *testing.T) {
	p := mustCompile(t, "combined", Options{})
	line := `127.0.0.1 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 2x0 612 "-" "x"`
	dst, err := p.Parse([]byte("keep"), []byte(line), testMeta, &Result{})
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("want *ParseError, got %v", err)
	}
	if pe.Field != "status" || pe.Pos != 60 {
		t.Errorf("got field %q pos %d (%v), want status at 60", pe.Field, pe.Pos, err)
	}
	if string(dst) != "keep" {
		t.Errorf("dst changed on error: %q", dst)
	}
}
