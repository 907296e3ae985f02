package main

import (
	"bufio"
	"fmt"
	"math"
	"net/netip"
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
	// genAgents are the legacy generator's user agents (legacyClients).
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
	// clientAgents are the site model's user agents: %d is the browser's
	// version, one of versions from the base (each client keeps its own).
	clientAgents = []struct {
		format         string
		base, versions int
	}{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36", 120, 12},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/%d.0.0.0", 125, 7},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%d.1 Safari/605.1.15", 16, 3},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36", 120, 12},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/132.0", 120, 13},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_%d like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", 0, 4},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_%d like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", 0, 7},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Mobile Safari/537.36", 120, 12},
		{"Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Mobile Safari/537.36", 120, 12},
		{"Mozilla/5.0 (iPad; CPU OS 17_%d like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", 0, 7},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 0, 1},
		{"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 0, 1},
		{"curl/8.%d.0", 0, 12},
		{"python-requests/2.%d.0", 25, 8},
		{"Go-http-client/1.1", 0, 1},
		{`Mozilla/5.0 \x22compatible\x22 scanner`, 0, 1},
	}
	// clientNets6 are large allocations of IPv6 access networks (Deutsche
	// Telekom, Orange France, Comcast, Reliance Jio, T-Mobile US, Vodafone
	// Germany, NTT): the site model's IPv6 clients are a random /64 and
	// interface identifier in one of them.
	clientNets6 = []netip.Prefix{
		netip.MustParsePrefix("2003::/19"), netip.MustParsePrefix("2a01:cb00::/24"), netip.MustParsePrefix("2601::/20"),
		netip.MustParsePrefix("2409:4000::/22"), netip.MustParsePrefix("2607:fb90::/32"), netip.MustParsePrefix("2a02:8100::/27"),
		netip.MustParsePrefix("2400:4000::/21"),
	}
	genXFF   = []string{"-", "-", "-", "10.1.%d.%d", "10.1.%d.%d, 172.16.0.4"}
	genCType = []string{"text/html; charset=utf-8", "application/json", "text/css", "application/javascript", "image/webp", "-"}
)

// lineGen produces issue 8's lines deterministically: line i has request_id
// ending in i as 16 hex digits, and times 1 ms apart from base.
//
// Clients (issue 14's measurement, "the site model"): a line comes from a
// new client with probability 1/newClientOdds (4 %), else from one seen
// before, more likely a recent one (its age among the clients so far is
// log-uniform: a visit's requests cluster, a long tail comes back). A
// client keeps its address and user agent, both derived from its number:
// 70 % IPv4, uniform over the public unicast space, 30 % IPv6, a random
// address in one of clientNets6. With legacyClients, the generator before
// that: 10 % of the lines from a new random address of 2001:db8::/32, the
// others from 508 documentation IPv4 addresses, one of 10 user agents per
// line.
type lineGen struct {
	base    time.Time
	x       uint64 // PRNG state
	buf     []byte
	clients uint64 // site model: clients so far
}

// legacyClients selects the generator's clients before issue 14's
// measurement (flag -legacy-clients).
var legacyClients bool

// newClientOdds: 1 in this many lines comes from a new client.
const newClientOdds = 25

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
	var client uint64
	if legacyClients {
		switch g.rnd(10) {
		case 0:
			b = fmt.Appendf(b, "2001:db8:%x::%x", g.rnd(0xffff), g.rnd(0xffff))
		case 1, 2, 3:
			b = fmt.Appendf(b, "198.51.100.%d", 1+g.rnd(254))
		default:
			b = fmt.Appendf(b, "203.0.113.%d", 1+g.rnd(254))
		}
	} else {
		client = g.client()
		b = clientAddr(client).AppendTo(b)
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
	if legacyClients {
		b = append(b, genAgents[g.rnd(len(genAgents))]...)
	} else {
		b = appendClientAgent(b, client)
	}
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

// client returns the number of the next line's client (site model).
func (g *lineGen) client() uint64 {
	if g.clients == 0 || g.rnd(newClientOdds) == 0 {
		g.clients++
		return g.clients - 1
	}
	u := float64(g.rnd(1<<30)) / (1 << 30)
	age := uint64(math.Pow(float64(g.clients), u)) - 1 // log-uniform in [0, clients)
	return g.clients - 1 - min(age, g.clients-1)
}

// clientAddr is client c's address.
func clientAddr(c uint64) netip.Addr {
	h := mix(c ^ 0x5DEECE66D)
	if h%10 < 3 {
		p := clientNets6[(h/10)%uint64(len(clientNets6))]
		b := p.Addr().As16()
		r := [2]uint64{mix(h + 1), mix(h + 2)}
		for bit := p.Bits(); bit < 128; bit++ {
			if r[bit/64]>>(bit%64)&1 == 1 {
				b[bit/8] |= 0x80 >> (bit % 8)
			}
		}
		return netip.AddrFrom16(b)
	}
	for k := uint64(1); ; k++ {
		v := uint32(mix(h + k))
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if publicUnicast(a) {
			return a
		}
	}
}

// reserved4 are the IPv4 ranges no client comes from, beside those
// netip tells (private, loopback, link-local, multicast).
var reserved4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("240.0.0.0/4"),
}

func publicUnicast(a netip.Addr) bool {
	if a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() {
		return false
	}
	for _, p := range reserved4 {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// appendClientAgent appends client c's user agent.
func appendClientAgent(b []byte, c uint64) []byte {
	h := mix(c ^ 0xA5A5A5A5)
	a := clientAgents[h%uint64(len(clientAgents))]
	if !strings.Contains(a.format, "%d") {
		return append(b, a.format...)
	}
	return fmt.Appendf(b, a.format, a.base+int((h/64)%uint64(a.versions)))
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
