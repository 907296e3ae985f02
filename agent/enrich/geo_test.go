package enrich

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nginx-shipper/nginx-shipper/agent/enrich/enrichtest"
	"github.com/oschwald/maxminddb-golang/v2"
)

// TestNetCacheExact: the network cache serves every address the fragment
// a lookup of that address itself gives, whatever the networks' lengths
// (shorter and longer than the cache's blocks, nested, with holes, the
// two databases split differently), in any order of arrival.
func TestNetCacheExact(t *testing.T) {
	dir := t.TempDir()
	city := func(name string) enrichtest.Network {
		return enrichtest.Network{Rec: enrichtest.CityRecord("US", "United States", "R "+name, "C "+name, 1, 2)}
	}
	var cities, asns []enrichtest.Network
	for _, cidr := range []string{
		"11.0.0.0/8", "11.1.0.0/16", "11.1.1.0/26", "11.1.1.64/30", "11.1.1.68/32", "12.0.0.0/24",
		"2a00::/16", "2a00:1::/32", "2a00:1:2::/56", "2a00:1:2:3::/64", "2a00:1:2:3:4::/80", "2a00:1:2:3:4:5:6:7/128",
	} {
		n := city(cidr)
		n.CIDR = cidr
		cities = append(cities, n)
	}
	for i, cidr := range []string{"11.1.0.0/20", "11.1.1.0/25", "12.0.0.128/25", "2a00:1::/40", "2a00:1:2:3:8000::/65"} {
		asns = append(asns, enrichtest.Network{CIDR: cidr, Rec: enrichtest.ASNRecord(uint32(64500+i), "AS "+cidr)})
	}
	e := mustNew(t, Config{
		GeoIPDatabase: enrichtest.WriteDB(t, dir, "City.mmdb", "GeoLite2-City", cities),
		ASNDatabase:   enrichtest.WriteDB(t, dir, "ASN.mmdb", "GeoLite2-ASN", asns),
	})
	g := e.gen.Load()
	// Addresses near the networks' edges: each focus prefix with random
	// host bits.
	rng := rand.New(rand.NewPCG(1, 2))
	var focus []netip.Prefix
	for _, s := range []string{
		"11.0.0.0/8", "11.1.0.0/16", "11.1.1.0/24", "11.1.1.64/29", "11.1.1.68/31", "11.1.15.0/24", "11.1.16.0/24",
		"12.0.0.0/23", "12.0.1.0/24",
		"2a00::/16", "2a00:1::/32", "2a00:1:0:0::/40", "2a00:1:ff::/48", "2a00:1:2::/48", "2a00:1:2:3::/64",
		"2a00:1:2:3:4::/79", "2a00:1:2:3:4:5:6:6/127", "2a00:1:2:3:8000::/64", "2a01::/16",
	} {
		focus = append(focus, netip.MustParsePrefix(s))
	}
	random := func() netip.Addr {
		p := focus[rng.IntN(len(focus))]
		b := p.Addr().As16()
		off := 0
		if p.Addr().Is4() {
			off = 12
		}
		for bit := p.Bits(); bit < p.Addr().BitLen(); bit++ {
			if rng.IntN(2) == 1 {
				b[off+bit/8] |= 0x80 >> (bit % 8)
			}
		}
		a := netip.AddrFrom16(b)
		if p.Addr().Is4() {
			a = a.Unmap()
		}
		return a
	}
	addrs := make([]netip.Addr, 2000)
	for i := range addrs {
		addrs[i] = random()
	}
	distinct := map[string]bool{}
	for round := 0; round < 3; round++ {
		rng.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
		for _, a := range addrs {
			want, _ := g.lookup(a)
			got := g.geoFrag(a)
			if got != want {
				t.Fatalf("%v: cached %q, want %q", a, got.json, want.json)
			}
			distinct[want.json] = true
		}
	}
	if len(distinct) < 12 {
		t.Errorf("%d distinct fragments: the addresses do not reach the networks", len(distinct))
	}
	if n := g.nets.len(); n >= len(addrs) {
		t.Errorf("%d blocks cached for %d addresses: the cache is not by network", n, len(addrs))
	}
	if h, m := g.nets.stats(); h == 0 || m == 0 {
		t.Errorf("network cache hits %d, misses %d", h, m)
	}
}

