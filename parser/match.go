package parser

import (
	"bytes"
	"fmt"
	"time"
)

// span is where a variable's value is in the line: line[start:end].
type span struct{ start, end int }

// maxSteps bounds the candidate splits tried for one line, so that a
// pathological line in an escape=none format costs bounded time.
const maxSteps = 2000

type failKind uint8

const (
	fNone    failKind = iota
	fLiteral          // the literal after the value was not found
	fSuffix           // the line does not end with the format's last literal
	fValue            // the value is not of the variable's type
	fBudget           // too many ways to split the line
)

// matcher finds where each variable's value is. Values are taken as short
// as possible; when the rest of the line then does not match (a value that
// holds its own delimiter, only possible with escape=none, or a typed value
// that does not parse), the next occurrence of the delimiter is tried.
type matcher struct {
	c      *compiled
	line   []byte
	spans  []span
	budget int

	fk   failKind
	fvar int
	fpos int
}

func (m *matcher) fail(k failKind, v, pos int) {
	if m.fk == fNone || pos > m.fpos || pos == m.fpos && k >= m.fk {
		m.fk, m.fvar, m.fpos = k, v, pos
	}
}

func (m *matcher) err() *ParseError {
	e := &ParseError{Pos: m.fpos}
	if m.fvar >= 0 && m.fvar < len(m.c.vars) {
		e.Field = m.c.vars[m.fvar].name
	}
	switch m.fk {
	case fLiteral:
		v := &m.c.vars[m.fvar]
		e.Reason = fmt.Sprintf("no %q after the value", v.after)
	case fSuffix:
		v := &m.c.vars[m.fvar]
		if len(v.after) == 0 {
			e.Reason = "the value does not reach the end of the line"
		} else {
			e.Reason = fmt.Sprintf("line does not end with %q", v.after)
		}
	case fValue:
		e.Reason = "not " + kindDesc[m.c.vars[m.fvar].kind]
	case fBudget:
		e.Reason = "too many ways to split the line (escape=none value holding its delimiter?)"
	default:
		e.Reason = "does not match"
	}
	return e
}

var kindDesc = [...]string{
	kString:      "a string",
	kInt:         "an integer or -",
	kNumber:      "a number or -",
	kTimeLocal:   "a $time_local time (02/Jan/2006:15:04:05 -0700) or -",
	kTimeISO:     "an ISO 8601 time (2006-01-02T15:04:05+00:00) or -",
	kMsec:        "seconds.milliseconds or -",
	kRequest:     "a request line",
	kListNum:     "a list of numbers (\"0.004, 0.002 : -\") or -",
	kListInt:     "a list of integers (\"502, 200\") or -",
	kListStr:     "a list (\"10.0.0.1:80, unix:/s : -\")",
	kToken:       "a value without spaces",
	kCacheStatus: "an $upstream_cache_status (MISS, BYPASS, EXPIRED, STALE, UPDATING, REVALIDATED, HIT) or -",
	kTimeError:   "an error.log time (2006/01/02 15:04:05)",
	kLevel:       "an error.log level (debug, info, notice, warn, error, crit, alert, emerg)",
	kBool:        "a boolean",
}

// stringy reports whether kind k is written as a JSON string decoded per
// the escape (an empty value is kept with escape=default).
func stringy(k kind) bool { return k == kString || k == kToken || k == kCacheStatus }

