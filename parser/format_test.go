package parser

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func parseOne(t *testing.T, format string, esc Escape, line string) (string, *Result) {
	t.Helper()
	p := mustCompile(t, format, Options{Escape: esc})
	r := new(Result)
	out, err := p.Parse(nil, []byte(line), Meta{Host: "h"}, r)
	if err != nil {
		t.Fatalf("Parse(%q): %v", line, err)
	}
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	return string(out), r
}

func TestQuotedPiecesAndBraces(t *testing.T) {
	format := `'$remote_addr - ${remote_user}x [$time_local] '
	           '"$request" $status'`
	p := mustCompile(t, format, Options{})
	if got := p.Format(); got != `$remote_addr - ${remote_user}x [$time_local] "$request" $status` {
		t.Fatalf("joined format %q", got)
	}
	if got := strings.Join(p.Variables(), ","); got != "remote_addr,remote_user,time_local,request,status" {
		t.Fatalf("variables %s", got)
	}
	out, _ := parseOne(t, format, EscapeDefault, `1.1.1.1 - bobx [25/Nov/2026:15:04:05 -0130] "GET / HTTP/2.0" 204`)
	want := `{"remote_addr":"1.1.1.1","remote_user":"bob","timestamp":"2026-11-25T15:04:05.000-01:30","request":"GET / HTTP/2.0","request_method":"GET","request_uri":"/","server_protocol":"HTTP/2.0","status":204,"host":"h","log_file":"","log_offset":0}`
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	// A one-line format starting with a double quote is literal.
	p = mustCompile(t, `"$request" "$status"`, Options{})
	if got := p.Format(); got != `"$request" "$status"` {
		t.Fatalf("literal format changed: %q", got)
	}
}

func TestTimes(t *testing.T) {
	_, r := parseOne(t, `[$time_local]`, EscapeDefault, `[29/Feb/2024:23:59:59 +0530]`)
	if want := time.Date(2024, 2, 29, 18, 29, 59, 0, time.UTC); !r.Time.Equal(want) {
		t.Errorf("time_local: %v, want %v", r.Time, want)
	}
	out, r := parseOne(t, `$time_iso8601`, EscapeDefault, `2026-01-02T03:04:05-08:00`)
	if !strings.Contains(out, `"timestamp":"2026-01-02T03:04:05.000-08:00"`) || r.Time.Unix() != time.Date(2026, 1, 2, 11, 4, 5, 0, time.UTC).Unix() {
		t.Errorf("iso: %s %v", out, r.Time)
	}
	out, r = parseOne(t, `$msec [$time_local]`, EscapeDefault, `1764083045.987 [25/Nov/2025:16:04:05 +0100]`)
	if !strings.HasPrefix(out, `{"timestamp":"2025-11-25T15:04:05.987+00:00","msec":1764083045.987,"host"`) {
		t.Errorf("msec first: %s", out)
	}
	if r.Time.UnixMilli() != 1764083045987 {
		t.Errorf("msec time %v", r.Time)
	}
	p := mustCompile(t, `[$time_local]`, Options{})
	for _, bad := range []string{`[30/Feb/2024:00:00:00 +0000]`, `[01/Foo/2024:00:00:00 +0000]`, `[01/Jan/2024:24:00:00 +0000]`, `[01/Jan/2024:00:00:00 *0000]`} {
		_, err := p.Parse(nil, []byte(bad), Meta{}, &Result{})
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Field != "time_local" || pe.Pos != 1 {
			t.Errorf("%s: got %v, want time_local error at 1", bad, err)
		}
	}
	out, r = parseOne(t, `[$time_local] $status`, EscapeDefault, `[-] 200`)
	if strings.Contains(out, "timestamp") || !r.Time.IsZero() {
		t.Errorf("dash time: %s %v", out, r.Time)
	}
}

func TestEscapes(t *testing.T) {
	out, _ := parseOne(t, `"$http_user_agent"`, EscapeDefault, `"a\x22b\x5Cc\x0Ad\xE2\x82\xAC\xZZ\"`)
	if want := `{"request_headers":{"user_agent":"a\"b\\c\nd€\\xZZ\\"},"host":"h","log_file":"","log_offset":0}`; out != want {
		t.Errorf("default:\n got %s\nwant %s", out, want)
	}
	out, _ = parseOne(t, `{"ua":"$http_user_agent","s":$status}`, EscapeJSON, `{"ua":"a\"b\\c\u0001\n\ud83d\ude00 `+"\xff"+`","s":200}`)
	if want := `{"request_headers":{"user_agent":"a\"b\\c\u0001\n😀 \ufffd"},"status":200,"host":"h","log_file":"","log_offset":0,"invalid_utf8":true}`; out != want {
		t.Errorf("json:\n got %s\nwant %s", out, want)
	}
	out, _ = parseOne(t, `"$http_user_agent"`, EscapeNone, `"a\x22b"`)
	if want := `{"request_headers":{"user_agent":"a\\x22b"},"host":"h","log_file":"","log_offset":0}`; out != want {
		t.Errorf("none:\n got %s\nwant %s", out, want)
	}
}

