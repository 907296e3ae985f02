package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
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
		Prefix: "x/%Q", SpoolMaxBytes: 5, ExternalID: "e", Format: "orc", ParquetCompression: "lz4", ParquetRowGroupBytes: 10}
	c.Defaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, key := range []string{"sinks.s3.bucket", "sinks.s3.compression_level", "sinks.s3.upload_part_size",
		"sinks.s3.sse", "sinks.s3.storage_class", "sinks.s3.prefix", "sinks.s3.spool_max_bytes", "sinks.s3.external_id", "spool directory",
		`sinks.s3.format: must be "json" or "parquet", got "orc"`, `sinks.s3.parquet_compression: must be "zstd" or "snappy", got "lz4"`,
		"sinks.s3.parquet_row_group_bytes: must be at least 1 MiB"} {
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
	vals := [][]byte{[]byte("aaaa"), []byte("bb"), []byte("cccccc")} // 5+3+7 = 15 bytes as lines
	for _, tc := range []struct {
		room      int64
		roomLines int
		empty     bool
		k         int
		n         int64
	}{
		{100, 10, false, 3, 15},
		{15, 3, false, 3, 15}, // exactly full
		{14, 10, false, 2, 8}, // by bytes: stops within one line of the limit
		{8, 10, false, 2, 8},
		{7, 10, false, 1, 5},
		{4, 10, false, 0, 0},
		{4, 10, true, 1, 5}, // an empty batch takes one line, however long
		{0, 10, true, 1, 5},
		{100, 2, false, 2, 8}, // by events
		{100, 1, true, 1, 5},
		{100, 0, true, 0, 0},
		{100, -1, false, 0, 0},
	} {
		k, n := cut(vals, 15, tc.room, tc.roomLines, tc.empty)
		if n != tc.n || k != tc.k {
			t.Errorf("cut(room %d, lines %d, empty %v) = %d lines, %d bytes; want %d, %d", tc.room, tc.roomLines, tc.empty, k, n, tc.k, tc.n)
		}
	}
	// An oversize single line goes alone into an empty batch, never into a
	// non-empty one.
	big := [][]byte{bytes.Repeat([]byte("x"), 100), []byte("y")}
	if k, n := cut(big, 103, 10, 10, true); k != 1 || n != 101 {
		t.Errorf("oversize line, empty batch: %d lines, %d bytes", k, n)
	}
	if k, n := cut(big, 103, 10, 10, false); k != 0 || n != 0 {
		t.Errorf("oversize line, non-empty batch: %d lines, %d bytes", k, n)
	}
	if k, n := cut(big[1:], 2, 10, 10, false); k != 1 || n != 2 {
		t.Errorf("after the oversize line: %d lines, %d bytes", k, n)
	}
	if k, n := cut(nil, 0, 10, 10, true); k != 0 || n != 0 {
		t.Errorf("no lines: %d lines, %d bytes", k, n)
	}
}

// valueBatch is a batch of n events whose values all live in one buffer, the
// way the agent's arenas hold them; their times cycle through two hours, every
// seventh event is invalid. It returns the batch and the lines expected in the
// objects (events, then dead letters).
func valueBatch(src *sinks.Source, first, n int, now time.Time, onDone func(*sinks.Batch, error)) (*sinks.Batch, []string, []string) {
	b := sinks.NewBatch(src)
	var arena []byte
	ends := make([]int, 0, n)
	for i := first; i < first+n; i++ {
		arena = append(arena, jsonEvent(i, now)...)
		ends = append(ends, len(arena))
	}
	var lines, dead []string
	off := 0
	for j, end := range ends {
		v := arena[off:end:end]
		off = end
		i := first + j
		e := b.Add()
		e.Time = now.Add(time.Duration(i%2) * time.Hour)
		e.Offset = int64(i * 400)
		if i%7 == 3 {
			e.Err = errors.New("no match")
			e.Raw = v
			rec, _ := json.Marshal(deadLetter{Reason: "no match", File: src.Path, Offset: e.Offset, Time: e.Time.UTC(), Raw: string(v)})
			dead = append(dead, string(rec))
			continue
		}
		e.Value = v
		lines = append(lines, string(v))
	}
	b.Arm(1, onDone)
	return b, lines, dead
}

