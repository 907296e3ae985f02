package parser

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// event parses line and decodes the event into a map.
func event(t *testing.T, format string, esc Escape, line string) map[string]any {
	t.Helper()
	out, _ := parseOne(t, format, esc, line)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	return m
}

func wantFields(t *testing.T, got map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if w == nil {
			if ok {
				t.Errorf("%s: got %v, want it absent", k, g)
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: got %#v, want %#v", k, g, w)
		}
	}
}

func TestStreamAndUpstreamVariablesTyped(t *testing.T) {
	f := `$remote_addr [$time_local] $protocol $status $bytes_sent $bytes_received $session_time ` +
		`"$upstream_addr" "$upstream_bytes_sent" "$upstream_bytes_received" "$upstream_connect_time" ` +
		`"$upstream_first_byte_time" "$upstream_session_time"`
	line := `192.0.2.7 [02/Dec/2026:03:00:00 +0000] TCP 200 1500 320 12.345 ` +
		`"[2001:db8::5]:5432, 198.51.100.2:5432" "0, 320" "0, 1500" "-, 0.002" "-, 0.010" "3.000, 12.300"`
	m := event(t, f, EscapeDefault, line)
	wantFields(t, m, map[string]any{
		"protocol":                 "TCP",
		"status":                   200.0,
		"bytes_sent":               1500.0,
		"bytes_received":           320.0,
		"session_time":             12.345,
		"upstream_addr":            []any{"[2001:db8::5]:5432", "198.51.100.2:5432"},
		"upstream_bytes_sent":      []any{0.0, 320.0},
		"upstream_bytes_received":  []any{0.0, 1500.0},
		"upstream_connect_time":    []any{nil, 0.002},
		"upstream_first_byte_time": []any{nil, 0.010},
		"upstream_session_time":    []any{3.0, 12.3},
	})
	// A typed value that is not of its type does not match.
	p := mustCompile(t, `$session_time $bytes_received`, Options{})
	if _, err := p.Parse(nil, []byte(`long 12`), Meta{}, new(Result)); err == nil {
		t.Error("session_time \"long\" accepted")
	}
}

func TestUpstreamQueueTimeAndCacheStatus(t *testing.T) {
	f := `$upstream_queue_time $upstream_cache_status $upstream_addr $upstream_header_time`
	m := event(t, f, EscapeDefault, `0.000, 0.250 : 0.001 REVALIDATED 10.1.1.1:8080, unix:/run/app.sock : backend 0.010, 0.020 : 0.030`)
	wantFields(t, m, map[string]any{
		"upstream_queue_time":   []any{0.0, 0.25, 0.001},
		"upstream_cache_status": "REVALIDATED",
		"upstream_addr":         []any{"10.1.1.1:8080", "unix:/run/app.sock", "backend"},
		"upstream_header_time":  []any{0.01, 0.02, 0.03},
	})
	p := mustCompile(t, `$upstream_cache_status $status`, Options{})
	for _, bad := range []string{`hit 200`, `WARM 200`} {
		if _, err := p.Parse(nil, []byte(bad), Meta{}, new(Result)); err == nil {
			t.Errorf("%q: cache status outside the closed set accepted", bad)
		}
	}
	m = event(t, `$upstream_cache_status $status`, EscapeDefault, `- 200`)
	wantFields(t, m, map[string]any{"upstream_cache_status": nil, "status": 200.0})
}

// A list of strings followed by an unquoted field: the list takes all its
// entries and no entry ends in ','.
func TestListEntryNeverEndsInComma(t *testing.T) {
	f := `$upstream_addr $upstream_cache_status $upstream_status`
	m := event(t, f, EscapeDefault, `[2001:db8::1]:443, 10.9.8.7:80, unix:/tmp/u.sock : 10.9.8.6:80 MISS 502, 504, 200 : 200`)
	wantFields(t, m, map[string]any{
		"upstream_addr":         []any{"[2001:db8::1]:443", "10.9.8.7:80", "unix:/tmp/u.sock", "10.9.8.6:80"},
		"upstream_cache_status": "MISS",
		"upstream_status":       []any{502.0, 504.0, 200.0, 200.0},
	})
	m = event(t, `$upstream_addr $request_id`, EscapeDefault, `10.0.0.1:80, 10.0.0.2:80 0af3`)
	wantFields(t, m, map[string]any{"upstream_addr": []any{"10.0.0.1:80", "10.0.0.2:80"}, "request_id": "0af3"})
}

