package parser

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// SchemaError says why a line that matched the format cannot be encoded
// in its schema: a value out of range for its type. The agent sends such
// an event to the dead-letter topic (stage "schema").
type SchemaError struct {
	Field  string // the event field
	Value  string // the value, clipped
	Reason string
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("field %s: %s: %s", e.Field, e.Value, e.Reason)
}

// ParseAvro parses line like Parse but appends the event in Avro binary
// (Schema().Avro(), no framing) instead of JSON. On failure it returns dst
// unchanged and a *ParseError (the line does not match) or a *SchemaError
// (it matched but a value does not fit its Avro type).
func (p *Parser) ParseAvro(dst, line []byte, m Meta, r *Result) ([]byte, error) {
	return p.impl.parseAvro(dst, line, m, r)
}

// AppendAvro appends, in Avro binary, the event of the line r was last
// parsed from by a successful Parse or ParseAvro (line must be that line,
// unchanged): the match is not repeated. On failure it returns dst
// unchanged and a *SchemaError.
func (p *Parser) AppendAvro(dst, line []byte, m Meta, r *Result) ([]byte, error) {
	n := len(dst)
	dst, err := p.impl.encodeAvro(dst, line, m, r)
	if err != nil {
		return dst[:n], err
	}
	return dst, nil
}

func (c *compiled) parseAvro(dst, line []byte, meta Meta, r *Result) ([]byte, error) {
	if r == nil {
		r = new(Result)
	}
	if err := c.match(line, r); err != nil {
		return dst, err
	}
	n := len(dst)
	dst, err := c.encodeAvro(dst, line, meta, r)
	if err != nil {
		r.Time, r.Key, r.InvalidUTF8 = time.Time{}, nil, false
		return dst[:n], err
	}
	if c.keyVar >= 0 {
		s := r.spans[c.keyVar]
		c.setResultKey(line[s.start:s.end], r)
	}
	return dst, nil
}

// Avro binary: a union branch is its index as a zig-zag varint (null is
// 0x00, the value branch 0x02); see https://avro.apache.org/docs/1.11.1/specification/#binary-encoding.
const (
	avroNull  = 0x00
	avroValue = 0x02
)

func appendVarlong(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

// encodeAvro writes the Avro record of a matched line, in the order of
// Schema's fields. Times were checked for shape by the match; a time that
// does not parse (30 Feb) is a *ParseError as in encode.
func (c *compiled) encodeAvro(dst, line []byte, meta Meta, r *Result) ([]byte, error) {
	spans := r.spans
	val := func(i int) []byte { s := spans[i]; return line[s.start:s.end] }
	for _, it := range c.items {
		switch it.kind {
		case itTimestamp:
			found := false
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
				r.Time = t.time()
				dst = append(dst, avroValue)
				dst = appendVarlong(dst, r.Time.UnixMilli())
				dst = append(dst, avroValue)
				dst = appendVarlong(dst, int64(t.off))
				found = true
				break
			}
			if !found {
				dst = append(dst, avroNull, avroNull)
			}
		case itGroup:
			present := false
			for _, vi := range it.members {
				if !c.absent(vi, val(vi)) {
					present = true
					break
				}
			}
			if !present {
				dst = append(dst, avroNull)
				continue
			}
			dst = append(dst, avroValue)
			for _, vi := range it.members {
				b := val(vi)
				if c.absent(vi, b) {
					dst = append(dst, avroNull)
					continue
				}
				dst = append(dst, avroValue)
				dst = c.appendAvroString(dst, b, r)
			}
		case itVar:
			v := &c.vars[it.v]
			b := val(it.v)
			if c.absent(it.v, b) {
				dst = append(dst, avroNull)
				if v.kind == kRequest {
					dst = appendNulls(dst, v)
				}
				continue
			}
			var err error
			dst = append(dst, avroValue)
			dst, err = c.appendAvroValue(dst, v, b, r)
			if err != nil {
				return dst, err
			}
		}
	}
	dst = appendAvroRaw(dst, bytesOf(meta.Host), r)
	dst = appendAvroRaw(dst, bytesOf(meta.File), r)
	dst = appendVarlong(dst, meta.Offset)
	if r.InvalidUTF8 {
		dst = append(dst, avroValue, 1)
	} else {
		dst = append(dst, avroNull)
	}
	return dst, nil
}

// appendNulls writes null for each request part v writes.
func appendNulls(dst []byte, v *variable) []byte {
	for _, on := range [...]bool{v.emitMethod, v.emitURI, v.emitProto} {
		if on {
			dst = append(dst, avroNull)
		}
	}
	return dst
}

