package container

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDecodeCRI(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		time     string
		stream   Stream
		partial  bool
		log      string
		err      string
	}{
		{name: "containerd full", in: `2026-12-02T01:02:03.123456789Z stdout F 10.0.0.1 - - [02/Dec/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5`,
			time: "2026-12-02T01:02:03.123456789Z", log: `10.0.0.1 - - [02/Dec/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5`},
		{name: "containerd partial", in: "2026-12-02T01:02:03.1Z stderr P abc", time: "2026-12-02T01:02:03.1Z", stream: Stderr, partial: true, log: "abc"},
		{name: "cri-o offset", in: "2026-12-02T02:02:03.000000001+01:00 stdout F x", time: "2026-12-02T01:02:03.000000001Z", log: "x"},
		{name: "cri-o negative offset", in: "2026-12-01T20:02:03.5-05:00 stdout F x", time: "2026-12-02T01:02:03.5Z", log: "x"},
		{name: "no fraction", in: "2026-12-02T01:02:03Z stdout F x", time: "2026-12-02T01:02:03Z", log: "x"},
		{name: "tag list", in: "2026-12-02T01:02:03Z stdout F:future x y", time: "2026-12-02T01:02:03Z", log: "x y"},
		{name: "empty log", in: "2026-12-02T01:02:03Z stdout F", time: "2026-12-02T01:02:03Z", log: ""},
		{name: "empty log with space", in: "2026-12-02T01:02:03Z stdout F ", time: "2026-12-02T01:02:03Z", log: ""},
		{name: "spaces kept", in: "2026-12-02T01:02:03Z stdout F   indented ", time: "2026-12-02T01:02:03Z", log: "  indented "},
		{name: "leap day", in: "2028-02-29T00:00:00Z stdout F x", time: "2028-02-29T00:00:00Z", log: "x"},
		{name: "more than nine digits", in: "2026-12-02T01:02:03.1234567891Z stdout F x", time: "2026-12-02T01:02:03.123456789Z", log: "x"},

		{name: "plain nginx line", in: `10.0.0.1 - - [02/Dec/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5`, err: "RFC 3339"},
		{name: "empty", in: "", err: "RFC 3339"},
		{name: "bad month", in: "2026-13-02T01:02:03Z stdout F x", err: "RFC 3339"},
		{name: "no leap day", in: "2026-02-29T01:02:03Z stdout F x", err: "RFC 3339"},
		{name: "no zone", in: "2026-12-02T01:02:03.5 stdout F x", err: "RFC 3339"},
		{name: "bad zone", in: "2026-12-02T01:02:03+1:00 stdout F x", err: "RFC 3339"},
		{name: "bad stream", in: "2026-12-02T01:02:03Z stdin F x", err: "stream"},
		{name: "bad tag", in: "2026-12-02T01:02:03Z stdout X x", err: "tag"},
		{name: "tag glued", in: "2026-12-02T01:02:03Z stdout Fx", err: "tag"},
		{name: "no tag", in: "2026-12-02T01:02:03Z stdout ", err: "tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Record
			err := DecodeCRI([]byte(tc.in), &r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrCRI) {
					t.Fatalf("err = %v, want one about %q wrapping ErrCRI", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := mustTime(t, tc.time); !r.Time.Equal(want) {
				t.Errorf("time = %v, want %v", r.Time, want)
			}
			if r.Stream != tc.stream || r.Partial != tc.partial || string(r.Log) != tc.log {
				t.Errorf("got stream=%v partial=%v log=%q, want %v %v %q", r.Stream, r.Partial, r.Log, tc.stream, tc.partial, tc.log)
			}
		})
	}
}

