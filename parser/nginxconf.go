package parser

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
)

// ConfPrefix starts a format spec that names a log_format in an nginx
// config file: "nginx.conf:/etc/nginx/nginx.conf:main".
const ConfPrefix = "nginx.conf:"

// ReadFileFunc reads a whole file (os.ReadFile).
type ReadFileFunc func(name string) ([]byte, error)

// GlobFunc lists the files matching a pattern (filepath.Glob). It may be
// nil; then an include with a wildcard is an error.
type GlobFunc func(pattern string) ([]string, error)

// ErrFormatNotFound is returned (wrapped) when the nginx config has no
// log_format of the requested name.
var ErrFormatNotFound = errors.New("log_format not found")

// ResolveFormat turns a format spec, as written in the agent's config, into
// log_format text:
//
//   - a built-in name (combined, main, json);
//   - "nginx.conf:PATH:NAME": the log_format NAME read from the nginx
//     config file PATH, includes followed (see FromNginxConf);
//   - a pasted directive "log_format NAME [escape=E] '...' '...';";
//   - anything else is a literal log_format (see Compile).
//
// fromConf is true when the spec itself fixes the escape (an nginx.conf
// spec, a pasted directive or the built-in json): the caller must then use
// the returned escape rather than its own setting. Otherwise escape is
// EscapeDefault and the caller's setting applies.
func ResolveFormat(spec string, readFile ReadFileFunc, glob GlobFunc) (format string, escape Escape, fromConf bool, err error) {
	if f, ok := Builtin(spec); ok {
		e, fixed := builtinEscape[spec]
		return f, e, fixed, nil
	}
	if rest, ok := strings.CutPrefix(spec, ConfPrefix); ok {
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 || i == len(rest)-1 {
			return "", 0, false, fmt.Errorf("format %q: want %sPATH:NAME", spec, ConfPrefix)
		}
		f, e, err := FromNginxConf(rest[:i], rest[i+1:], readFile, glob)
		return f, e, true, err
	}
	if t := strings.TrimSpace(spec); strings.HasPrefix(t, "log_format") && len(t) > 10 && isSpace(t[10]) {
		toks, err := tokenize([]byte(t))
		if err != nil {
			return "", 0, false, fmt.Errorf("format: %w", err)
		}
		if n := len(toks); n > 0 && toks[n-1].text == ";" && !toks[n-1].quoted {
			toks = toks[:n-1]
		}
		f, e, err := directiveFormat(toks[1:])
		if err != nil {
			return "", 0, false, fmt.Errorf("format: %w", err)
		}
		return protect(f), e, true, nil
	}
	return spec, EscapeDefault, false, nil
}

// FromNginxConf reads the log_format NAME from the nginx config file at
// confPath, following include directives (with wildcards, relative paths
// taken from the directory of confPath, as nginx does). It returns the
// concatenated format text and its escape= parameter, ready for Compile
// (in the rare case where nginx's format text itself looks like quoted
// pieces, e.g. '$remote_addr' with the quotes logged, it is returned
// quoted once more so that Compile gives it back as it is). The predefined
// "combined" is returned when the config does not redefine it. All file
// access goes through readFile and glob.
func FromNginxConf(confPath, name string, readFile ReadFileFunc, glob GlobFunc) (string, Escape, error) {
	if readFile == nil {
		return "", 0, errors.New("FromNginxConf: nil readFile")
	}
	r := confReader{readFile: readFile, glob: glob, dir: path.Dir(confPath), name: name}
	found, err := r.file(confPath, 0)
	if err != nil {
		return "", 0, err
	}
	if found {
		return protect(r.format), r.escape, nil
	}
	if name == "combined" {
		return builtins["combined"], EscapeDefault, nil
	}
	return "", 0, fmt.Errorf("%s: %w: %q (includes followed)", confPath, ErrFormatNotFound, name)
}

type confReader struct {
	readFile ReadFileFunc
	glob     GlobFunc
	dir      string
	name     string

	format string
	escape Escape
}

const maxIncludeDepth = 16

