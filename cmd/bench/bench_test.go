package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

// The generated lines must parse with the agent's parser in issue 8's
// format, carry their sequence number in request_id, and be about the
// issue's average size.
func TestGeneratedLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "access.log")
	const n = 20000
	size, err := generate(p, n)
	if err != nil {
		t.Fatal(err)
	}
	// About 296 B with the site's clients (their 113 user agents are
	// longer than the old generator's 10: -legacy-clients gave 271 B).
	if avg := float64(size) / n; avg < 286 || avg > 306 {
		t.Errorf("average line %.1f B, want about 296", avg)
	}
	ev, err := checkFormat(p)
	if err != nil {
		t.Fatal(err)
	}
	if ev < float64(size)/n {
		t.Errorf("events average %.0f B, smaller than the lines", ev)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	if i := strings.Index(string(b), "%!"); i >= 0 {
		t.Fatalf("a formatting error in the generated lines: %q", b[max(i-40, 0):min(i+40, len(b))])
	}
	for _, i := range []int{0, 1, n / 2, n - 1} {
		if s, ok := rawSeq([]byte(lines[i])); !ok || s != uint64(i) {
			t.Errorf("line %d: raw request_id gives %d, %v", i, s, ok)
		}
	}
}

func TestTallyFindsMissingAndDuplicates(t *testing.T) {
	tl := newTally(3)
	tl.add(0, true)
	tl.add(1, true)
	tl.add(2, true)
	if err := tl.check("x"); err != nil {
		t.Fatalf("complete tally: %v", err)
	}
	tl.add(1, true)
	if err := tl.check("x"); err == nil || !strings.Contains(err.Error(), "1 duplicated") {
		t.Errorf("duplicate not reported: %v", err)
	}
	tl = newTally(3)
	tl.add(0, true)
	tl.add(2, true)
	if err := tl.check("x"); err == nil || !strings.Contains(err.Error(), "first: line 1") {
		t.Errorf("missing line not reported: %v", err)
	}
	tl = newTally(3)
	tl.add(0, true)
	tl.add(1, true)
	tl.add(2, true)
	tl.add(0, false)
	if err := tl.check("x"); err == nil || !strings.Contains(err.Error(), "1 unreadable") {
		t.Errorf("unreadable record not reported: %v", err)
	}
}

func TestEventSeq(t *testing.T) {
	g := newLineGen(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	l := g.line(123456, g.base)
	id := strings.Fields(string(l))
	ev := []byte(`{"status":200,"request_id":"` + id[len(id)-1] + `","host":"h"}`)
	if s, ok := eventSeq(ev); !ok || s != 123456 {
		t.Errorf("eventSeq = %d, %v; want 123456", s, ok)
	}
	if _, ok := eventSeq([]byte(`{"status":200}`)); ok {
		t.Error("eventSeq found a request_id in an event without one")
	}
}

// TestAvroSeq: the line's sequence number is found in an Avro event of the
// bench format as the agent writes it, and not in other bytes.
func TestAvroSeq(t *testing.T) {
	p, err := parser.Compile(benchFormat, parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "access.log")
	if _, err := generate(path, 50); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var r parser.Result
	for i, l := range lines {
		v, err := p.ParseAvro(make([]byte, 5), []byte(l), parser.Meta{Host: "h", File: "f"}, &r)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := avroSeq(v); !ok || s != uint64(i) {
			t.Errorf("line %d: avroSeq = %d, %v", i, s, ok)
		}
	}
	if _, ok := avroSeq([]byte{0, 0, 0, 0, 1, 2, 0x40, 'x'}); ok {
		t.Error("avroSeq found a request_id in bytes without one")
	}
}

// TestSiteClients: the site model's clients repeat as a site's do: about
// 1 line in 25 from a new client, 30 % of the clients on IPv6, every
// address public, a client keeping its user agent, and a few hundred
// distinct user agents.
func TestSiteClients(t *testing.T) {
	g := newLineGen(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	const n = 300_000
	addrs := map[string]string{} // address -> user agent
	uas := map[string]bool{}
	v6 := 0
	for i := 0; i < n; i++ {
		l := string(g.line(uint64(i), g.base))
		addr, _, _ := strings.Cut(l, " ")
		q := strings.Split(l, `"`)
		ua := q[5]
		a, err := netip.ParseAddr(addr)
		if err != nil || !a.IsGlobalUnicast() || a.IsPrivate() {
			t.Fatalf("line %d: client %q is not a public address", i, addr)
		}
		if prev, ok := addrs[addr]; ok {
			if prev != ua {
				t.Fatalf("client %s changed its user agent: %q then %q", addr, prev, ua)
			}
			continue
		}
		addrs[addr] = ua
		uas[ua] = true
		if a.Is6() {
			v6++
		}
	}
	fresh := float64(len(addrs)) / n
	share6 := float64(v6) / float64(len(addrs))
	t.Logf("%d lines: %d clients (%.1f %% of the lines), %.1f %% of them IPv6, %d user agents", n, len(addrs), 100*fresh, 100*share6, len(uas))
	if fresh < 0.035 || fresh > 0.045 || share6 < 0.27 || share6 > 0.33 || len(uas) < 100 || len(uas) > 200 {
		t.Errorf("want about 4 %% new clients, 30 %% IPv6 and 100-200 user agents")
	}
}