func TestDecodeDocker(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		time     string
		stream   Stream
		partial  bool
		log      string
		err      string
	}{
		{name: "docker", in: `{"log":"GET / \"x\" 200\n","stream":"stdout","time":"2026-12-02T01:02:03.123456789Z"}`,
			time: "2026-12-02T01:02:03.123456789Z", log: `GET / "x" 200`},
		{name: "partial", in: `{"log":"abc","stream":"stderr","time":"2026-12-02T01:02:03Z"}`,
			time: "2026-12-02T01:02:03Z", stream: Stderr, partial: true, log: "abc"},
		{name: "escapes", in: `{"log":"a\tb\\c\/d\u003ce\u0026\u00e9\ud83d\ude00\r\n","stream":"stdout","time":"2026-12-02T01:02:03Z"}`,
			time: "2026-12-02T01:02:03Z", log: "a\tb\\c/d<e&é😀\r"},
		{name: "lone surrogate", in: `{"log":"\ud83d x\n","stream":"stdout","time":"2026-12-02T01:02:03Z"}`,
			time: "2026-12-02T01:02:03Z", log: "\uFFFD x"},
		{name: "key order and attrs", in: ` { "time" : "2026-12-02T01:02:03Z", "attrs":{"tag":["a",{"b":1}],"n":-1.5e3,"t":true,"z":null}, "stream":"stdout" , "log":"x\n" } `,
			time: "2026-12-02T01:02:03Z", log: "x"},
		{name: "escaped unknown key", in: `{"\u0061":1,"log":"x\n","stream":"stdout","time":"2026-12-02T01:02:03Z"}`,
			time: "2026-12-02T01:02:03Z", log: "x"},
		{name: "empty line", in: `{"log":"\n","stream":"stdout","time":"2026-12-02T01:02:03Z"}`, time: "2026-12-02T01:02:03Z", log: ""},

		{name: "not json", in: `2026-12-02T01:02:03Z stdout F x`, err: "not a JSON object"},
		{name: "truncated", in: `{"log":"abc`, err: "invalid JSON"},
		{name: "no log", in: `{"stream":"stdout","time":"2026-12-02T01:02:03Z"}`, err: `no "log"`},
		{name: "log not string", in: `{"log":1,"stream":"stdout","time":"2026-12-02T01:02:03Z"}`, err: `no "log"`},
		{name: "bad stream", in: `{"log":"x\n","stream":"tty","time":"2026-12-02T01:02:03Z"}`, err: "stream"},
		{name: "no time", in: `{"log":"x\n","stream":"stdout"}`, err: "time"},
		{name: "bad escape", in: `{"log":"\q","stream":"stdout","time":"2026-12-02T01:02:03Z"}`, err: "invalid JSON"},
		{name: "control char", in: "{\"log\":\"a\x01\",\"stream\":\"stdout\",\"time\":\"2026-12-02T01:02:03Z\"}", err: "invalid JSON"},
		{name: "trailing garbage", in: `{"log":"x\n","stream":"stdout","time":"2026-12-02T01:02:03Z"}x`, err: "invalid JSON"},
		{name: "missing comma", in: `{"log":"x\n" "stream":"stdout","time":"2026-12-02T01:02:03Z"}`, err: "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Record
			var scratch []byte
			err := decodeDocker([]byte(tc.in), &r, &scratch)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrDocker) {
					t.Fatalf("err = %v, want one about %q wrapping ErrDocker", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := mustTime(t, tc.time); !r.Time.Equal(want) {
				t.Errorf("time = %v, want %v", r.Time, want)
			}
			if r.Stream != tc.stream || r.Partial != tc.partial || string(r.Log) != tc.log {
				t.Errorf("got stream=%v partial=%v log=%q, want %v %v %q", r.Stream, r.Partial, r.Log, tc.stream, tc.partial, tc.log)
			}
		})
	}
}

// feed runs records (one per element, offsets as if '\n'-separated) through
// a decoder and returns the lines and the Hold after each record.
func feed(d *Decoder, recs ...string) (lines []Line, holds []int64) {
	off := int64(0)
	for _, r := range recs {
		if l, ok := d.Add([]byte(r), off); ok {
			l.Log = append([]byte(nil), l.Log...)
			lines = append(lines, l)
		}
		holds = append(holds, d.Hold())
		off += int64(len(r)) + 1
	}
	return lines, holds
}

