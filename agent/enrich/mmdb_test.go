package enrich

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// network is one entry of a test database.
type network struct {
	cidr string
	rec  mmdbtype.Map
}

// writeDB writes an mmdb file of the given type with the networks and
// returns its path. Documentation and private ranges are allowed, so that
// tests can place the generator's addresses.
func writeDB(t testing.TB, dir, name, dbType string, nets []network) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		Description:             map[string]string{"en": "nginx-shipper test database"},
		IncludeReservedNetworks: true,
		RecordSize:              28,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		_, ipnet, err := net.ParseCIDR(n.cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(ipnet, n.rec); err != nil {
			t.Fatalf("insert %s: %v", n.cidr, err)
		}
	}
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// As geoipupdate: a new file renamed over the old one.
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func names(en string) mmdbtype.Map {
	return mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(en), "de": mmdbtype.String(en + " (de)")}}
}

// cityRecord is a GeoIP2/GeoLite2 City (and DB-IP Lite City) record.
func cityRecord(cc, country, region, city string, lat, lon float64) mmdbtype.Map {
	c := names(country)
	c["iso_code"] = mmdbtype.String(cc)
	m := mmdbtype.Map{
		"country":            c,
		"registered_country": c,
		"location":           mmdbtype.Map{"latitude": mmdbtype.Float64(lat), "longitude": mmdbtype.Float64(lon), "accuracy_radius": mmdbtype.Uint16(20)},
	}
	if region != "" {
		m["subdivisions"] = mmdbtype.Slice{names(region)}
	}
	if city != "" {
		m["city"] = names(city)
	}
	return m
}

func asnRecord(asn uint32, org string) mmdbtype.Map {
	return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(asn), "autonomous_system_organization": mmdbtype.String(org)}
}

// cityDB: known networks to known places, GeoIP2 City layout.
func cityDB(t testing.TB, dir string) string {
	return writeDB(t, dir, "GeoLite2-City.mmdb", "GeoLite2-City", []network{
		{"81.2.69.0/24", cityRecord("GB", "United Kingdom", "England", "London", 51.5142, -0.0931)},
		{"2a02:8100::/32", cityRecord("DE", "Germany", "Hesse", "Frankfurt am Main", 50.1188, 8.6843)},
		{"203.0.113.0/24", cityRecord("JP", "Japan", "Tokyo", "Tokyo", 35.6895, 139.6917)},
		{"198.51.100.0/24", cityRecord("US", "United States", "", "", 37.751, -97.822)}, // country-level only
		{"2001:db8::/32", cityRecord("FR", "France", "Île-de-France", "Paris \"Centre\"", 48.8566, 2.3522)},
	})
}

func asnDB(t testing.TB, dir string) string {
	return writeDB(t, dir, "GeoLite2-ASN.mmdb", "GeoLite2-ASN", []network{
		{"81.2.69.0/24", asnRecord(20712, "Andrews & Arnold Ltd")},
		{"203.0.113.0/24", asnRecord(64496, "Example Net")},
		{"198.51.100.0/24", asnRecord(64497, "Documentation AS")},
		{"2001:db8::/32", asnRecord(64498, "Doc v6")},
	})
}
