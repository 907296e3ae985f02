package container

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzDecodeCRI(f *testing.F) {
	for _, s := range []string{
		"2026-12-02T01:02:03.123456789Z stdout F GET / 200",
		"2026-12-02T02:02:03.1+01:00 stderr P part",
		"2026-12-02T01:02:03Z stdout F:x",
		"2026-12-02T01:02:03Z stdout F",
		"garbage",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Record
		err := DecodeCRI(line, &r)
		if err != nil {
			if !errors.Is(err, ErrCRI) {
				t.Fatalf("error %v does not wrap ErrCRI", err)
			}
			return
		}
		// What decoded must be a suffix of the record, and the time must
		// print back to one that parses to the same instant.
		if !bytes.HasSuffix(line, r.Log) {
			t.Fatalf("log %q is not the end of %q", r.Log, line)
		}
		sp := bytes.IndexByte(line, ' ')
		if std, err := time.Parse(time.RFC3339Nano, string(line[:sp])); err == nil && !std.Equal(r.Time) {
			t.Fatalf("time %q: got %v, time.Parse says %v", line[:sp], r.Time, std)
		}
	})
}

func FuzzDecodeDocker(f *testing.F) {
	for _, s := range []string{
		`{"log":"GET / \"x\" 200\n","stream":"stdout","time":"2026-12-02T01:02:03.123456789Z"}`,
		`{"log":"a\u003c\ud83d\ude00","stream":"stderr","time":"2026-12-02T01:02:03Z","attrs":{"a":[1,2,{"b":null}]}}`,
		`{"log":"\ud800\n","stream":"stdout","time":"2026-12-02T01:02:03Z"}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	var scratch []byte
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Record
		err := decodeDocker(line, &r, &scratch)
		if err != nil {
			if !errors.Is(err, ErrDocker) {
				t.Fatalf("error %v does not wrap ErrDocker", err)
			}
			return
		}
		// encoding/json is the oracle for what it accepts.
		var v struct {
			Log    *string `json:"log"`
			Stream string  `json:"stream"`
		}
		if !json.Valid(line) {
			// We are looser in skipped values and trailing commas; the
			// decoded log must still be sane.
			return
		}
		if err := json.Unmarshal(line, &v); err != nil || v.Log == nil {
			return // e.g. duplicate keys of another type
		}
		want := *v.Log
		if utf8.ValidString(want) && r.Partial == bytes.HasSuffix([]byte(want), []byte("\n")) {
			t.Fatalf("partial = %v for log %q", r.Partial, want)
		}
		if !r.Partial {
			want = want[:len(want)-1]
		}
		if got := string(r.Log); got != want && utf8.ValidString(got) && !bytes.Contains(line, []byte(`\ud`)) && !bytes.Contains(line, []byte(`\uD`)) {
			t.Fatalf("log = %q, encoding/json says %q", got, want)
		}
	})
}

func FuzzDecoder(f *testing.F) {
	f.Add([]byte("2026-12-02T01:02:03Z stdout P a\n2026-12-02T01:02:03Z stderr P b\n2026-12-02T01:02:03Z stdout F c\nx\n"), uint16(4))
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		d := NewDecoder(Auto, int(max)+1)
		off := int64(0)
		for _, rec := range bytes.Split(data, []byte("\n")) {
			l, ok := d.Add(rec, off)
			if h := d.Hold(); h > off || (ok && l.Start > off) {
				t.Fatalf("hold %d or start %d past the record at %d", h, l.Start, off)
			}
			if ok && l.Err == nil && len(l.Log) > int(max)+1 {
				t.Fatalf("line of %d bytes, max %d", len(l.Log), int(max)+1)
			}
			off += int64(len(rec)) + 1
		}
		for {
			if _, ok := d.Flush(); !ok {
				break
			}
		}
		if d.Hold() != -1 {
			t.Fatal("pending after Flush")
		}
	})
}
