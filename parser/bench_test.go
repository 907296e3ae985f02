package parser

import (
	"testing"
)

const full15Format = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" $request_time $upstream_response_time "$sent_http_content_type" $request_id`

var benchCases = []struct {
	name, format string
	line         string
}{
	{"combined", "combined",
		`203.0.113.195 - - [25/Nov/2026:15:04:05 +0000] "GET /api/v1/products/12345?ref=home&utm_source=newsletter HTTP/1.1" 200 5124 "https://www.example.com/catalog/shoes?page=2" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"`},
	{"full15", full15Format,
		`203.0.113.195 - - [25/Nov/2026:15:04:05 +0000] "GET /api/v1/products/12345?ref=home&utm_source=newsletter HTTP/1.1" 200 5124 "https://www.example.com/catalog/shoes?page=2" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36" "198.51.100.7, 10.0.0.1" 0.012 0.004, 0.008 "application/json; charset=utf-8" 7f3c1a9e2b4d4c0f9a8b7c6d5e4f3a2b`},
	{"json", "json",
		`{"time":"2026-11-25T15:04:05+00:00","remote_addr":"203.0.113.195","remote_user":"","request":"GET /api/v1/products/12345?ref=home HTTP/1.1","status":200,"body_bytes_sent":5124,"request_time":0.012,"http_referer":"https://www.example.com/catalog/shoes?page=2","http_user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36","http_x_forwarded_for":"198.51.100.7","request_id":"7f3c1a9e2b4d4c0f9a8b7c6d5e4f3a2b","upstream_addr":"10.0.0.5:8080, 10.0.0.6:8080","upstream_status":"502, 200","upstream_response_time":"0.004, 0.008"}`},
}

// BenchmarkParse measures parse + JSON encode of one line into a reused
// buffer; lines/s = 1e9 / ns/op.
func BenchmarkParse(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			p := mustCompile(b, bc.format, Options{KeyField: "remote_addr"})
			line := []byte(bc.line)
			meta := Meta{Host: "web-1", File: "/var/log/nginx/access.log", Offset: 123456}
			var r Result
			dst, err := p.Parse(nil, line, meta, &r)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				dst, err = p.Parse(dst[:0], line, meta, &r)
				if err != nil {
					b.Fatal(err)
				}
			}
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu.Seconds(), "lines/cpu-s")
			}
		})
	}
}

// TestParseDoesNotAllocate: once a Result and the destination have grown,
// parsing and encoding a line allocates nothing.
func TestParseDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation")
	}
	for _, bc := range benchCases {
		p := mustCompile(t, bc.format, Options{KeyField: "remote_addr"})
		line := []byte(bc.line)
		meta := Meta{Host: "web-1", File: "/var/log/nginx/access.log", Offset: 1}
		var r Result
		dst, err := p.Parse(nil, line, meta, &r)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(100, func() {
			dst, err = p.Parse(dst[:0], line, meta, &r)
		})
		if err != nil || allocs != 0 {
			t.Errorf("%s: %v allocations per line (err %v)", bc.name, allocs, err)
		}
	}
}
