package enrich

import (
	"bufio"
	"encoding/json"
	"github.com/nginx-shipper/nginx-shipper/agent/enrich/enrichtest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/nginx-shipper/nginx-shipper/parser"
)

func mustNew(t testing.TB, cfg Config) *Enricher {
	t.Helper()
	e, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func geoOf(t testing.TB, e *Enricher, addr string) map[string]any {
	t.Helper()
	s := e.Lookup(netip.MustParseAddr(addr), "")
	if s == "" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte("{"+s[1:]+"}"), &m); err != nil {
		t.Fatalf("%s: %q is not JSON members: %v", addr, s, err)
	}
	g, _ := m["geo"].(map[string]any)
	return g
}

func TestGeoLayouts(t *testing.T) {
	dir := t.TempDir()
	// ip-location-db layouts: flat members.
	flatCity := enrichtest.WriteDB(t, dir, "dbip-city.mmdb", "ip-location-db/dbip-city", []enrichtest.Network{
		{CIDR: "81.2.69.0/24", Rec: mmdbtype.Map{"country_code": mmdbtype.String("GB"), "state1": mmdbtype.String("England"),
			"city": mmdbtype.String("London"), "latitude": mmdbtype.Float32(51.5142), "longitude": mmdbtype.Float32(-0.0931)}},
	})
	flatCountry := enrichtest.WriteDB(t, dir, "asn-country.mmdb", "ip-location-db/asn-country", []enrichtest.Network{
		{CIDR: "81.2.69.0/24", Rec: mmdbtype.Map{"country_code": mmdbtype.String("GB")}},
	})
	countryOnly := enrichtest.WriteDB(t, dir, "GeoLite2-Country.mmdb", "GeoLite2-Country", []enrichtest.Network{
		{CIDR: "81.2.69.0/24", Rec: mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("GB"), "names": mmdbtype.Map{"en": mmdbtype.String("United Kingdom")}}}},
	})
	city, asn := enrichtest.CityDB(t, dir), enrichtest.ASNDB(t, dir)

	cases := []struct {
		name string
		cfg  Config
		addr string
		want map[string]any // nil: no geo
	}{
		{"city+asn", Config{GeoIPDatabase: city, ASNDatabase: asn}, "81.2.69.142", map[string]any{
			"country_code": "GB", "country": "United Kingdom", "region": "England", "city": "London",
			"latitude": 51.5142, "longitude": -0.0931, "asn": 20712.0, "as_org": "Andrews & Arnold Ltd"}},
		{"ipv6 city, no asn record", Config{GeoIPDatabase: city, ASNDatabase: asn}, "2a02:8100:1::1", map[string]any{
			"country_code": "DE", "country": "Germany", "region": "Hesse", "city": "Frankfurt am Main",
			"latitude": 50.1188, "longitude": 8.6843}},
		{"country-level record: no region or city invented", Config{GeoIPDatabase: city}, "198.51.100.1", map[string]any{
			"country_code": "US", "country": "United States", "latitude": 37.751, "longitude": -97.822}},
		{"names with quotes and non-ASCII", Config{GeoIPDatabase: city}, "2001:db8::1", map[string]any{
			"country_code": "FR", "country": "France", "region": "Île-de-France", "city": `Paris "Centre"`,
			"latitude": 48.8566, "longitude": 2.3522}},
		{"ipv4-mapped looked up as ipv4", Config{GeoIPDatabase: countryOnly}, "::ffff:81.2.69.1", map[string]any{
			"country_code": "GB", "country": "United Kingdom"}},
		{"asn only", Config{ASNDatabase: asn}, "203.0.113.5", map[string]any{"asn": 64496.0, "as_org": "Example Net"}},
		{"ip-location-db city", Config{GeoIPDatabase: flatCity}, "81.2.69.1", map[string]any{
			"country_code": "GB", "region": "England", "city": "London", "latitude": 51.5142, "longitude": -0.0931}},
		{"ip-location-db country", Config{GeoIPDatabase: flatCountry}, "81.2.69.1", map[string]any{"country_code": "GB"}},
		{"unknown address", Config{GeoIPDatabase: city, ASNDatabase: asn}, "8.8.8.8", nil},
		{"private address", Config{GeoIPDatabase: city}, "10.1.2.3", nil},
		{"loopback", Config{GeoIPDatabase: city}, "127.0.0.1", nil},
		{"link-local v6", Config{GeoIPDatabase: city}, "fe80::1", nil},
		{"unique local v6", Config{GeoIPDatabase: city}, "fd00::1", nil},
		{"no database", Config{}, "81.2.69.142", nil},
	}
	for _, c := range cases {
		e := mustNew(t, c.cfg)
		for round := 0; round < 2; round++ { // miss, then cached
			got := geoOf(t, e, c.addr)
			if !equalJSON(got, c.want) {
				t.Errorf("%s (round %d): geo of %s = %v, want %v", c.name, round, c.addr, got, c.want)
			}
		}
	}
}

