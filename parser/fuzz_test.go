package parser

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/avro"
)

// seedLines adds every line of the real nginx logs in testdata/nginx.
func seedLines(f *testing.F, add func(line []byte)) {
	f.Helper()
	for _, g := range goldenLogs {
		data, err := os.ReadFile(filepath.Join("testdata/nginx", g.log+".log"))
		if err != nil {
			f.Fatal(err)
		}
		lines, _ := readLines(data)
		for _, l := range lines {
			if len(l) < 2000 {
				add(l)
			}
		}
	}
}

func checkEvent(t *testing.T, out []byte, err error, line []byte) {
	t.Helper()
	if err != nil {
		if _, ok := err.(*ParseError); !ok {
			t.Fatalf("error is %T, not *ParseError: %v", err, err)
		}
		pe := err.(*ParseError)
		if pe.Pos < 0 || pe.Pos > len(line) {
			t.Fatalf("error position %d outside the line (%d bytes)", pe.Pos, len(line))
		}
		return
	}
	if !json.Valid(out) {
		t.Fatalf("invalid JSON for line %q:\n%s", line, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("event does not decode: %v\n%s", err, out)
	}
	if m["host"] != "web-1" {
		t.Fatalf("host missing: %s", out)
	}
}

// FuzzParse feeds arbitrary lines to the built-in and test formats, with
// each escape: no panic, every event is valid JSON, and its Avro encoding
// decodes (twmb/avro) to the same event.
func FuzzParse(f *testing.F) {
	seedLines(f, func(l []byte) { f.Add(l) })
	f.Add([]byte(`1.2.3.4 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 1 "-" "a\x22\xff\x5C"`))
	var parsers []*Parser
	for _, g := range goldenLogs {
		spec := ConfPrefix + nginxConf + ":" + g.format
		if _, ok := Builtin(g.format); ok {
			spec = g.format
		}
		format, esc, _, err := ResolveFormat(spec, os.ReadFile, filepath.Glob)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range []Escape{esc, EscapeDefault, EscapeJSON, EscapeNone} {
			parsers = append(parsers, mustCompile(f, format, Options{Escape: e, KeyField: "remote_addr"}))
		}
	}
	schemas := make([]*avro.Schema, len(parsers))
	for i, p := range parsers {
		var err error
		if schemas[i], err = avro.Parse(p.Schema().Avro()); err != nil {
			f.Fatal(err)
		}
	}
	meta := Meta{Host: "web-1", File: "f", Offset: 1}
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Result
		for i, p := range parsers {
			out, err := p.Parse(nil, line, meta, &r)
			checkEvent(t, out, err, line)
			if err == nil {
				checkAvroOf(t, p, schemas[i], line, meta, &r, out)
			}
		}
	})
}

// checkAvroOf: the Avro event of a line that parsed is, decoded, the JSON
// event (or a *SchemaError); ParseAvro agrees.
func checkAvroOf(t *testing.T, p *Parser, sch *avro.Schema, line []byte, meta Meta, r *Result, js []byte) {
	t.Helper()
	bin, err := p.AppendAvro(nil, line, meta, r)
	var se *SchemaError
	if errors.As(err, &se) {
		return
	}
	if err != nil {
		t.Fatalf("AppendAvro: %v for %q", err, line)
	}
	checkAvro(t, sch, bin, js)
	var r2 Result
	if only, err := p.ParseAvro(nil, line, meta, &r2); err != nil || !bytes.Equal(only, bin) {
		t.Fatalf("ParseAvro differs (%v) for %q", err, line)
	}
}

// FuzzCompile compiles arbitrary formats (and parses the format text
// itself and a sample line with them): no panic, valid JSON.
func FuzzCompile(f *testing.F) {
	for _, b := range builtins {
		f.Add(b, `127.0.0.1 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 1 "-" "x"`, uint8(0))
	}
	f.Add(full15Format, `1 - - [x] "y" 1 2 "a" "b" "c" 0.1 0.2, - "t" id`, uint8(2))
	f.Add(`'$a "$b" ' '${c}d'`, `x "y" zd`, uint8(1))
	f.Add(`{"a":"$msec","b":$status,"c":"$upstream_addr"}`, `{"a":"1.5","b":200,"c":"1:2 : 3"}`, uint8(1))
	f.Fuzz(func(t *testing.T, format, line string, esc uint8) {
		p, err := Compile(format, Options{Escape: Escape(esc % 3)})
		if err != nil {
			return
		}
		var r Result
		for _, l := range []string{line, format} {
			out, err := p.Parse(nil, []byte(l), Meta{Host: "web-1"}, &r)
			checkEvent(t, out, err, []byte(l))
		}
	})
}
