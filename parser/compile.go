package parser

import (
	"fmt"
	"strings"
)

var builtins = map[string]string{
	// error is nginx's error.log (see errorlog.go): not a log_format.
	"error": errorLogFormat,
	// ingress_upstreaminfo is the ingress-nginx controller's default
	// log-format-upstream.
	"ingress_upstreaminfo": `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" ` +
		`$request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr ` +
		`$upstream_response_length $upstream_response_time $upstream_status $req_id`,
	"combined": `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`,
	"main":     `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for"`,
	"json": `{"time":"$time_iso8601","remote_addr":"$remote_addr","remote_user":"$remote_user",` +
		`"request":"$request","status":$status,"body_bytes_sent":$body_bytes_sent,"request_time":$request_time,` +
		`"http_referer":"$http_referer","http_user_agent":"$http_user_agent","http_x_forwarded_for":"$http_x_forwarded_for",` +
		`"request_id":"$request_id","upstream_addr":"$upstream_addr","upstream_status":"$upstream_status",` +
		`"upstream_response_time":"$upstream_response_time"}`,
}

// builtinEscape is the escape a built-in format is always compiled with.
var builtinEscape = map[string]Escape{"json": EscapeJSON, "error": EscapeNone}

// kind is how a variable's value is checked and encoded. varKinds below is
// the one table that says a variable's type; the event schema is derived
// from the kinds (see kindInfo).
type kind uint8

const (
	kString      kind = iota // JSON string, decoded per escape
	kInt                     // JSON integer
	kNumber                  // JSON number (request_time)
	kTimeLocal               // 25/Nov/2026:15:04:05 +0000 -> timestamp
	kTimeISO                 // 2026-11-25T15:04:05+00:00 -> timestamp
	kMsec                    // 1764083045.123 -> timestamp and msec
	kRequest                 // request line -> request, request_method, request_uri, server_protocol
	kListNum                 // upstream timings: array of numbers
	kListInt                 // upstream statuses and lengths: array of integers
	kListStr                 // upstream_addr: array of strings (entries hold no space, never end in ',')
	kToken                   // a string that never holds a space ($remote_addr, $request_id)
	kCacheStatus             // $upstream_cache_status: MISS, BYPASS, EXPIRED, STALE, UPDATING, REVALIDATED, HIT
	kTimeError               // error.log: 2026/11/25 15:04:05 (no zone: Options.Timezone) -> timestamp
	kLevel                   // error.log level: debug, info, notice, warn, error, crit, alert, emerg
	kBool                    // JSON true (error.log's truncated); written only when true
)

// kindInfo says how each kind appears in the event, for the event schema:
// the JSON type of the value ("string", "integer", "number", "boolean"),
// the element type of an array ("" for scalars), and the closed set of
// values of an enumeration (nil for none). Time kinds feed "timestamp", an
// RFC 3339 string.
var kindInfo = [...]struct {
	typ, elem string
	enum      []string
}{
	kString:      {"string", "", nil},
	kInt:         {"integer", "", nil},
	kNumber:      {"number", "", nil},
	kTimeLocal:   {"string", "", nil},
	kTimeISO:     {"string", "", nil},
	kMsec:        {"number", "", nil},
	kRequest:     {"string", "", nil},
	kListNum:     {"array", "number", nil},
	kListInt:     {"array", "integer", nil},
	kListStr:     {"array", "string", nil},
	kToken:       {"string", "", nil},
	kCacheStatus: {"string", "", cacheStatuses},
	kTimeError:   {"string", "", nil},
	kLevel:       {"string", "", errorLevels},
	kBool:        {"boolean", "", nil},
}

// cacheStatuses is $upstream_cache_status's closed set (ngx_http_cache_status).
var cacheStatuses = []string{"MISS", "BYPASS", "EXPIRED", "STALE", "UPDATING", "REVALIDATED", "HIT"}

// errorLevels are error.log's levels, least severe first.
var errorLevels = []string{"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"}

// group is the object a header variable is put in.
type group uint8

const (
	gNone group = iota
	gRequest
	gResponse
	gUpstream
)

var groupNames = [...]string{"", "request_headers", "response_headers", "upstream_headers"}

