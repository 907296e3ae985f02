package parser

import "time"

// tm is a parsed time: civil fields in the zone of offset off (minutes
// east of UTC).
type tm struct {
	year, month, day, hour, min, sec, ms, off int
}

func num(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) > 0
}

// d2 parses two ASCII digits.
func d2(b []byte) (int, bool) {
	x, y := b[0]-'0', b[1]-'0'
	return int(x)*10 + int(y), x <= 9 && y <= 9
}

// month returns 1..12 for "Jan".."Dec", 0 otherwise.
func month(b []byte) int {
	switch uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) {
	case 'J'<<16 | 'a'<<8 | 'n':
		return 1
	case 'F'<<16 | 'e'<<8 | 'b':
		return 2
	case 'M'<<16 | 'a'<<8 | 'r':
		return 3
	case 'A'<<16 | 'p'<<8 | 'r':
		return 4
	case 'M'<<16 | 'a'<<8 | 'y':
		return 5
	case 'J'<<16 | 'u'<<8 | 'n':
		return 6
	case 'J'<<16 | 'u'<<8 | 'l':
		return 7
	case 'A'<<16 | 'u'<<8 | 'g':
		return 8
	case 'S'<<16 | 'e'<<8 | 'p':
		return 9
	case 'O'<<16 | 'c'<<8 | 't':
		return 10
	case 'N'<<16 | 'o'<<8 | 'v':
		return 11
	case 'D'<<16 | 'e'<<8 | 'c':
		return 12
	}
	return 0
}

// parseTimeLocal parses nginx's $time_local: 25/Nov/2026:15:04:05 +0000.
func parseTimeLocal(b []byte) (tm, bool) {
	var t tm
	if len(b) != 26 || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' || b[17] != ':' || b[20] != ' ' {
		return t, false
	}
	var ok [8]bool
	t.day, ok[0] = d2(b[0:])
	y1, ok1 := d2(b[7:])
	y2, ok2 := d2(b[9:])
	t.year, ok[1], ok[2] = y1*100+y2, ok1, ok2
	t.hour, ok[3] = d2(b[12:])
	t.min, ok[4] = d2(b[15:])
	t.sec, ok[5] = d2(b[18:])
	oh, ok6 := d2(b[22:])
	om, ok7 := d2(b[24:])
	ok[6], ok[7] = ok6, ok7
	if ok != [8]bool{true, true, true, true, true, true, true, true} {
		return t, false
	}
	t.month = month(b[3:6])
	if !zone(b[21], oh, om, &t) {
		return t, false
	}
	return t, t.check()
}

// parseTimeISO parses nginx's $time_iso8601: 2026-11-25T15:04:05+00:00
// (Z accepted for +00:00).
func parseTimeISO(b []byte) (tm, bool) {
	var t tm
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return t, false
	}
	var ok [5]bool
	t.year, ok[0] = num(b[0:4])
	t.month, ok[1] = num(b[5:7])
	t.day, ok[2] = num(b[8:10])
	t.hour, ok[3] = num(b[11:13])
	t.min, ok[4] = num(b[14:16])
	var oks bool
	t.sec, oks = num(b[17:19])
	if !oks || ok != [5]bool{true, true, true, true, true} {
		return t, false
	}
	z := b[19:]
	if len(z) == 1 && z[0] == 'Z' {
		return t, t.check()
	}
	if len(z) != 6 || z[3] != ':' {
		return t, false
	}
	oh, ok1 := num(z[1:3])
	om, ok2 := num(z[4:6])
	if !ok1 || !ok2 || !zone(z[0], oh, om, &t) {
		return t, false
	}
	return t, t.check()
}

func zone(sign byte, oh, om int, t *tm) bool {
	if oh > 23 || om > 59 {
		return false
	}
	switch sign {
	case '+':
		t.off = oh*60 + om
	case '-':
		t.off = -(oh*60 + om)
	default:
		return false
	}
	return true
}

// maxUnix is 9999-12-31T23:59:59Z: timestamps keep four-digit years.
const maxUnix = 253402300799

// parseMsec parses nginx's $msec: 1764083045.123 (seconds with
// milliseconds; fewer or more fraction digits are accepted).
func parseMsec(b []byte) (tm, bool) {
	var t tm
	secPart, frac := b, []byte(nil)
	for i, c := range b {
		if c == '.' {
			secPart, frac = b[:i], b[i+1:]
			if len(frac) == 0 {
				return t, false
			}
			break
		}
	}
	if len(secPart) == 0 || len(secPart) > 12 {
		return t, false
	}
	sec, ok := num(secPart)
	if !ok || sec > maxUnix {
		return t, false
	}
	ms := 0
	for i, c := range frac {
		if c < '0' || c > '9' {
			return t, false
		}
		if i < 3 {
			ms = ms*10 + int(c-'0')
		}
	}
	for i := len(frac); i < 3; i++ {
		ms *= 10
	}
	days := sec / 86400
	rem := sec % 86400
	t.year, t.month, t.day = civil(days)
	t.hour, t.min, t.sec, t.ms = rem/3600, rem%3600/60, rem%60, ms
	return t, true
}

func (t *tm) check() bool {
	if t.month < 1 || t.month > 12 || t.day < 1 || t.day > daysIn(t.year, t.month) ||
		t.hour > 23 || t.min > 59 || t.sec > 60 {
		return false
	}
	return true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns days since 1970-01-01 (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civil is the inverse of daysFromCivil, for days >= 0.
func civil(z int) (y, m, d int) {
	z += 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// time returns the instant. It does not allocate.
func (t *tm) time() time.Time {
	s := int64(daysFromCivil(t.year, t.month, t.day))*86400 +
		int64(t.hour*3600+t.min*60+t.sec) - int64(t.off*60)
	return time.Unix(s, int64(t.ms)*1e6).UTC()
}

// appendRFC3339 appends "2026-11-25T15:04:05.000+00:00" (quoted).
func (t *tm) appendRFC3339(dst []byte) []byte {
	var b [31]byte
	b[0], b[30] = '"', '"'
	y := t.year % 10000
	b[1], b[2], b[3], b[4] = byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10)
	b[5], b[8], b[11], b[14], b[17], b[20] = '-', '-', 'T', ':', ':', '.'
	put2(b[6:], t.month)
	put2(b[9:], t.day)
	put2(b[12:], t.hour)
	put2(b[15:], t.min)
	put2(b[18:], t.sec)
	ms := t.ms % 1000
	b[21], b[22], b[23] = byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10)
	off := t.off
	b[24] = '+'
	if off < 0 {
		b[24] = '-'
		off = -off
	}
	put2(b[25:], off/60)
	b[27] = ':'
	put2(b[28:], off%60)
	return append(dst, b[:]...)
}

func put2(b []byte, n int) {
	n %= 100
	b[0], b[1] = byte('0'+n/10), byte('0'+n%10)
}