func TestDecoderJoinsPartialsPerStream(t *testing.T) {
	recs := []string{
		"2026-12-02T01:02:03.000000001Z stdout P aaa", // 0
		"2026-12-02T01:02:03.000000002Z stderr P EEE", // 44
		"2026-12-02T01:02:03.000000003Z stdout P bbb", // 88
		"2026-12-02T01:02:03.000000004Z stdout F ccc", // 132
		"2026-12-02T01:02:03.000000005Z stdout F solo",
		"2026-12-02T01:02:03.000000006Z stderr F FFF",
	}
	d := NewDecoder(CRI, 1<<20)
	lines, holds := feed(d, recs...)
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3: %+v", len(lines), lines)
	}
	want := []struct {
		log    string
		start  int64
		stream Stream
		nsec   int
	}{{"aaabbbccc", 0, Stdout, 1}, {"solo", 176, Stdout, 5}, {"EEEFFF", 44, Stderr, 2}}
	for i, w := range want {
		l := lines[i]
		if string(l.Log) != w.log || l.Start != w.start || l.Stream != w.stream || l.Time.Nanosecond() != w.nsec || l.Truncated || l.Err != nil {
			t.Errorf("line %d = %q start %d stream %v nsec %d trunc %v err %v; want %q %d %v %d", i, l.Log, l.Start, l.Stream, l.Time.Nanosecond(), l.Truncated, l.Err, w.log, w.start, w.stream, w.nsec)
		}
	}
	// The checkpoint may not pass the first pending partial.
	if want := []int64{0, 0, 0, 44, 44, -1}; !equal(holds, want) {
		t.Errorf("holds = %v, want %v", holds, want)
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDecoderTruncatesBeyondMax(t *testing.T) {
	d := NewDecoder(CRI, 8)
	lines, _ := feed(d,
		"2026-12-02T01:02:03Z stdout P 12345",
		"2026-12-02T01:02:03Z stdout P 67890",
		"2026-12-02T01:02:03Z stdout P abc",
		"2026-12-02T01:02:03Z stdout F def",
		"2026-12-02T01:02:03Z stdout F 0123456789", // a full record too long on its own
		"2026-12-02T01:02:03Z stdout F ok",
	)
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3", len(lines))
	}
	if string(lines[0].Log) != "12345678" || !lines[0].Truncated || lines[0].Start != 0 {
		t.Errorf("joined: %q truncated=%v start=%d", lines[0].Log, lines[0].Truncated, lines[0].Start)
	}
	if string(lines[1].Log) != "01234567" || !lines[1].Truncated {
		t.Errorf("full: %q truncated=%v", lines[1].Log, lines[1].Truncated)
	}
	if string(lines[2].Log) != "ok" || lines[2].Truncated {
		t.Errorf("after: %q truncated=%v", lines[2].Log, lines[2].Truncated)
	}
}

func TestDecoderBadRecordsAndFlush(t *testing.T) {
	d := NewDecoder(Auto, 1<<20)
	lines, holds := feed(d,
		`{"log":"dock","stream":"stdout","time":"2026-12-02T01:02:03Z"}`, // docker partial
		"garbage \x00\xff",
		`{"log":"er\n","stream":"stdout","time":"2026-12-02T01:02:04Z"}`,
		"2026-12-02T01:02:03Z stderr P left over",
	)
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2: %+v", len(lines), lines)
	}
	if !errors.Is(lines[0].Err, ErrCRI) || string(lines[0].Log) != "garbage \x00\xff" || lines[0].Start != 63 {
		t.Errorf("garbage: %+v", lines[0])
	}
	if string(lines[1].Log) != "docker" || lines[1].Start != 0 || lines[1].Time.Second() != 3 {
		t.Errorf("docker joined: %+v", lines[1])
	}
	if holds[3] < 0 {
		t.Fatal("stderr partial not held")
	}
	l, ok := d.Flush()
	if !ok || string(l.Log) != "left over" || !l.Truncated || l.Stream != Stderr {
		t.Errorf("flush = %+v %v", l, ok)
	}
	if _, ok := d.Flush(); ok || d.Hold() != -1 {
		t.Error("still pending after flush")
	}
}

