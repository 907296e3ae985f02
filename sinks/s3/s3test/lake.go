package s3test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

// DownloadParquet downloads every object under prefix into a new folder,
// each at its key (as `aws s3 sync` would), checking it is a .parquet
// object with the Parquet content type and no content encoding. It returns
// the folder, the number of objects and their total size.
func (s *Server) DownloadParquet(t testing.TB, prefix string) (dir string, objects int, size int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	objs, err := s.Objects(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".parquet") || o.ContentType != "application/vnd.apache.parquet" || o.ContentEncoding != "" {
			t.Errorf("%s: Content-Type %q, Content-Encoding %q; want a .parquet object", o.Key, o.ContentType, o.ContentEncoding)
		}
		p := filepath.Join(dir, filepath.FromSlash(o.Key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, o.Body, 0o644); err != nil {
			t.Fatal(err)
		}
		size += int64(len(o.Body))
	}
	return dir, len(objs), size
}

// DuckType is the DuckDB type a schema field must read as from the S3
// sink's Parquet objects.
func DuckType(f parser.Field) string {
	switch f.Type {
	case parser.TypeLong:
		return "BIGINT"
	case parser.TypeDouble:
		return "DOUBLE"
	case parser.TypeBoolean:
		return "BOOLEAN"
	case parser.TypeTimestamp:
		return "TIMESTAMP WITH TIME ZONE"
	case parser.TypeArray:
		return DuckType(parser.Field{Type: f.Items}) + "[]"
	case parser.TypeRecord:
		var ms []string
		for _, m := range f.Fields {
			ms = append(ms, m.Name+" "+DuckType(m))
		}
		return "STRUCT(" + strings.Join(ms, ", ") + ")"
	}
	return "VARCHAR"
}

// LakeEvents reads the Parquet objects matching glob with DuckDB
// (read_parquet with hive_partitioning), as a user's query would. It checks
// that every column has the DuckDB type of its schema field (the timestamp
// TIMESTAMP WITH TIME ZONE plus an INTEGER <name>_offset) and that the Hive
// partitions dt and hour hold the event's UTC date and hour, and returns
// the events as JSON events: nulls left out, the timestamp rebuilt from
// the instant and its offset as RFC 3339 with milliseconds, numbers as
// json.Number as DuckDB wrote them.
func LakeEvents(t testing.TB, glob string, s parser.Schema) []map[string]any {
	t.Helper()
	src := fmt.Sprintf("read_parquet('%s', hive_partitioning = true)", glob)
	res := DuckDB(t, "SET TimeZone = 'UTC'", "DESCRIBE SELECT * FROM "+src, "SELECT to_json(t) AS j FROM "+src+" t")
	types := map[string]string{}
	for _, r := range res[1].Rows {
		types[r["column_name"].(string)] = r["column_type"].(string)
	}
	for _, f := range s.Fields {
		if got, want := strings.ReplaceAll(types[f.Name], `"`, ""), DuckType(f); got != want {
			t.Errorf("%s: column %s is %s in DuckDB, want %s", glob, f.Name, got, want)
		}
		if f.Type == parser.TypeTimestamp && types[f.Name+"_offset"] != "INTEGER" {
			t.Errorf("%s: %s_offset is %s in DuckDB, want INTEGER", glob, f.Name, types[f.Name+"_offset"])
		}
	}
	_, hasDT := types["dt"]
	_, hasHour := types["hour"]
	var out []map[string]any
	for _, r := range res[2].Rows {
		d := json.NewDecoder(strings.NewReader(r["j"].(string)))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		ev := map[string]any{}
		for _, f := range s.Fields {
			v := m[f.Name]
			if v == nil {
				continue
			}
			switch f.Type {
			case parser.TypeTimestamp:
				// DuckDB prints TIMESTAMPTZ in the session's zone (UTC).
				tm, err := time.Parse("2006-01-02 15:04:05.999999-07", v.(string))
				if err != nil {
					t.Fatalf("%s %q: %v", f.Name, v, err)
				}
				off, err := m[f.Name+"_offset"].(json.Number).Int64()
				if err != nil {
					t.Fatalf("%s_offset: %v", f.Name, err)
				}
				v = tm.In(time.FixedZone("", int(off)*60)).Format("2006-01-02T15:04:05.000-07:00")
				hour, _ := strconv.Atoi(fmt.Sprint(m["hour"])) // "03" (VARCHAR) or 15 (BIGINT): DuckDB guesses
				if hasDT && m["dt"] != tm.UTC().Format("2006-01-02") || hasHour && hour != tm.UTC().Hour() {
					t.Errorf("partition dt=%v hour=%v holds an event at %s", m["dt"], m["hour"], tm.UTC())
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
			ev[f.Name] = v
		}
		out = append(out, ev)
	}
	return out
}

// EventDiff lists the fields where a JSON event (numbers as json.Number)
// and the same event read from Parquet (LakeEvents) differ: numbers by
// value, integers written without a fraction (BIGINT), the rest as JSON. A
// JSON field the schema does not know is a difference too.
func EventDiff(s parser.Schema, jsonEv, lakeEv map[string]any) []string {
	var diffs []string
	known := map[string]bool{}
	for _, f := range s.Fields {
		known[f.Name] = true
		j, jok := jsonEv[f.Name]
		d, dok := lakeEv[f.Name]
		if jok != dok || jok && !sameValue(f, j, d) {
			diffs = append(diffs, fmt.Sprintf("%s: parquet %#v, JSON %#v", f.Name, d, j))
		}
	}
	for k := range jsonEv {
		if !known[k] {
			diffs = append(diffs, fmt.Sprintf("%s: in the JSON event, not in the schema", k))
		}
	}
	return diffs
}

func sameValue(f parser.Field, j, d any) bool {
	switch f.Type {
	case parser.TypeLong, parser.TypeDouble:
		jn, ok1 := j.(json.Number)
		dn, ok2 := d.(json.Number)
		if !ok1 || !ok2 {
			return false
		}
		if f.Type == parser.TypeLong {
			return jn.String() == dn.String()
		}
		x, _ := jn.Float64()
		y, _ := dn.Float64()
		return x == y
	case parser.TypeArray:
		ja, ok1 := j.([]any)
		da, ok2 := d.([]any)
		if !ok1 || !ok2 || len(ja) != len(da) {
			return false
		}
		for i := range ja {
			if (ja[i] == nil) != (da[i] == nil) || ja[i] != nil && !sameValue(parser.Field{Type: f.Items}, ja[i], da[i]) {
				return false
			}
		}
		return true
	}
	jb, _ := json.Marshal(j)
	db, _ := json.Marshal(d)
	return string(jb) == string(db)
}
