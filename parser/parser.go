// THIS FILE IS THE AGREED API. The implementation behind it may change; the
// signatures below are what the agent and the commands use. The package
// documentation is in doc.go.

package parser

import (
	"fmt"
	"time"
)

// Escape is nginx's log_format escape= parameter.
type Escape int

const (
	EscapeDefault Escape = iota // \xHH for ", \, control bytes and bytes >= 0x7F
	EscapeJSON                  // JSON string escapes
	EscapeNone                  // bytes as they are
)

// String returns the escape= value: "default", "json" or "none".
func (e Escape) String() string {
	switch e {
	case EscapeDefault:
		return "default"
	case EscapeJSON:
		return "json"
	case EscapeNone:
		return "none"
	}
	return fmt.Sprintf("Escape(%d)", int(e))
}

// ParseEscape maps "default", "json", "none" ("" means default).
func ParseEscape(s string) (Escape, error) {
	switch s {
	case "", "default":
		return EscapeDefault, nil
	case "json":
		return EscapeJSON, nil
	case "none":
		return EscapeNone, nil
	}
	return 0, fmt.Errorf("unknown escape %q (want default, json or none)", s)
}

// Options configure Compile.
type Options struct {
	Escape Escape
	// KeyField names the event field whose decoded value is returned in
	// Result.Key (the Kafka record key), e.g. "remote_addr". Empty: none.
	KeyField string
	// Timezone is the zone of the error.log format's times, which carry
	// none; nil means time.Local. Access-log times carry their offset.
	Timezone *time.Location
}

// Meta is what the agent adds to every event.
type Meta struct {
	Host   string // "host"
	File   string // "log_file"
	Offset int64  // "log_offset"
}

// Result carries, besides the JSON, what the agent needs from an event. A
// Result is reused across calls by one goroutine; it holds scratch space so
// that parsing does not allocate.
type Result struct {
	// Time is the event time from $time_local, $time_iso8601 or $msec; zero
	// when the format has none or it was "-".
	Time time.Time
	// Key is the decoded value of Options.KeyField, nil when absent. It is
	// valid until the next Parse with this Result.
	Key []byte
	// InvalidUTF8 is true when a decoded value was not valid UTF-8; the
	// offending bytes were replaced by U+FFFD and the event carries
	// "invalid_utf8": true.
	InvalidUTF8 bool

	scratch []byte // decoded values
	keyBuf  []byte // backing store of Key
	spans   []span // where each variable's value is in the line
}

// ParseError says why a line did not match the format.
type ParseError struct {
	Field  string // the variable being parsed ("status"), or a literal description
	Pos    int    // byte position in the line
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("at byte %d, %s: %s", e.Pos, e.Field, e.Reason)
}

// Parser is a compiled log_format. It is immutable and safe for concurrent
// use; each goroutine uses its own Result.
type Parser struct {
	format string
	opts   Options
	impl   *compiled
}

// Builtin returns the log_format text of a built-in format name (combined,
// main, json, ingress_upstreaminfo, error), and whether the name is one.
// The text of "error" is a pseudo-format that names its fields; Compile
// takes either. The built-in json format is
// always compiled with EscapeJSON, whatever Options.Escape says.
func Builtin(name string) (string, bool) {
	f, ok := builtins[name]
	return f, ok
}

// Compile compiles a log_format string (or a built-in name) into a Parser.
// The string may be written as in nginx.conf, as quoted pieces ('...'
// "...") that nginx concatenates, when it starts with a single quote or
// spans several lines; see doc.go for the rules.
func Compile(format string, opts Options) (*Parser, error) {
	if format == "error" || format == errorLogFormat {
		c, err := compileError(opts)
		if err != nil {
			return nil, err
		}
		return &Parser{format: errorLogFormat, opts: opts, impl: c}, nil
	}
	if f, ok := Builtin(format); ok {
		if e, ok := builtinEscape[format]; ok {
			opts.Escape = e
		}
		format = f
	} else if joined, ok := joinQuoted(format); ok {
		format = joined
	}
	c, err := compile(format, opts)
	if err != nil {
		return nil, err
	}
	return &Parser{format: format, opts: opts, impl: c}, nil
}

// Format returns the log_format text the parser was compiled from.
func (p *Parser) Format() string { return p.format }

// Parse parses line (without its trailing newline) and appends the event's
// JSON object (no newline) to dst, returning the extended slice. On failure
// it returns dst unchanged and a *ParseError. It never panics, whatever the
// bytes.
func (p *Parser) Parse(dst, line []byte, m Meta, r *Result) ([]byte, error) {
	return p.impl.parse(dst, line, m, r)
}

// StartsEvent reports whether line starts an event. Every line of an
// access log does; an error.log line does when it starts with a date
// (otherwise it continues the previous event's message).
func (p *Parser) StartsEvent(line []byte) bool {
	if p.impl.errlog == nil {
		return true
	}
	return startsErrorEvent(line)
}

// Multiline reports whether the format has continuation lines, which the
// reader joins to the event they continue (see StartsEvent): true for the
// error format.
func (p *Parser) Multiline() bool { return p.impl.errlog != nil }
