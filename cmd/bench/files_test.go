package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

// Every generated line is in the file its sequence number names (seq %
// files), once, in order, and parses like the one-file data.
func TestGenerateFilesSpreadsLinesByFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	const files, lines = 7, 1000
	if _, err := generateFiles(dir, files, lines); err != nil {
		t.Fatal(err)
	}
	seen := make([]int, lines)
	for i := range files {
		p := filepath.Join(dir, fileName(i))
		if got, ok := fileIndex(p); !ok || got != i {
			t.Fatalf("fileIndex(%s) = %d, %v", p, got, ok)
		}
		if _, err := checkFormatOf(p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		prev := -1
		for _, seq := range fileSeqs(t, p) {
			if seq%files != i {
				t.Errorf("%s holds line %d, which belongs to file %d", p, seq, seq%files)
			}
			if seq <= prev {
				t.Errorf("%s: line %d after line %d", p, seq, prev)
			}
			prev = seq
			seen[seq]++
		}
	}
	for seq, n := range seen {
		if n != 1 {
			t.Fatalf("line %d generated %d times", seq, n)
		}
	}
}

func TestEventFile(t *testing.T) {
	for _, c := range []struct {
		ev   string
		want int
		ok   bool
	}{
		{`{"status":200,"host":"bench","log_file":"/tmp/x/logs/f-00042.log","log_offset":0}`, 42, true},
		{`{"host":"bench","log_file":"/tmp/x/logs/f-09999.log"}`, 9999, true},
		{`{"host":"bench","log_file":"/tmp/x/access.log"}`, 0, false},
		{`{"host":"bench"}`, 0, false},
		{`{"log_file":"/tmp/f-00001.log`, 0, false},
	} {
		got, ok := eventFile([]byte(c.ev))
		if got != c.want || ok != c.ok {
			t.Errorf("eventFile(%s) = %d, %v; want %d, %v", c.ev, got, ok, c.want, c.ok)
		}
	}
}

func TestFileLags(t *testing.T) {
	const s = int64(time.Second)
	// 3 files; line seq in file seq % 3.
	writeAt := []int64{1 * s, 1 * s, 1 * s, 2 * s, 2 * s, 2 * s}
	arriveAt := []int64{
		1*s + s/10, // file 0: 100 ms
		3 * s,      // file 1: 2 s
		0,          // file 2: never
		2*s + s/2,  // file 0: 500 ms, its max
		2*s + s/5,  // file 1: 200 ms
		2*s + s/5,  // file 2: 200 ms
	}
	got := fileLags(writeAt, arriveAt, 3)
	want := lagStats{max: 2 * time.Second, p99: 2 * time.Second, files: 3, undelivered: 1, lines: 1}
	if got != want {
		t.Errorf("fileLags = %+v; want %+v", got, want)
	}

	// p99 of 200 files' maxima: the 198th smallest, below the 2 worst.
	const n = 200
	writeAt, arriveAt = make([]int64, n), make([]int64, n)
	for i := range n {
		writeAt[i] = s
		arriveAt[i] = s + int64(i+1)*int64(time.Millisecond)
	}
	got = fileLags(writeAt, arriveAt, n)
	if got.max != n*time.Millisecond || got.p99 != 198*time.Millisecond || got.files != n || got.undelivered != 0 {
		t.Errorf("200 files: %+v; want max 200ms, p99 198ms, 200 files, none undelivered", got)
	}

	if got := fileLags([]int64{s}, []int64{0}, 2); got.files != 0 || got.max != 0 || got.undelivered != 1 {
		t.Errorf("nothing delivered: %+v", got)
	}
}

