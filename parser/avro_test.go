package parser

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

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

// checkAvro decodes one Avro event with the parser's own schema and
// compares it with the JSON event.
func checkAvro(t testing.TB, sch *avro.Schema, bin, js []byte) {
	t.Helper()
	var got any
	rest, err := sch.Decode(bin, &got)
	if err != nil {
		t.Fatalf("decoding the Avro event: %v\n%x\njson %s", err, bin, js)
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes left after the Avro record", len(rest))
	}
	var want any
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	if g := avroToJSON(t, got); !reflect.DeepEqual(g, want) {
		gj, _ := json.Marshal(g)
		t.Fatalf("Avro event differs from the JSON one:\n avro %s\n json %s", gj, js)
	}
}

// TestAvroMatchesJSON: for every line real nginx wrote (the golden logs,
// every format and escape), the Avro event decoded with twmb/avro against
// the rendered schema equals the JSON event; ParseAvro writes the same
// bytes as Parse then AppendAvro.
func TestAvroMatchesJSON(t *testing.T) {
	for _, g := range goldenLogs {
		t.Run(g.log, func(t *testing.T) {
			p := compileFromConf(t, g.format)
			sch, err := avro.Parse(p.Schema().Avro())
			if err != nil {
				t.Fatalf("the schema does not parse: %v\n%s", err, p.Schema().Avro())
			}
			data, err := os.ReadFile(filepath.Join("testdata/nginx", g.log+".log"))
			if err != nil {
				t.Fatal(err)
			}
			lines, offsets := readLines(data)
			var r, r2 Result
			for i, line := range lines {
				meta := Meta{Host: "web-1", File: "/var/log/nginx/" + g.log + ".log", Offset: offsets[i]}
				js, err := p.Parse(nil, line, meta, &r)
				if err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				bin, err := p.AppendAvro([]byte("head"), line, meta, &r)
				if err != nil {
					t.Fatalf("line %d: AppendAvro: %v", i+1, err)
				}
				if string(bin[:4]) != "head" {
					t.Fatalf("AppendAvro overwrote dst")
				}
				checkAvro(t, sch, bin[4:], js)
				only, err := p.ParseAvro(nil, line, meta, &r2)
				if err != nil || !bytes.Equal(only, bin[4:]) || !r2.Time.Equal(r.Time) || string(r2.Key) != string(r.Key) {
					t.Fatalf("line %d: ParseAvro differs: %v\n%x\n%x", i+1, err, only, bin[4:])
				}
			}
		})
	}
}

// TestAvroEdgeCases: values the golden logs lack: invalid UTF-8 and long
// strings (the length prefix), escapes, upstream lists with "-", $1, an
// absent header group, HTTP/0.9 requests.
func TestAvroEdgeCases(t *testing.T) {
	long := strings.Repeat("a", 9000)
	cases := []struct {
		format string
		esc    Escape
		line   string
	}{
		{"combined", EscapeDefault, `1.2.3.4 - - [25/Nov/2026:15:04:05 +0100] "GET /\xff\xfe HTTP/1.1" 200 5 "-" "ua \x22q\x22 \xC3\xA9"`},
		{"combined", EscapeNone, "1.2.3.4 - - [25/Nov/2026:15:04:05 -0530] \"GET /\xff" + long + " HTTP/1.1\" 200 5 \"-\" \"" + long[:100] + "\xc3\""},
		{"combined", EscapeNone, "1.2.3.4 - - [25/Nov/2026:15:04:05 +0000] \"GET /" + strings.Repeat("\xff", 70) + " HTTP/1.1\" 200 5 \"-\" \"-\""},
		{"combined", EscapeDefault, `1.2.3.4 - - [25/Nov/2026:15:04:05 +0000] "GET /x" 200 5 "" "-"`},
		{"combined", EscapeDefault, `1.2.3.4 - - [25/Nov/2026:15:04:05 +0000] "garbage" 400 0 "-" "-"`},
		{`$msec $1 "$upstream_status" "$upstream_response_time" "$upstream_addr" $request_time $upstream_http_x_cache`, EscapeDefault,
			`1764083045.5 v1 "502, -, 200 : 404" "0.004, -, 1.5 : 12345678901234567.5" "a:1, b:2 : c:3" 1234567890123456789.0000000000000000001 HIT`},
		{`$msec $1 "$upstream_status" "$upstream_response_time" "$upstream_addr" $request_time $upstream_http_x_cache`, EscapeDefault,
			`- - "-" "-" "-" - -`},
		{`{"t":"$time_iso8601","u":"$http_user_agent","s":$status}`, EscapeJSON, `{"t":"2026-11-25T15:04:05Z","u":"\u00e9\ud83d\ude00 \"x\" \\ \u0000","s":200}`},
	}
	for i, tc := range cases {
		p := mustCompile(t, tc.format, Options{Escape: tc.esc, KeyField: ""})
		sch, err := avro.Parse(p.Schema().Avro())
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		var r Result
		meta := Meta{Host: "web-\xff", File: "/var/log/x.log", Offset: 1 << 40}
		js, err := p.Parse(nil, []byte(tc.line), meta, &r)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		bin, err := p.AppendAvro(nil, []byte(tc.line), meta, &r)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		checkAvro(t, sch, bin, js)
	}
}

