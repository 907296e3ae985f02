package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// benchFormat is issue 8's 15-variable log_format.
const benchFormat = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" $request_time $upstream_response_time "$sent_http_content_type" $request_id`

// requestIDField is how the event carries $request_id; its last 16 hex
// digits are the line's sequence number.
const requestIDField = `"request_id":"`

var (
	genMethods = []string{"GET", "GET", "GET", "GET", "GET", "GET", "POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"}
	genPaths   = []string{
		"/", "/products?id=%d&ref=home", "/search?q=red%%20shoes&page=%d", "/static/css/app.3f2a1c.css",
		"/static/js/main.9b1e7d.js", "/images/products/%d.webp", "/api/v1/items/%d", "/api/v1/cart",
		"/api/v1/cart/%d", "/blog/2026/11/grand-opening", "/account/orders?from=2026-01-01&to=2026-11-25",
		"/favicon.ico", "/healthz", "/api/v2/recommendations?user=%d&limit=20", "/search?q=caf%%C3%%A9+au+lait",
	}
	genStatuses = []string{"200", "200", "200", "200", "200", "200", "200", "304", "304", "301", "404", "500", "201", "204"}
	genRefs     = []string{
		"-", "-", "-", "https://shop.example.com/account/orders?from=2026-01-01&to=2026-11-25", "https://www.google.com/", "https://shop.example.com/", "https://shop.example.com/products?id=1207&ref=home",
		"https://shop.example.com/search?q=red%20shoes", "https://duckduckgo.com/",
	}
	genAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		"curl/8.5.0", "python-requests/2.32.3", "Go-http-client/1.1",
		`Mozilla/5.0 \x22compatible\x22 scanner`,
	}
	genXFF   = []string{"-", "-", "-", "10.1.%d.%d", "10.1.%d.%d, 172.16.0.4"}
	genCType = []string{"text/html; charset=utf-8", "application/json", "text/css", "application/javascript", "image/webp", "-"}
)

// lineGen produces issue 8's lines deterministically: line i has request_id
// ending in i as 16 hex digits, and times 1 ms apart from base.
type lineGen struct {
	base time.Time
	x    uint64 // PRNG state
	buf  []byte
}

func newLineGen(base time.Time) *lineGen { return &lineGen{base: base, x: 0x9E3779B97F4A7C15} }

func (g *lineGen) rnd(n int) int {
	g.x ^= g.x << 13
	g.x ^= g.x >> 7
	g.x ^= g.x << 17
	return int(g.x % uint64(n))
}

func mix(v uint64) uint64 { // splitmix64
	v += 0x9E3779B97F4A7C15
	v = (v ^ (v >> 30)) * 0xBF58476D1CE4E5B9
	v = (v ^ (v >> 27)) * 0x94D049BB133111EB
	return v ^ (v >> 31)
}

// line appends line seq (with its newline) at time t to the buffer and
// returns it; the result is valid until the next call.
func (g *lineGen) line(seq uint64, t time.Time) []byte {
	b := g.buf[:0]
	switch g.rnd(10) {
	case 0:
		b = fmt.Appendf(b, "2001:db8:%x::%x", g.rnd(0xffff), g.rnd(0xffff))
	case 1, 2, 3:
		b = fmt.Appendf(b, "198.51.100.%d", 1+g.rnd(254))
	default:
		b = fmt.Appendf(b, "203.0.113.%d", 1+g.rnd(254))
	}
	if g.rnd(20) == 0 {
		b = append(b, " - alice ["...)
	} else {
		b = append(b, " - - ["...)
	}
	b = t.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = append(b, genMethods[g.rnd(len(genMethods))]...)
	b = append(b, ' ')
	b = appendf(b, genPaths[g.rnd(len(genPaths))], 1+g.rnd(5000))
	b = append(b, " HTTP/1.1\" "...)
	b = append(b, genStatuses[g.rnd(len(genStatuses))]...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(g.rnd(40000)), 10)
	b = append(b, " \""...)
	b = append(b, genRefs[g.rnd(len(genRefs))]...)
	b = append(b, "\" \""...)
	b = append(b, genAgents[g.rnd(len(genAgents))]...)
	b = append(b, "\" \""...)
	b = appendf(b, genXFF[g.rnd(len(genXFF))], g.rnd(256), g.rnd(256))
	b = append(b, "\" "...)
	rt := g.rnd(400)
	b = fmt.Appendf(b, "%d.%03d ", rt/1000, rt%1000)
	switch g.rnd(6) {
	case 0:
		b = append(b, '-')
	case 1:
		b = fmt.Appendf(b, "0.%03d, 0.%03d", g.rnd(rt+1), g.rnd(rt+1))
	default:
		b = fmt.Appendf(b, "0.%03d", g.rnd(rt+1))
	}
	b = append(b, " \""...)
	b = append(b, genCType[g.rnd(len(genCType))]...)
	b = append(b, "\" "...)
	b = fmt.Appendf(b, "%016x%016x\n", mix(seq), seq)
	g.buf = b
	return b
}

// generate writes n lines to path and returns the bytes written.
func generate(path string, n int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	g := newLineGen(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	var size int64
	for i := 0; i < n; i++ {
		l := g.line(uint64(i), g.base.Add(time.Duration(i)*time.Millisecond))
		size += int64(len(l))
		if _, err := w.Write(l); err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	return size, f.Close()
}

// seqOf returns the sequence number in a request_id (32 hex digits, the
// last 16 of which are the number).
func seqOf(id []byte) (uint64, bool) {
	if len(id) < 32 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(id[16:32]), 16, 64)
	return v, err == nil
}

// appendf is fmt.Appendf with only as many of args as format has verbs: the
// templates without one ("-", "/") would otherwise print %!(EXTRA ...).
func appendf(b []byte, format string, args ...any) []byte {
	n := strings.Count(format, "%") - 2*strings.Count(format, "%%")
	return fmt.Appendf(b, format, args[:n]...)
}
