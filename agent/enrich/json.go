package enrich

import (
	"strconv"
	"unicode/utf8"
)

// appendStrMember appends "key":"val" to an object being written whose
// members start at dst[start:], with a comma when it is not the first;
// nothing when val is empty (unknown).
func appendStrMember(dst []byte, start int, key, val string) []byte {
	if val == "" {
		return dst
	}
	if len(dst) > start {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	dst = append(dst, `":`...)
	return appendJSONString(dst, val)
}

// appendNumMember is appendStrMember for a number.
func appendNumMember(dst []byte, start int, key string, v float64) []byte {
	if len(dst) > start {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	dst = append(dst, `":`...)
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
}

// appendIntMember is appendStrMember for an integer.
func appendIntMember(dst []byte, start int, key string, v uint64) []byte {
	if len(dst) > start {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	dst = append(dst, `":`...)
	return strconv.AppendUint(dst, v, 10)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: '"', '\\' and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
