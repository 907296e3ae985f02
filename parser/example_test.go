package parser_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

func Example() {
	// The agent resolves the input's format setting once, at start-up:
	// a built-in name, "nginx.conf:PATH:NAME" or a log_format string.
	format, escape, fromConf, err := parser.ResolveFormat("combined", os.ReadFile, filepath.Glob)
	if err != nil {
		panic(err)
	}
	if !fromConf {
		escape = parser.EscapeDefault // the input's escape setting
	}
	p, err := parser.Compile(format, parser.Options{Escape: escape, KeyField: "remote_addr"})
	if err != nil {
		panic(err)
	}
	var r parser.Result // one per goroutine, reused
	var buf []byte
	line := []byte(`203.0.113.9 - - [25/Nov/2026:15:04:05 +0100] "GET /a%20b?q=\xE2\x82\xAC HTTP/1.1" 200 612 "-" "curl/8.5.0 \x22x\x22"`)
	buf, err = p.Parse(buf[:0], line, parser.Meta{Host: "web-1", File: "/var/log/nginx/access.log", Offset: 0}, &r)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(buf))
	fmt.Println(r.Time.UTC(), string(r.Key))

	_, err = p.Parse(buf[:0], []byte(`203.0.113.9 - - [25/Nov/2026:15:04:05 +0100] "GET / HTTP/1.1" OK 612 "-" "-"`), parser.Meta{}, &r)
	fmt.Println(err)
	// Output:
	// {"remote_addr":"203.0.113.9","timestamp":"2026-11-25T15:04:05.000+01:00","request":"GET /a%20b?q=€ HTTP/1.1","request_method":"GET","request_uri":"/a%20b?q=€","server_protocol":"HTTP/1.1","status":200,"body_bytes_sent":612,"request_headers":{"user_agent":"curl/8.5.0 \"x\""},"host":"web-1","log_file":"/var/log/nginx/access.log","log_offset":0}
	// 2026-11-25 14:04:05 +0000 UTC 203.0.113.9
	// at byte 62, status: not an integer or -
}