// $remote_addr never holds a space: an unquoted X-Forwarded-For list before
// it splits where the types say, not at the first space.
func TestDecidableSplit(t *testing.T) {
	f := `$http_x_forwarded_for $remote_addr - $remote_user [$time_local] "$request" $status`
	m := event(t, f, EscapeDefault, `2001:db8:0:0:0:0:0:77, 203.0.113.9 172.16.5.4 - - [02/Dec/2026:03:00:00 +0000] "GET / HTTP/1.1" 200`)
	wantFields(t, m, map[string]any{
		"remote_addr":     "172.16.5.4",
		"request_headers": map[string]any{"x_forwarded_for": "2001:db8:0:0:0:0:0:77, 203.0.113.9"},
	})
	// Where both splits are valid (two strings), the earlier field still
	// gets the shorter value.
	m = event(t, `$http_a $http_b|`, EscapeDefault, `x y z|`)
	wantFields(t, m, map[string]any{"request_headers": map[string]any{"a": "x", "b": "y z"}})
}

func TestRequestLineAnyMethodCase(t *testing.T) {
	for _, tc := range []struct{ req, method string }{
		{"geti /x HTTP/1.1", "geti"},
		{"PATCHp /p/1 HTTP/1.1", "PATCHp"},
		{"m-search * HTTP/1.1", "m-search"},
		{"GET /x HTTP/2.0", "GET"},
	} {
		m := event(t, `"$request" $status`, EscapeDefault, `"`+tc.req+`" 400`)
		parts := strings.Split(tc.req, " ")
		wantFields(t, m, map[string]any{"request_method": tc.method, "request_uri": parts[1], "server_protocol": parts[2]})
	}
	// Not a token (a TLS handshake, a quote, a control byte): request only.
	for _, req := range []string{`\x16\x03\x01 / HTTP/1.1`, `GE(T / HTTP/1.1`, `GET / FTP/1.0`} {
		m := event(t, `"$request" $status`, EscapeDefault, `"`+req+`" 400`)
		wantFields(t, m, map[string]any{"request_method": nil, "request_uri": nil})
	}
}

func TestIngressUpstreamInfoBuiltin(t *testing.T) {
	if _, ok := Builtin("ingress_upstreaminfo"); !ok {
		t.Fatal("no built-in ingress_upstreaminfo")
	}
	line := `203.0.113.40 - alice [02/Dec/2026:03:04:05 +0000] "POST /api/orders HTTP/2.0" 201 87 "https://shop.example/" "curl/8.5.0" ` +
		`512 0.031 [shop-orders-8080] [shop-orders-canary-8080] [fd00::10]:8080, 10.244.1.7:8080 : unix:/var/run/o.sock 0, 87 : 87 0.001, 0.029 : 0.030 502, 201 : 201 5f1e9a77c0b14e0d9d4e8a3f2b6c1d0e`
	m := event(t, "ingress_upstreaminfo", EscapeDefault, line)
	wantFields(t, m, map[string]any{
		"remote_addr":                     "203.0.113.40",
		"remote_user":                     "alice",
		"request_method":                  "POST",
		"status":                          201.0,
		"request_length":                  512.0,
		"request_time":                    0.031,
		"proxy_upstream_name":             "shop-orders-8080",
		"proxy_alternative_upstream_name": "shop-orders-canary-8080",
		"upstream_addr":                   []any{"[fd00::10]:8080", "10.244.1.7:8080", "unix:/var/run/o.sock"},
		"upstream_response_length":        []any{0.0, 87.0, 87.0},
		"upstream_response_time":          []any{0.001, 0.029, 0.030},
		"upstream_status":                 []any{502.0, 201.0, 201.0},
		"req_id":                          "5f1e9a77c0b14e0d9d4e8a3f2b6c1d0e",
	})
	// No alternative upstream: nginx writes [].
	line = `10.0.0.3 - - [02/Dec/2026:03:04:05 +0000] "GET / HTTP/1.1" 503 190 "-" "kube-probe/1.30" 90 0.000 [default-web-80] [] - - - - 0f0f`
	m = event(t, "ingress_upstreaminfo", EscapeDefault, line)
	wantFields(t, m, map[string]any{"proxy_upstream_name": "default-web-80", "upstream_addr": nil, "upstream_status": nil, "req_id": "0f0f"})
}

func TestKindInfoCoversEveryKind(t *testing.T) {
	for k := kString; k <= kBool; k++ {
		if kindInfo[k].typ == "" || kindDesc[k] == "" {
			t.Errorf("kind %d has no schema type or description", k)
		}
	}
	for name, k := range varKinds {
		if int(k) >= len(kindInfo) {
			t.Errorf("$%s: kind %d not in kindInfo", name, k)
		}
	}
}
