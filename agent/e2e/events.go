package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one event as a sink delivered it.
type Event struct {
	Raw    []byte
	Fields map[string]any // json.Number for numbers
	Seq    int            // from request_uri / request; -1 when none
	File   string         // log_file
	Offset int64          // log_offset
}

// Stream names the log an event came from: the base name of log_file up to
// its first dot ("access" for access.log and access.log.1, "custom").
func (e *Event) Stream() string {
	b := filepath.Base(e.File)
	if i := strings.IndexByte(b, '.'); i > 0 {
		b = b[:i]
	}
	return b
}

// DecodeEvent decodes one JSON event (numbers as json.Number).
func DecodeEvent(b []byte) (Event, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return Event{}, fmt.Errorf("not a JSON object: %w: %.200q", err, b)
	}
	if d.More() {
		return Event{}, fmt.Errorf("trailing data after the JSON object: %.200q", b)
	}
	e := Event{Raw: append([]byte(nil), b...), Fields: m, Seq: -1}
	e.File, _ = m["log_file"].(string)
	if n, ok := m["log_offset"].(json.Number); ok {
		e.Offset, _ = n.Int64()
	}
	if s, ok := m["request_uri"].(string); ok {
		e.Seq = ParseSeq(s)
	} else if s, ok := m["request"].(string); ok {
		e.Seq = ParseSeq(s)
	}
	return e, nil
}

// Tally counts events per stream and seq.
type Tally map[string]map[int]int

// Add counts e.
func (t Tally) Add(e Event) {
	s := e.Stream()
	if t[s] == nil {
		t[s] = map[int]int{}
	}
	t[s][e.Seq]++
}

// TallyOf counts events.
func TallyOf(evs []Event) Tally {
	t := Tally{}
	for _, e := range evs {
		t.Add(e)
	}
	return t
}

// Diff compares the counts of one stream with the expected seqs: missing
// lists the expected seqs with no event, dups counts the events beyond the
// first per seq, unexpected lists seqs that were not expected.
func Diff(counts map[int]int, want map[int]bool) (missing []int, dups int, unexpected []int) {
	for s := range want {
		if counts[s] == 0 {
			missing = append(missing, s)
		}
	}
	for s, n := range counts {
		if n > 1 {
			dups += n - 1
		}
		if !want[s] {
			unexpected = append(unexpected, s)
		}
	}
	sort.Ints(missing)
	sort.Ints(unexpected)
	return
}

// Covers reports whether counts has every wanted seq, and a summary.
func Covers(counts map[int]int, want map[int]bool) (bool, string) {
	missing, dups, _ := Diff(counts, want)
	return len(missing) == 0, fmt.Sprintf("%d of %d present, %d missing (first: %v), %d duplicates",
		len(want)-len(missing), len(want), len(missing), First(missing, 10), dups)
}

