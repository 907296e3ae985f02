package parser

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenLogs are the access logs a real nginx wrote (testdata/nginx/gen.sh)
// and the log_format name each was written with in nginx.conf.in.
var goldenLogs = []struct{ log, format string }{
	{"combined", "combined"}, // nginx's predefined format, not in the file
	{"main", "main"},
	{"full15", "full15"},
	{"upstream", "upstream"},
	{"json", "jsonlog"},
	{"none", "rawnone"},
	{"default_included", "included"}, // defined in an included file
	{"json_builtin", "json"},         // compiled as the built-in name
}

const nginxConf = "testdata/nginx/nginx.conf.in"

// readLines splits data into lines without their newline, with offsets.
func readLines(data []byte) (lines [][]byte, offsets []int64) {
	var off int64
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			i = len(data)
		}
		lines = append(lines, data[:i])
		offsets = append(offsets, off)
		if i == len(data) {
			break
		}
		off += int64(i + 1)
		data = data[i+1:]
	}
	return lines, offsets
}

func compileFromConf(t testing.TB, name string) *Parser {
	t.Helper()
	if _, ok := Builtin(name); ok && name != "combined" {
		return mustCompile(t, name, Options{KeyField: "remote_addr"})
	}
	format, esc, err := FromNginxConf(nginxConf, name, os.ReadFile, filepath.Glob)
	if err != nil {
		t.Fatalf("FromNginxConf(%s): %v", name, err)
	}
	return mustCompile(t, format, Options{Escape: esc, KeyField: "remote_addr"})
}

// TestGolden parses every line real nginx wrote and compares the events
// with testdata/golden/NAME.jsonl. Every line must parse.
func TestGolden(t *testing.T) {
	for _, g := range goldenLogs {
		t.Run(g.log, func(t *testing.T) {
			p := compileFromConf(t, g.format)
			data, err := os.ReadFile(filepath.Join("testdata/nginx", g.log+".log"))
			if err != nil {
				t.Fatal(err)
			}
			lines, offsets := readLines(data)
			if len(lines) < 20 {
				t.Fatalf("only %d lines in %s.log", len(lines), g.log)
			}
			var out []byte
			var r Result
			for i, line := range lines {
				meta := Meta{Host: "web-1", File: "/var/log/nginx/" + g.log + ".log", Offset: offsets[i]}
				n := len(out)
				out, err = p.Parse(out, line, meta, &r)
				if err != nil {
					t.Errorf("line %d does not parse: %v\n%q", i+1, err, line)
					continue
				}
				if !json.Valid(out[n:]) {
					t.Errorf("line %d: invalid JSON %s", i+1, out[n:])
				}
				if string(r.Key) != "127.0.0.1" {
					t.Errorf("line %d: key %q", i+1, r.Key)
				}
				if r.Time.IsZero() && len(p.impl.timeVars) > 0 {
					t.Errorf("line %d: no time", i+1)
				}
				out = append(out, '\n')
			}
			golden := filepath.Join("testdata/golden", g.log+".jsonl")
			if *update {
				if err := os.MkdirAll("testdata/golden", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			gl, _ := readLines(out)
			wl, _ := readLines(want)
			if len(gl) != len(wl) {
				t.Fatalf("%d events, golden has %d", len(gl), len(wl))
			}
			for i := range gl {
				if !bytes.Equal(gl[i], wl[i]) {
					t.Errorf("line %d:\n got %s\nwant %s", i+1, gl[i], wl[i])
				}
			}
		})
	}
}
