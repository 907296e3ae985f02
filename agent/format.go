package agent

import "github.com/nginx-shipper/nginx-shipper/parser"

// compileFormat resolves an input's format key (a built-in name, a log_format
// string, or nginx.conf:PATH:NAME) and compiles it.
func compileFormat(spec string, esc parser.Escape, keyField string, readFile func(string) ([]byte, error)) (*parser.Parser, error) {
	return parser.Compile(spec, parser.Options{Escape: esc, KeyField: keyField})
}
