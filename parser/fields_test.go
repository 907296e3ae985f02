package parser

import "testing"

func TestFieldValues(t *testing.T) {
	p := mustCompile(t, "main", Options{})
	line := []byte(`203.0.113.7 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8 \x22q\x22" "10.0.0.1, 10.0.0.2"`)
	var r Result
	if _, err := p.Parse(nil, line, testMeta, &r); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, want string
		ok         bool
	}{
		{"remote_addr", "203.0.113.7", true},
		{"http_user_agent", `curl/8 "q"`, true},
		{"request_headers.user_agent", `curl/8 "q"`, true},
		{"http_x_forwarded_for", "10.0.0.1, 10.0.0.2", true},
		{"http_referer", "", false}, // "-"
		{"remote_user", "", false},  // "-"
	}
	for _, c := range cases {
		i := p.FieldIndex(c.name)
		if i < 0 {
			t.Fatalf("FieldIndex(%q) = -1", c.name)
		}
		got, ok := p.AppendValue(nil, line, &r, i)
		if ok != c.ok || string(got) != c.want {
			t.Errorf("%s: got %q, %v; want %q, %v", c.name, got, ok, c.want, c.ok)
		}
	}
	for _, name := range []string{"http_cookie", "user_agent", ""} {
		if i := p.FieldIndex(name); i != -1 {
			t.Errorf("FieldIndex(%q) = %d, want -1", name, i)
		}
	}
	if _, ok := p.AppendValue(nil, line, &r, 99); ok {
		t.Error("AppendValue of index 99 reported a value")
	}
	if _, ok := p.AppendValue(nil, line[:10], &r, p.FieldIndex("http_x_forwarded_for")); ok {
		t.Error("AppendValue with a shorter line than parsed reported a value")
	}
}

func TestAppendValueNoAlloc(t *testing.T) {
	p := mustCompile(t, "main", Options{})
	line := []byte(`203.0.113.7 - - [25/Nov/2026:15:04:05 +0000] "GET / HTTP/1.1" 200 5 "-" "Mozilla/5.0 \x22x\x22" "10.0.0.1"`)
	var r Result
	dst := make([]byte, 0, 4096)
	ua := p.FieldIndex("http_user_agent")
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		dst, err = p.Parse(dst[:0], line, testMeta, &r)
		if err != nil {
			t.Fatal(err)
		}
		p.AppendValue(dst[len(dst):], line, &r, ua)
	})
	if allocs != 0 {
		t.Errorf("Parse + AppendValue: %v allocations per line, want 0", allocs)
	}
}
