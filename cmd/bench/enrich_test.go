package main

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/enrich"
	"github.com/nginx-shipper/nginx-shipper/parser"
)

// NGINX_SHIPPER_LEGACY_CLIENTS=1 runs these tests and benchmarks on the
// legacy clients (as -legacy-clients).
func init() { legacyClients = os.Getenv("NGINX_SHIPPER_LEGACY_CLIENTS") == "1" }

// generatorDBs returns a City and an ASN database that place the
// generator's addresses: those in $NGINX_SHIPPER_BENCH_DBS (City.mmdb and
// ASN.mmdb, e.g. made by ./cmd/bench/realdbs from real data) when set,
// else databases written here with mmdbwriter: for the site model one
// record per /14 of IPv4 and per /28 of clientNets6, for the legacy
// clients one per /26 of their two IPv4 /24s and per /36 of 2001:db8::/32.
func generatorDBs(t testing.TB) (city, asn string) {
	if dir := os.Getenv("NGINX_SHIPPER_BENCH_DBS"); dir != "" {
		return filepath.Join(dir, "City.mmdb"), filepath.Join(dir, "ASN.mmdb")
	}
	city, asn, err := writeGeneratorDBs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return city, asn
}

type enrichRig struct {
	p     *parser.Parser
	e     *enrich.Enricher
	b     *enrich.Binding
	st    enrich.State
	r     parser.Result
	lines [][]byte
	ev    []byte
	out   []byte
}