// varKinds types the documented variables of nginx's http and stream
// modules (ngx_http_core_module, ngx_http_upstream_module,
// ngx_http_log_module, ngx_stream_core_module, ngx_stream_upstream_module,
// ngx_http_realip_module, ngx_http_proxy_module, ...). Any variable not
// listed is a string. Ports, $pid, $limit_rate and the $tcpinfo_ values
// stay strings: the event contract and peers' consumers read them so.
var varKinds = map[string]kind{
	// integers
	"status":              kInt, // http and stream
	"body_bytes_sent":     kInt,
	"bytes_sent":          kInt, // http and stream
	"bytes_received":      kInt, // stream
	"request_length":      kInt,
	"connection":          kInt, // http and stream
	"connection_requests": kInt,
	"connections_active":  kInt, // stub_status
	"connections_reading": kInt,
	"connections_writing": kInt,
	"connections_waiting": kInt,
	// numbers (seconds with millisecond resolution)
	"request_time":    kNumber,
	"session_time":    kNumber, // stream
	"connection_time": kNumber,
	// times
	"msec":         kMsec,
	"time_local":   kTimeLocal,
	"time_iso8601": kTimeISO,
	"request":      kRequest,
	// upstream lists: one entry per server tried, ", " between servers of
	// one group and " : " between groups (internal redirects)
	"upstream_response_time":   kListNum,
	"upstream_connect_time":    kListNum,
	"upstream_header_time":     kListNum,
	"upstream_queue_time":      kListNum,
	"upstream_first_byte_time": kListNum, // stream
	"upstream_session_time":    kListNum, // stream
	"upstream_status":          kListInt,
	"upstream_response_length": kListInt,
	"upstream_bytes_received":  kListInt, // http and stream
	"upstream_bytes_sent":      kListInt, // http and stream
	"upstream_addr":            kListStr, // http and stream
	"upstream_cache_status":    kCacheStatus,
	// strings that never hold a space: they decide splits of unquoted fields
	"remote_addr":                kToken, // http and stream
	"realip_remote_addr":         kToken,
	"server_addr":                kToken,
	"proxy_protocol_addr":        kToken,
	"proxy_protocol_server_addr": kToken,
	"request_id":                 kToken,
	"req_id":                     kToken, // ingress-nginx
	"scheme":                     kToken,
	"request_method":             kToken,
	"server_protocol":            kToken,
	"protocol":                   kToken, // stream: TCP or UDP
	"ssl_protocol":               kToken,
	"ssl_cipher":                 kToken,
	"ssl_session_id":             kToken,
	"ssl_session_reused":         kToken,
	"pipe":                       kToken,
}

// reserved are event fields the parser itself writes; a variable whose
// name is one of them is renamed "nginx_"+name (e.g. nginx's $host becomes
// "nginx_host", since "host" is the agent's hostname).
var reserved = map[string]bool{
	"host": true, "log_file": true, "log_offset": true, "timestamp": true,
	"invalid_utf8": true, "request_headers": true, "response_headers": true,
	"upstream_headers": true,
}

// variable is one $name of the format and the literal text after it.
type variable struct {
	name  string // nginx's name, lower case, without $
	kind  kind
	group group
	key   []byte // `"key":` as written in the event (header name inside its group)
	after []byte // literal text following the value up to the next variable or the end
	emit  bool   // false when an earlier variable already writes the same field
	// request parts written by a kRequest variable (false when the format
	// has the part as its own variable).
	emitMethod, emitURI, emitProto bool
}

// itemKind is one step of the event's JSON.
type itemKind uint8

const (
	itVar       itemKind = iota // one variable
	itTimestamp                 // "timestamp" from the best time variable
	itGroup                     // a header object with its members
)

type item struct {
	kind    itemKind
	v       int   // itVar
	group   group // itGroup
	members []int // itGroup: variable indexes, in format order
}

type compiled struct {
	errlog   *errorLog // the error.log format; nil for a log_format
	escape   Escape
	prefix   []byte // literal before the first variable
	vars     []variable
	items    []item
	timeVars []int // variable indexes that give the timestamp, best first
	keyVar   int   // variable whose value is Result.Key; -1 for none
	keyPart  int   // 0 whole value, 1 method, 2 uri, 3 protocol (keyVar is $request)
}