// TestAvroOutOfRange: a value that matches the format but not its Avro
// type is a *SchemaError from both Avro entry points, and dst is left as
// it was; the JSON event of the same line is still written.
func TestAvroOutOfRange(t *testing.T) {
	p := mustCompile(t, `$status "$upstream_status"`, Options{})
	for _, line := range []string{`9999999999999999999 "-"`, `200 "200, 9223372036854775808"`} {
		var r Result
		if _, err := p.Parse(nil, []byte(line), Meta{}, &r); err != nil {
			t.Fatalf("%s: JSON: %v", line, err)
		}
		out, err := p.AppendAvro([]byte("x"), []byte(line), Meta{}, &r)
		var se *SchemaError
		if !errors.As(err, &se) || string(out) != "x" {
			t.Fatalf("%s: AppendAvro = %q, %v; want a *SchemaError and dst unchanged", line, out, err)
		}
		if _, err := p.ParseAvro(nil, []byte(line), Meta{}, &r); !errors.As(err, &se) {
			t.Fatalf("%s: ParseAvro: %v", line, err)
		}
	}
	ok := `9223372036854775807 "200"`
	var r Result
	if _, err := p.ParseAvro(nil, []byte(ok), Meta{}, &r); err != nil {
		t.Fatalf("MaxInt64: %v", err)
	}
	var pe *ParseError
	if _, err := p.ParseAvro(nil, []byte("abc"), Meta{}, &r); !errors.As(err, &pe) {
		t.Fatalf("a line that does not match: %v, want *ParseError", err)
	}
}

// TestAvroDoesNotAllocate: the Avro paths allocate nothing per line once
// the Result and dst have grown.
func TestAvroDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation")
	}
	for _, bc := range benchCases {
		p := mustCompile(t, bc.format, Options{KeyField: "remote_addr"})
		line := []byte(bc.line)
		meta := Meta{Host: "web-1", File: "/var/log/nginx/access.log", Offset: 1}
		var r Result
		dst, err := p.ParseAvro(nil, line, meta, &r)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := p.Parse(nil, line, meta, &r)
		allocs := testing.AllocsPerRun(100, func() {
			dst, err = p.ParseAvro(dst[:0], line, meta, &r)
			js, _ = p.Parse(js[:0], line, meta, &r)
			dst, _ = p.AppendAvro(dst[:0], line, meta, &r)
		})
		if err != nil || allocs != 0 {
			t.Errorf("%s: %v allocations per line (err %v)", bc.name, allocs, err)
		}
	}
}

// BenchmarkParseAvro is BenchmarkParse with the Avro encoder (match +
// Avro); BenchmarkParseBoth is the agent's path with a Kafka sink in Avro
// and an S3 sink (Parse + AppendAvro). B/op is 0; the Avro bytes per event
// are reported as avro-bytes/event.
func BenchmarkParseAvro(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			p := mustCompile(b, bc.format, Options{KeyField: "remote_addr"})
			line := []byte(bc.line)
			meta := Meta{Host: "web-1", File: "/var/log/nginx/access.log", Offset: 123456}
			var r Result
			dst, err := p.ParseAvro(nil, line, meta, &r)
			if err != nil {
				b.Fatal(err)
			}
			js, _ := p.Parse(nil, line, meta, &r)
			b.ReportMetric(float64(len(dst)), "avro-bytes/event")
			b.ReportMetric(float64(len(js)), "json-bytes/event")
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dst, err = p.ParseAvro(dst[:0], line, meta, &r)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseBoth(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			p := mustCompile(b, bc.format, Options{KeyField: "remote_addr"})
			line := []byte(bc.line)
			meta := Meta{Host: "web-1", File: "/var/log/nginx/access.log", Offset: 123456}
			var r Result
			js, _ := p.Parse(nil, line, meta, &r)
			av, _ := p.AppendAvro(nil, line, meta, &r)
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				js, _ = p.Parse(js[:0], line, meta, &r)
				av, _ = p.AppendAvro(av[:0], line, meta, &r)
			}
		})
	}
}

// BenchmarkAvroVsJSON times Parse (JSON) and ParseAvro in alternating
// chunks of 1000 lines and reports the fastest chunk of each, per line:
// on a shared, noisy machine the minimum over interleaved chunks compares
// the two paths where separate benchmarks do not.
func BenchmarkAvroVsJSON(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			p := mustCompile(b, bc.format, Options{KeyField: "remote_addr"})
			line := []byte(bc.line)
			meta := Meta{Host: "web-1", File: "/var/log/nginx/access.log", Offset: 123456}
			var r Result
			js, _ := p.Parse(nil, line, meta, &r)
			av, _ := p.ParseAvro(nil, line, meta, &r)
			const chunk = 1000
			bestJSON, bestAvro := time.Duration(1<<62), time.Duration(1<<62)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				for j := 0; j < chunk; j++ {
					js, _ = p.Parse(js[:0], line, meta, &r)
				}
				t1 := time.Now()
				for j := 0; j < chunk; j++ {
					av, _ = p.ParseAvro(av[:0], line, meta, &r)
				}
				t2 := time.Now()
				bestJSON, bestAvro = min(bestJSON, t1.Sub(t0)), min(bestAvro, t2.Sub(t1))
			}
			b.ReportMetric(float64(bestJSON.Nanoseconds())/chunk, "json-ns/line")
			b.ReportMetric(float64(bestAvro.Nanoseconds())/chunk, "avro-ns/line")
			b.ReportMetric(float64(len(js)), "json-B/event")
			b.ReportMetric(float64(len(av)), "avro-B/event")
		})
	}
}