func newEnrichRig(t testing.TB, n int) *enrichRig {
	city, asn := generatorDBs(t)
	e, err := enrich.New(enrich.Config{
		ClientIPHeader: "x_forwarded_for", TrustedProxies: []string{"10.0.0.0/8", "172.16.0.0/12"},
		GeoIPDatabase: city, ASNDatabase: asn,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	p, err := parser.Compile(benchFormat, parser.Options{KeyField: "remote_addr"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Bind(p)
	if err != nil {
		t.Fatal(err)
	}
	g := newLineGen(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	lines := make([][]byte, n)
	for i := range lines {
		l := g.line(uint64(i), g.base.Add(time.Duration(i)*time.Millisecond))
		lines[i] = append([]byte(nil), l[:len(l)-1]...)
	}
	return &enrichRig{p: p, e: e, b: b, lines: lines, ev: make([]byte, 0, 4096), out: make([]byte, 0, 4096)}
}

// Modes of do.
const (
	enrichOff     = iota
	enrichCopy    // the enriched copy beside the original (enriched_topic)
	enrichInPlace // the event itself enriched (one stream)
)

func (x *enrichRig) do(t testing.TB, i int, mode int) {
	line := x.lines[i%len(x.lines)]
	var err error
	x.ev, err = x.p.Parse(x.ev[:0], line, parser.Meta{Host: "web-1", File: "/var/log/nginx/access.log", Offset: int64(i)}, &x.r)
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case enrichCopy:
		x.out = x.e.AppendEvent(x.out[:0], x.ev, x.b, &x.st, line, &x.r)
	case enrichInPlace:
		x.ev = append(x.e.Append(x.ev[:len(x.ev)-1], x.b, &x.st, line, &x.r), '}')
	}
}

// TestEnrichGeneratorHitRate reports the caches' hit rates on the
// generator's lines (whose user agents and addresses repeat as on a real
// site): the user agent cache must serve nearly every line.
func TestEnrichGeneratorHitRate(t *testing.T) {
	x := newEnrichRig(t, 100000)
	for i := range x.lines {
		x.do(t, i, enrichInPlace)
	}
	s := x.e.Stats()
	ua := float64(s.UAHits) / float64(s.UAHits+s.UAMisses)
	geo := float64(s.GeoHits) / float64(s.GeoHits+s.GeoMisses)
	t.Logf("100000 generated lines: UA cache hit rate %.4f (%d entries), geo hit rate %.4f (%d records, %d address blocks cached)", ua, s.UAEntries, geo, s.GeoEntries, s.NetEntries)
	// A line from a new client (1 in newClientOdds) misses when its
	// network's records are new.
	if ua < 0.99 || geo < 1-1.0/newClientOdds {
		t.Errorf("hit rates %.4f (ua), %.4f (geo): want above 0.99 (ua) and 0.96 (geo) on the generator", ua, geo)
	}
}

// BenchmarkEnrichGenerator: parse alone, and parse + enrichment (client
// IP, GeoIP City + ASN, user agent), per generated line.
func BenchmarkEnrichGenerator(b *testing.B) {
	for mode, name := range []string{"off", "copy", "in-place"} {
		b.Run(name, func(b *testing.B) {
			x := newEnrichRig(b, 1<<14)
			for i := range x.lines {
				x.do(b, i, mode) // warm the caches
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				x.do(b, i, mode)
				i++
			}
		})
	}
}

// threadCPU is the CPU time the calling OS thread has used (the
// benchmark locks its goroutine to it): on the shared machine, wall time
// counts the other engineers' processes too.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEnrichGeneratorOverhead measures, in CPU time of the parsing
// thread per line, parsing alone beside parsing + enrichment (client IP,
// GeoIP City + ASN, user agent) on overheadLines generator lines, in
// blocks of 1024 lines interleaved so that both run under the same load:
// "stream", the first pass, in which the enrichment meets each client
// when the generator brings it (1 line in 25 a new client: tree walks,
// record decodes, user agents parsed), and "cached", a second pass over
// the same lines (every lookup a cache hit), also as a copy beside the
// original (enriched_topic). Each iteration is a fresh enricher; run it
// with -benchtime 1x (or a few).
func BenchmarkEnrichGeneratorOverhead(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const block = 1024
	var stream, cached [3]time.Duration
	var streamLines, cachedLines int
	for b.Loop() {
		x := newEnrichRig(b, overheadLines)
		pass := func(spent *[3]time.Duration, modes []int) {
			for i := 0; i+block <= len(x.lines); i += block {
				for _, mode := range modes {
					t0 := threadCPU()
					for k := 0; k < block; k++ {
						x.do(b, i+k, mode)
					}
					spent[mode] += threadCPU() - t0
				}
			}
		}
		pass(&stream, []int{enrichOff, enrichInPlace})
		streamLines += len(x.lines) / block * block
		s := x.e.Stats() // of the first pass: the generator's hit rates
		b.ReportMetric(100*float64(s.UAHits)/float64(s.UAHits+s.UAMisses), "ua-hit-%")
		b.ReportMetric(100*float64(s.GeoHits)/float64(s.GeoHits+s.GeoMisses), "geo-hit-%")
		pass(&cached, []int{enrichOff, enrichInPlace, enrichCopy})
		cachedLines += len(x.lines) / block * block
	}
	per := func(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / float64(n) }
	b.ReportMetric(per(stream[enrichOff], streamLines), "stream-off-ns/line")
	b.ReportMetric(per(stream[enrichInPlace], streamLines), "stream-on-ns/line")
	b.ReportMetric(100*(per(stream[enrichInPlace], streamLines)/per(stream[enrichOff], streamLines)-1), "stream-%")
	b.ReportMetric(per(cached[enrichOff], cachedLines), "cached-off-ns/line")
	b.ReportMetric(per(cached[enrichInPlace], cachedLines), "cached-on-ns/line")
	b.ReportMetric(100*(per(cached[enrichInPlace], cachedLines)/per(cached[enrichOff], cachedLines)-1), "cached-%")
	b.ReportMetric(100*(per(cached[enrichCopy], cachedLines)/per(cached[enrichOff], cachedLines)-1), "cached-copy-%")
}

// overheadLines is BenchmarkEnrichGeneratorOverhead's count of lines.
const overheadLines = 200_000

// TestWriteGeneratorDBs writes generatorDBs' databases to
// $NGINX_SHIPPER_GENERATOR_DBS (for make bench -enrich-toml); it skips
// without it.
func TestWriteGeneratorDBs(t *testing.T) {
	dir := os.Getenv("NGINX_SHIPPER_GENERATOR_DBS")
	if dir == "" {
		t.Skip("NGINX_SHIPPER_GENERATOR_DBS not set")
	}
	city, asn := generatorDBs(t)
	for _, p := range []string{city, asn} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEnrichGeneratorCachedNoAlloc: on the generator's lines, once their
// clients and user agents are cached, enrichment allocates nothing per
// line: in place, as a copy, and in Avro.
func TestEnrichGeneratorCachedNoAlloc(t *testing.T) {
	x := newEnrichRig(t, 20000)
	for i := range x.lines {
		x.do(t, i, enrichInPlace) // warm the caches
	}
	i := 0
	for _, mode := range []int{enrichInPlace, enrichCopy} {
		if allocs := testing.AllocsPerRun(len(x.lines), func() { x.do(t, i, mode); i++ }); allocs != 0 {
			t.Errorf("mode %d: %v allocations per line, want 0", mode, allocs)
		}
	}
	buf := make([]byte, 0, 4096)
	meta := parser.Meta{Host: "web-1", File: "/var/log/nginx/access.log"}
	allocs := testing.AllocsPerRun(len(x.lines), func() {
		line := x.lines[i%len(x.lines)]
		i++
		v, err := x.p.ParseAvro(buf[:0], line, meta, &x.r)
		if err != nil {
			t.Fatal(err)
		}
		buf = x.e.AppendAvro(v, x.b, &x.st, line, &x.r)
	})
	if allocs != 0 {
		t.Errorf("Avro: %v allocations per line, want 0", allocs)
	}
	if s := x.e.Stats(); s.GeoHits == 0 || s.UAHits == 0 {
		t.Errorf("no cache hits: %+v", s)
	}
}