// First returns at most n elements of s.
func First(s []int, n int) []int {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Seqs turns a set of requests into a set of seqs.
func Seqs(rs map[int]Request) map[int]bool {
	out := make(map[int]bool, len(rs))
	for s := range rs {
		out[s] = true
	}
	return out
}

var (
	rfc3339ms = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`)
	hex32     = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// CheckFields compares an event with the request it came from and returns
// every difference. host is the agent's configured hostname.
func CheckFields(e Event, r Request, host string) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	f := e.Fields
	str := func(k string) (string, bool) { s, ok := f[k].(string); return s, ok }
	wantStr := func(k, want string) {
		if got, ok := str(k); !ok || got != want {
			bad("%s = %#v, want %q", k, f[k], want)
		}
	}
	wantInt := func(k string, want int) {
		n, ok := f[k].(json.Number)
		if !ok || strings.ContainsAny(n.String(), ".eE") {
			bad("%s = %#v, want the integer %d", k, f[k], want)
			return
		}
		if v, _ := n.Int64(); want >= 0 && v != int64(want) {
			bad("%s = %d, want %d", k, v, want)
		}
	}
	wantStr("remote_addr", "127.0.0.1")
	wantStr("host", host)
	wantStr("request_method", r.Method)
	wantStr("request_uri", r.URI)
	wantStr("server_protocol", "HTTP/1.1")
	wantStr("request", r.Method+" "+r.URI+" HTTP/1.1")
	wantInt("status", r.Status)
	wantInt("body_bytes_sent", r.BodyBytes)
	wantInt("log_offset", -1)
	if e.File == "" {
		bad("log_file missing")
	}
	if _, ok := f["remote_user"]; ok {
		bad("remote_user = %#v, want it left out (nginx wrote -)", f["remote_user"])
	}
	if ts, ok := str("timestamp"); !ok || !rfc3339ms.MatchString(ts) {
		bad("timestamp = %#v, want RFC 3339 with milliseconds and offset", f["timestamp"])
	} else if t, err := time.Parse(time.RFC3339, ts); err != nil || time.Since(t) > time.Hour || time.Until(t) > time.Minute {
		bad("timestamp %s is not now (%v)", ts, err)
	}
	hdr, _ := f["request_headers"].(map[string]any)
	checkHeader := func(name, sent string) {
		got, present := hdr[name]
		want := strings.Trim(sent, " \t") // nginx trims the value
		switch {
		case sent == NoHeader || want == "-":
			if present {
				bad("request_headers.%s = %#v, want it left out", name, got)
			}
		case !utf8.ValidString(want):
			s, _ := got.(string)
			if !utf8.ValidString(s) || !strings.Contains(s, "\uFFFD") || f["invalid_utf8"] != true {
				bad("request_headers.%s = %#v (invalid_utf8 %v), want valid UTF-8 with U+FFFD and invalid_utf8 true", name, got, f["invalid_utf8"])
			}
			valid := strings.Split(strings.ToValidUTF8(want, "\x00"), "\x00")
			for _, part := range valid {
				if !strings.Contains(s, part) {
					bad("request_headers.%s = %q, lost %q", name, s, part)
				}
			}
		default:
			if got != want {
				bad("request_headers.%s = %#v, want %q", name, got, want)
			}
		}
	}
	if e.Stream() == "access" { // combined
		checkHeader("referer", r.Referer)
		checkHeader("user_agent", r.UserAgent)
	} else { // CustomFormat
		checkHeader("user_agent", r.UserAgent)
		if _, ok := hdr["referer"]; ok {
			bad("request_headers.referer present, custom format has none")
		}
		if id, _ := str("request_id"); !hex32.MatchString(id) {
			bad("request_id = %#v, want 32 hex digits", f["request_id"])
		}
		if n, ok := f["request_time"].(json.Number); !ok {
			bad("request_time = %#v, want a number", f["request_time"])
		} else if v, err := n.Float64(); err != nil || v < 0 || v > 60 {
			bad("request_time = %v, want seconds", n)
		}
		urt, has := f["upstream_response_time"]
		if strings.HasSuffix(r.URI, "/proxy") {
			arr, ok := urt.([]any)
			if !ok || len(arr) != 1 {
				bad("upstream_response_time = %#v, want an array of one number", urt)
			} else if _, ok := arr[0].(json.Number); !ok {
				bad("upstream_response_time[0] = %#v, want a number", arr[0])
			}
		} else if has {
			bad("upstream_response_time = %#v, want it left out (no upstream)", urt)
		}
		rh, _ := f["response_headers"].(map[string]any)
		wantCT := "text/plain"
		switch {
		case r.Status == 404:
			wantCT = "text/html"
		case strings.HasSuffix(r.URI, "/proxy"):
			wantCT = "application/json"
		}
		if rh["content_type"] != wantCT {
			bad("response_headers.content_type = %#v, want %q", rh["content_type"], wantCT)
		}
	}
	return errs
}