// After Send returns, the sink reads the values in place: it does not need
// them copied, only left alone until their batch is acknowledged. Here the
// "agent" overwrites every value as soon as its batch completes, as it does
// when it reuses the buffer; the objects still hold exactly the values sent,
// and batch_max_bytes and batch_max_events cut them as before.
func TestValuesReadInPlaceUntilAck(t *testing.T) {
	for _, limit := range []string{"bytes", "events"} {
		t.Run(limit, func(t *testing.T) {
			cfg := testConfig(t, nil)
			cfg.DeadLetterPrefix = "invalid/%Y/%H/"
			const maxBytes, maxEvents = 20000, 37
			if limit == "bytes" {
				cfg.BatchMaxBytes = maxBytes
			} else {
				cfg.BatchMaxEvents = maxEvents
			}
			api := &discardAPI{bodies: map[string][]byte{}}
			h := newHarness(t, cfg, api)
			var mu sync.Mutex
			acked, scribbled := 0, 0
			onDone := func(b *sinks.Batch, err error) {
				if err != nil {
					t.Errorf("ack: %v", err)
				}
				n := 0
				for i := range b.Events {
					e := &b.Events[i]
					for _, p := range [][]byte{e.Value, e.Raw} {
						for j := range p {
							p[j] = 'X'
						}
						n += len(p)
					}
				}
				mu.Lock()
				scribbled += n
				acked++
				mu.Unlock()
			}
			now := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
			src := &sinks.Source{Path: "/var/log/nginx/access.log"}
			var want, wantDead []string
			const batches, per = 40, 53
			for i := range batches {
				b, lines, dead := valueBatch(src, i*per, per, now, onDone)
				want = append(want, lines...)
				wantDead = append(wantDead, dead...)
				if err := h.s.Send(context.Background(), b); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "acks", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return acked == batches
			})
			if err := h.s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if scribbled == 0 {
				t.Fatal("nothing overwritten")
			}
			var got, gotDead []string
			maxLine := 0
			for _, l := range want {
				maxLine = max(maxLine, len(l)+1)
			}
			short := map[string]int{} // objects of each partition under the limit
			for key, body := range api.bodies {
				raw, err := s3test.Gunzip(body)
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				if len(raw) == 0 || raw[len(raw)-1] != '\n' {
					t.Fatalf("%s: does not end with a newline", key)
				}
				lines := strings.Split(string(raw[:len(raw)-1]), "\n")
				part := key[:strings.LastIndexByte(key, '/')]
				if strings.HasPrefix(key, "invalid/") {
					gotDead = append(gotDead, lines...)
					continue
				}
				got = append(got, lines...)
				switch limit {
				case "bytes":
					if len(raw) > maxBytes {
						t.Errorf("%s: %d bytes, over batch_max_bytes", key, len(raw))
					}
					if len(raw) <= maxBytes-maxLine {
						short[part]++
					}
				case "events":
					if len(lines) > maxEvents {
						t.Errorf("%s: %d lines, over batch_max_events", key, len(lines))
					}
					if len(lines) < maxEvents {
						short[part]++
					}
				}
			}
			for part, n := range short {
				if n > 1 { // only the last object of a partition, closed by Close
					t.Errorf("%s: %d objects not full (by %s)", part, n, limit)
				}
			}
			if len(short) != 2 {
				t.Errorf("partitions: %v", short)
			}
			slices.Sort(got)
			slices.Sort(want)
			equalLines(t, got, want)
			slices.Sort(gotDead)
			slices.Sort(wantDead)
			equalLines(t, gotDead, wantDead)
		})
	}
}

// Send takes the values without copying them: a batch of 8 MB of values
// costs it a few KB of memory.
func TestSendDoesNotCopyValues(t *testing.T) {
	cfg := testConfig(t, nil)
	h := newHarness(t, cfg, &discardAPI{})
	src := &sinks.Source{Path: "/var/log/nginx/access.log"}
	var a acks
	b := sinks.NewBatch(src)
	value := bytes.Repeat([]byte(`{"k":"vvvvvvvv"}`), 512) // 8 KiB
	const n = 1000
	for range n {
		e := b.Add()
		e.Time = time.Now()
		e.Value = value
	}
	b.Arm(1, a.onDone)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	if err := h.s.Send(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	if got := m1.TotalAlloc - m0.TotalAlloc; got > n*uint64(len(value))/16 {
		t.Errorf("Send of %d bytes of values allocated %d bytes", n*len(value), got)
	}
	waitFor(t, 10*time.Second, "acks", func() bool { return a.count() == n })
}

// Once a commit has acknowledged a batch the sink holds no reference to its
// values: the agent's buffers can be freed.
func TestCommitReleasesValues(t *testing.T) {
	cfg := testConfig(t, nil)
	h := newHarness(t, cfg, &discardAPI{})
	var a acks
	var freed atomic.Bool
	func() {
		arena := new([64 << 10]byte)
		runtime.AddCleanup(arena, func(f *atomic.Bool) { f.Store(true) }, &freed)
		b := sinks.NewBatch(&sinks.Source{})
		for i := range 100 {
			e := b.Add()
			e.Time = time.Now()
			e.Value = arena[i*100 : i*100+50]
			copy(e.Value, `{"a":1}`)
		}
		b.Arm(1, a.onDone)
		if err := h.s.Send(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}()
	waitFor(t, 10*time.Second, "acks", func() bool { return a.count() == 100 })
	waitFor(t, 10*time.Second, "the values to be freed", func() bool {
		runtime.GC()
		return freed.Load()
	})
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
