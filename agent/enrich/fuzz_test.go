package enrich

import (
	"encoding/json"
	"testing"

	"github.com/nginx-shipper/nginx-shipper/agent/enrich/enrichtest"
	"github.com/nginx-shipper/nginx-shipper/parser"
)

// FuzzAppendEvent: whatever the line, the enriched event is valid JSON
// and enrichment never panics.
func FuzzAppendEvent(f *testing.F) {
	for _, r := range loadUAs(f) {
		f.Add("10.0.0.5", r.ua, "81.2.69.142, 10.1.1.1")
	}
	f.Add("2001:db8::1", "-", "-")
	f.Add("garbage", `\x22\xff`, `[::1]:80, , ,`)
	dir := f.TempDir()
	e, err := New(Config{ClientIPHeader: "x_forwarded_for", TrustedProxies: []string{"10.0.0.0/8", "::/0"},
		GeoIPDatabase: enrichtest.CityDB(f, dir), ASNDatabase: enrichtest.ASNDB(f, dir), UACacheSize: 64}, nil)
	if err != nil {
		f.Fatal(err)
	}
	p, err := parser.Compile(testFormat, parser.Options{})
	if err != nil {
		f.Fatal(err)
	}
	b, err := e.Bind(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, ua, xff string) {
		line := []byte(remote + ` - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "` + ua + `" "` + xff + `"`)
		var r parser.Result
		ev, err := p.Parse(nil, line, parser.Meta{}, &r)
		if err != nil {
			return
		}
		var st State
		out := e.AppendEvent(nil, ev, b, &st, line, &r)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
	})
}
