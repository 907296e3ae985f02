package container

import (
	"unicode/utf16"
	"unicode/utf8"
)

var (
	errDockerObject = &RecordError{ErrDocker, "not a JSON object"}
	errDockerSyntax = &RecordError{ErrDocker, "invalid JSON"}
	errDockerLog    = &RecordError{ErrDocker, `no "log" string`}
	errDockerStream = &RecordError{ErrDocker, `"stream" is neither stdout nor stderr`}
	errDockerTime   = &RecordError{ErrDocker, `"time" is not an RFC 3339 time`}
)

// decodeDocker decodes one json-file record into r. The strings are
// unescaped into *scratch (reset, grown as needed, reused); r.Log aliases
// it. It allocates only when scratch must grow.
func decodeDocker(line []byte, r *Record, scratch *[]byte) error {
	s := (*scratch)[:0]
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return errDockerObject
	}
	i++
	logA, logB := -1, -1
	stream := -1
	var t [40]byte // the time text, unescaped
	tn := -1
	first := true
	for {
		i = skipWS(line, i)
		if i >= len(line) {
			return errDockerSyntax
		}
		if line[i] == '}' {
			i++
			break
		}
		if !first {
			if line[i] != ',' {
				return errDockerSyntax
			}
			i = skipWS(line, i+1)
		}
		first = false
		if i >= len(line) || line[i] != '"' {
			return errDockerSyntax
		}
		// The key, compared raw: docker's keys have no escapes.
		k0 := i + 1
		k1 := k0
		for k1 < len(line) && line[k1] != '"' && line[k1] != '\\' {
			k1++
		}
		var key string
		if k1 < len(line) && line[k1] == '"' {
			switch string(line[k0:k1]) {
			case "log":
				key = "log"
			case "stream":
				key = "stream"
			case "time":
				key = "time"
			}
			i = k1 + 1
		} else {
			// An escaped key is none of ours: skip it.
			j, ok := skipString(line, i)
			if !ok {
				return errDockerSyntax
			}
			i = j
		}
		i = skipWS(line, i)
		if i >= len(line) || line[i] != ':' {
			return errDockerSyntax
		}
		i = skipWS(line, i+1)
		if i >= len(line) {
			return errDockerSyntax
		}
		switch key {
		case "log":
			if line[i] != '"' {
				return errDockerLog
			}
			a := len(s)
			var ok bool
			s, i, ok = unescape(s, line, i)
			if !ok {
				return errDockerSyntax
			}
			logA, logB = a, len(s)
		case "stream", "time":
			if line[i] != '"' {
				if key == "stream" {
					return errDockerStream
				}
				return errDockerTime
			}
			a := len(s)
			var ok bool
			s, i, ok = unescape(s, line, i)
			if !ok {
				return errDockerSyntax
			}
			v := s[a:]
			if key == "stream" {
				switch string(v) {
				case "stdout":
					stream = int(Stdout)
				case "stderr":
					stream = int(Stderr)
				default:
					return errDockerStream
				}
			} else {
				if len(v) > len(t) {
					return errDockerTime
				}
				tn = copy(t[:], v)
			}
			s = s[:a] // keep only the log in scratch
		default:
			j, ok := skipValue(line, i, 0)
			if !ok {
				return errDockerSyntax
			}
			i = j
		}
	}
	if skipWS(line, i) != len(line) {
		return errDockerSyntax
	}
	*scratch = s
	if logA < 0 {
		return errDockerLog
	}
	if stream < 0 {
		return errDockerStream
	}
	if tn < 0 {
		return errDockerTime
	}
	ts, ok := parseTime(t[:tn])
	if !ok {
		return errDockerTime
	}
	log := s[logA:logB]
	partial := true
	if n := len(log); n > 0 && log[n-1] == '\n' {
		log = log[:n-1]
		partial = false
	}
	r.Time, r.Stream, r.Partial, r.Log = ts, Stream(stream), partial, log
	return nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// unescape decodes the JSON string starting at b[i] (a '"') onto dst and
// returns the index after its closing quote.
func unescape(dst, b []byte, i int) ([]byte, int, bool) {
	i++
	for {
		// Copy the run without escapes at once.
		j := i
		for j < len(b) && b[j] != '"' && b[j] != '\\' && b[j] >= 0x20 {
			j++
		}
		dst = append(dst, b[i:j]...)
		i = j
		if i >= len(b) || b[i] < 0x20 {
			return dst, i, false
		}
		if b[i] == '"' {
			return dst, i + 1, true
		}
		// A backslash.
		if i+1 >= len(b) {
			return dst, i, false
		}
		c := b[i+1]
		i += 2
		switch c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'n':
			dst = append(dst, '\n')
		case 't':
			dst = append(dst, '\t')
		case 'r':
			dst = append(dst, '\r')
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'u':
			r, ok := hex4(b, i)
			if !ok {
				return dst, i, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
					if v, ok := hex4(b, i+2); ok {
						r2 = v
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, i, false
		}
	}
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skipString returns the index after the JSON string starting at b[i].
func skipString(b []byte, i int) (int, bool) {
	i++
	for i < len(b) {
		switch b[i] {
		case '"':
			return i + 1, true
		case '\\':
			i += 2
		default:
			i++
		}
	}
	return i, false
}

// skipValue returns the index after the JSON value starting at b[i]
// (loosely checked: enough to find its end).
func skipValue(b []byte, i, depth int) (int, bool) {
	if depth > 64 || i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == end {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return i, false
				}
				if i, ok = skipString(b, i); !ok {
					return i, false
				}
				i = skipWS(b, i)
				if i >= len(b) || b[i] != ':' {
					return i, false
				}
				i = skipWS(b, i+1)
			}
			if i, ok = skipValue(b, i, depth+1); !ok {
				return i, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, false
			}
			if b[i] == end {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipWS(b, i+1)
		}
	default:
		// number, true, false, null
		j := i
		for j < len(b) && (b[j] == '-' || b[j] == '+' || b[j] == '.' || (b[j] >= '0' && b[j] <= '9') || (b[j] >= 'a' && b[j] <= 'z') || (b[j] >= 'A' && b[j] <= 'Z')) {
			j++
		}
		return j, j > i
	}
}