// Variables returns the nginx variable names of the format, in order,
// without the $.
func (p *Parser) Variables() []string {
	out := make([]string, len(p.impl.vars))
	for i, v := range p.impl.vars {
		out[i] = v.name
	}
	return out
}

// Fields returns the event's field names in the order they are written,
// as a reader of the format would predict them: header variables as
// "request_headers.NAME", the parts of $request, "timestamp" for the time
// variables. The fields every event carries (host, log_file, log_offset)
// are not listed.
func (p *Parser) Fields() []string {
	c := p.impl
	var out []string
	for _, it := range c.items {
		switch it.kind {
		case itTimestamp:
			out = append(out, "timestamp")
		case itGroup:
			for _, vi := range it.members {
				out = append(out, groupNames[it.group]+"."+c.vars[vi].field())
			}
		case itVar:
			v := &c.vars[it.v]
			out = append(out, v.field())
			if v.kind == kRequest {
				for _, part := range []struct {
					on   bool
					name string
				}{{v.emitMethod, "request_method"}, {v.emitURI, "request_uri"}, {v.emitProto, "server_protocol"}} {
					if part.on {
						out = append(out, part.name)
					}
				}
			}
		}
	}
	return out
}

// field is the variable's event field name (inside its group, if any).
func (v *variable) field() string { return string(v.key[1 : len(v.key)-2]) }

// Escape returns the escape the parser decodes values with.
func (p *Parser) Escape() Escape { return p.impl.escape }

func compile(format string, opts Options) (*compiled, error) {
	return compileKinds(format, opts, nil)
}

