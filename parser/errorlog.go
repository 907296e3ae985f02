package parser

import (
	"bytes"
	"time"
)

// errorLogFormat is the text of the built-in "error": not a log_format
// nginx has, but the shape of an error.log line written with the names of
// the event's fields, so that the error format is compiled into variables
// with kinds like any other (Fields, Variables and the schema need no
// special case). Its literals are not used for matching; errorLog.match is.
const errorLogFormat = `$time_error [$level] $pid#$tid: *$connection $message, client: $remote_addr, server: $server_name, ` +
	`request: "$request", subrequest: "$subrequest", upstream: "$upstream", host: "$host", referrer: "$http_referer", ` +
	`bytes from/to client:$bytes_received/$bytes_sent, bytes from/to upstream:$upstream_bytes_received/$upstream_bytes_sent $truncated`

// errorKinds are the kinds of the error format's fields where they differ
// from varKinds ($connection, $remote_addr, $request are typed there).
var errorKinds = map[string]kind{
	"time_error": kTimeError,
	"level":      kLevel,
	"pid":        kInt,
	"tid":        kInt,
	"truncated":  kBool,
	// the stream proxy's counters, one connection's: integers, not lists
	"upstream_bytes_received": kInt,
	"upstream_bytes_sent":     kInt,
	"server_name":             kString,
}

// The error format's variables, in errorLogFormat's order.
const (
	eTime = iota
	eLevel
	ePid
	eTid
	eConn
	eMessage
	eClient
	eServer
	eRequest
	eSubrequest
	eUpstream
	eHost
	eReferrer
	eBytesReceived
	eBytesSent
	eUpstreamReceived
	eUpstreamSent
	eTruncated
	eCount
)

// maxErrorLine is the longest line nginx writes to error.log, without its
// newline: NGX_MAX_ERROR_STR (2048) less the newline. A line of this length
// was cut by nginx (or filled the buffer exactly).
const maxErrorLine = 2047

// errorLog is the error format's matcher; it is immutable.
type errorLog struct {
	loc *time.Location
}

func compileError(opts Options) (*compiled, error) {
	opts.Escape = EscapeNone // nginx writes error.log values as they are
	c, err := compileKinds(errorLogFormat, opts, errorKinds)
	if err != nil {
		return nil, err
	}
	if len(c.vars) != eCount {
		panic("parser: errorLogFormat and its field indexes disagree")
	}
	loc := opts.Timezone
	if loc == nil {
		loc = time.Local
	}
	c.errlog = &errorLog{loc: loc}
	return c, nil
}

// startsErrorEvent reports whether line starts with "YYYY/MM/DD HH:MM:SS ".
func startsErrorEvent(line []byte) bool {
	return len(line) >= 20 && timeShape(line[:19]) && line[19] == ' '
}

func timeShape(b []byte) bool {
	if len(b) != 19 || b[4] != '/' || b[7] != '/' || b[10] != ' ' || b[13] != ':' || b[16] != ':' {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18} {
		if b[i] < '0' || b[i] > '9' {
			return false
		}
	}
	return true
}

// parseTime parses "2026/11/25 15:04:05" in the format's zone.
func (e *errorLog) parseTime(b []byte) (tm, bool) {
	var t tm
	if !timeShape(b) {
		return t, false
	}
	t.year, _ = num(b[0:4])
	t.month, _ = num(b[5:7])
	t.day, _ = num(b[8:10])
	t.hour, _ = num(b[11:13])
	t.min, _ = num(b[14:16])
	t.sec, _ = num(b[17:19])
	if !t.check() {
		return t, false
	}
	if e.loc != time.UTC {
		_, off := time.Date(t.year, time.Month(t.month), t.day, t.hour, t.min, t.sec, 0, e.loc).Zone()
		t.off = off / 60
	}
	return t, true
}

