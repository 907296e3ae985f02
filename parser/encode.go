package parser

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// bytesOf returns s's bytes without copying; they must not be written.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// encode writes the event of a matched line. Every value has been checked
// against its variable's type by the match, times only for their shape:
// a time that does not parse (30 Feb) is the one error left here.
func (c *compiled) encode(dst, line []byte, meta Meta, r *Result) ([]byte, error) {
	spans := r.spans
	val := func(i int) []byte { s := spans[i]; return line[s.start:s.end] }
	dst = append(dst, '{')
	comma := false
	for _, it := range c.items {
		switch it.kind {
		case itTimestamp:
			for _, vi := range c.timeVars {
				b := val(vi)
				if c.absent(vi, b) {
					continue
				}
				var t tm
				var ok bool
				switch c.vars[vi].kind {
				case kMsec:
					t, ok = parseMsec(b)
				case kTimeISO:
					t, ok = parseTimeISO(b)
				case kTimeError:
					t, ok = c.errlog.parseTime(b)
				default:
					t, ok = parseTimeLocal(b)
				}
				if !ok {
					return dst, &ParseError{Field: c.vars[vi].name, Pos: spans[vi].start, Reason: "not " + kindDesc[c.vars[vi].kind]}
				}
				if comma {
					dst = append(dst, ',')
				}
				comma = true
				dst = append(dst, `"timestamp":`...)
				dst = t.appendRFC3339(dst)
				r.Time = t.time()
				break
			}
		case itGroup:
			n := 0
			for _, vi := range it.members {
				b := val(vi)
				if c.absent(vi, b) {
					continue
				}
				if n == 0 {
					if comma {
						dst = append(dst, ',')
					}
					comma = true
					dst = append(dst, '"')
					dst = append(dst, groupNames[it.group]...)
					dst = append(dst, `":{`...)
				} else {
					dst = append(dst, ',')
				}
				n++
				dst = append(dst, c.vars[vi].key...)
				dst = c.appendString(dst, b, r)
			}
			if n > 0 {
				dst = append(dst, '}')
			}
		case itVar:
			v := &c.vars[it.v]
			b := val(it.v)
			if c.absent(it.v, b) {
				continue
			}
			if comma {
				dst = append(dst, ',')
			}
			comma = true
			dst = append(dst, v.key...)
			dst = c.appendValue(dst, v, b, r)
		}
	}
	if comma {
		dst = append(dst, ',')
	}
	dst = append(dst, `"host":`...)
	dst = appendJSONString(dst, bytesOf(meta.Host), r)
	dst = append(dst, `,"log_file":`...)
	dst = appendJSONString(dst, bytesOf(meta.File), r)
	dst = append(dst, `,"log_offset":`...)
	dst = strconv.AppendInt(dst, meta.Offset, 10)
	if r.InvalidUTF8 {
		dst = append(dst, `,"invalid_utf8":true`...)
	}
	dst = append(dst, '}')

	if c.keyVar >= 0 {
		c.setResultKey(val(c.keyVar), r)
	}
	return dst, nil
}

// absent reports whether variable vi's value b means "no value": "-", or
// empty where nginx writes a missing value as "" (escape=json) or where
// the variable is typed. An empty $request is kept.
func (c *compiled) absent(vi int, b []byte) bool {
	if c.errlog != nil {
		return len(b) == 0 // the error format's absent fields are empty spans
	}
	if len(b) == 1 {
		return b[0] == '-'
	}
	if len(b) == 0 {
		k := c.vars[vi].kind
		return k != kRequest && (c.escape != EscapeDefault || !stringy(k))
	}
	return false
}

