package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
}

// waitLogged waits until nginx has written a line for every answered
// request to one of the files (nginx logs a request after it answered it).
func waitLogged(t *testing.T, reqs map[int]e2e.Request, files ...string) map[int]int {
	t.Helper()
	var got map[int]int
	e2e.WaitFor(t, 30*time.Second, "nginx to log every answered request", func() (bool, string) {
		got = e2e.LogSeqs(t, files...)
		var missing []int
		for s := range reqs {
			if got[s] == 0 {
				missing = append(missing, s)
			}
		}
		sort.Ints(missing)
		return len(missing) == 0, fmt.Sprintf("%d not in %v, first %v", len(missing), files, e2e.First(missing, 10))
	})
	return got
}

// merge returns the union of request sets.
func merge(sets ...map[int]e2e.Request) map[int]e2e.Request {
	out := map[int]e2e.Request{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// checkFinal asserts, per sink and stream, that every wanted seq was
// delivered; it returns the duplicates per sink (summed over streams) and
// fails on seqs neither wanted nor in allowed. noDups also fails on any
// duplicate.
func checkFinal(t *testing.T, final map[string]e2e.Tally, want map[string]map[int]bool, noDups bool, allowed ...map[int]bool) map[string]int {
	t.Helper()
	dups := map[string]int{}
	for sink, tl := range final {
		for stream, w := range want {
			missing, d, unexpected := e2e.Diff(tl[stream], w)
			unexpected = slices.DeleteFunc(unexpected, func(s int) bool {
				for _, a := range allowed {
					if a[s] {
						return true
					}
				}
				return false
			})
			dups[sink] += d
			if len(missing) > 0 {
				t.Errorf("LOST LINES: %s, %s: %d of %d lines missing, first %v", sink, stream, len(missing), len(w), e2e.First(missing, 20))
			}
			if len(unexpected) > 0 {
				t.Errorf("%s, %s: %d events for lines never written, first %v", sink, stream, len(unexpected), e2e.First(unexpected, 20))
			}
			if noDups && d > 0 {
				t.Errorf("%s, %s: %d duplicates without a crash", sink, stream, d)
			}
			t.Logf("%s, %s: %d lines, %d events, %d missing, %d duplicates", sink, stream, len(w), count(tl[stream]), len(missing), d)
		}
		for stream := range tl {
			if _, ok := want[stream]; !ok {
				t.Errorf("%s: %d events of an unexpected stream %q", sink, count(tl[stream]), stream)
			}
		}
	}
	return dups
}

func count(m map[int]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// checkEvents checks every event's fields against its request and, with
// offsets, that its log_offset points at its line's start in log_file (use
// it only where no file was rotated).
func checkEvents(t *testing.T, sink string, evs []e2e.Event, reqs map[int]e2e.Request, offsets bool) {
	t.Helper()
	checkEventsHost(t, sink, evs, reqs, offsets, e2e.Hostname)
}

// checkEventsHost is checkEvents with the expected host field.
func checkEventsHost(t *testing.T, sink string, evs []e2e.Event, reqs map[int]e2e.Request, offsets bool, host string) {
	t.Helper()
	files := map[string][]byte{}
	var errs []string
	for _, ev := range evs {
		r, ok := reqs[ev.Seq]
		if !ok {
			errs = append(errs, fmt.Sprintf("event without a known seq: %s", ev.Raw))
			continue
		}
		for _, e := range e2e.CheckFields(ev, r, host) {
			errs = append(errs, fmt.Sprintf("seq %d (%s): %s", ev.Seq, ev.File, e))
		}
		if !offsets {
			continue
		}
		b, ok := files[ev.File]
		if !ok {
			b, _ = os.ReadFile(ev.File)
			files[ev.File] = b
		}
		if ev.Offset < 0 || ev.Offset >= int64(len(b)) {
			errs = append(errs, fmt.Sprintf("seq %d: log_offset %d beyond the %d bytes of %s", ev.Seq, ev.Offset, len(b), ev.File))
			continue
		}
		line := b[ev.Offset:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		if e2e.ParseSeq(string(line)) != ev.Seq || (ev.Offset > 0 && b[ev.Offset-1] != '\n') {
			errs = append(errs, fmt.Sprintf("seq %d: log_offset %d of %s is not its line's start: %.120q", ev.Seq, ev.Offset, ev.File, line))
		}
	}
	if len(errs) > 0 {
		if len(errs) > 30 {
			errs = append(errs[:30], fmt.Sprintf("... and %d more", len(errs)-30))
		}
		t.Errorf("%s: %d events checked, problems:\n%s", sink, len(evs), strings.Join(errs, "\n"))
	}
}

// phases logs how long each phase of a scenario took.
type phases struct {
	t    *testing.T
	last time.Time
}

func newPhases(t *testing.T) *phases { return &phases{t: t, last: time.Now()} }

func (p *phases) done(what string) {
	p.t.Helper()
	now := time.Now()
	p.t.Logf("phase %-45s %6.2fs", what, now.Sub(p.last).Seconds())
	p.last = now
}

// ackedLines counts the lines of file below the agent's checkpoint in
// dataDir (what the agent will not read again after a crash).
func ackedLines(t *testing.T, dataDir, file string) int {
	t.Helper()
	cps, err := e2e.Checkpoints(dataDir)
	if err != nil {
		return -1
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return -1
	}
	off := min(cps[file], int64(len(b)))
	return bytes.Count(b[:off], []byte("\n"))
}