// With escape=none a value may hold its own delimiter; where the types of
// the later fields decide, the split is still right.
func TestEscapeNoneBacktracking(t *testing.T) {
	format := `$remote_addr "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time`
	out, _ := parseOne(t, format, EscapeNone, `10.0.0.1 "GET /x" 404 3" HTTP/1.1" 200 15 "ref" "ua " 1 2" "x" 0.5`)
	want := `{"remote_addr":"10.0.0.1","request":"GET /x\" 404 3\" HTTP/1.1","request_method":"GET","request_uri":"/x\" 404 3\"","server_protocol":"HTTP/1.1","status":200,"body_bytes_sent":15,"request_headers":{"referer":"ref","user_agent":"ua \" 1 2\" \"x"},"request_time":0.5,"host":"h","log_file":"","log_offset":0}`
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	// The same line with escape=default does not match: '"' is escaped there.
	p := mustCompile(t, format, Options{})
	if _, err := p.Parse(nil, []byte(`10.0.0.1 "GET /x" 404 3" HTTP/1.1" 200 15 "r" "u" 0.5`), Meta{}, &Result{}); err == nil {
		t.Error("escape=default accepted a raw quote inside a value")
	}
}

func TestPathologicalLineIsBounded(t *testing.T) {
	p := mustCompile(t, `$a $b $c $d $e $f $g $h $status`, Options{Escape: EscapeNone})
	line := []byte(strings.Repeat("x ", 4000) + "y")
	start := time.Now()
	_, err := p.Parse(nil, line, Meta{}, &Result{})
	if err == nil {
		t.Fatal("matched a line whose last field is not an integer")
	}
	t.Logf("%v in %v", err, time.Since(start))
}

