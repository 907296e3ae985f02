package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The many-files cases (issue 17) spread their lines over files f-00000.log,
// f-00001.log, ...: line seq goes to file seq % files, so a line's sequence
// number (in its request_id) says which file it must come from, and the
// event's log_file says which file it came from.

// fileName is the name of file i of a many-files case.
func fileName(i int) string { return fmt.Sprintf("f-%05d.log", i) }

// fileIndex returns i for a path whose base name is fileName(i).
func fileIndex(path string) (int, bool) {
	s, ok := strings.CutPrefix(filepath.Base(path), "f-")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".log")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil && i >= 0
}

// logFileField is how the event carries the path the line was read from.
const logFileField = `"log_file":"`

// eventFile returns the file index of an event's log_file.
func eventFile(v []byte) (int, bool) {
	i := bytes.Index(v, []byte(logFileField))
	if i < 0 {
		return 0, false
	}
	v = v[i+len(logFileField):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return 0, false
	}
	return fileIndex(string(v[:j]))
}

// generateFiles writes lines lines spread over files files in dir, line seq
// in file seq % files (times 1 ms apart by seq, so each file's lines are in
// time order). It returns the bytes written.
func generateFiles(dir string, files, lines int) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	g := newLineGen(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	var size int64
	w := bufio.NewWriterSize(nil, 256<<10)
	for i := 0; i < files; i++ {
		f, err := os.Create(filepath.Join(dir, fileName(i)))
		if err != nil {
			return 0, err
		}
		w.Reset(f)
		for seq := i; seq < lines; seq += files {
			l := g.line(uint64(seq), g.base.Add(time.Duration(seq)*time.Millisecond))
			size += int64(len(l))
			if _, err := w.Write(l); err != nil {
				f.Close()
				return 0, err
			}
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return 0, err
		}
		if err := f.Close(); err != nil {
			return 0, err
		}
	}
	return size, nil
}

// createFiles creates files empty files in dir (the live case's, written
// by filesWriter while the agent runs).
func createFiles(dir string, files int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := 0; i < files; i++ {
		if err := os.WriteFile(filepath.Join(dir, fileName(i)), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// filesWriter appends rate lines per second in all to the files in dir for
// d, round-robin (line seq to file seq % files), in slices of 10 ms, and
// records in writeAt[seq] (Unix nanoseconds) when it wrote line seq. It
// writes len(writeAt) lines, which must be int(rate * d).
func filesWriter(ctx context.Context, dir string, files, rate int, writeAt []int64) error {
	fs := make([]*os.File, files)
	defer func() {
		for _, f := range fs {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i := range fs {
		f, err := os.OpenFile(filepath.Join(dir, fileName(i)), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		fs[i] = f
	}
	g := newLineGen(time.Now())
	bufs := make([][]byte, files)
	var touched []int
	total := len(writeAt)
	const slice = 10 * time.Millisecond
	start := time.Now()
	for seq := 0; seq < total; {
		due := min(int(float64(rate)*time.Since(start).Seconds()), total)
		now := time.Now()
		touched = touched[:0]
		for ; seq < due; seq++ {
			i := seq % files
			if len(bufs[i]) == 0 {
				touched = append(touched, i)
			}
			bufs[i] = append(bufs[i], g.line(uint64(seq), now)...)
			writeAt[seq] = now.UnixNano()
		}
		for _, i := range touched {
			if _, err := fs[i].Write(bufs[i]); err != nil {
				return err
			}
			bufs[i] = bufs[i][:0]
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(slice):
		}
	}
	return nil
}

// lagStats sums up, across files, each file's maximum lag: the longest
// time from a line's write to its arrival in Kafka.
type lagStats struct {
	max, p99 time.Duration // across the files' maximum lags
	files    int           // files with at least one line delivered
	// undelivered is the number of files with a line that never arrived;
	// lines is the number of such lines.
	undelivered, lines int
}

// fileLags computes lagStats from when each line was written and when it
// arrived (Unix nanoseconds, 0 for never), line seq being in file
// seq % files.
func fileLags(writeAt, arriveAt []int64, files int) lagStats {
	maxLag := make([]time.Duration, files)
	seen := make([]bool, files)
	lost := make([]bool, files)
	var s lagStats
	for seq, w := range writeAt {
		i := seq % files
		a := arriveAt[seq]
		if a == 0 {
			s.lines++
			lost[i] = true
			continue
		}
		seen[i] = true
		maxLag[i] = max(maxLag[i], time.Duration(a-w))
	}
	var lags []time.Duration
	for i := range files {
		if lost[i] {
			s.undelivered++
		}
		if seen[i] {
			lags = append(lags, maxLag[i])
		}
	}
	s.files = len(lags)
	if len(lags) == 0 {
		return s
	}
	slices.Sort(lags)
	s.max = lags[len(lags)-1]
	s.p99 = lags[(99*len(lags)+99)/100-1] // the ceil(0.99 n)-th smallest
	return s
}

// fileTally is the exactly-once tally of a many-files case that also
// counts the events whose log_file is not their line's file.
type fileTally struct {
	*tally
	files    int
	misfiled int64
}

func newFileTally(lines, files int) *fileTally {
	return &fileTally{tally: newTally(lines), files: files}
}

// add counts one event.
func (t *fileTally) add(v []byte) {
	seq, ok := eventSeq(v)
	t.tally.add(seq, ok)
	if f, fok := eventFile(v); ok && (!fok || f != int(seq%uint64(t.files))) {
		t.misfiled++
	}
}

// filesSeen tallies, from the exactly-once tally, how many files arrived
// whole, in part, or not at all, and how many had a line more than once
// (line seq belongs to file seq % files).
func filesSeen(t *tally, files int) (whole, part, none, dup int) {
	got := make([]int, files)
	want := make([]int, files)
	dups := make([]bool, files)
	for seq, c := range t.n {
		i := seq % files
		want[i]++
		if c > 0 {
			got[i]++
		}
		if c > 1 {
			dups[i] = true
		}
	}
	for i := range files {
		if dups[i] {
			dup++
		}
		switch {
		case got[i] == want[i]:
			whole++
		case got[i] == 0:
			none++
		default:
			part++
		}
	}
	return whole, part, none, dup
}