func TestDecoderDoesNotAllocate(t *testing.T) {
	cri := []byte(`2026-12-02T01:02:03.123456789Z stdout F 10.0.0.1 - - [02/Dec/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"`)
	part := []byte(`2026-12-02T01:02:03.123456789Z stdout P 10.0.0.1 - - [02/Dec/2026:01:02:03 +0000] "GET / HTTP/1.1"`)
	dock := []byte(`{"log":"10.0.0.1 - - [02/Dec/2026:01:02:03 +0000] \"GET / HTTP/1.1\" 200 5\n","stream":"stdout","time":"2026-12-02T01:02:03.123456789Z"}`)
	meta := AppendMeta(nil, Meta{Namespace: "ingress-nginx", Pod: "p", PodUID: "u", Container: "controller", RestartCount: 0, Node: "n"})
	ev := make([]byte, 0, 1024)
	garbage := []byte("garbage")
	d := NewDecoder(Auto, 1<<20)
	// warm the buffers
	d.Add(part, 0)
	d.Add(cri, 1)
	d.Add(dock, 2)
	allocs := testing.AllocsPerRun(1000, func() {
		d.Add(part, 0)
		l, _ := d.Add(cri, 1)
		ev = AppendFields(append(ev[:0], `{"a":1}`...), &l, meta)
		l, _ = d.Add(dock, 2)
		ev = AppendFields(append(ev[:0], `{"a":1}`...), &l, meta)
		d.Add(garbage, 3)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run, want 0", allocs)
	}
}

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
		want Meta
	}{
		{"/var/log/pods/ingress-nginx_ingress-nginx-controller-7d9f8b6c5-x2x7q_0b5c9a3e-8f2d-4a51-9c3e-1f2e3d4c5b6a/controller/0.log", true,
			Meta{Namespace: "ingress-nginx", Pod: "ingress-nginx-controller-7d9f8b6c5-x2x7q", PodUID: "0b5c9a3e-8f2d-4a51-9c3e-1f2e3d4c5b6a", Container: "controller", RestartCount: 0}},
		{"/var/log/pods/web_nginx-0_uid1/nginx/12.log.20261202-010203", true,
			Meta{Namespace: "web", Pod: "nginx-0", PodUID: "uid1", Container: "nginx", RestartCount: 12}},
		{"/host/var/log/pods/web_nginx-0_uid1/nginx/3.log", true,
			Meta{Namespace: "web", Pod: "nginx-0", PodUID: "uid1", Container: "nginx", RestartCount: 3}},
		{"/var/log/containers/nginx-0_web_my-nginx-3f9a1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80.log", true,
			Meta{Namespace: "web", Pod: "nginx-0", Container: "my-nginx", ContainerID: "3f9a1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80", RestartCount: -1}},
		{"/var/log/nginx/access.log", false, Meta{}},
		{"/var/log/pods/web_nginx-0_uid1/nginx/0.log.gz", true, Meta{Namespace: "web", Pod: "nginx-0", PodUID: "uid1", Container: "nginx", RestartCount: 0}},
		{"/var/log/pods/bad/nginx/0.log", false, Meta{}},
		{"/var/log/pods/a_b_c/nginx/x.log", false, Meta{}},
		{"/var/log/pods/a_b_c/nginx/0.logx", false, Meta{}},
		{"/var/log/containers/a_b_c-nothex.log", false, Meta{}},
	} {
		m, ok := ParsePath(tc.path)
		if ok != tc.ok || m != tc.want {
			t.Errorf("ParsePath(%q) = %+v %v, want %+v %v", tc.path, m, ok, tc.want, tc.ok)
		}
	}
}