// match matches variable i and everything after it, its value starting at
// pos.
func (m *matcher) match(i, pos int) bool {
	v := &m.c.vars[i]
	line := m.line
	if i == len(m.c.vars)-1 {
		end := len(line) - len(v.after)
		if end < pos || !bytes.Equal(line[end:], v.after) {
			m.fail(fSuffix, i, pos)
			return false
		}
		if !m.c.valid(v.kind, line[pos:end]) {
			m.fail(fValue, i, pos)
			return false
		}
		m.spans[i] = span{pos, end}
		return true
	}
	if m.c.escape != EscapeNone && v.after[0] == '"' && (stringy(v.kind) || v.kind == kRequest || v.kind == kListStr) {
		// nginx escapes '"' in values: the first unescaped one ends the value.
		end := m.stop(v, pos)
		if !bytes.HasPrefix(line[end:], v.after) {
			m.fail(fLiteral, i, pos)
			return false
		}
		if !m.c.valid(v.kind, line[pos:end]) {
			m.fail(fValue, i, pos)
			return false
		}
		m.spans[i] = span{pos, end}
		return m.match(i+1, end+len(v.after))
	}
	stop := m.stop(v, pos) // the value cannot extend past this
	hi := stop + len(v.after)
	if hi > len(line) {
		hi = len(line)
	}
	from := pos
	for from <= hi {
		if m.budget <= 0 {
			m.fail(fBudget, i, pos)
			return false
		}
		m.budget--
		idx := bytes.Index(line[from:hi], v.after)
		if idx < 0 {
			break
		}
		end := from + idx
		from = end + 1
		val := line[pos:end]
		if m.c.escape == EscapeJSON && oddBackslashes(val) {
			continue // the delimiter's first byte is escaped
		}
		if !m.c.valid(v.kind, val) {
			m.fail(fValue, i, pos)
			continue
		}
		if isList(v.kind) && continuesList(line[end:]) && !continuesList(v.after) {
			continue // an upstream list takes all its entries
		}
		m.spans[i] = span{pos, end}
		if m.match(i+1, end+len(v.after)) {
			return true
		}
	}
	if v.kind != kString && v.kind != kRequest && stop < len(line) && !m.c.valid(v.kind, line[pos:stop]) {
		m.fail(fValue, i, pos)
	} else {
		m.fail(fLiteral, i, pos)
	}
	return false
}

// stop returns the position of the first byte from pos that cannot be part
// of v's value: a quote nginx would have escaped, or a byte outside a typed
// value's alphabet. len(line) if none.
func (m *matcher) stop(v *variable, pos int) int {
	line := m.line
	switch v.kind {
	case kToken, kListStr, kCacheStatus:
		end := len(line)
		if v.kind == kToken || v.kind == kCacheStatus {
			if i := bytes.IndexByte(line[pos:], ' '); i >= 0 {
				end = pos + i
			}
		}
		switch m.c.escape {
		case EscapeDefault:
			if i := bytes.IndexByte(line[pos:end], '"'); i >= 0 {
				return pos + i
			}
		case EscapeJSON:
			return pos + unescapedQuote(line[pos:end])
		}
		return end
	case kString, kRequest:
		switch m.c.escape {
		case EscapeDefault:
			if i := bytes.IndexByte(line[pos:], '"'); i >= 0 {
				return pos + i
			}
		case EscapeJSON:
			return pos + unescapedQuote(line[pos:])
		}
		return len(line)
	case kTimeLocal, kTimeISO:
		return len(line)
	}
	set := &numSet
	if v.kind == kListNum || v.kind == kListInt {
		set = &listSet
	}
	for i := pos; i < len(line); i++ {
		if !set[line[i]] {
			return i
		}
	}
	return len(line)
}

var numSet, listSet [256]bool

func init() {
	for c := '0'; c <= '9'; c++ {
		numSet[c], listSet[c] = true, true
	}
	for _, c := range ".-" {
		numSet[c], listSet[c] = true, true
	}
	for _, c := range ", :" {
		listSet[c] = true
	}
}

// unescapedQuote returns the index of the first '"' in b not escaped by a
// backslash (JSON), or len(b).
func unescapedQuote(b []byte) int {
	off := 0
	for {
		i := bytes.IndexByte(b[off:], '"')
		if i < 0 {
			return len(b)
		}
		q := off + i
		if !oddBackslashes(b[:q]) {
			return q
		}
		off = q + 1
	}
}