func (c *compiled) appendValue(dst []byte, v *variable, b []byte, r *Result) []byte {
	switch v.kind {
	case kInt:
		return appendInt(dst, b)
	case kNumber, kMsec:
		return appendNumber(dst, b)
	case kBool:
		return append(dst, "true"...)
	case kRequest:
		dst = c.appendString(dst, b, r)
		method, uri, proto, ok := splitRequest(b)
		if !ok {
			return dst
		}
		if v.emitMethod {
			dst = append(dst, `,"request_method":`...)
			dst = c.appendString(dst, method, r)
		}
		if v.emitURI {
			dst = append(dst, `,"request_uri":`...)
			dst = c.appendString(dst, uri, r)
		}
		if v.emitProto && len(proto) > 0 {
			dst = append(dst, `,"server_protocol":`...)
			dst = c.appendString(dst, proto, r)
		}
		return dst
	case kListNum, kListInt, kListStr:
		dst = append(dst, '[')
		for {
			e, rest, more := nextElem(b)
			switch {
			case isDash(e):
				dst = append(dst, "null"...)
			case v.kind == kListInt:
				dst = appendInt(dst, e)
			case v.kind == kListNum:
				dst = appendNumber(dst, e)
			default:
				dst = c.appendString(dst, e, r)
			}
			if !more {
				break
			}
			dst = append(dst, ',')
			b = rest
		}
		return append(dst, ']')
	}
	return c.appendString(dst, b, r)
}

// splitRequest splits a request line "METHOD URI PROTOCOL" (or the HTTP/0.9
// "METHOD URI"). ok is false for anything else.
func splitRequest(b []byte) (method, uri, proto []byte, ok bool) {
	i := bytes.IndexByte(b, ' ')
	if i <= 0 {
		return nil, nil, nil, false
	}
	method = b[:i]
	for _, c := range method {
		if !tchar[c] {
			return nil, nil, nil, false
		}
	}
	j := bytes.LastIndexByte(b, ' ')
	if j == i {
		uri = b[i+1:]
	} else {
		uri, proto = b[i+1:j], b[j+1:]
		if !isProto(proto) {
			return nil, nil, nil, false
		}
	}
	if len(uri) == 0 {
		return nil, nil, nil, false
	}
	return method, uri, proto, true
}

// tchar is RFC 9110's token alphabet: a method is a token whatever its
// case (nginx answers "geti / HTTP/1.1" with 400, and logs it).
var tchar [256]bool

