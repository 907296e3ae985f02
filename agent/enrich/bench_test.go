package enrich

import (
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"unsafe"

	"github.com/nginx-shipper/nginx-shipper/agent/enrich/enrichtest"
	"github.com/nginx-shipper/nginx-shipper/parser"
)

type benchEnv struct {
	e   *Enricher
	p   *parser.Parser
	b   *Binding
	st  State
	r   parser.Result
	ev  []byte
	out []byte
}

func newBenchEnv(b *testing.B, cfg Config) *benchEnv {
	dir := b.TempDir()
	cfg.GeoIPDatabase, cfg.ASNDatabase = enrichtest.CityDB(b, dir), enrichtest.ASNDB(b, dir)
	if d := os.Getenv("NGINX_SHIPPER_BENCH_DBS"); d != "" {
		// Real-size databases (cmd/bench/realdbs): deeper trees, bigger
		// records.
		cfg.GeoIPDatabase, cfg.ASNDatabase = filepath.Join(d, "City.mmdb"), filepath.Join(d, "ASN.mmdb")
	}
	cfg.ClientIPHeader, cfg.TrustedProxies = "x_forwarded_for", []string{"10.0.0.0/8"}
	e := mustNew(b, cfg)
	p, err := parser.Compile(testFormat, parser.Options{})
	if err != nil {
		b.Fatal(err)
	}
	bd, err := e.Bind(p)
	if err != nil {
		b.Fatal(err)
	}
	return (&benchEnv{e: e, p: p, b: bd}).fork()
}

// fork returns an env sharing x's enricher and parser with its own State
// and buffers, for another goroutine.
func (x *benchEnv) fork() *benchEnv {
	return &benchEnv{e: x.e, p: x.p, b: x.b, ev: make([]byte, 0, 4096), out: make([]byte, 0, 4096)}
}

func (x *benchEnv) line(b *testing.B, line []byte, enrich bool) {
	if err := x.try(line, enrich); err != nil {
		b.Fatal(err)
	}
}

// try is line without b: RunParallel's goroutines may not call b.Fatal.
func (x *benchEnv) try(line []byte, enrich bool) error {
	var err error
	x.ev, err = x.p.Parse(x.ev[:0], line, parser.Meta{Host: "h", File: "/f"}, &x.r)
	if err != nil {
		return err
	}
	if enrich {
		x.out = x.e.AppendEvent(x.out[:0], x.ev, x.b, &x.st, line, &x.r)
	}
	return nil
}

var benchLine = []byte(`10.0.0.5 - - [25/Nov/2026:15:04:05 +0000] "GET /products?id=7 HTTP/1.1" 200 5120 "https://shop.example.com/" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36" "81.2.69.142, 10.1.1.1"`)

// BenchmarkParseOnly is the baseline: parsing the line without enrichment.
func BenchmarkParseOnly(b *testing.B) {
	x := newBenchEnv(b, Config{})
	b.ReportAllocs()
	for b.Loop() {
		x.line(b, benchLine, false)
	}
}

// BenchmarkEnrichCached: client_ip walk + GeoIP + ASN + user agent, all
// cached (the steady state of a real site). The cost of enrichment is
// this minus BenchmarkParseOnly.
func BenchmarkEnrichCached(b *testing.B) {
	x := newBenchEnv(b, Config{})
	x.line(b, benchLine, true)
	b.ReportAllocs()
	for b.Loop() {
		x.line(b, benchLine, true)
	}
}