func TestFieldsAndGroups(t *testing.T) {
	format := `$host $remote_addr "$http_x_forwarded_for" "$sent_http_content_type" "$upstream_http_x_cache" $upstream_status $upstream_response_length "$request" $request_method $remote_addr`
	out, _ := parseOne(t, format, EscapeDefault, `example.com 1.2.3.4 "5.6.7.8" "text/html" "HIT" 502, 200 : 404 0, 12 "GET /a HTTP/1.1" GET 9.9.9.9`)
	want := `{"nginx_host":"example.com","remote_addr":"1.2.3.4","request_headers":{"x_forwarded_for":"5.6.7.8"},"response_headers":{"content_type":"text/html"},"upstream_headers":{"x_cache":"HIT"},"upstream_status":[502,200,404],"upstream_response_length":[0,12],"request":"GET /a HTTP/1.1","request_uri":"/a","server_protocol":"HTTP/1.1","request_method":"GET","host":"h","log_file":"","log_offset":0}`
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestRequestSplit(t *testing.T) {
	for line, want := range map[string]string{
		`"GET /a%20b?c=d HTTP/1.1"`: `"request":"GET /a%20b?c=d HTTP/1.1","request_method":"GET","request_uri":"/a%20b?c=d","server_protocol":"HTTP/1.1",`,
		`""`:                        `"request":"",`,
		`"\x16\x03"`:                `"request":"\u0016\u0003",`,
		`"GET"`:                     `"request":"GET",`,
		`"GET / FTP/1"`:             `"request":"GET / FTP/1",`,
		`"GET /only"`:               `"request":"GET /only","request_method":"GET","request_uri":"/only",`,
	} {
		out, _ := parseOne(t, `"$request"`, EscapeDefault, line)
		if !strings.HasPrefix(out, "{"+want+`"host"`) {
			t.Errorf("%s: got %s, want %s", line, out, want)
		}
	}
}

func TestKeyField(t *testing.T) {
	line := []byte(`1.2.3.4 "GET /k HTTP/1.1" "x\x22y"`)
	for field, want := range map[string]string{
		"remote_addr":                     "1.2.3.4",
		"request_method":                  "GET",
		"request_uri":                     "/k",
		"http_x_forwarded_for":            `x"y`,
		"request_headers.x_forwarded_for": `x"y`,
	} {
		p := mustCompile(t, `$remote_addr "$request" "$http_x_forwarded_for"`, Options{KeyField: field})
		var r Result
		if _, err := p.Parse(nil, line, Meta{}, &r); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != want {
			t.Errorf("key %s = %q, want %q", field, r.Key, want)
		}
	}
	if _, err := Compile("combined", Options{KeyField: "request_id"}); err == nil {
		t.Error("a key field the format does not write was accepted")
	}
	p := mustCompile(t, "combined", Options{KeyField: "remote_user"})
	var r Result
	if _, err := p.Parse(nil, []byte(`1.2.3.4 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 1 "-" "-"`), Meta{}, &r); err != nil || r.Key != nil {
		t.Errorf("dash key: %q %v", r.Key, err)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, f := range []string{"", "  ", "$", "a $ b", "${x", "$a$b", "${}"} {
		if _, err := Compile(f, Options{}); err == nil {
			t.Errorf("Compile(%q) succeeded", f)
		}
	}
	if _, err := Compile("$a", Options{Escape: 7}); err == nil {
		t.Error("bad escape accepted")
	}
}

func TestParseErrors(t *testing.T) {
	p := mustCompile(t, "combined", Options{})
	for line, want := range map[string]struct {
		field string
		pos   int
	}{
		``:        {"remote_addr", 0},
		`1.2.3.4`: {"remote_addr", 0},
		`1.2.3.4 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 12x "-" "-"`:     {"body_bytes_sent", 62},
		`1.2.3.4 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 12 "-" "-" tail`: {"http_user_agent", 70},
	} {
		_, err := p.Parse(nil, []byte(line), Meta{}, &Result{})
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Field != want.field || pe.Pos != want.pos {
			t.Errorf("%q: got %v, want %s at %d", line, err, want.field, want.pos)
		}
	}
	p = mustCompile(t, `<$status>`, Options{})
	_, err := p.Parse(nil, []byte(`[200]`), Meta{}, &Result{})
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Pos != 0 || !strings.Contains(pe.Reason, `"<"`) {
		t.Errorf("prefix: %v", err)
	}
}

func TestResolveFormat(t *testing.T) {
	conf := fstest.MapFS{
		"etc/nginx/nginx.conf": {Data: []byte(`
# a comment with log_format fake '$x';
user www-data;
http {
    include conf.d/*.conf;   # relative to /etc/nginx
    include /etc/nginx/extra.conf;
    log_format  main  '$remote_addr - $remote_user "$request" '
                      "\"$http_user_agent\" \t";
    server { listen 80; access_log /var/log/nginx/a.log main; }
}
`)},
		"etc/nginx/conf.d/10-json.conf": {Data: []byte(`log_format js escape=json '{"s":$status}';`)},
		"etc/nginx/conf.d/20-x.conf":    {Data: []byte(`log_format other '$status';`)},
		"etc/nginx/extra.conf":          {Data: []byte(`log_format extra escape=none "$request_id";`)},
	}
	readFile := func(name string) ([]byte, error) { return fs.ReadFile(conf, strings.TrimPrefix(name, "/")) }
	glob := func(p string) ([]string, error) {
		m, err := fs.Glob(conf, strings.TrimPrefix(p, "/"))
		for i := range m {
			m[i] = "/" + m[i]
		}
		return m, err
	}
	for spec, want := range map[string]struct {
		format   string
		esc      Escape
		fromConf bool
	}{
		"nginx.conf:/etc/nginx/nginx.conf:main":     {`$remote_addr - $remote_user "$request" "$http_user_agent" ` + "\t", EscapeDefault, true},
		"nginx.conf:/etc/nginx/nginx.conf:js":       {`{"s":$status}`, EscapeJSON, true},
		"nginx.conf:/etc/nginx/nginx.conf:other":    {`$status`, EscapeDefault, true},
		"nginx.conf:/etc/nginx/nginx.conf:extra":    {`$request_id`, EscapeNone, true},
		"nginx.conf:/etc/nginx/nginx.conf:combined": {builtins["combined"], EscapeDefault, true},
		"combined":                            {builtins["combined"], EscapeDefault, false},
		"json":                                {builtins["json"], EscapeJSON, true},
		"$remote_addr $status":                {"$remote_addr $status", EscapeDefault, false},
		`log_format x escape=json '$a' "$b";`: {"$a$b", EscapeJSON, true},
	} {
		f, e, fromConf, err := ResolveFormat(spec, readFile, glob)
		if err != nil {
			t.Errorf("%s: %v", spec, err)
			continue
		}
		if f != want.format || e != want.esc || fromConf != want.fromConf {
			t.Errorf("%s: got %q %v %v, want %q %v %v", spec, f, e, fromConf, want.format, want.esc, want.fromConf)
		}
	}
	_, _, _, err := ResolveFormat("nginx.conf:/etc/nginx/nginx.conf:nope", readFile, glob)
	if !errors.Is(err, ErrFormatNotFound) {
		t.Errorf("missing name: %v", err)
	}
	_, _, _, err = ResolveFormat("nginx.conf:/etc/nginx/missing.conf:main", readFile, glob)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	for _, bad := range []string{"nginx.conf:/x", "nginx.conf:/x:", `log_format x escape=foo '$a';`, `log_format x '$a`} {
		if _, _, _, err := ResolveFormat(bad, readFile, glob); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	// An include cycle ends with an error, not a hang.
	loop := func(string) ([]byte, error) { return []byte("include /a.conf;"), nil }
	if _, _, err := FromNginxConf("/a.conf", "main", loop, nil); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
}

func TestFieldsList(t *testing.T) {
	p := mustCompile(t, full15Format, Options{})
	want := "remote_addr,remote_user,timestamp,request,request_method,request_uri,server_protocol,status,body_bytes_sent," +
		"request_headers.referer,request_headers.user_agent,request_headers.x_forwarded_for,request_time,upstream_response_time," +
		"response_headers.content_type,request_id"
	if got := strings.Join(p.Fields(), ","); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if p.Escape().String() != "default" || EscapeJSON.String() != "json" || EscapeNone.String() != "none" {
		t.Error("Escape.String")
	}
}

// A format whose own text looks like quoted pieces survives the trip
// through nginx.conf and Compile.
func TestProtectedFormat(t *testing.T) {
	conf := []byte(`log_format q "'$remote_addr' \\\\ $status";`)
	readFile := func(string) ([]byte, error) { return conf, nil }
	f, _, err := FromNginxConf("/n.conf", "q", readFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := mustCompile(t, f, Options{})
	if got, want := p.Format(), `'$remote_addr' \\ $status`; got != want {
		t.Fatalf("format %q, want %q", got, want)
	}
	out, _ := parseOne(t, f, EscapeDefault, `'1.2.3.4' \\ 200`)
	if !strings.HasPrefix(out, `{"remote_addr":"1.2.3.4","status":200,`) {
		t.Errorf("got %s", out)
	}
}

// One Parser, many goroutines, each with its own Result (run with -race).
func TestConcurrentParse(t *testing.T) {
	p := mustCompile(t, "combined", Options{KeyField: "remote_addr"})
	line := []byte(`1.2.3.4 - - [25/Nov/2026:15:04:05 +0000] "GET /x HTTP/1.1" 200 5 "-" "ua \x22q\x22"`)
	want, err := p.Parse(nil, line, Meta{Host: "h"}, &Result{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			var r Result
			var dst []byte
			for i := 0; i < 200; i++ {
				var err error
				dst, err = p.Parse(dst[:0], line, Meta{Host: "h"}, &r)
				if err != nil || string(dst) != string(want) || string(r.Key) != "1.2.3.4" {
					errs <- fmt.Errorf("got %s %q %v", dst, r.Key, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Space-separated upstream lists take all their entries, also with the
// " : " separator that holds spaces.
func TestAdjacentLists(t *testing.T) {
	format := `$upstream_status $upstream_addr $upstream_response_time $status`
	out, _ := parseOne(t, format, EscapeDefault, `502 : 200 127.0.0.1:1 : 127.0.0.1:2 0.001, 0.002 : - 200`)
	want := `{"upstream_status":[502,200],"upstream_addr":["127.0.0.1:1","127.0.0.1:2"],"upstream_response_time":[0.001,0.002,null],"status":200,`
	if !strings.HasPrefix(out, want) {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

// An unquoted value with spaces (not escaped by nginx in any mode) is
// split by the types of what follows.
func TestUnquotedValueWithSpaces(t *testing.T) {
	out, _ := parseOne(t, `$status $http_user_agent $request_time $upstream_status`, EscapeDefault,
		`200 Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 1.5 0.012 502, 200`)
	want := `{"status":200,"request_headers":{"user_agent":"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 1.5"},"request_time":0.012,"upstream_status":[502,200],`
	if !strings.HasPrefix(out, want) {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}