// compileKinds is compile with kinds that override varKinds (the error
// format's fields).
func compileKinds(format string, opts Options, kinds map[string]kind) (*compiled, error) {
	if opts.Escape != EscapeDefault && opts.Escape != EscapeJSON && opts.Escape != EscapeNone {
		return nil, fmt.Errorf("unknown escape %d", opts.Escape)
	}
	if strings.TrimSpace(format) == "" {
		return nil, fmt.Errorf("empty log_format")
	}
	c := &compiled{escape: opts.Escape, keyVar: -1}
	lits, names, err := splitFormat(format)
	if err != nil {
		return nil, err
	}
	c.prefix = []byte(lits[0])
	for i, name := range names {
		after := lits[i+1]
		if after == "" && i < len(names)-1 {
			return nil, fmt.Errorf("log_format: $%s and $%s are adjacent with nothing between them; their values cannot be told apart", name, names[i+1])
		}
		c.vars = append(c.vars, newVariable(name, after, kinds))
	}

	// Which variable writes which field: the first one wins.
	seen := map[string]bool{}
	has := map[string]bool{}
	for _, v := range c.vars {
		has[v.name] = true
	}
	for i := range c.vars {
		v := &c.vars[i]
		full := groupNames[v.group] + "." + string(v.key)
		if !seen[full] {
			seen[full] = true
			v.emit = true
		}
		if v.kind == kRequest {
			v.emitMethod = !has["request_method"] && !seen["request_method_part"]
			v.emitURI = !has["request_uri"] && !seen["request_uri_part"]
			v.emitProto = !has["server_protocol"] && !seen["server_protocol_part"]
			seen["request_method_part"], seen["request_uri_part"], seen["server_protocol_part"] = true, true, true
		}
	}

	// Time variables, best first: $msec has milliseconds.
	for _, k := range []kind{kMsec, kTimeISO, kTimeLocal, kTimeError} {
		for i, v := range c.vars {
			if v.kind == k {
				c.timeVars = append(c.timeVars, i)
			}
		}
	}

	// The plan: format order; a header group and the timestamp sit where
	// their first variable is.
	groupItem := map[group]int{}
	tsDone := false
	for i, v := range c.vars {
		if isTime(v.kind) && !tsDone {
			tsDone = true
			c.items = append(c.items, item{kind: itTimestamp})
		}
		if !v.emit {
			continue
		}
		if v.group != gNone {
			if gi, ok := groupItem[v.group]; ok {
				c.items[gi].members = append(c.items[gi].members, i)
				continue
			}
			groupItem[v.group] = len(c.items)
			c.items = append(c.items, item{kind: itGroup, group: v.group, members: []int{i}})
			continue
		}
		if v.kind == kTimeLocal || v.kind == kTimeISO || v.kind == kTimeError {
			continue // only the timestamp
		}
		c.items = append(c.items, item{kind: itVar, v: i})
	}

	if opts.KeyField != "" {
		if err := c.setKey(opts.KeyField); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func isTime(k kind) bool { return k == kMsec || k == kTimeISO || k == kTimeLocal || k == kTimeError }

// setKey finds the variable behind an event field name: a top-level field
// ("remote_addr"), a header ("request_headers.x_forwarded_for" or
// "http_x_forwarded_for"), or a part of $request ("request_method").
func (c *compiled) setKey(field string) error {
	for i, v := range c.vars {
		full := v.field()
		if v.group != gNone {
			full = groupNames[v.group] + "." + full
		}
		if field == v.name || field == full {
			c.keyVar, c.keyPart = i, 0
			return nil
		}
	}
	for i, v := range c.vars {
		if v.kind != kRequest {
			continue
		}
		switch field {
		case "request_method":
			c.keyVar, c.keyPart = i, 1
		case "request_uri":
			c.keyVar, c.keyPart = i, 2
		case "server_protocol":
			c.keyVar, c.keyPart = i, 3
		default:
			continue
		}
		return nil
	}
	return fmt.Errorf("key field %q is not written by the log_format", field)
}

func newVariable(name, after string, kinds map[string]kind) variable {
	v := variable{name: name, after: []byte(after)}
	v.kind = varKinds[name]
	if k, ok := kinds[name]; ok {
		v.kind = k
	}
	key := name
	switch {
	case strings.HasPrefix(name, "http_") && len(name) > len("http_"):
		v.group, key = gRequest, name[len("http_"):]
	case strings.HasPrefix(name, "sent_http_") && len(name) > len("sent_http_"):
		v.group, key = gResponse, name[len("sent_http_"):]
	case strings.HasPrefix(name, "upstream_http_") && len(name) > len("upstream_http_"):
		v.group, key = gUpstream, name[len("upstream_http_"):]
		v.kind = kString
	case reserved[name]:
		key = "nginx_" + name
	}
	if isTime(v.kind) {
		key = name // msec keeps its own field; the others only feed timestamp
	}
	v.key = []byte(`"` + key + `":`)
	return v
}

// splitFormat splits a log_format into literals and variable names:
// lits[0] $names[0] lits[1] $names[1] ... lits[n].
func splitFormat(f string) (lits, names []string, err error) {
	var lit strings.Builder
	for i := 0; i < len(f); {
		c := f[i]
		if c != '$' {
			lit.WriteByte(c)
			i++
			continue
		}
		start := i
		i++
		braced := i < len(f) && f[i] == '{'
		if braced {
			i++
		}
		j := i
		for j < len(f) && isNameByte(f[j]) {
			j++
		}
		if j == i {
			return nil, nil, fmt.Errorf("log_format: invalid variable name at byte %d: %q", start, clip(f[start:], 16))
		}
		name := strings.ToLower(f[i:j])
		if braced {
			if j >= len(f) || f[j] != '}' {
				return nil, nil, fmt.Errorf("log_format: missing } after ${%s at byte %d", name, start)
			}
			j++
		}
		lits = append(lits, lit.String())
		lit.Reset()
		names = append(names, name)
		i = j
	}
	lits = append(lits, lit.String())
	return lits, names, nil
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// joinQuoted recognises a log_format written as in nginx.conf, as one or
// more quoted pieces ('...' "...") separated by white space, and returns
// the concatenation. It only does so when the text starts with a single
// quote, or spans several lines, and consists of quoted pieces only: a
// one-line text starting with a double quote (`"$request" $status`) is a
// literal format.
func joinQuoted(f string) (string, bool) {
	t := strings.TrimSpace(f)
	if t == "" || (t[0] != '\'' && !(t[0] == '"' && strings.Contains(t, "\n"))) {
		return "", false
	}
	toks, err := tokenize([]byte(t))
	if err != nil {
		return "", false
	}
	var b strings.Builder
	for _, tk := range toks {
		if !tk.quoted {
			return "", false
		}
		b.WriteString(tk.text)
	}
	return b.String(), true
}
