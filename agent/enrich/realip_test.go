package enrich

import (
	"net/netip"
	"strings"
	"testing"
)

func mustTrusted(t testing.TB, entries ...string) Trusted {
	t.Helper()
	tr, err := ParseTrusted(entries)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestClientIP is the realip walk against nginx's semantics
// (real_ip_header X-Forwarded-For; real_ip_recursive on).
func TestClientIP(t *testing.T) {
	lb := mustTrusted(t, "10.0.0.0/8", "192.168.0.0/16", "127.0.0.1", "2001:db8:ffff::/48")
	none := mustTrusted(t)
	cases := []struct {
		name, remote, header string
		trusted              *Trusted
		want                 string // "" = not known
	}{
		{"no header", "203.0.113.7", "", &lb, "203.0.113.7"},
		{"peer not trusted: header ignored", "203.0.113.7", "1.2.3.4", &lb, "203.0.113.7"},
		{"nothing trusted", "10.0.0.1", "1.2.3.4", &none, "10.0.0.1"},
		{"one hop", "10.0.0.1", "198.51.100.9", &lb, "198.51.100.9"},
		{"past trusted hops", "10.0.0.1", "198.51.100.9, 10.1.1.1, 192.168.3.4", &lb, "198.51.100.9"},
		{"forged left part stops at first untrusted", "10.0.0.1", "6.6.6.6, 198.51.100.9, 10.1.1.1", &lb, "198.51.100.9"},
		{"all trusted: leftmost", "10.0.0.1", "10.0.0.2, 10.0.0.3", &lb, "10.0.0.2"},
		{"no spaces", "10.0.0.1", "198.51.100.9,10.2.2.2", &lb, "198.51.100.9"},
		{"space separated", "10.0.0.1", "198.51.100.9 10.2.2.2", &lb, "198.51.100.9"},
		{"trailing separators", "10.0.0.1", "198.51.100.9, ,, ", &lb, "198.51.100.9"},
		{"leading separator", "10.0.0.1", ", 10.3.3.3", &lb, "10.3.3.3"},
		{"with port", "10.0.0.1", "198.51.100.9:4711", &lb, "198.51.100.9"},
		{"port 0 is invalid", "10.0.0.1", "198.51.100.9:0", &lb, "10.0.0.1"},
		{"port too big", "10.0.0.1", "198.51.100.9:65536", &lb, "10.0.0.1"},
		{"garbage last entry keeps peer", "10.0.0.1", "198.51.100.9, unknown", &lb, "10.0.0.1"},
		{"garbage behind trusted keeps last good", "10.0.0.1", "bogus, 10.4.4.4", &lb, "10.4.4.4"},
		{"garbage behind untrusted irrelevant", "10.0.0.1", "bogus, 198.51.100.9", &lb, "198.51.100.9"},
		{"hostname is not an address", "10.0.0.1", "example.com", &lb, "10.0.0.1"},
		{"ipv6 client", "10.0.0.1", "2001:db8::1", &lb, "2001:db8::1"},
		{"ipv6 bracket port", "10.0.0.1", "[2001:db8::1]:443", &lb, "2001:db8::1"},
		{"ipv6 bracket without port is invalid", "10.0.0.1", "[2001:db8::1]", &lb, "10.0.0.1"},
		{"ipv6 trusted peer", "2001:db8:ffff::5", "2001:db8:1::9", &lb, "2001:db8:1::9"},
		{"ipv6 peer untrusted", "2001:db8:1::5", "198.51.100.9", &lb, "2001:db8:1::5"},
		{"ipv4-mapped peer matches ipv4 range", "::ffff:10.0.0.1", "198.51.100.9", &lb, "198.51.100.9"},
		{"ipv4-mapped client kept as written", "10.0.0.1", "::ffff:198.51.100.9", &lb, "::ffff:198.51.100.9"},
		{"ipv6 uppercase canonicalised", "10.0.0.1", "2001:DB8:0:0:0:0:0:1", &lb, "2001:db8::1"},
		{"ipv6 embedded ipv4", "10.0.0.1", "::1.2.3.4", &lb, "::102:304"},
		{"ipv6 zone is invalid", "10.0.0.1", "fe80::1%eth0", &lb, "10.0.0.1"},
		{"nginx: leading zeros are decimal", "10.0.0.1", "010.001.002.003", &lb, "10.1.2.3"},
		{"nginx: empty octet is zero", "10.0.0.1", "1..2.3", &lb, "1.0.2.3"},
		{"broadcast is INADDR_NONE", "10.0.0.1", "255.255.255.255", &lb, "10.0.0.1"},
		{"octet > 255", "10.0.0.1", "1.2.3.256", &lb, "10.0.0.1"},
		{"three octets", "10.0.0.1", "1.2.3", &lb, "10.0.0.1"},
		{"remote garbage", "unix:", "1.2.3.4", &lb, ""},
		{"remote empty", "", "", &lb, ""},
		{"remote with port", "10.0.0.1:80", "198.51.100.9", &lb, "198.51.100.9"},
		{"binary junk", "10.0.0.1", "\x00\xff\x16, 10.5.5.5", &lb, "10.5.5.5"},
	}
	for _, c := range cases {
		a, ok := ClientIP([]byte(c.remote), []byte(c.header), c.trusted)
		got := ""
		if ok {
			got = a.String()
		}
		if got != c.want {
			t.Errorf("%s: ClientIP(%q, %q) = %q, want %q", c.name, c.remote, c.header, got, c.want)
		}
	}
}

// TestParseAddrMatchesNetip: for canonical addresses nginx's parser and
// Go's agree.
func TestParseAddrMatchesNetip(t *testing.T) {
	for _, s := range []string{
		"0.0.0.0", "1.2.3.4", "255.255.255.254", "::", "::1", "1::", "2001:db8::", "fe80::1:2",
		"2001:db8:85a3:8d3:1319:8a2e:370:7348", "::2:3:4:5:6:7:8",
		"1:2:3:4:5:6:1.2.3.4", "::ffff:192.0.2.128", "1:0:0:2::3",
	} {
		want := netip.MustParseAddr(s)
		got, ok := parseAddr([]byte(s))
		if !ok || got != want {
			t.Errorf("parseAddr(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{
		"", ":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::", "g::", "1.2.3.4.5",
		"::1.2.3", "1:2:3:4:5:6:7:1.2.3.4", "[::1]", "::1%lo", " 1.2.3.4", "1.2.3.4 ",
		"1:2:3:4:5:6:7::", // nginx rejects a "::" that stands for one group at the end
	} {
		if a, ok := parseAddr([]byte(s)); ok {
			t.Errorf("parseAddr(%q) = %v, want invalid", s, a)
		}
	}
}

func TestParseTrusted(t *testing.T) {
	tr := mustTrusted(t, "10.1.2.3/8", "::ffff:172.16.0.0/108", "2001:db8::/32", "127.0.0.1")
	for s, want := range map[string]bool{
		"10.200.0.1": true, "11.0.0.1": false, "172.16.5.5": true, "172.32.0.1": false,
		"2001:db8:1::1": true, "2001:db9::1": false, "127.0.0.1": true, "127.0.0.2": false,
		"::ffff:10.0.0.1": true,
	} {
		if got := tr.Contains(netip.MustParseAddr(s)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", s, got, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "", "fe80::1%eth0", "unix:"} {
		_, err := ParseTrusted([]string{"10.0.0.0/8", bad})
		if err == nil || !strings.Contains(err.Error(), "trusted_proxies[1]") {
			t.Errorf("ParseTrusted(%q): err = %v, want one naming trusted_proxies[1]", bad, err)
		}
	}
}

// TestClientIPHostile: a forged chain of many trusted entries and a 1 MiB
// header are walked in one pass without allocation.
func TestClientIPHostile(t *testing.T) {
	lb := mustTrusted(t, "10.0.0.0/8")
	chain := []byte("198.51.100.9" + strings.Repeat(", 10.9.9.9", 100000))
	junk := []byte(strings.Repeat("x", 1<<20))
	remote, client := []byte("10.0.0.1"), netip.MustParseAddr("198.51.100.9")
	allocs := testing.AllocsPerRun(5, func() {
		if a, _ := ClientIP(remote, chain, &lb); a != client {
			t.Fatalf("chain: got %v", a)
		}
		if a, _ := ClientIP(remote, junk, &lb); a != netip.AddrFrom4([4]byte{10, 0, 0, 1}) {
			t.Fatalf("junk: got %v", a)
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations", allocs)
	}
}

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1", "198.51.100.9, 10.1.1.1")
	f.Add("::ffff:10.0.0.1", "[2001:db8::1]:80, ,")
	f.Add("10.0.0.1", "1:2:3:4:5:6:1.2.3.4")
	lb := mustTrusted(f, "10.0.0.0/8", "::/0")
	f.Fuzz(func(t *testing.T, remote, header string) {
		a, ok := ClientIP([]byte(remote), []byte(header), &lb)
		if ok && !a.IsValid() {
			t.Fatalf("ok with an invalid address")
		}
		if ok {
			// Whatever was found is an address nginx's parser reads back.
			if b, ok2 := parseAddr([]byte(a.String())); !ok2 || b != a {
				t.Fatalf("%v does not parse back (%v)", a, b)
			}
		}
	})
}
