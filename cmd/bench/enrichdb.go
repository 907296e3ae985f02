package main

import (
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/nginx-shipper/nginx-shipper/agent/enrich/enrichtest"
)

// writeGeneratorDBs writes, into dir, a City and an ASN database (MaxMind
// format, with mmdbwriter) that place the generator's clients as a real
// database would: the public IPv4 space in /14s, clientNets6 in /28s (with
// legacyClients, one record per /26 of the old generator's two IPv4 /24s
// and per /36 of 2001:db8::/32). The kafka-enrich case and the enrichment
// benchmarks look the generator's lines up in them.
func writeGeneratorDBs(dir string) (city, asn string, err error) {
	var cities, asns []enrichtest.Network
	add := func(cidr, cc string, asn uint32) {
		cities = append(cities, enrichtest.Network{CIDR: cidr, Rec: enrichtest.CityRecord(cc, "Country "+cc, "State "+cidr, "City "+cidr, 40, -100)})
		asns = append(asns, enrichtest.Network{CIDR: cidr, Rec: enrichtest.ASNRecord(asn, fmt.Sprintf("Net %d", asn))})
	}
	if legacyClients {
		for i, p := range []string{"198.51.100", "203.0.113"} {
			for q := 0; q < 4; q++ {
				add(fmt.Sprintf("%s.%d/26", p, q*64), "US", uint32(64500+i))
			}
		}
		for q := 0; q < 16; q++ {
			add(fmt.Sprintf("2001:db8:%x000::/36", q), "DE", 64510)
		}
	} else {
		for n := 0; n < 1<<14; n++ {
			a := netip.AddrFrom4([4]byte{byte(n >> 6), byte(n << 2), 0, 0})
			if !publicUnicast(a) {
				continue
			}
			add(netip.PrefixFrom(a, 14).String(), "US", uint32(1+n%4000))
		}
		for i, p := range clientNets6 {
			b := p.Addr().As16()
			if p.Bits() >= 28 {
				add(p.String(), "DE", uint32(5000+i))
				continue
			}
			for n := 0; n < 1<<(28-p.Bits()); n++ {
				v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | uint32(n)<<4
				c := b
				c[0], c[1], c[2], c[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
				add(netip.PrefixFrom(netip.AddrFrom16(c), 28).String(), "DE", uint32(5000+i))
			}
		}
	}
	city, asn = filepath.Join(dir, "City.mmdb"), filepath.Join(dir, "ASN.mmdb")
	if err := enrichtest.Write(city, "GeoLite2-City", 6, cities); err != nil {
		return "", "", err
	}
	return city, asn, enrichtest.Write(asn, "GeoLite2-ASN", 6, asns)
}