func init() {
	for c := '0'; c <= '9'; c++ {
		tchar[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		tchar[c], tchar[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		tchar[c] = true
	}
}

// isProto: HTTP/1.1, HTTP/2.0, HTTP/3 ...
func isProto(b []byte) bool {
	if len(b) < 6 || string(b[:5]) != "HTTP/" {
		return false
	}
	return isNumber(b[5:])
}

// appendInt appends digits as a JSON integer (leading zeros dropped).
func appendInt(dst, b []byte) []byte {
	for len(b) > 1 && b[0] == '0' {
		b = b[1:]
	}
	return append(dst, b...)
}

// appendNumber appends "digits[.digits]" as a JSON number.
func appendNumber(dst, b []byte) []byte {
	for len(b) > 1 && b[0] == '0' && b[1] != '.' {
		b = b[1:]
	}
	return append(dst, b...)
}

// appendString decodes b per the escape and appends it as a JSON string.
func (c *compiled) appendString(dst, b []byte, r *Result) []byte {
	dst = append(dst, '"')
	i := safePrefix(b)
	dst = append(dst, b[:i]...)
	if i < len(b) {
		rest := b[i:]
		if c.escape != EscapeNone {
			if j := bytes.IndexByte(rest, '\\'); j >= 0 {
				dst = appendJSONBody(dst, rest[:j], r)
				r.scratch = c.decode(r.scratch[:0], rest[j:])
				rest = r.scratch
			}
		}
		dst = appendJSONBody(dst, rest, r)
	}
	return append(dst, '"')
}

func (c *compiled) decode(dst, b []byte) []byte {
	switch c.escape {
	case EscapeDefault:
		return decodeDefault(dst, b)
	case EscapeJSON:
		return decodeJSON(dst, b)
	}
	return append(dst, b...)
}

func (c *compiled) setResultKey(b []byte, r *Result) {
	if c.absent(c.keyVar, b) {
		return
	}
	if c.vars[c.keyVar].kind == kRequest && c.keyPart > 0 {
		method, uri, proto, ok := splitRequest(b)
		if !ok {
			return
		}
		b = [...][]byte{nil, method, uri, proto}[c.keyPart]
	}
	r.keyBuf = c.decode(r.keyBuf[:0], b)
	r.Key = r.keyBuf
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeDefault decodes nginx's \xHH escapes; a backslash not starting
// one is kept.
func decodeDefault(dst, b []byte) []byte {
	for {
		i := bytes.IndexByte(b, '\\')
		if i < 0 {
			return append(dst, b...)
		}
		dst = append(dst, b[:i]...)
		b = b[i:]
		if len(b) >= 4 && b[1] == 'x' {
			h, ok1 := unhex(b[2])
			l, ok2 := unhex(b[3])
			if ok1 && ok2 {
				dst = append(dst, h<<4|l)
				b = b[4:]
				continue
			}
		}
		dst = append(dst, '\\')
		b = b[1:]
	}
}

// decodeJSON decodes JSON string escapes; a malformed escape is kept as
// it is.
func decodeJSON(dst, b []byte) []byte {
	for {
		i := bytes.IndexByte(b, '\\')
		if i < 0 {
			return append(dst, b...)
		}
		dst = append(dst, b[:i]...)
		b = b[i:]
		if len(b) < 2 {
			return append(dst, b...)
		}
		switch b[1] {
		case '"', '\\', '/':
			dst = append(dst, b[1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n := decodeU(b)
			if n == 0 {
				dst = append(dst, '\\')
				b = b[1:]
				continue
			}
			dst = utf8.AppendRune(dst, r)
			b = b[n:]
			continue
		default:
			dst = append(dst, '\\')
			b = b[1:]
			continue
		}
		b = b[2:]
	}
}

// decodeU decodes \uXXXX (and a following low surrogate) at the start of
// b, returning the rune and the bytes used (0: not an escape).
func decodeU(b []byte) (rune, int) {
	r, ok := hex4(b)
	if !ok {
		return 0, 0
	}
	if r >= 0xD800 && r < 0xDC00 {
		if lo, ok := hex4(b[6:]); ok && lo >= 0xDC00 && lo < 0xE000 {
			return (r-0xD800)<<10 | (lo - 0xDC00) + 0x10000, 12
		}
		return utf8.RuneError, 6
	}
	if r >= 0xDC00 && r < 0xE000 {
		return utf8.RuneError, 6
	}
	return r, 6
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		v, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// jsonSafe is true for bytes written into a JSON string as they are.
var jsonSafe [256]bool

func init() {
	for c := 0x20; c < 0x7f; c++ {
		jsonSafe[c] = c != '"' && c != '\\'
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 is replaced by
// U+FFFD and recorded in r.InvalidUTF8.
func appendJSONString(dst, s []byte, r *Result) []byte {
	dst = append(dst, '"')
	dst = appendJSONBody(dst, s, r)
	return append(dst, '"')
}

// safePrefix returns the length of the longest prefix of s made of bytes
// written into a JSON string as they are, 8 bytes at a time.
func safePrefix(s []byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		q := x ^ (lo * '"')
		bs := x ^ (lo * '\\')
		del := x ^ (lo * 0x7f)
		bad := (x - lo*0x20) | (q - lo) | (bs - lo) | (del - lo) // a borrow sets the top bit
		if (bad&^x|x)&hi != 0 {
			break
		}
	}
	for ; i < len(s) && jsonSafe[s[i]]; i++ {
	}
	return i
}

// appendJSONBody appends s escaped for the inside of a JSON string.
func appendJSONBody(dst, s []byte, r *Result) []byte {
	start := 0
	for i := 0; i < len(s); {
		if n := safePrefix(s[i:]); n > 0 {
			i += n
			if i >= len(s) {
				break
			}
		}
		b := s[i]
		if b < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		rn, size := utf8.DecodeRune(s[i:])
		if rn == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			r.InvalidUTF8 = true
			i++
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
