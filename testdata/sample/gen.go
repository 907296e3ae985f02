//go:build ignore

// gen writes access.log: ~200 combined-format lines as nginx writes them
// (escape=default: `"` and `\` and bytes outside printable ASCII as \xHH),
// with a fixed seed so the file is stable, plus two lines that are not
// access-log lines (to show the dead-letter path). A few lines are copied
// from logs written by a real nginx (parser/testdata/nginx/combined.log).
//
//	go run testdata/sample/gen.go > testdata/sample/access.log
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"
)

type route struct {
	method, uri string
	statuses    []int
	size        [2]int // min, max body bytes
}

var routes = []route{
	{"GET", "/", []int{200, 200, 200, 304}, [2]int{5120, 14800}},
	{"GET", "/products?id=%d&ref=home", []int{200, 200, 200, 404}, [2]int{8000, 22000}},
	{"GET", "/search?q=red%%20shoes&page=%d", []int{200}, [2]int{6000, 18000}},
	{"GET", "/search?q=caf%%C3%%A9+au+lait&sort=price_asc", []int{200}, [2]int{6000, 18000}},
	{"GET", "/static/css/app.3f2a1c.css", []int{200, 304, 304}, [2]int{48213, 48213}},
	{"GET", "/static/js/main.9b1e7d.js", []int{200, 304, 304}, [2]int{183377, 183377}},
	{"GET", "/images/products/%d.webp", []int{200, 200, 304, 404}, [2]int{12000, 96000}},
	{"GET", "/favicon.ico", []int{200, 304}, [2]int{1150, 1150}},
	{"GET", "/api/v1/items/%d", []int{200, 200, 200, 404, 500}, [2]int{180, 2400}},
	{"POST", "/api/v1/cart", []int{200, 200, 500}, [2]int{64, 512}},
	{"PUT", "/api/v1/cart/%d", []int{200}, [2]int{64, 512}},
	{"DELETE", "/api/v1/cart/%d", []int{200, 404}, [2]int{0, 64}},
	{"GET", "/blog/2026/11/grand-opening", []int{200, 304}, [2]int{9000, 16000}},
	{"GET", "/old-shop/index.php?cat=%d", []int{301}, [2]int{162, 162}},
	{"GET", "/account/orders?from=2026-01-01&to=2026-11-25", []int{200, 301}, [2]int{162, 7000}},
	{"HEAD", "/healthz", []int{200}, [2]int{0, 0}},
	{"GET", "/wp-login.php", []int{404}, [2]int{153, 153}},
	{"GET", "/.env", []int{404}, [2]int{153, 153}},
	{"GET", "/robots.txt", []int{200}, [2]int{68, 68}},
	{"GET", "/sitemap.xml", []int{200, 304}, [2]int{20311, 20311}},
}

var agents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.39 Mobile Safari/537.36",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"curl/8.5.0",
	"python-requests/2.32.3",
	"Go-http-client/1.1",
	"-",
}

var referers = []string{
	"-", "-", "-",
	"https://www.google.com/",
	"https://shop.example.com/",
	"https://shop.example.com/products?id=1207&ref=home",
	"https://shop.example.com/search?q=red%20shoes",
	"https://duckduckgo.com/",
}

func main() {
	r := rand.New(rand.NewPCG(20261125, 1))
	t := time.Date(2026, 11, 25, 9, 12, 3, 0, time.FixedZone("", 0))
	var b strings.Builder
	ips := make([]string, 40)
	for i := range ips {
		switch {
		case i%10 == 9:
			ips[i] = fmt.Sprintf("2001:db8:%x::%x", r.IntN(0xffff), r.IntN(0xffff))
		case i%3 == 0:
			ips[i] = fmt.Sprintf("203.0.113.%d", 1+r.IntN(254))
		case i%3 == 1:
			ips[i] = fmt.Sprintf("198.51.100.%d", 1+r.IntN(254))
		default:
			ips[i] = fmt.Sprintf("192.0.2.%d", 1+r.IntN(254))
		}
	}
	line := func(ip, user, req string, status, size int, ref, ua string) {
		fmt.Fprintf(&b, "%s - %s [%s] \"%s\" %d %d \"%s\" \"%s\"\n",
			ip, user, t.Format("02/Jan/2006:15:04:05 -0700"), req, status, size, ref, ua)
	}
	for i := 0; i < 196; i++ {
		t = t.Add(time.Duration(r.IntN(4000)) * time.Millisecond)
		ip := ips[r.IntN(len(ips))]
		ro := routes[r.IntN(len(routes))]
		uri := ro.uri
		if strings.Contains(uri, "%d") {
			uri = fmt.Sprintf(uri, 1+r.IntN(2000))
		} else {
			uri = fmt.Sprintf(uri)
		}
		st := ro.statuses[r.IntN(len(ro.statuses))]
		size := ro.size[0]
		if ro.size[1] > ro.size[0] {
			size += r.IntN(ro.size[1] - ro.size[0])
		}
		switch st {
		case 304, 204:
			size = 0
		case 500:
			size = 579
		case 404:
			size = 153
		}
		if ro.method == "HEAD" {
			size = 0
		}
		user := "-"
		if strings.HasPrefix(uri, "/account") && st == 200 {
			user = "alice"
		}
		ua := agents[r.IntN(len(agents))]
		ref := referers[r.IntN(len(referers))]
		if ro.uri == "/healthz" { // the load balancer's probe
			ua, ref = "ELB-HealthChecker/2.0", "-"
		}
		line(ip, user, ro.method+" "+uri+" HTTP/"+[]string{"1.1", "1.1", "2.0", "1.0"}[r.IntN(4)], st, size, ref, ua)
		switch i {
		case 40: // a scanner with quotes in its user agent: nginx escapes them as \x22
			line("198.51.100.77", "-", "GET /cgi-bin/test.cgi HTTP/1.1", 404, 153, "-",
				`() { :; }; echo \x22vulnerable\x22`)
		case 90: // quotes and a backslash in the referer and user agent (written by a real nginx)
			line("203.0.113.45", "-", "GET /static/a.txt HTTP/1.1", 200, 12,
				`http://example.com/a?b=\x22c\x22`, `Mozilla/5.0 \x22quoted\x22 \x5Cback\x5Cslash`)
		case 120: // a TLS handshake sent to the plain HTTP port (written by a real nginx)
			line("192.0.2.200", "-", `\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09`, 400, 157, "-", "-")
		case 150: // UTF-8 in the path, escaped by nginx (written by a real nginx)
			line("198.51.100.23", "-", `GET /static/caf\xC3\xA9.txt?q=%22hello%20world%22&u=\xE2\x82\xAC HTTP/1.1`, 200, 6, "-",
				`Mozilla/5.0 (X11; Linux x86_64) \xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82`)
		case 60: // not an access-log line: an error-log line written to the wrong file
			fmt.Fprintf(&b, "%s [error] 2741#2741: *1893 open() \"/var/www/shop/favicon.png\" failed (2: No such file or directory), client: 192.0.2.14, server: shop.example.com\n",
				t.Format("2006/01/02 15:04:05"))
		case 170: // not an access-log line: cut off mid-write (disk full)
			fmt.Fprintf(&b, "203.0.113.9 - - [%s] \"GET /products?id=88 HTTP/1.1\" 200 91\n", t.Format("02/Jan/2006:15:04:05 -0700"))
		}
	}
	os.Stdout.WriteString(b.String())
}
