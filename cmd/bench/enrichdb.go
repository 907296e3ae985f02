package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// writeGeneratorDBs writes, into dir, a City and an ASN database (MaxMind
// format, with mmdbwriter) that place the generator's addresses as a real
// database would: one record per /26 of its two IPv4 /24s and per /36 of
// 2001:db8::/32. The kafka-enrich case looks its lines up in them.
func writeGeneratorDBs(dir string) (city, asn string, err error) {
	names := func(en string) mmdbtype.Map {
		return mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(en)}}
	}
	cityRec := func(cc, country, region, name string, lat, lon float64) mmdbtype.Map {
		c := names(country)
		c["iso_code"] = mmdbtype.String(cc)
		return mmdbtype.Map{
			"country": c, "registered_country": c,
			"location":     mmdbtype.Map{"latitude": mmdbtype.Float64(lat), "longitude": mmdbtype.Float64(lon), "accuracy_radius": mmdbtype.Uint16(20)},
			"subdivisions": mmdbtype.Slice{names(region)},
			"city":         names(name),
		}
	}
	asnRec := func(n uint32, org string) mmdbtype.Map {
		return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(n), "autonomous_system_organization": mmdbtype.String(org)}
	}
	type network struct {
		cidr string
		rec  mmdbtype.Map
	}
	var cities, asns []network
	for i, p := range []string{"198.51.100", "203.0.113"} {
		for q := 0; q < 4; q++ {
			cidr := fmt.Sprintf("%s.%d/26", p, q*64)
			cities = append(cities, network{cidr, cityRec("US", "United States", "State "+cidr, "City "+cidr, 40+float64(q), -100+float64(i))})
			asns = append(asns, network{cidr, asnRec(uint32(64500+i), "Net "+p)})
		}
	}
	for q := 0; q < 16; q++ {
		cidr := fmt.Sprintf("2001:db8:%x000::/36", q)
		cities = append(cities, network{cidr, cityRec("DE", "Germany", "Land", "Stadt "+cidr, 50, float64(q))})
		asns = append(asns, network{cidr, asnRec(64510, "Net v6")})
	}
	write := func(name, dbType string, nets []network) (string, error) {
		tree, err := mmdbwriter.New(mmdbwriter.Options{
			DatabaseType:            dbType,
			Description:             map[string]string{"en": "nginx-shipper bench database"},
			IncludeReservedNetworks: true, // the generator uses documentation ranges
			RecordSize:              28,
		})
		if err != nil {
			return "", err
		}
		for _, n := range nets {
			_, ipnet, err := net.ParseCIDR(n.cidr)
			if err != nil {
				return "", err
			}
			if err := tree.Insert(ipnet, n.rec); err != nil {
				return "", fmt.Errorf("insert %s: %w", n.cidr, err)
			}
		}
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			return "", err
		}
		if _, err := tree.WriteTo(f); err != nil {
			f.Close()
			return "", err
		}
		return path, f.Close()
	}
	if city, err = write("GeoLite2-City.mmdb", "GeoLite2-City", cities); err != nil {
		return "", "", err
	}
	asn, err = write("GeoLite2-ASN.mmdb", "GeoLite2-ASN", asns)
	return city, asn, err
}
