package enrich

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// The Avro binary encoding of the enrichment fields, appended after the
// original event's fields (see doc.go, "Avro"): each field is a union
// ["null", T] with default null, branch 0 (null) or 2 (zigzag 1) then the
// value.

// avroNull is a null union branch.
const avroNull = "\x00"

// appendAvroLong appends v as an Avro long (zigzag varint).
func appendAvroLong(dst []byte, v int64) []byte {
	return binary.AppendUvarint(dst, uint64(v<<1)^uint64(v>>63))
}

// appendAvroDouble appends f as an Avro double (8 bytes little-endian).
func appendAvroDouble(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// appendAvroOptString appends a ["null","string"] union: null when s is
// empty (unknown, as the JSON leaves it out), else s with invalid UTF-8
// replaced by U+FFFD byte by byte, as appendJSONString does.
func appendAvroOptString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, 0)
	}
	dst = append(dst, 2)
	if utf8.ValidString(s) {
		dst = appendAvroLong(dst, int64(len(s)))
		return append(dst, s...)
	}
	var v []byte
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			v = utf8.AppendRune(v, utf8.RuneError)
		} else {
			v = append(v, s[i:i+size]...)
		}
		i += size
	}
	dst = appendAvroLong(dst, int64(len(v)))
	return append(dst, v...)
}