func equalJSON(a, b map[string]any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

type uaRow struct{ device, bot, browser, major, os, osv, ua string }

func loadUAs(t testing.TB) []uaRow {
	f, err := os.Open("testdata/useragents.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []uaRow
	s := bufio.NewScanner(f)
	for s.Scan() {
		l := s.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		c := strings.SplitN(l, "\t", 7)
		if len(c) != 7 {
			t.Fatalf("bad testdata line %q", l)
		}
		rows = append(rows, uaRow{c[0], c[1], c[2], c[3], c[4], c[5], c[6]})
	}
	return rows
}

// TestUserAgents: real browser and bot user agents give their expected
// fields.
func TestUserAgents(t *testing.T) {
	p := newUAParser()
	for _, r := range loadUAs(t) {
		u := p.Parse([]byte(r.ua))
		major, _, _ := strings.Cut(u.BrowserVersion, ".")
		check := func(field, want, got string) {
			if want == "-" {
				return
			}
			if field == "os_version" && strings.HasPrefix(got, want) {
				return
			}
			if got != want {
				t.Errorf("%s = %q, want %q: %s", field, got, want, r.ua)
			}
		}
		check("device", r.device, u.Device)
		check("bot", r.bot, map[bool]string{true: "true", false: "false"}[u.Bot])
		check("browser", r.browser, u.Browser)
		check("browser_version major", r.major, major)
		check("os", r.os, u.OS)
		check("os_version", r.osv, u.OSVersion)
		if r.os == "Windows" && r.osv == "-" && u.OSVersion != "" {
			t.Errorf("os_version = %q for Windows NT 10.0 (10 or 11): must be left out: %s", u.OSVersion, r.ua)
		}
	}
	// Garbage gives no browser or OS, and is not called a bot.
	for _, ua := range []string{"-x-", "\x00\x01", strings.Repeat("A", 5000), "Mozilla/5.0"} {
		u := p.Parse([]byte(ua))
		if u.Browser != "" || u.OS != "" || u.OSVersion != "" || u.Bot {
			t.Errorf("%q: got %+v, want nothing known", ua, u)
		}
	}
}

const testFormat = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for"`

func TestAppendEvent(t *testing.T) {
	dir := t.TempDir()
	e := mustNew(t, Config{
		ClientIPHeader: "X-Forwarded-For", TrustedProxies: []string{"10.0.0.0/8"},
		GeoIPDatabase: enrichtest.CityDB(t, dir), ASNDatabase: enrichtest.ASNDB(t, dir),
	})
	p, err := parser.Compile(testFormat, parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Bind(p)
	if err != nil {
		t.Fatal(err)
	}
	const chrome = `Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/72.0.3626.119 Safari/537.36`
	cases := []struct{ name, line, want string }{
		{"behind the load balancer",
			`10.0.0.5 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "` + chrome + `" "81.2.69.142, 10.1.1.1"`,
			`,"client_ip":"81.2.69.142","geo":{"country_code":"GB","country":"United Kingdom","region":"England","city":"London","latitude":51.5142,"longitude":-0.0931,"asn":20712,"as_org":"Andrews & Arnold Ltd"},"ua":{"browser":"Chrome","browser_version":"72.0.3626.119","os":"Windows","os_version":"7","device":"desktop","bot":false}`},
		{"direct, private, bot",
			`192.168.1.1 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.5.0" "81.2.69.142"`,
			`,"client_ip":"192.168.1.1","ua":{"device":"bot","bot":true}`},
		{"no header, unknown address, no user agent",
			`8.8.8.8 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "-" "-"`,
			`,"client_ip":"8.8.8.8"`},
		{"escaped user agent decoded before parsing",
			`8.8.8.8 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "python-requests/2.32.3 \x22x\x22" "-"`,
			`,"client_ip":"8.8.8.8","ua":{"device":"bot","bot":true}`},
		{"garbage remote: nothing about the address",
			`unix: - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "-" "1.2.3.4"`,
			``},
	}
	var st State
	for _, c := range cases {
		var r parser.Result
		ev, err := p.Parse(nil, []byte(c.line), parser.Meta{Host: "h", File: "f"}, &r)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := string(e.Append(nil, b, &st, []byte(c.line), &r))
		if got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
		full := e.AppendEvent(nil, ev, b, &st, []byte(c.line), &r)
		var m map[string]any
		if err := json.Unmarshal(full, &m); err != nil {
			t.Errorf("%s: enriched event is not JSON: %v\n%s", c.name, err, full)
		}
		if string(full[:len(ev)-1]) != string(ev[:len(ev)-1]) {
			t.Errorf("%s: the enriched event does not start with the original", c.name)
		}
	}
}

func TestAppendCachedNoAlloc(t *testing.T) {
	dir := t.TempDir()
	e := mustNew(t, Config{ClientIPHeader: "x_forwarded_for", TrustedProxies: []string{"10.0.0.0/8"},
		GeoIPDatabase: enrichtest.CityDB(t, dir), ASNDatabase: enrichtest.ASNDB(t, dir)})
	p, _ := parser.Compile(testFormat, parser.Options{})
	b, _ := e.Bind(p)
	line := []byte(`10.0.0.5 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0" "81.2.69.142, 10.1.1.1"`)
	var r parser.Result
	var st State
	buf := make([]byte, 0, 4096)
	out := make([]byte, 0, 4096)
	ev, _ := p.Parse(buf, line, parser.Meta{}, &r)
	e.AppendEvent(out, ev, b, &st, line, &r) // warm the caches
	allocs := testing.AllocsPerRun(200, func() {
		ev, _ := p.Parse(buf[:0], line, parser.Meta{}, &r)
		out = e.AppendEvent(out[:0], ev, b, &st, line, &r)
	})
	if allocs != 0 {
		t.Errorf("cached path: %v allocations per line, want 0", allocs)
	}
	if !strings.Contains(string(out), `"city":"London"`) || !strings.Contains(string(out), `"browser":"Firefox"`) {
		t.Errorf("unexpected event %s", out)
	}
}

// TestUAFloodBounded: a flood of unique user agents cannot grow the cache
// past its capacity, and a long one is cut.
func TestUAFloodBounded(t *testing.T) {
	e := mustNew(t, Config{UACacheSize: 1024})
	long := strings.Repeat("x", 100000)
	for i := 0; i < 20000; i++ {
		e.Lookup(netip.Addr{}, "Mozilla/5.0 flood "+strings.Repeat("y", i%50)+string(rune('a'+i%26))+itoa(i))
	}
	e.Lookup(netip.Addr{}, long)
	e.Lookup(netip.Addr{}, long+"different tail")
	s := e.Stats()
	if s.UAEntries > 1024 {
		t.Errorf("%d entries after a flood, capacity 1024", s.UAEntries)
	}
	if s.UAHits < 1 {
		t.Errorf("two user agents equal in their first %d bytes did not share an entry (hits %d)", maxUALen, s.UAHits)
	}
	// Hot entries survive the flood.
	e.Lookup(netip.Addr{}, "curl/8.5.0")
	before := e.Stats().UAHits
	for i := 0; i < 100; i++ {
		e.Lookup(netip.Addr{}, "curl/8.5.0")
		e.Lookup(netip.Addr{}, "flood2 "+itoa(i))
	}
	if got := e.Stats().UAHits - before; got != 100 {
		t.Errorf("hot user agent: %d hits of 100 during a flood", got)
	}
}

func itoa(i int) string { return string(appendIntMember(nil, 0, "", uint64(i))[3:]) }

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := enrichtest.CityDB(t, dir)
	garbage := filepath.Join(dir, "garbage.mmdb")
	os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 1000)), 0o644)
	full, _ := os.ReadFile(good)
	truncated := filepath.Join(dir, "truncated.mmdb")
	// Keep the metadata (at the end) so that the file opens, cut the tree.
	os.WriteFile(truncated, append(full[:200:200], full[len(full)-400:]...), 0o644)
	empty := filepath.Join(dir, "empty.mmdb")
	os.WriteFile(empty, nil, 0o644)

	cases := []struct {
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{Config{GeoIPDatabase: good, ASNDatabase: good}, ""},
		{Config{}, ""},
		{Config{GeoIPDatabase: filepath.Join(dir, "missing.mmdb")}, "enrich.geoip_database"},
		{Config{ASNDatabase: garbage}, "enrich.asn_database"},
		{Config{GeoIPDatabase: truncated}, "enrich.geoip_database"},
		{Config{GeoIPDatabase: empty}, "enrich.geoip_database"},
		{Config{TrustedProxies: []string{"10.0.0.0/8", "nope"}}, "enrich.trusted_proxies[1]"},
		{Config{ClientIPHeader: "x forwarded for", TrustedProxies: []string{"10.0.0.0/8"}}, "enrich.client_ip_header"},
		{Config{ClientIPHeader: "x_forwarded_for"}, "enrich.trusted_proxies"},
		{Config{UACacheSize: -1}, "enrich.ua_cache_size"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: error %v, want one naming %s", c.cfg, err, c.want)
		}
	}

	// A format without the header: Check names the key; Bind enriches its
	// lines as lines without the header (client_ip is remote_addr, even
	// from a trusted peer, as nginx).
	cfg := Config{ClientIPHeader: "x_real_ip", TrustedProxies: []string{"10.0.0.0/8"}}
	p, _ := parser.Compile("combined", parser.Options{})
	if err := cfg.Check(p); err == nil || !strings.Contains(err.Error(), "enrich.client_ip_header") {
		t.Errorf("Check of a format without the header: %v", err)
	}
	e := mustNew(t, cfg)
	b, err := e.Bind(p)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(`10.0.0.5 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "-"`)
	var r parser.Result
	if _, err := p.Parse(nil, line, parser.Meta{}, &r); err != nil {
		t.Fatal(err)
	}
	if got := string(e.Append(nil, b, &State{}, line, &r)); got != `,"client_ip":"10.0.0.5"` {
		t.Errorf("format without the header: %s", got)
	}
}