func TestResolvePath(t *testing.T) {
	link := "/var/log/containers/nginx-0_web_nginx-0123456789abcdef.log"
	target := "/var/log/pods/web_nginx-0_uid-9/nginx/2.log"
	m, err := ResolvePath(link, func(p string) (string, error) {
		if p != link {
			t.Fatalf("resolved %q", p)
		}
		return target, nil
	})
	if err != nil || m.PodUID != "uid-9" || m.RestartCount != 2 || m.ContainerID != "0123456789abcdef" {
		t.Errorf("ResolvePath = %+v, %v", m, err)
	}
	m, err = ResolvePath(link, func(string) (string, error) { return "", errors.New("gone") })
	if err != nil || m.Pod != "nginx-0" || m.RestartCount != -1 {
		t.Errorf("unresolvable link = %+v, %v", m, err)
	}
	if _, err := ResolvePath("/var/log/syslog", nil); !errors.Is(err, ErrNotContainerPath) {
		t.Errorf("err = %v", err)
	}
}

func TestAppendFields(t *testing.T) {
	meta := AppendMeta(nil, Meta{Namespace: "ns", Pod: "p\"q", PodUID: "u", Container: "c", RestartCount: 1, Node: "node-1"})
	l := Line{Stream: Stderr, Time: mustTime(t, "2026-12-02T02:02:03.5+01:00")}
	got := string(AppendFields([]byte(`{"status":200}`), &l, meta))
	want := `{"status":200,"stream":"stderr","container_time":"2026-12-02T01:02:03.500000000Z","kubernetes":{"namespace":"ns","pod":"p\"q","pod_uid":"u","container":"c","restart_count":1,"node":"node-1"}}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Fatal(err)
	}
	m2 := AppendMeta(nil, Meta{Namespace: "ns", Pod: "p", Container: "c", RestartCount: -1})
	if got := string(AppendFields([]byte(`{}`), &Line{}, m2)); got != `{"stream":"stdout","kubernetes":{"namespace":"ns","pod":"p","container":"c"}}` {
		t.Errorf("minimal: %s", got)
	}
}

func TestAppendTime(t *testing.T) {
	for _, s := range []string{"2026-12-02T01:02:03.123456789Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2028-02-29T12:00:00.5+05:30", "12026-01-01T00:00:00Z"} {
		var tm time.Time
		if s[0] == '1' && len(s) > 20 && s[5] == '-' {
			tm = time.Date(12026, 1, 1, 0, 0, 0, 0, time.UTC)
		} else {
			tm = mustTime(t, s)
		}
		want := tm.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("appendTime(%s) = %s, want %s", s, got, want)
		}
	}
}

func TestIsKlog(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{"I1202 01:02:03.123456       7 main.go:123] \"Starting NGINX Ingress controller\"", true},
		{"W1202 01:02:03.123456 12 store.go:42] error", true},
		{"E1202 01:02:03.123456      7 controller.go:1107] Error obtaining Endpoints", true},
		{"2026/12/02 01:02:03 [error] 31#31: *1 open() failed", false},
		{"I1202 01:02:03.123456 main.go:123] no thread id", false},
		{"X1202 01:02:03.123456 7 main.go:1] x", false},
		{"I1202", false},
		{`10.0.0.1 - - [02/Dec/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5`, false},
	} {
		if got := IsKlog([]byte(tc.line)); got != tc.want {
			t.Errorf("IsKlog(%q) = %v", tc.line, got)
		}
	}
}

func TestParseRuntime(t *testing.T) {
	for s, want := range map[string]Runtime{"": None, "cri": CRI, "docker": Docker, "auto": Auto} {
		if got, err := ParseRuntime(s); err != nil || got != want || got.String() != s {
			t.Errorf("ParseRuntime(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseRuntime("containerd"); err == nil || !strings.Contains(err.Error(), "cri, docker or auto") {
		t.Errorf("err = %v", err)
	}
}