func (r *confReader) file(name string, depth int) (bool, error) {
	if depth > maxIncludeDepth {
		return false, fmt.Errorf("%s: includes nested deeper than %d (a cycle?)", name, maxIncludeDepth)
	}
	data, err := r.readFile(name)
	if err != nil {
		return false, fmt.Errorf("read nginx config: %w", err)
	}
	toks, err := tokenize(data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	// Walk directives: words up to ";" or "{"; "}" closes a block.
	var dir []token
	for _, t := range toks {
		if !t.quoted && (t.text == ";" || t.text == "{" || t.text == "}") {
			if t.text == ";" && len(dir) > 0 && !dir[0].quoted {
				switch dir[0].text {
				case "log_format":
					if len(dir) >= 3 && dir[1].text == r.name {
						f, e, err := directiveFormat(dir[1:])
						if err != nil {
							return false, fmt.Errorf("%s:%d: %w", name, dir[0].line, err)
						}
						r.format, r.escape = f, e
						return true, nil
					}
				case "include":
					if len(dir) != 2 {
						return false, fmt.Errorf("%s:%d: include takes one argument", name, dir[0].line)
					}
					found, err := r.include(name, dir[0].line, dir[1].text, depth)
					if found || err != nil {
						return found, err
					}
				}
			}
			dir = dir[:0]
			continue
		}
		dir = append(dir, t)
	}
	return false, nil
}

func (r *confReader) include(from string, line int, pattern string, depth int) (bool, error) {
	p := pattern
	if !path.IsAbs(p) && !strings.HasPrefix(p, "/") {
		p = path.Join(r.dir, p)
	}
	files := []string{p}
	if strings.ContainsAny(p, "*?[") {
		if r.glob == nil {
			return false, fmt.Errorf("%s:%d: include %q: wildcards need a glob function", from, line, pattern)
		}
		m, err := r.glob(p)
		if err != nil {
			return false, fmt.Errorf("%s:%d: include %q: %w", from, line, pattern, err)
		}
		sort.Strings(m)
		files = m
	}
	for _, f := range files {
		found, err := r.file(f, depth+1)
		if found || err != nil {
			return found, err
		}
	}
	return false, nil
}

// directiveFormat takes the arguments of log_format after the directive
// name: NAME [escape=E] STRING...
func directiveFormat(args []token) (string, Escape, error) {
	if len(args) < 2 {
		return "", 0, errors.New("log_format needs a name and a format")
	}
	args = args[1:]
	esc := EscapeDefault
	if v, ok := strings.CutPrefix(args[0].text, "escape="); ok && !args[0].quoted {
		e, err := ParseEscape(v)
		if err != nil {
			return "", 0, fmt.Errorf("log_format: %w", err)
		}
		esc = e
		args = args[1:]
	}
	if len(args) == 0 {
		return "", 0, errors.New("log_format has no format string")
	}
	var b strings.Builder
	for _, a := range args {
		b.WriteString(a.text)
	}
	return b.String(), esc, nil
}

type token struct {
	text   string
	quoted bool
	line   int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// tokenize splits nginx config text into words, quoted strings (with
// nginx's \" \' \\ \t \r \n escapes decoded) and the specials ; { }.
// Comments run from # to the end of the line.
func tokenize(data []byte) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '\n':
			line++
			i++
		case isSpace(c):
			i++
		case c == '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			toks = append(toks, token{text: string(c), line: line})
			i++
		case c == '"' || c == '\'':
			start := line
			var b strings.Builder
			i++
			closed := false
			for i < len(data) {
				d := data[i]
				if d == c {
					closed = true
					i++
					break
				}
				if d == '\n' {
					line++
				}
				if d == '\\' && i+1 < len(data) {
					switch data[i+1] {
					case '"', '\'', '\\':
						b.WriteByte(data[i+1])
						i += 2
						continue
					case 't':
						b.WriteByte('\t')
						i += 2
						continue
					case 'r':
						b.WriteByte('\r')
						i += 2
						continue
					case 'n':
						b.WriteByte('\n')
						i += 2
						continue
					}
				}
				b.WriteByte(d)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("line %d: unterminated %c string", start, c)
			}
			if i < len(data) && !isSpace(data[i]) && data[i] != ';' && data[i] != '{' && data[i] != '}' {
				return nil, fmt.Errorf("line %d: unexpected %q after a quoted string", line, data[i])
			}
			toks = append(toks, token{text: b.String(), quoted: true, line: start})
		default:
			start := i
			for i < len(data) && !isSpace(data[i]) && data[i] != ';' && data[i] != '{' && data[i] != '}' {
				if data[i] == '\\' && i+1 < len(data) {
					i++
				}
				i++
			}
			toks = append(toks, token{text: string(data[start:i]), line: line})
		}
	}
	return toks, nil
}

// protect quotes a format that Compile would otherwise take for quoted
// pieces, so that Compile compiles it as it is.
func protect(f string) string {
	if _, ok := joinQuoted(f); !ok {
		return f
	}
	r := strings.NewReplacer(`\\`, `\\\\`, `'`, `\'`)
	return "'" + r.Replace(f) + "'"
}
