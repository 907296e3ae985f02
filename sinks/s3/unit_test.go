package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

func TestTemplateRender(t *testing.T) {
	tm := time.Date(2026, 3, 7, 5, 4, 9, 0, time.FixedZone("x", 2*3600)) // 03:04:09 UTC
	for _, tc := range []struct{ in, want string }{
		{"nginx/dt=%Y-%m-%d/hour=%H/", "nginx/dt=2026-03-07/hour=03/"},
		{"{hostname}/{input}/%F/%T/%%/%y%j/%M%S/%s", "web-1/3/2026-03-07/03:04:09/%/26066/0409/1772852649"},
		{"plain/", "plain/"},
	} {
		k, err := compileTemplate(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got := string(k.render(nil, tm, "web-1", 3)); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"%Q", "a%", "{host}", "{hostname"} {
		if _, err := compileTemplate(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestConfigValidateNamesEveryKey(t *testing.T) {
	c := Config{CompressionLevel: 12, UploadPartSize: 1, SSE: "rot13", StorageClass: "CHEAP",
		Prefix: "x/%Q", SpoolMaxBytes: 5, ExternalID: "e"}
	c.Defaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, key := range []string{"sinks.s3.bucket", "sinks.s3.compression_level", "sinks.s3.upload_part_size",
		"sinks.s3.sse", "sinks.s3.storage_class", "sinks.s3.prefix", "sinks.s3.spool_max_bytes", "sinks.s3.external_id", "spool directory"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
	good := Config{Bucket: "b", SpoolDir: "/tmp/x"}
	good.Defaults()
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestCut(t *testing.T) {
	data := []byte("aaaa\nbb\ncccccc\n")
	for _, tc := range []struct {
		room      int64
		roomLines int
		empty     bool
		n, k      int
	}{
		{100, 10, false, 15, 3},
		{8, 10, false, 8, 2},
		{7, 10, false, 5, 1},
		{4, 10, false, 0, 0},
		{4, 10, true, 5, 1}, // an empty batch takes one line, however long
		{100, 2, false, 8, 2},
		{100, 0, true, 0, 0},
	} {
		n, k := cut(data, 3, tc.room, tc.roomLines, tc.empty)
		if n != tc.n || k != tc.k {
			t.Errorf("cut(room %d, lines %d, empty %v) = %d, %d; want %d, %d", tc.room, tc.roomLines, tc.empty, n, k, tc.n, tc.k)
		}
	}
}

func members(t *testing.T, parts ...string) ([]byte, []int64) {
	var buf bytes.Buffer
	var ends []int64
	for _, p := range parts {
		zw, _ := gzip.NewWriterLevel(&buf, 6)
		zw.Write([]byte(p))
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, int64(buf.Len()))
	}
	return buf.Bytes(), ends
}

func TestScanMembersStopsAtTornMember(t *testing.T) {
	data, ends := members(t, "a\nb\n", "c\n", strings.Repeat("d\n", 1000))
	end, raw, n, err := scanMembers(bytes.NewReader(data))
	if err != nil || end != ends[2] || n != 3 || raw != 4+2+2000 {
		t.Fatalf("whole: end %d raw %d members %d err %v; want %d", end, raw, n, err, ends[2])
	}
	for cutAt := ends[1] + 1; cutAt < ends[2]; cutAt += 3 {
		end, _, n, err := scanMembers(bytes.NewReader(data[:cutAt]))
		if err != nil || end != ends[1] || n != 2 {
			t.Fatalf("cut at %d: end %d members %d err %v; want %d", cutAt, end, n, err, ends[1])
		}
	}
	// Garbage (zeros, as after a crash with delayed allocation) after a member.
	withZeros := append(append([]byte{}, data[:ends[0]]...), make([]byte, 4096)...)
	if end, _, n, err := scanMembers(bytes.NewReader(withZeros)); err != nil || end != ends[0] || n != 1 {
		t.Fatalf("zeros: end %d members %d err %v", end, n, err)
	}
	// A member whose CRC does not match is not kept.
	bad := append([]byte{}, data...)
	bad[ends[1]-8] ^= 0xff
	if end, _, _, err := scanMembers(bytes.NewReader(bad)); err != nil || end != ends[0] {
		t.Fatalf("bad crc: end %d err %v; want %d", end, err, ends[0])
	}
	if _, _, _, err := scanMembers(errReader{}); err == nil {
		t.Fatal("an I/O error was taken for a torn tail")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// Recovery handles every state a crash can leave: scratch files and a meta
// without data are removed; an .open next to its .ready (crash after the
// rename of a compaction) is dropped; data whose meta is missing is still
// uploaded, under a new key.
func TestRecoverOddSpoolStates(t *testing.T) {
	dir := t.TempDir()
	gz, _ := members(t, "{\"a\":1}\n")
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	meta := func(key string) []byte {
		b, _ := json.Marshal(batchMeta{Key: key, Kind: "events", Created: time.Now()})
		return b
	}
	write("1-a.tmp", []byte("scratch"))
	write("2-b.meta", meta("k/only-meta.json.gz"))
	write("3-c.meta", meta("k/ready.json.gz"))
	write("3-c.ready", gz)
	write("3-c.open", gz)
	write("4-d.ready", gz) // no meta
	cfg := Config{Bucket: "b", SpoolDir: dir, Hostname: "web-1", RetryMinBackoff: Duration{time.Millisecond}}
	api := &discardAPI{}
	s, err := newSink(cfg, testLogger(t), nil, api)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(api.sizes) != 2 {
		t.Fatalf("uploaded %d objects, want 2", len(api.sizes))
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "LOCK" {
			t.Errorf("left in the spool: %s", e.Name())
		}
	}
}