func oddBackslashes(b []byte) bool {
	n := 0
	for i := len(b) - 1; i >= 0 && b[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

func isList(k kind) bool { return k == kListNum || k == kListInt || k == kListStr }

// continuesList reports whether b starts with an upstream list separator.
func continuesList(b []byte) bool {
	return len(b) >= 2 && b[0] == ',' && b[1] == ' ' || len(b) >= 3 && b[0] == ' ' && b[1] == ':' && b[2] == ' '
}

func isDash(b []byte) bool { return len(b) == 1 && b[0] == '-' }

// valid reports whether val is a value of kind k. With escape=json nginx
// writes a missing value as "" where the other escapes write "-".
func (c *compiled) valid(k kind, val []byte) bool {
	switch k {
	case kString, kRequest:
		return true
	case kToken:
		return bytes.IndexByte(val, ' ') < 0
	}
	if isDash(val) || len(val) == 0 && c.escape != EscapeDefault {
		return true
	}
	switch k {
	case kInt:
		return isDigits(val)
	case kNumber:
		return isNumber(val)
	case kMsec:
		_, ok := parseMsec(val)
		return ok
	case kTimeLocal: // the shape only: encode parses it
		return len(val) == 26 && val[2] == '/' && val[6] == '/' && val[11] == ':' && val[20] == ' '
	case kTimeISO:
		return (len(val) == 25 || len(val) == 20) && val[4] == '-' && val[10] == 'T' && val[13] == ':'

	case kListNum, kListInt, kListStr:
		return validList(k, val)
	case kCacheStatus:
		return inSet(cacheStatuses, val)
	}
	return false
}

func isDigits(b []byte) bool {
	if len(b) == 0 || len(b) > 19 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isNumber: digits, optionally a dot and digits.
func isNumber(b []byte) bool {
	if i := bytes.IndexByte(b, '.'); i >= 0 {
		return isDigits(b[:i]) && isDigits(b[i+1:])
	}
	return isDigits(b)
}

// nextElem returns the first element of an upstream list and the rest
// after its separator (", " or " : "); more is false for the last element.
func nextElem(b []byte) (elem, rest []byte, more bool) {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ',':
			if i+1 < len(b) && b[i+1] == ' ' {
				return b[:i], b[i+2:], true
			}
		case ' ':
			if i+2 < len(b) && b[i+1] == ':' && b[i+2] == ' ' {
				return b[:i], b[i+3:], true
			}
		}
	}
	return b, nil, false
}

func validList(k kind, b []byte) bool {
	for {
		e, rest, more := nextElem(b)
		if len(e) == 0 {
			return false
		}
		if e[len(e)-1] == ',' {
			return false // an entry never ends in ',': that is a separator
		}
		if !isDash(e) {
			switch k {
			case kListNum:
				if !isNumber(e) {
					return false
				}
			case kListInt:
				if !isDigits(e) {
					return false
				}
			case kListStr:
				if bytes.IndexByte(e, ' ') >= 0 {
					return false // addresses and group names hold no space
				}
			}
		}
		if !more {
			return true
		}
		b = rest
	}
}

func (c *compiled) parse(dst, line []byte, meta Meta, r *Result) ([]byte, error) {
	if r == nil {
		r = new(Result)
	}
	if err := c.match(line, r); err != nil {
		return dst, err
	}
	n := len(dst)
	dst, err := c.encode(dst, line, meta, r)
	if err != nil {
		r.Time, r.Key, r.InvalidUTF8 = time.Time{}, nil, false
		return dst[:n], err
	}
	return dst, nil
}

// match finds the spans of line's values in r (phase 1, shared by the
// encoders) and resets r's per-line fields. The error format has its own
// matcher (errorlog.go).
func (c *compiled) match(line []byte, r *Result) error {
	r.Time, r.Key, r.InvalidUTF8 = time.Time{}, nil, false
	if c.errlog != nil {
		if cap(r.spans) < len(c.vars) {
			r.spans = make([]span, len(c.vars))
		}
		r.spans = r.spans[:len(c.vars)]
		if err := c.errlog.match(line, r.spans); err != nil {
			return err
		}
		return nil
	}
	if !bytes.HasPrefix(line, c.prefix) {
		return &ParseError{Field: "literal", Pos: 0, Reason: fmt.Sprintf("line does not start with %q", c.prefix)}
	}
	if len(c.vars) == 0 {
		if len(line) != len(c.prefix) {
			return &ParseError{Field: "literal", Pos: len(c.prefix), Reason: "unexpected bytes after the format's text"}
		}
		return nil
	}
	if cap(r.spans) < len(c.vars) {
		r.spans = make([]span, len(c.vars))
	}
	r.spans = r.spans[:len(c.vars)]
	m := matcher{c: c, line: line, spans: r.spans, budget: maxSteps}
	if !m.match(0, len(c.prefix)) {
		return m.err()
	}
	return nil
}

// inSet reports whether b is one of set.
func inSet(set []string, b []byte) bool {
	for _, s := range set {
		if string(b) == s {
			return true
		}
	}
	return false
}