// TestReload: a database renamed over the old one (geoipupdate) is picked
// up; a corrupt replacement is refused and the old one kept.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := enrichtest.WriteDB(t, dir, "City.mmdb", "GeoLite2-City", []enrichtest.Network{
		{CIDR: "81.2.69.0/24", Rec: enrichtest.CityRecord("GB", "United Kingdom", "", "London", 51.5, -0.09)},
	})
	e := mustNew(t, Config{GeoIPDatabase: path})
	if g := geoOf(t, e, "81.2.69.1"); g["city"] != "London" {
		t.Fatalf("before: %v", g)
	}
	if e.CheckReload() {
		t.Fatal("CheckReload swapped an unchanged file")
	}
	enrichtest.WriteDB(t, dir, "City.mmdb", "GeoLite2-City", []enrichtest.Network{
		{CIDR: "81.2.69.0/24", Rec: enrichtest.CityRecord("GB", "United Kingdom", "", "Manchester", 53.48, -2.24)},
	})
	if !e.CheckReload() {
		t.Fatal("CheckReload did not pick up the replaced file")
	}
	if g := geoOf(t, e, "81.2.69.1"); g["city"] != "Manchester" {
		t.Fatalf("after reload: %v (stale cache?)", g)
	}
	// A corrupt file renamed over it: refused, the good one stays.
	bad := filepath.Join(dir, "bad.tmp")
	os.WriteFile(bad, []byte("garbage"), 0o644)
	if err := os.Rename(bad, path); err != nil {
		t.Fatal(err)
	}
	if e.CheckReload() || e.CheckReload() {
		t.Fatal("CheckReload swapped in a corrupt file")
	}
	if g := geoOf(t, e, "81.2.69.1"); g["city"] != "Manchester" {
		t.Fatalf("after a corrupt replacement: %v", g)
	}
	// After Close, a replacement is not opened.
	defer func() {
		e.Close()
		enrichtest.WriteDB(t, dir, "City.mmdb", "GeoLite2-City", []enrichtest.Network{
			{CIDR: "81.2.69.0/24", Rec: enrichtest.CityRecord("GB", "United Kingdom", "", "Leeds", 53.8, -1.55)},
		})
		if e.CheckReload() {
			t.Error("CheckReload after Close swapped in a database")
		}
	}()
	// Deleted (mid-rename): kept.
	os.Remove(path)
	if e.CheckReload() {
		t.Fatal("CheckReload swapped on a missing file")
	}
	if g := geoOf(t, e, "81.2.69.1"); g["city"] != "Manchester" {
		t.Fatalf("after delete: %v", g)
	}
}

// TestConcurrentAppendAndReload runs lines on several goroutines while
// the database is replaced (for -race, and for an old mmap released under
// a reader).
func TestConcurrentAppendAndReload(t *testing.T) {
	dir := t.TempDir()
	path := enrichtest.CityDB(t, dir)
	e := mustNew(t, Config{GeoIPDatabase: path})
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 2000; i++ {
				if g := geoOf(t, e, "81.2.69.1"); g["country_code"] != "GB" {
					t.Errorf("geo %v", g)
					return
				}
			}
		}()
	}
	for i := 0; i < 5; i++ {
		enrichtest.CityDB(t, dir)
		e.CheckReload()
	}
	for w := 0; w < 4; w++ {
		<-done
	}
}
