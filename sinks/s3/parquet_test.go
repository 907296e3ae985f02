package s3

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/parquet-go/parquet-go"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

// goldenSets are the parser's golden files (lines a real nginx wrote,
// parsed) and the log_format each was written with.
var goldenSets = []struct{ log, format string }{
	{"combined", "combined"},
	{"main", "main"},
	{"full15", "full15"},
	{"upstream", "upstream"},
	{"json", "jsonlog"},
	{"none", "rawnone"},
	{"default_included", "included"},
}

const goldenDir = "../../parser/testdata"

// goldenSchema compiles the format of a golden set and returns its schema.
func goldenSchema(t testing.TB, format string) parser.Schema {
	t.Helper()
	f, esc, err := parser.FromNginxConf(goldenDir+"/nginx/nginx.conf.in", format, os.ReadFile, filepath.Glob)
	if format == "combined" {
		f, esc, err = "combined", parser.EscapeDefault, nil
	}
	if err != nil {
		t.Fatalf("FromNginxConf(%s): %v", format, err)
	}
	p, err := parser.Compile(f, parser.Options{Escape: esc})
	if err != nil {
		t.Fatalf("Compile(%s): %v", format, err)
	}
	return p.Schema()
}

func goldenLines(t testing.TB, log string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "golden", log+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// gzipLines is lines as a spooled batch: gzip members of NDJSON, several.
func gzipLines(t testing.TB, lines []string, perMember int) []byte {
	t.Helper()
	var out bytes.Buffer
	for i := 0; i < len(lines); i += perMember {
		zw := gzip.NewWriter(&out)
		for _, l := range lines[i:min(i+perMember, len(lines))] {
			io.WriteString(zw, l+"\n")
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// parquetToJSON reads a Parquet object back, with parquet-go's own reader
// (not the converter's code), as one JSON-like map per row: null columns
// left out, the timestamp and its offset put back together as RFC 3339,
// as the JSON event has it.
func parquetToJSON(t testing.TB, data []byte, s parser.Schema) []map[string]any {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("open parquet: %v", err)
	}
	r := parquet.NewReader(f)
	var out []map[string]any
	for {
		m := map[string]any{}
		if err := r.Read(&m); err != nil {
			if err == io.EOF {
				break
			}
			t.Fatalf("read row %d: %v", len(out), err)
		}
		ev := map[string]any{}
		for _, fd := range s.Fields {
			v := m[fd.Name]
			if v == nil {
				continue
			}
			switch fd.Type {
			case parser.TypeTimestamp:
				off := m[fd.Name+"_offset"]
				var tm time.Time
				switch x := v.(type) {
				case time.Time:
					tm = x
				case int64: // parquet-go reads TIMESTAMP(MILLIS) into a map as its int64
					tm = time.UnixMilli(x)
				default:
					t.Fatalf("%s: %T, want a time", fd.Name, v)
				}
				mins := int(reflect.ValueOf(off).Int())
				v = tm.In(time.FixedZone("", mins*60)).Format("2006-01-02T15:04:05.000Z07:00")
				if mins == 0 {
					v = strings.Replace(v.(string), "Z", "+00:00", 1)
				}
			case parser.TypeRecord:
				rec := map[string]any{}
				for k, x := range v.(map[string]any) {
					if x != nil {
						rec[k] = x
					}
				}
				v = rec
			}
			ev[fd.Name] = v
		}
		out = append(out, ev)
	}
	return out
}

// normJSON decodes a JSON event with numbers kept as written.
func normJSON(t testing.TB, line string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	return m
}

// sameValue compares a JSON value (json.Number for numbers) with the one
// read from Parquet, types included: integers must come back as int64,
// other numbers as float64.
func sameValue(f parser.Field, j, p any) bool {
	switch f.Type {
	case parser.TypeLong:
		n, ok := p.(int64)
		return ok && j.(json.Number).String() == jsonInt(n)
	case parser.TypeDouble:
		x, ok := p.(float64)
		want, _ := j.(json.Number).Float64()
		return ok && x == want
	case parser.TypeArray:
		ja, pa := j.([]any), reflect.ValueOf(p)
		if pa.Kind() != reflect.Slice || pa.Len() != len(ja) {
			return false
		}
		for i := range ja {
			pv := pa.Index(i).Interface()
			if ja[i] == nil || pv == nil {
				if ja[i] != nil || pv != nil {
					return false
				}
				continue
			}
			if !sameValue(parser.Field{Type: f.Items}, ja[i], pv) {
				return false
			}
		}
		return true
	case parser.TypeRecord:
		jm, pm := j.(map[string]any), p.(map[string]any)
		return reflect.DeepEqual(jm, pm)
	}
	return reflect.DeepEqual(j, p)
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestParquetGolden converts every golden event (lines a real nginx wrote)
// and reads the object back with parquet-go's reader: every event equals
// its JSON, types included, in several row groups with statistics.
func TestParquetGolden(t *testing.T) {
	for _, g := range goldenSets {
		t.Run(g.log, func(t *testing.T) {
			s := goldenSchema(t, g.format)
			lines := goldenLines(t, g.log)
			src := gzipLines(t, lines, 7)
			var dst bytes.Buffer
			var c pqConverter
			res, err := c.convert(newPQPlan(s), bytes.NewReader(src), &dst, pqOptions{codec: ParquetZstd, rowGroupBytes: 2048})
			if err != nil {
				t.Fatal(err)
			}
			if res.rows != int64(len(lines)) || res.dropped != 0 || res.size != int64(dst.Len()) {
				t.Fatalf("rows %d of %d, dropped %d, size %d of %d", res.rows, len(lines), res.dropped, res.size, dst.Len())
			}
			f, err := parquet.OpenFile(bytes.NewReader(dst.Bytes()), int64(dst.Len()))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.RowGroups()) < 2 || len(f.RowGroups()) != res.groups {
				t.Errorf("%d row groups, result says %d; want several at 2 KiB", len(f.RowGroups()), res.groups)
			}
			// Statistics per column chunk: the time and numbers engines
			// skip row groups by have min and max in every row group.
			for _, rg := range f.Metadata().RowGroups {
				for _, cc := range rg.Columns {
					st := cc.MetaData.Statistics
					name := strings.Join(cc.MetaData.PathInSchema, ".")
					if (name == "timestamp" || name == "status" || name == "log_offset") && (len(st.MinValue) == 0 || len(st.MaxValue) == 0) {
						t.Errorf("column %s: no min/max statistics: %+v, %d rows", name, st, rg.NumRows)
					}
				}
			}
			got := parquetToJSON(t, dst.Bytes(), s)
			if len(got) != len(lines) {
				t.Fatalf("%d rows, want %d", len(got), len(lines))
			}
			for i, line := range lines {
				want := normJSON(t, line)
				for _, fd := range s.Fields {
					j, jok := want[fd.Name]
					p, pok := got[i][fd.Name]
					if jok != pok || (jok && !sameValue(fd, j, p)) {
						t.Errorf("line %d: %s: parquet %#v, JSON %#v", i+1, fd.Name, p, j)
					}
					delete(want, fd.Name)
				}
				if len(want) > 0 {
					t.Errorf("line %d: fields not in the schema: %v", i+1, want)
				}
			}
		})
	}
}

// TestParquetColumns: the columns follow the JSON's field order, with the
// Parquet types of the schema, every one optional.
func TestParquetColumns(t *testing.T) {
	s := goldenSchema(t, "upstream")
	plan := newPQPlan(s)
	var dst bytes.Buffer
	var c pqConverter
	if _, err := c.convert(plan, bytes.NewReader(gzipLines(t, goldenLines(t, "upstream"), 100)), &dst, pqOptions{codec: ParquetSnappy, rowGroupBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(dst.Bytes()), int64(dst.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fd := range f.Schema().Fields() {
		names = append(names, fd.Name())
		if !fd.Optional() {
			t.Errorf("%s is not optional", fd.Name())
		}
	}
	var want []string
	for _, fd := range s.Fields {
		want = append(want, fd.Name)
		if fd.Type == parser.TypeTimestamp {
			want = append(want, fd.Name+"_offset")
		}
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("columns\n%v\nwant\n%v", names, want)
	}
	sch := f.Schema().String()
	for _, frag := range []string{
		"optional int64 timestamp (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS))",
		"optional int32 timestamp_offset (INT(32,true))",
		"optional int64 status (INT(64,true))",
		"optional double request_time",
		"optional group upstream_status (LIST)",
		"optional binary request_uri (STRING)",
	} {
		if !strings.Contains(sch, frag) {
			t.Errorf("schema lacks %q:\n%s", frag, sch)
		}
	}
	for _, cc := range f.Metadata().RowGroups[0].Columns {
		if cc.MetaData.Codec.String() != "SNAPPY" {
			t.Errorf("%v: codec %v", cc.MetaData.PathInSchema, cc.MetaData.Codec)
		}
	}
}

// TestParquetBadInput: values the schema has no column for, or of the
// wrong type, are counted and left out; a line that is not JSON fails the
// conversion with its line number; an unterminated last line fails.
func TestParquetBadInput(t *testing.T) {
	s := parser.Schema{Name: "access", Fields: []parser.Field{
		{Name: "timestamp", Type: parser.TypeTimestamp},
		{Name: "status", Type: parser.TypeLong},
		{Name: "t", Type: parser.TypeDouble},
		{Name: "ok", Type: parser.TypeBoolean},
		{Name: "u", Type: parser.TypeString},
		{Name: "l", Type: parser.TypeArray, Items: parser.TypeLong},
		{Name: "h", Type: parser.TypeRecord, Fields: []parser.Field{{Name: "a", Type: parser.TypeString}}},
	}}
	lines := []string{
		`{"timestamp":"2026-01-02T03:04:05.678Z","status":"x","t":1e3,"ok":true,"u":"\u00e9\ud83d\ude00\"\\\/\n","l":[1,null,"x"],"h":{"a":"b","zz":"c"},"extra":{"a":[1,{"b":2}]}}`,
		`{ "timestamp" : "1969-12-31T23:59:59.999-01:30" , "l" : [ ] , "h" : { } }`,
	}
	var dst bytes.Buffer
	var c pqConverter
	res, err := c.convert(newPQPlan(s), bytes.NewReader(gzipLines(t, lines, 1)), &dst, pqOptions{rowGroupBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.dropped != 4 { // "x" status, "x" item, h.zz, extra
		t.Errorf("dropped %d, want 4", res.dropped)
	}
	got := parquetToJSON(t, dst.Bytes(), s)
	if got[0]["u"] != "é😀\"\\/\n" || got[0]["t"] != 1000.0 || got[0]["ok"] != true || got[0]["status"] != nil {
		t.Errorf("row 1: %#v", got[0])
	}
	if l := reflect.ValueOf(got[0]["l"]); l.Len() != 3 || l.Index(1).Interface() != nil || l.Index(2).Interface() != nil {
		t.Errorf("row 1 list: %#v", got[0]["l"])
	}
	if got[0]["timestamp"] != "2026-01-02T03:04:05.678+00:00" || got[1]["timestamp"] != "1969-12-31T23:59:59.999-01:30" {
		t.Errorf("timestamps %v, %v", got[0]["timestamp"], got[1]["timestamp"])
	}
	if l := reflect.ValueOf(got[1]["l"]); !l.IsValid() || l.Len() != 0 {
		t.Errorf("row 2: empty list read back as %#v", got[1]["l"])
	}

	for _, bad := range []string{`{"status":1`, `not json`, `{"status":1}x`, `{"status":1,"u":}`} {
		_, err := c.convert(newPQPlan(s), bytes.NewReader(gzipLines(t, []string{`{"status":1}`, bad}, 1)), io.Discard, pqOptions{rowGroupBytes: 1 << 20})
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: err %v, want one naming line 2", bad, err)
		}
	}
	var torn bytes.Buffer
	zw := gzip.NewWriter(&torn)
	io.WriteString(zw, "{\"status\":1}\n{\"status\":2}")
	zw.Close()
	if _, err := c.convert(newPQPlan(s), &torn, io.Discard, pqOptions{rowGroupBytes: 1 << 20}); err != errTornLine {
		t.Errorf("torn last line: %v", err)
	}
}

// TestParseTimestamp: the allocation-free parser agrees with time.Parse.
func TestParseTimestamp(t *testing.T) {
	for _, s := range []string{
		"2026-11-25T16:53:50.000+01:00", "2026-11-25T15:53:50.121+00:00", "2000-02-29T23:59:59.999Z",
		"1970-01-01T00:00:00Z", "1969-07-20T20:17:40.5-05:00", "2026-03-01T00:00:00.123456+05:45", "0001-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999+14:00",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		ms, off, ok := parseTimestamp([]byte(s))
		_, zoff := want.Zone()
		if !ok || ms != want.UnixMilli() && !(want.UnixMilli() < 0 && math.Abs(float64(ms-want.UnixMilli())) < 1) || int(off) != zoff/60 {
			t.Errorf("%s: %d %d %v, want %d %d", s, ms, off, ok, want.UnixMilli(), zoff/60)
		}
	}
	if _, _, ok := parseTimestamp([]byte("yesterday")); ok {
		t.Error("parsed yesterday")
	}
}

// FuzzParquetLine: any line (the spool holds our own JSON, but a disk can
// hold anything) converts or fails with an error, never a panic, and a
// converted row has one value or more per leaf column, in column order.
func FuzzParquetLine(f *testing.F) {
	for _, g := range goldenSets[:4] {
		for _, l := range goldenLines(f, g.log)[:5] {
			f.Add(l)
		}
	}
	f.Add(`{"upstream_status":[1,null,"x"],"request_headers":{"a":"\ud83d\ude00\u00"},"timestamp":"2026-01-02T03:04:05.6+05:45"}`)
	plan := newPQPlan(goldenSchema(f, "upstream"))
	f.Fuzz(func(t *testing.T, line string) {
		var c pqConverter
		c.reset(plan)
		if err := c.addLine([]byte(line)); err != nil {
			return
		}
		row := c.rows[0]
		col := -1
		for _, v := range row {
			if v.Column() < col {
				t.Fatalf("column %d after %d", v.Column(), col)
			}
			col = v.Column()
		}
		if col != plan.ncols-1 {
			t.Fatalf("last column %d of %d", col, plan.ncols)
		}
		w := parquet.NewWriter(io.Discard, plan.schema)
		if _, err := w.WriteRows(c.rows); err != nil {
			t.Fatalf("the writer refuses the row: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