// TestNetCacheUnknownFamily: an IPv4-only database asked for an IPv6
// address (a lookup error) gives no geo, cached for that address alone.
func TestNetCacheUnknownFamily(t *testing.T) {
	dir := t.TempDir()
	path := enrichtest.WriteDB4(t, dir, "City4.mmdb", "GeoLite2-City", []enrichtest.Network{
		{CIDR: "81.2.69.0/24", Rec: enrichtest.CityRecord("GB", "United Kingdom", "England", "London", 51.5, -0.09)},
	})
	e := mustNew(t, Config{GeoIPDatabase: path})
	if g := geoOf(t, e, "81.2.69.142"); g["city"] != "London" {
		t.Errorf("81.2.69.142: geo %v, want London", g)
	}
	for i := 0; i < 2; i++ {
		if g := geoOf(t, e, "2a00:1450:4001::1"); g != nil {
			t.Errorf("IPv6 in an IPv4 database: geo %v, want none", g)
		}
	}
	if g := geoOf(t, e, "81.2.70.1"); g != nil {
		t.Errorf("81.2.70.1: geo %v, want none", g)
	}
}

// TestCheckDBCorrupt: the open check refuses a search tree with a record
// pointing past the data section, and records that do not decode, naming
// the key.
func TestCheckDBCorrupt(t *testing.T) {
	dir := t.TempDir()
	good := enrichtest.CityDB(t, dir)
	r, err := maxminddb.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	treeSize := int(r.Metadata.NodeCount) * int(r.Metadata.RecordSize) / 4
	r.Close()
	full, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Config{GeoIPDatabase: good}).Validate(); err != nil {
		t.Fatalf("the good database: %v", err)
	}
	for name, corrupt := range map[string]func(b []byte){
		"tree": func(b []byte) { // the last node's records point far past the data
			for i := treeSize - int(r.Metadata.RecordSize)/4; i < treeSize; i++ {
				b[i] = 0xFF
			}
		},
		"data": func(b []byte) { // the records are garbage
			for i := treeSize + 16; i < treeSize+16+64 && i < len(b); i++ {
				b[i] = 0xEE
			}
		},
	} {
		b := append([]byte(nil), full...)
		corrupt(b)
		path := filepath.Join(dir, name+".mmdb")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		err := (&Config{GeoIPDatabase: path}).Validate()
		if err == nil || !strings.Contains(err.Error(), "enrich.geoip_database") {
			t.Errorf("%s corrupted: Validate = %v, want an error naming enrich.geoip_database", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// publicNetip is public as netip's methods tell it.
func publicNetip(a netip.Addr) bool {
	return a.IsValid() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() &&
		!a.IsMulticast() && !a.IsUnspecified() && !a.IsInterfaceLocalMulticast() && !a.IsLinkLocalMulticast()
}

// TestPublicMatchesNetip: public is netip's seven predicates, for the
// edges of every range they name (each side of each boundary, mapped to
// IPv6 too, with a zone) and a million random addresses of each family.
func TestPublicMatchesNetip(t *testing.T) {
	check := func(a netip.Addr) {
		t.Helper()
		if got, want := public(a), publicNetip(a); got != want {
			t.Fatalf("public(%v) = %v, netip says %v", a, got, want)
		}
	}
	check(netip.Addr{})
	edges := []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.168.0.0/16", "224.0.0.0/4", "224.0.0.0/24", "240.0.0.0/4", "255.255.255.255/32",
		"::/128", "::1/128", "::/96", "::ffff:0:0/96", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "ff01::/16", "ff02::/16",
		"2001:db8::/32", "64:ff9b::/96",
	}
	for _, s := range edges {
		p := netip.MustParsePrefix(s)
		first := p.Addr()
		last := first
		b := last.As16()
		off := 0
		if first.Is4() {
			off = 96
		}
		for bit := p.Bits() + off; bit < 128; bit++ {
			b[bit/8] |= 0x80 >> (bit % 8)
		}
		last = netip.AddrFrom16(b)
		if first.Is4() {
			last = last.Unmap()
		}
		for _, a := range []netip.Addr{first, last, first.Prev(), last.Next(), first.Next(), last.Prev()} {
			if !a.IsValid() {
				continue
			}
			check(a)
			if a.Is4() {
				check(netip.AddrFrom16(a.As16()))
			} else {
				check(a.WithZone("eth0"))
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 1_000_000; i++ {
		v := rng.Uint64()
		check(netip.AddrFrom4([4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}))
		var b [16]byte
		w := rng.Uint64()
		b[0], b[1], b[15] = byte(w), byte(w>>8), byte(w>>16)
		if w>>24&3 == 0 {
			b[0] = 0 // the ::/8 region: unspecified, loopback, mapped
			if w>>26&1 == 0 {
				b[10], b[11] = 0xFF, 0xFF
			}
		}
		b[7] = byte(v >> 32)
		check(netip.AddrFrom16(b))
	}
}
