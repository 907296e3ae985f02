// Package enrichtest writes MaxMind-format databases for tests (with
// MaxMind's mmdbwriter): known networks to known places and ASNs. For
// tests only.
package enrichtest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Network is one entry of a test database.
type Network struct {
	CIDR string
	Rec  mmdbtype.Map
}

// WriteDB writes an mmdb file of the given type with the networks and
// returns its path. Documentation and private ranges are allowed, so that
// tests can place the generator's addresses.
func WriteDB(t testing.TB, dir, name, dbType string, nets []Network) string {
	t.Helper()
	return writeDB(t, dir, name, dbType, 6, nets)
}

// WriteDB4 is WriteDB of an IPv4-only database.
func WriteDB4(t testing.TB, dir, name, dbType string, nets []Network) string {
	t.Helper()
	return writeDB(t, dir, name, dbType, 4, nets)
}

func writeDB(t testing.TB, dir, name, dbType string, ipVersion int, nets []Network) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := Write(path, dbType, ipVersion, nets); err != nil {
		t.Fatal(err)
	}
	return path
}

// Write writes nets as a MaxMind-format database of dbType (ipVersion 4 or
// 6) to path, as geoipupdate does: a new file renamed over the old one.
func Write(path, dbType string, ipVersion int, nets []Network) error {
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		Description:             map[string]string{"en": "nginx-shipper test database"},
		IncludeReservedNetworks: true,
		IPVersion:               ipVersion,
		RecordSize:              28,
	})
	if err != nil {
		return err
	}
	for _, n := range nets {
		_, ipnet, err := net.ParseCIDR(n.CIDR)
		if err != nil {
			return err
		}
		if err := tree.Insert(ipnet, n.Rec); err != nil {
			return fmt.Errorf("insert %s: %w", n.CIDR, err)
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Names is an mmdb "names" map.
func Names(en string) mmdbtype.Map {
	return mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(en), "de": mmdbtype.String(en + " (de)")}}
}

// CityRecord is a GeoIP2/GeoLite2 City (and DB-IP Lite City) record.
func CityRecord(cc, country, region, city string, lat, lon float64) mmdbtype.Map {
	c := Names(country)
	c["iso_code"] = mmdbtype.String(cc)
	m := mmdbtype.Map{
		"country":            c,
		"registered_country": c,
		"location":           mmdbtype.Map{"latitude": mmdbtype.Float64(lat), "longitude": mmdbtype.Float64(lon), "accuracy_radius": mmdbtype.Uint16(20)},
	}
	if region != "" {
		m["subdivisions"] = mmdbtype.Slice{Names(region)}
	}
	if city != "" {
		m["city"] = Names(city)
	}
	return m
}

// ASNRecord is a GeoLite2 ASN (and DB-IP, ip-location-db ASN) record.
func ASNRecord(asn uint32, org string) mmdbtype.Map {
	return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(asn), "autonomous_system_organization": mmdbtype.String(org)}
}

// CityDB: known networks to known places, GeoIP2 City layout.
func CityDB(t testing.TB, dir string) string {
	return WriteDB(t, dir, "GeoLite2-City.mmdb", "GeoLite2-City", []Network{
		{CIDR: "81.2.69.0/24", Rec: CityRecord("GB", "United Kingdom", "England", "London", 51.5142, -0.0931)},
		{CIDR: "2a02:8100::/32", Rec: CityRecord("DE", "Germany", "Hesse", "Frankfurt am Main", 50.1188, 8.6843)},
		{CIDR: "203.0.113.0/24", Rec: CityRecord("JP", "Japan", "Tokyo", "Tokyo", 35.6895, 139.6917)},
		{CIDR: "198.51.100.0/24", Rec: CityRecord("US", "United States", "", "", 37.751, -97.822)}, // country-level only
		{CIDR: "2001:db8::/32", Rec: CityRecord("FR", "France", "Île-de-France", "Paris \"Centre\"", 48.8566, 2.3522)},
	})
}

// ASNDB: the ASNs of CityDB's networks (not all of them).
func ASNDB(t testing.TB, dir string) string {
	return WriteDB(t, dir, "GeoLite2-ASN.mmdb", "GeoLite2-ASN", []Network{
		{CIDR: "81.2.69.0/24", Rec: ASNRecord(20712, "Andrews & Arnold Ltd")},
		{CIDR: "203.0.113.0/24", Rec: ASNRecord(64496, "Example Net")},
		{CIDR: "198.51.100.0/24", Rec: ASNRecord(64497, "Documentation AS")},
		{CIDR: "2001:db8::/32", Rec: ASNRecord(64498, "Doc v6")},
	})
}