// BenchmarkEnrichCachedParallel is BenchmarkEnrichCached on every core at
// once, each goroutine with its own State, as the agent's harvester and
// parse workers run: what the shared caches cost when they are read from
// several cores (locks, counters, cache lines moving between cores).
func BenchmarkEnrichCachedParallel(b *testing.B) {
	x := newBenchEnv(b, Config{})
	x.line(b, benchLine, true)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		y := x.fork()
		for pb.Next() {
			if err := y.try(benchLine, true); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEnrichUniqueUA is the worst case: every line a new user agent
// (a flood), so every line parses its user agent and evicts.
func BenchmarkEnrichUniqueUA(b *testing.B) {
	x := newBenchEnv(b, Config{UACacheSize: 4096})
	lines := make([][]byte, 1<<16)
	for i := range lines {
		lines[i] = []byte(`10.0.0.5 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.` + strconv.Itoa(i) + `.0 Safari/537.36" "81.2.69.142"`)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		x.line(b, lines[i%len(lines)], true)
		i++
	}
}

// BenchmarkUAParse is one uncached user-agent parse (go-useragent plus
// os_version and bot tokens) and its rendering.
func BenchmarkUAParse(b *testing.B) {
	p := newUAParser()
	rows := loadUAs(b)
	b.ReportAllocs()
	i := 0
	var dst []byte
	for b.Loop() {
		dst = appendUA(dst[:0], p.Parse([]byte(rows[i%len(rows)].ua)))
		i++
	}
}

// BenchmarkGeoCached is the GeoIP + ASN step of a line from an address
// seen before: one network-cache hit (its /24).
func BenchmarkGeoCached(b *testing.B) {
	x := newBenchEnv(b, Config{})
	a, _ := parseAddr([]byte("81.2.69.142"))
	g := x.e.gen.Load()
	dst := g.appendGeo(nil, a)
	b.ReportAllocs()
	for b.Loop() {
		dst = g.appendGeo(dst[:0], a)
	}
}

// BenchmarkGeoRecordCached: an address not seen before in a network whose
// records are cached: two tree walks and one record-cache hit.
func BenchmarkGeoRecordCached(b *testing.B) {
	x := newBenchEnv(b, Config{})
	a, _ := parseAddr([]byte("81.2.69.142"))
	g := x.e.gen.Load()
	g.lookup(a)
	b.ReportAllocs()
	for b.Loop() {
		g.lookup(a)
	}
}

// BenchmarkGeoUncached decodes and renders the records every time (the
// first line from each new network).
func BenchmarkGeoUncached(b *testing.B) {
	x := newBenchEnv(b, Config{})
	a, _ := parseAddr([]byte("81.2.69.142"))
	g := x.e.gen.Load()
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		// appendGeo's miss path: two lookups, decode, render.
		rg, ra := g.geo.Lookup(a), g.asn.Lookup(a)
		var gf geoFields
		gf.from(rg)
		gf.from(ra)
		dst = gf.append(dst[:0])
	}
}

// BenchmarkUACacheMemory reports the heap bytes one UA cache entry costs
// (key, rendered fragment and map overhead), for realistic user agents
// made unique.
func BenchmarkUACacheMemory(b *testing.B) {
	rows := loadUAs(b)
	const n = 20000
	uas := make([][]byte, n)
	for i := range uas {
		uas[i] = []byte(rows[i%len(rows)].ua + " " + strconv.Itoa(i))
	}
	p := newUAParser()
	frags := make([]frag, n)
	for i := range frags {
		u := p.Parse(uas[i])
		frags[i] = frag{json: string(appendUA(nil, u)), avro: string(appendUAAvro(nil, u))}
	}
	var perEntry float64
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		c := newUACache(8 * n) // room for nearly all: measure entries, not eviction
		for i := range uas {
			c.set(uas[i], frags[i])
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		held := c.len()
		if held < n*9/10 {
			b.Fatalf("%d entries of %d held", held, n)
		}
		// The fragments were allocated before m0; count them as the cache
		// holds them. The slots are the capacity's, not an entry's.
		fragBytes := 0
		for _, f := range frags {
			fragBytes += len(f.json) + len(f.avro)
		}
		slots := float64(len(c.sets)) * float64(unsafe.Sizeof(c.sets[0]))
		perEntry = (float64(m1.HeapAlloc)-float64(m0.HeapAlloc)-slots)/float64(held) + float64(fragBytes)/n
		runtime.KeepAlive(c)
	}
	b.ReportMetric(perEntry, "B/entry")
}

// BenchmarkGeoCachedMany is the network-cache hit of BenchmarkGeoCached
// over a working set far larger than the CPU's caches, as on a site with
// many clients: 16,000 addresses, each in its own /24 of 6,400 networks
// (one record each), all cached, looked up in a random order, each
// fragment copied as into an event. It measures what a hit costs when
// its memory is not in the cache: the probes and the fragment's bytes.
func BenchmarkGeoCachedMany(b *testing.B) {
	dir := b.TempDir()
	var cities, asns []enrichtest.Network
	for n := 0; n < 6400; n++ {
		cidr := strconv.Itoa(1+n/64) + "." + strconv.Itoa(n%64*4) + ".0.0/14"
		cities = append(cities, enrichtest.Network{CIDR: cidr, Rec: enrichtest.CityRecord("US", "United States", "State "+cidr, "City "+cidr, 40, -100)})
		asns = append(asns, enrichtest.Network{CIDR: cidr, Rec: enrichtest.ASNRecord(uint32(1+n%4000), "Net "+strconv.Itoa(n%4000))})
	}
	e := mustNew(b, Config{
		GeoIPDatabase: enrichtest.WriteDB(b, dir, "City.mmdb", "GeoLite2-City", cities),
		ASNDatabase:   enrichtest.WriteDB(b, dir, "ASN.mmdb", "GeoLite2-ASN", asns),
	})
	g := e.gen.Load()
	x := uint64(0x9E3779B97F4A7C15)
	rnd := func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
	seen := map[uint64]bool{}
	var addrs []netip.Addr
	for len(addrs) < 16000 {
		v := rnd()
		a := netip.AddrFrom4([4]byte{byte(1 + v%100), byte(v >> 8), byte(v >> 16), byte(1 + v>>24%254)})
		if !public(a) || seen[v%100<<16|v>>8&0xFFFF] {
			continue
		}
		seen[v%100<<16|v>>8&0xFFFF] = true
		addrs = append(addrs, a)
	}
	for _, a := range addrs {
		g.geoFrag(a)
	}
	h0, m0 := g.nets.stats()
	var dst []byte
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		dst = append(dst[:0], g.geoFrag(addrs[i]).json...)
		if i++; i == len(addrs) {
			i = 0
		}
	}
	h, m := g.nets.stats()
	b.ReportMetric(100*float64(h-h0)/float64(h-h0+m-m0), "hit-%")
}

// BenchmarkUACachedParallel: the user-agent step of a line whose user
// agent is cached (the testdata's real user agents in turn), on every core
// at once, as the harvester and the parse workers look them up.
func BenchmarkUACachedParallel(b *testing.B) {
	e := mustNew(b, Config{})
	var uas [][]byte
	for _, r := range loadUAs(b) {
		uas = append(uas, []byte(r.ua))
		e.uaFrag(uas[len(uas)-1])
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		n := 0
		for pb.Next() {
			n += len(e.uaFrag(uas[i%len(uas)]).json)
			i++
		}
		_ = n
	})
}