// An event from another file than its line's is counted, and so is one
// without a log_file of the case's files.
func TestFileTallyFindsMisfiledEvents(t *testing.T) {
	g := newLineGen(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	p, err := parser.Compile(benchFormat, parser.Options{KeyField: "remote_addr"})
	if err != nil {
		t.Fatal(err)
	}
	var r parser.Result
	event := func(seq int, file string) []byte {
		out, err := p.Parse(nil, bytes.TrimSuffix(g.line(uint64(seq), g.base), []byte("\n")), parser.Meta{Host: "bench", File: file}, &r)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tl := newFileTally(6, 3)
	tl.add(event(0, "/logs/f-00000.log"))
	tl.add(event(4, "/logs/f-00001.log"))
	if tl.misfiled != 0 || tl.total != 2 {
		t.Fatalf("events from their own files: %d misfiled, %d counted", tl.misfiled, tl.total)
	}
	tl.add(event(5, "/logs/f-00001.log")) // line 5 is file 2's
	tl.add(event(3, "/logs/access.log"))
	if tl.misfiled != 2 {
		t.Errorf("%d misfiled, want 2", tl.misfiled)
	}
	if err := tl.check("x"); err == nil || !strings.Contains(err.Error(), "2 lines missing") {
		t.Errorf("check: %v; want lines 1 and 2 missing", err)
	}
}

func TestFilesSeen(t *testing.T) {
	tl := newTally(9) // 3 files of 3 lines: file i has lines i, i+3, i+6
	for _, seq := range []uint64{0, 3, 6, 1, 7, 7} {
		tl.add(seq, true)
	}
	whole, part, none, dup := filesSeen(tl, 3)
	if whole != 1 || part != 1 || none != 1 || dup != 1 {
		t.Errorf("filesSeen = %d whole, %d part, %d none, %d with duplicates; want 1, 1, 1, 1", whole, part, none, dup)
	}
}

// The writer writes every line once, round-robin into its own file, and
// records a write time for each, in order within a file.
func TestFilesWriterRoundRobin(t *testing.T) {
	dir := t.TempDir()
	const files, rate = 5, 2000
	if err := createFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	writeAt := make([]int64, rate/4) // a quarter of a second
	before := time.Now().UnixNano()
	if err := filesWriter(context.Background(), dir, files, rate, writeAt); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixNano()
	seen := make([]int, len(writeAt))
	for i := range files {
		p := filepath.Join(dir, fileName(i))
		prev := -1
		for _, seq := range fileSeqs(t, p) {
			if seq%files != i {
				t.Errorf("%s holds line %d, which belongs to file %d", p, seq, seq%files)
			}
			if prev >= 0 && (seq <= prev || writeAt[seq] < writeAt[prev]) {
				t.Errorf("%s: line %d (written at %d) after line %d (at %d)", p, seq, writeAt[seq], prev, writeAt[prev])
			}
			prev = seq
			seen[seq]++
		}
	}
	for seq, n := range seen {
		if n != 1 {
			t.Fatalf("line %d written %d times", seq, n)
		}
		if w := writeAt[seq]; w < before || w > after {
			t.Fatalf("line %d: write time %d outside the writer's run [%d, %d]", seq, w, before, after)
		}
	}
}

// fileSeqs returns the sequence numbers of a file's lines, in file order.
func fileSeqs(t *testing.T, path string) []int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seqs []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s, ok := rawSeq(sc.Bytes())
		if !ok {
			t.Fatalf("%s: a line without a sequence number: %q", path, sc.Text())
		}
		seqs = append(seqs, int(s))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seqs
}

// checkFormatOf parses every line of a file with the agent's parser, as
// the agent reads it, and checks that the event names the line's number and
// its file.
func checkFormatOf(path string) (int, error) {
	p, err := parser.Compile(benchFormat, parser.Options{KeyField: "remote_addr"})
	if err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	want, _ := fileIndex(path)
	sc := bufio.NewScanner(f)
	var r parser.Result
	var buf []byte
	n := 0
	for ; sc.Scan(); n++ {
		out, err := p.Parse(buf[:0], sc.Bytes(), parser.Meta{Host: "bench", File: path}, &r)
		if err != nil {
			return n, fmt.Errorf("line %d does not parse: %v", n+1, err)
		}
		raw, _ := rawSeq(sc.Bytes())
		if s, ok := eventSeq(out); !ok || s != raw {
			return n, fmt.Errorf("line %d: event request_id gives %d, %v; the line %d", n+1, s, ok, raw)
		}
		if i, ok := eventFile(out); !ok || i != want {
			return n, fmt.Errorf("line %d: event log_file gives file %d, %v; want %d", n+1, i, ok, want)
		}
		buf = out
	}
	return n, sc.Err()
}
