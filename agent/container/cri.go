package container

import (
	"errors"
	"fmt"
	"time"
)

// Runtime says how the records of a container input are wrapped.
type Runtime uint8

const (
	None   Runtime = iota // a plain file: no wrapper
	CRI                   // containerd, CRI-O: "<time> <stream> <tags> <log>"
	Docker                // docker's json-file
	Auto                  // per record: '{' is docker, anything else CRI
)

// ParseRuntime reads the container key of an input.
func ParseRuntime(s string) (Runtime, error) {
	switch s {
	case "", "none":
		return None, nil
	case "cri":
		return CRI, nil
	case "docker":
		return Docker, nil
	case "auto":
		return Auto, nil
	}
	return None, fmt.Errorf("must be \"\" (a plain file), cri, docker or auto, got %q", s)
}

func (r Runtime) String() string {
	switch r {
	case CRI:
		return "cri"
	case Docker:
		return "docker"
	case Auto:
		return "auto"
	}
	return ""
}

// Stream is the output stream a record came from.
type Stream uint8

const (
	Stdout Stream = iota
	Stderr
)

func (s Stream) String() string {
	if s == Stderr {
		return "stderr"
	}
	return "stdout"
}

// Errors of records that are not a valid wrapper; they come wrapped in a
// *RecordError saying what is wrong.
var (
	ErrCRI    = errors.New("not a CRI log record")
	ErrDocker = errors.New("not a docker json-file record")
)

// RecordError says why a record is not a valid wrapper.
type RecordError struct {
	Kind   error // ErrCRI or ErrDocker
	Reason string
}

func (e *RecordError) Error() string { return e.Kind.Error() + ": " + e.Reason }

func (e *RecordError) Unwrap() error { return e.Kind }

// Record is one decoded wrapper record. Log aliases the input line (CRI) or
// the decoder's scratch (docker): valid until the next call.
type Record struct {
	Time    time.Time
	Stream  Stream
	Partial bool   // the runtime cut the line: the next record of the stream continues it
	Log     []byte // the content, without docker's trailing newline
}

// Preallocated errors for the common failures, so that a stream of garbage
// does not allocate per line either.
var (
	errCRITime   = &RecordError{ErrCRI, "the first field is not an RFC 3339 time"}
	errCRIStream = &RecordError{ErrCRI, "the stream (second field) is neither stdout nor stderr"}
	errCRITag    = &RecordError{ErrCRI, "the tag (third field) is neither F nor P"}
)

// DecodeCRI decodes one CRI record (without its newline) into r.
// r.Log aliases line. It does not allocate.
func DecodeCRI(line []byte, r *Record) error {
	sp := indexSpace(line)
	if sp < 0 {
		return errCRITime
	}
	t, ok := parseTime(line[:sp])
	if !ok {
		return errCRITime
	}
	rest := line[sp+1:]
	switch {
	case hasPrefix(rest, "stdout "):
		r.Stream = Stdout
		rest = rest[7:]
	case hasPrefix(rest, "stderr "):
		r.Stream = Stderr
		rest = rest[7:]
	default:
		return errCRIStream
	}
	// tags: "F", "P", or a ':'-separated list whose first tag is one of them.
	if len(rest) == 0 || (rest[0] != 'F' && rest[0] != 'P') {
		return errCRITag
	}
	partial := rest[0] == 'P'
	i := 1
	if i < len(rest) && rest[i] == ':' {
		for i < len(rest) && rest[i] != ' ' {
			i++
		}
	}
	switch {
	case i == len(rest):
		// "<time> stdout F" with no log: an empty line.
		rest = rest[i:]
	case rest[i] == ' ':
		rest = rest[i+1:]
	default:
		return errCRITag
	}
	r.Time, r.Partial, r.Log = t, partial, rest
	return nil
}

func indexSpace(b []byte) int {
	for i, c := range b {
		if c == ' ' {
			return i
		}
	}
	return -1
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

// parseTime parses RFC 3339 with an optional fraction of up to nine digits
// and a zone of Z or ±hh:mm (also ±hhmm), without allocating.
func parseTime(b []byte) (time.Time, bool) {
	// 2006-01-02T15:04:05
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	mon, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	min, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mon < 1 || mon > 12 || day < 1 || day > daysIn(mon, year) || hour > 23 || min > 59 || sec > 60 {
		return time.Time{}, false
	}
	i := 19
	nsec := 0
	if b[i] == '.' || b[i] == ',' {
		i++
		start := i
		scale := 100000000
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-start < 9 {
				nsec += int(b[i]-'0') * scale
				scale /= 10
			}
			i++
		}
		if i == start {
			return time.Time{}, false
		}
	}
	if i >= len(b) {
		return time.Time{}, false
	}
	offset := 0
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		z := b[i+1:]
		var hh, mm int
		var ok bool
		switch {
		case len(z) == 5 && z[2] == ':':
			h, okh := digits(z[0:2])
			m, okm := digits(z[3:5])
			hh, mm, ok = h, m, okh && okm
		case len(z) == 4:
			h, okh := digits(z[0:2])
			m, okm := digits(z[2:4])
			hh, mm, ok = h, m, okh && okm
		}
		if !ok || hh > 23 || mm > 59 {
			return time.Time{}, false
		}
		offset = hh*3600 + mm*60
		if b[i] == '-' {
			offset = -offset
		}
		i = len(b)
	default:
		return time.Time{}, false
	}
	if i != len(b) {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(mon), day, hour, min, sec, nsec, time.UTC)
	if offset != 0 {
		t = t.Add(-time.Duration(offset) * time.Second)
	}
	return t, true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(mon, year int) int {
	switch mon {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
