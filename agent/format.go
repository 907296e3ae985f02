package agent

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

// compileFormat resolves an input's format key (a built-in name, a log_format
// string, a pasted log_format directive, or nginx.conf:PATH:NAME) and
// compiles it. When the format fixes its own escape= (nginx.conf, a pasted
// directive, the built-in json), that escape is used; an input escape that
// says otherwise is an error, since nginx would not write what it expects.
func compileFormat(spec, escape string, keyField string, loc *time.Location, readFile func(string) ([]byte, error)) (*parser.Parser, string, error) {
	esc, err := parser.ParseEscape(escape)
	if err != nil {
		return nil, "", err
	}
	format, fesc, fixed, err := parser.ResolveFormat(spec, readFile, filepath.Glob)
	if err != nil {
		return nil, "", err
	}
	if fixed {
		if escape != "" && esc != fesc {
			return nil, "", fmt.Errorf("escape=%s conflicts with the format's own escape (%s)", escape, escName(fesc))
		}
		esc = fesc
	}
	p, err := parser.Compile(format, parser.Options{Escape: esc, KeyField: keyField, Timezone: loc})
	if err != nil && keyField != "" {
		if q, qerr := parser.Compile(format, parser.Options{Escape: esc, Timezone: loc}); qerr == nil {
			return nil, "", fmt.Errorf("the Kafka record key field %q (sinks.kafka.key) is not in this format; set sinks.kafka.key to one of %v, or to \"\" for no key",
				keyField, q.Fields())
		}
	}
	if err != nil {
		return nil, "", err
	}
	return p, escName(esc), nil
}

func escName(e parser.Escape) string {
	switch e {
	case parser.EscapeJSON:
		return "json"
	case parser.EscapeNone:
		return "none"
	}
	return "default"
}