// match finds the error line's fields; an absent field is an empty span.
func (e *errorLog) match(line []byte, spans []span) *ParseError {
	for i := range spans {
		spans[i] = span{}
	}
	if !startsErrorEvent(line) {
		return &ParseError{Field: "time_error", Pos: 0, Reason: "not an error.log line: it does not start with a date (2006/01/02 15:04:05)"}
	}
	if _, ok := e.parseTime(line[:19]); !ok {
		return &ParseError{Field: "time_error", Pos: 0, Reason: "not " + kindDesc[kTimeError]}
	}
	spans[eTime] = span{0, 19}
	pos := 20
	if pos >= len(line) || line[pos] != '[' {
		return &ParseError{Field: "level", Pos: pos, Reason: "no [level] after the time"}
	}
	end := bytes.IndexByte(line[pos:], ']')
	if end < 0 || !inSet(errorLevels, line[pos+1:pos+end]) {
		return &ParseError{Field: "level", Pos: pos + 1, Reason: "not " + kindDesc[kLevel]}
	}
	spans[eLevel] = span{pos + 1, pos + end}
	pos += end + 1
	if pos >= len(line) || line[pos] != ' ' {
		return &ParseError{Field: "level", Pos: pos, Reason: "no space after [level]"}
	}
	pos++
	d := digitsAt(line, pos)
	if d == pos || d >= len(line) || line[d] != '#' || d-pos > 19 {
		return &ParseError{Field: "pid", Pos: pos, Reason: "no PID# after the level"}
	}
	spans[ePid] = span{pos, d}
	pos = d + 1
	d = digitsAt(line, pos)
	if d == pos || d-pos > 19 || d >= len(line) || line[d] != ':' || d+1 < len(line) && line[d+1] != ' ' {
		return &ParseError{Field: "tid", Pos: pos, Reason: "no TID: after PID#"}
	}
	spans[eTid] = span{pos, d}
	pos = min(d+2, len(line))
	if pos < len(line) && line[pos] == '*' {
		d = digitsAt(line, pos+1)
		if d > pos+1 && d-pos-1 <= 19 && (d == len(line) || line[d] == ' ') {
			spans[eConn] = span{pos + 1, d}
			pos = min(d+1, len(line))
		}
	}
	msgEnd := len(line)
	if len(line) == maxErrorLine { // longer is not one write of nginx's (joined lines of another writer)
		spans[eTruncated] = span{0, 1}
		msgEnd = e.contextForward(line, pos, spans)
	} else {
		msgEnd = e.contextBackward(line[:streamTrailer(line, pos, spans)], pos, spans)
		// Lines that another writer appended after a complete event (the
		// context ends an earlier line): the context is read from the end
		// of that line, and the message keeps all the text.
		for hi := len(line); msgEnd == len(line); {
			nl := bytes.LastIndexByte(line[pos:hi], '\n')
			if nl < 0 {
				break
			}
			hi = pos + nl
			if e.contextBackward(line[:hi], pos, spans) < hi {
				break
			}
		}
	}
	spans[eMessage] = span{pos, msgEnd}
	return nil
}