func (c *compiled) appendAvroValue(dst []byte, v *variable, b []byte, r *Result) ([]byte, error) {
	switch v.kind {
	case kInt:
		n, ok := parseLong(b)
		if !ok {
			return dst, &SchemaError{Field: v.field(), Value: clip(string(b), 32), Reason: "integer out of range for long"}
		}
		return appendVarlong(dst, n), nil
	case kNumber, kMsec:
		return appendDouble(dst, parseDouble(b)), nil
	case kBool:
		return append(dst, 1), nil // written only when true, as in JSON
	case kRequest:
		dst = c.appendAvroString(dst, b, r)
		method, uri, proto, ok := splitRequest(b)
		if !ok {
			return appendNulls(dst, v), nil
		}
		if v.emitMethod {
			dst = append(dst, avroValue)
			dst = c.appendAvroString(dst, method, r)
		}
		if v.emitURI {
			dst = append(dst, avroValue)
			dst = c.appendAvroString(dst, uri, r)
		}
		if v.emitProto {
			if len(proto) > 0 {
				dst = append(dst, avroValue)
				dst = c.appendAvroString(dst, proto, r)
			} else {
				dst = append(dst, avroNull)
			}
		}
		return dst, nil
	case kListNum, kListInt, kListStr:
		n := int64(1)
		for rest := b; ; n++ {
			_, next, more := nextElem(rest)
			if !more {
				break
			}
			rest = next
		}
		dst = appendVarlong(dst, n) // one block of n items, then the end block
		for {
			e, rest, more := nextElem(b)
			switch {
			case isDash(e):
				dst = append(dst, avroNull)
			case v.kind == kListInt:
				x, ok := parseLong(e)
				if !ok {
					return dst, &SchemaError{Field: v.field(), Value: clip(string(e), 32), Reason: "integer out of range for long"}
				}
				dst = append(dst, avroValue)
				dst = appendVarlong(dst, x)
			case v.kind == kListNum:
				dst = append(dst, avroValue)
				dst = appendDouble(dst, parseDouble(e))
			default:
				dst = append(dst, avroValue)
				dst = c.appendAvroString(dst, e, r)
			}
			if !more {
				break
			}
			b = rest
		}
		return append(dst, 0), nil
	}
	return c.appendAvroString(dst, b, r), nil
}

// parseLong parses the digits the match accepted (at most 19) as an int64.
func parseLong(b []byte) (int64, bool) {
	var n uint64
	for _, c := range b {
		n = n*10 + uint64(c-'0') // 19 digits do not overflow uint64
	}
	return int64(n), n <= math.MaxInt64 && len(b) > 0
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseDouble parses "digits[.digits]" (checked by the match) to the
// nearest float64, as a JSON reader of the same text gets it: exactly
// (Clinger's fast path) when the digits fit 2^53 and the fraction has at
// most 22 digits, else with strconv.
func parseDouble(b []byte) float64 {
	var m uint64
	frac, digits := 0, 0
	dot := false
	for _, c := range b {
		if c == '.' {
			dot = true
			continue
		}
		m = m*10 + uint64(c-'0')
		if m != 0 {
			digits++
		}
		if dot {
			frac++
		}
		if digits > 15 {
			break
		}
	}
	if digits <= 15 && frac < len(pow10) {
		return float64(m) / pow10[frac]
	}
	f, _ := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 64) // rare; b is not kept
	return f
}

func appendDouble(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// appendAvroString decodes b per the escape and appends it as an Avro
// string (length, bytes), invalid UTF-8 replaced by U+FFFD.
func (c *compiled) appendAvroString(dst, b []byte, r *Result) []byte {
	if plainASCII(b) {
		dst = appendVarlong(dst, int64(len(b)))
		return append(dst, b...)
	}
	if c.escape != EscapeNone {
		if j := bytes.IndexByte(b, '\\'); j >= 0 {
			r.scratch = append(r.scratch[:0], b[:j]...)
			r.scratch = c.decode(r.scratch, b[j:])
			b = r.scratch
		}
	}
	return appendAvroRaw(dst, b, r)
}

// appendAvroRaw appends s as an Avro string. The length goes first: two
// bytes are reserved (lengths up to 8191) and the bytes moved when the
// length takes one byte or more than two.
func appendAvroRaw(dst, s []byte, r *Result) []byte {
	if utf8.Valid(s) {
		dst = appendVarlong(dst, int64(len(s)))
		return append(dst, s...)
	}
	at := len(dst)
	dst = append(dst, 0, 0)
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			dst = append(dst, s[i])
			i++
			continue
		}
		rn, size := utf8.DecodeRune(s[i:])
		if rn == utf8.RuneError && size == 1 {
			dst = append(dst, "\uFFFD"...)
			r.InvalidUTF8 = true
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	n := len(dst) - at - 2
	var lb [binary.MaxVarintLen64]byte
	ln := appendVarlong(lb[:0], int64(n))
	switch {
	case len(ln) == 2:
		dst[at], dst[at+1] = ln[0], ln[1]
	case len(ln) == 1:
		dst[at] = ln[0]
		copy(dst[at+1:], dst[at+2:])
		dst = dst[:len(dst)-1]
	default:
		extra := len(ln) - 2
		dst = append(dst, lb[:extra]...)
		copy(dst[at+len(ln):], dst[at+2:at+2+n])
		copy(dst[at:], ln)
	}
	return dst
}

// plainASCII reports whether s is ASCII without a backslash: written into
// an Avro string as it is, whatever the escape. One pass, 8 bytes at a
// time, where the slow path takes two (the escape, then UTF-8).
func plainASCII(s []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		bs := x ^ (lo * '\\')
		if (x|(bs-lo)&^bs)&hi != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || s[i] == '\\' {
			return false
		}
	}
	return true
}
