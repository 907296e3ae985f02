package enrich

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/nginx-shipper/nginx-shipper/agent/enrich/enrichtest"
	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/parser/avrotest"
	"github.com/twmb/avro"
)

// avroToJSON is avrotest.ToJSON, failing the test on a time without its
// offset.
func avroToJSON(t testing.TB, v any) any {
	t.Helper()
	j, err := avrotest.ToJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestAvroMatchesJSON: the original event's Avro followed by AppendAvro's
// bytes decodes, with the enriched schema (Schema), to the enriched JSON
// event; AppendAvroFound after Append writes the same bytes; the cached
// path does not allocate.
func TestAvroMatchesJSON(t *testing.T) {
	dir := t.TempDir()
	e := mustNew(t, Config{
		ClientIPHeader: "X-Forwarded-For", TrustedProxies: []string{"10.0.0.0/8"},
		GeoIPDatabase: enrichtest.CityDB(t, dir), ASNDatabase: enrichtest.ASNDB(t, dir),
	})
	p, err := parser.Compile(testFormat, parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := e.Bind(p)
	sch, err := avro.Parse(Schema(p.Schema()).Avro())
	if err != nil {
		t.Fatalf("the enriched schema does not parse: %v\n%s", err, Schema(p.Schema()).Avro())
	}
	const chrome = `Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/72.0.3626.119 Safari/537.36`
	lines := []string{
		`10.0.0.5 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "` + chrome + `" "81.2.69.142, 10.1.1.1"`,
		`192.168.1.1 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.5.0" "81.2.69.142"`,
		`8.8.8.8 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "-" "-"`,
		`10.0.0.5 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "python-requests/2.32.3 \x22x\xff\x22" "2001:db8::1, 10.0.0.9"`,
		`unix: - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "-" "1.2.3.4"`,
		`10.0.0.5 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1" "81.2.69.142"`,
	}
	var st State
	meta := parser.Meta{Host: "h", File: "f"}
	for round := 0; round < 2; round++ { // the second from the caches
		for _, line := range lines {
			var r parser.Result
			js, err := p.Parse(nil, []byte(line), meta, &r)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			full := e.AppendEvent(nil, js, b, &st, []byte(line), &r)
			found := AppendAvroFound([]byte("x"), &st)
			orig, err := p.AppendAvro(nil, []byte(line), meta, &r)
			if err != nil {
				t.Fatal(err)
			}
			bin := e.AppendAvro(orig, b, &st, []byte(line), &r)
			if string(found[1:]) != string(bin[len(orig):]) {
				t.Errorf("%s: AppendAvroFound %x, AppendAvro %x", line, found[1:], bin[len(orig):])
			}
			var got any
			rest, err := sch.Decode(bin, &got)
			if err != nil || len(rest) != 0 {
				t.Fatalf("%s: decoding: %v (%d bytes left)\n%x", line, err, len(rest), bin)
			}
			var want any
			if err := json.Unmarshal(full, &want); err != nil {
				t.Fatal(err)
			}
			if g := avroToJSON(t, got); !reflect.DeepEqual(g, want) {
				gj, _ := json.Marshal(g)
				t.Errorf("Avro event differs from the JSON one:\n avro %s\n json %s", gj, full)
			}
		}
	}
	line := []byte(lines[0])
	var r parser.Result
	buf := make([]byte, 0, 4096)
	jbuf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(200, func() {
		jbuf, _ = p.Parse(jbuf[:0], line, meta, &r)
		out, _ := p.AppendAvro(buf[:0], line, meta, &r)
		buf = e.AppendAvro(out, b, &st, line, &r)
	})
	if allocs != 0 {
		t.Errorf("cached path: %v allocations per line, want 0", allocs)
	}
}

// BenchmarkAvroOnly: the agent's AvroOnly path (ParseAvro) alone and with
// the enrichment's Avro (Find + AppendAvroFound), every lookup cached.
func BenchmarkAvroOnly(b *testing.B) {
	dir := b.TempDir()
	e := mustNew(b, Config{ClientIPHeader: "x_forwarded_for", TrustedProxies: []string{"10.0.0.0/8"},
		GeoIPDatabase: enrichtest.CityDB(b, dir), ASNDatabase: enrichtest.ASNDB(b, dir)})
	p, _ := parser.Compile(testFormat, parser.Options{})
	bd, _ := e.Bind(p)
	line := []byte(`10.0.0.5 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0" "81.2.69.142, 10.1.1.1"`)
	var r parser.Result
	var st State
	buf := make([]byte, 0, 4096)
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = p.ParseAvro(buf[:0], line, parser.Meta{}, &r)
				if on {
					e.Find(bd, &st, line, &r)
					buf = AppendAvroFound(buf, &st)
				}
			}
		})
	}
}