func digitsAt(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// ctxField is one of the context fields nginx appends, in nginx's order.
type ctxField struct {
	key    string // ", client: " or `, request: "`
	v      int    // variable index
	quoted bool
}

var ctxFields = [...]ctxField{
	{", udp client: ", eClient, false}, // stream, UDP
	{", client: ", eClient, false},
	{", server: ", eServer, false},
	{`, request: "`, eRequest, true},
	{`, subrequest: "`, eSubrequest, true},
	{`, upstream: "`, eUpstream, true},
	{`, host: "`, eHost, true},
	{`, referrer: "`, eReferrer, true},
}

// ctxClosers[i] is the quote that ends a value followed by ctxFields[i].
var ctxClosers [len(ctxFields)]string

func init() {
	for i, f := range ctxFields {
		ctxClosers[i] = `"` + f.key
	}
}

// streamTrailer takes the stream proxy's counters from the end of
// line[from:] (ngx_stream_proxy_log_error: ", bytes from/to client:R/S,
// bytes from/to upstream:R/S") and returns where the rest of the context
// ends: len(line) when the line has none.
func streamTrailer(line []byte, from int, spans []span) int {
	const up, cl = ", bytes from/to upstream:", ", bytes from/to client:"
	end := len(line)
	ur, us, k, ok := pairBefore(line, from, end)
	if !ok || !bytes.HasSuffix(line[from:k], bytesOf(up)) {
		return end
	}
	cr, cs, c, ok := pairBefore(line, from, k-len(up))
	if !ok || !bytes.HasSuffix(line[from:c], bytesOf(cl)) {
		return end
	}
	spans[eBytesReceived], spans[eBytesSent] = cr, cs
	spans[eUpstreamReceived], spans[eUpstreamSent] = ur, us
	return c - len(cl)
}

// pairBefore parses the "digits/digits" that ends line[from:end], returning
// both and where the pair starts.
func pairBefore(line []byte, from, end int) (a, b span, start int, ok bool) {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	i := end
	for i > from && isDigit(line[i-1]) {
		i--
	}
	if i == end || end-i > 19 || i-1 < from || line[i-1] != '/' {
		return a, b, 0, false
	}
	j := i - 1
	for j > from && isDigit(line[j-1]) {
		j--
	}
	if j == i-1 || i-1-j > 19 {
		return a, b, 0, false
	}
	return span{j, i - 1}, span{i, end}, j, true
}

// contextBackward takes the context fields from the right of line[from:],
// last field first, and returns where the message ends. One backward scan
// over the ", " in the text: at each, a key of a field before the last one
// taken (nginx's order) whose value is well-formed (a quoted field's ends
// with '"'; client's and server's hold no space or comma) takes the text
// up to the field already taken.
func (e *errorLog) contextBackward(line []byte, from int, spans []span) int {
	end := len(line)
	next := len(ctxFields) // fields before this one may still come
	for hi := end; hi > from && next > 0; {
		j := bytes.LastIndexByte(line[from:hi], ',')
		if j < 0 {
			break
		}
		j += from
		hi = j
		if j+1 >= end || line[j+1] != ' ' {
			continue
		}
		for i := next - 1; i >= 0; i-- {
			f := &ctxFields[i]
			if !bytes.HasPrefix(line[j:end], bytesOf(f.key)) {
				continue
			}
			start, vend := j+len(f.key), end
			if f.quoted {
				if vend-1 < start || line[vend-1] != '"' {
					break
				}
				vend--
			} else if bytes.IndexByte(line[start:vend], ' ') >= 0 || bytes.IndexByte(line[start:vend], ',') >= 0 {
				break
			}
			spans[f.v] = span{start, vend}
			end, next = j, i
			if f.v == eClient {
				next = 0 // client (or udp client) is the first field
			}
			break
		}
	}
	return end
}

// contextForward reads the context of a line nginx cut, forward from the
// last ", client: "; the field that was cut keeps what is there. It
// returns where the message ends.
func (e *errorLog) contextForward(line []byte, from int, spans []span) int {
	k := max(bytes.LastIndex(line[from:], bytesOf(ctxFields[0].key)), bytes.LastIndex(line[from:], bytesOf(ctxFields[1].key)))
	if k < 0 {
		return len(line)
	}
	msgEnd := from + k
	pos := msgEnd
	for i := range ctxFields {
		f := &ctxFields[i]
		if !bytes.HasPrefix(line[pos:], bytesOf(f.key)) {
			// The line may end inside this field's key.
			continue
		}
		start := pos + len(f.key)
		var end, next int
		if f.quoted {
			// Up to the quote that the next field's key follows.
			end, next = len(line), len(line)
			for j := i + 1; j < len(ctxFields); j++ {
				if q := bytes.Index(line[start:], bytesOf(ctxClosers[j])); q >= 0 && start+q < end {
					end, next = start+q, start+q+1
				}
			}
			if end == len(line) && end > start && line[end-1] == '"' {
				end--
			}
		} else {
			end = start
			for end < len(line) && line[end] != ',' && line[end] != ' ' {
				end++
			}
			next = end
		}
		spans[f.v] = span{start, end}
		pos = next
		if pos >= len(line) {
			break
		}
	}
	return msgEnd
}
