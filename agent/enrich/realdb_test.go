package enrich

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// realDBRel is where .ci/deps installs the CC0 ip-location-db country
// database (npm @ip-location-db/geo-whois-asn-country-mmdb), under .tools.
const realDBRel = "npm/node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb"

func realDB(t *testing.T) string {
	t.Helper()
	var dirs []string
	if d := os.Getenv("NGINX_SHIPPER_TOOLS"); d != "" {
		dirs = append(dirs, d)
	}
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if mod := strings.TrimSpace(string(out)); mod != "" && mod != os.DevNull {
			dirs = append(dirs, filepath.Join(filepath.Dir(mod), ".tools"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, realDBRel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "the ip-location-db database is not installed (" + realDBRel + " under .tools)"
	if os.Getenv("NGINX_SHIPPER_REQUIRE_E2E") == "1" {
		t.Fatalf("%s (NGINX_SHIPPER_REQUIRE_E2E=1: failing instead of skipping; `make deps` installs it)", msg)
	}
	t.Skipf("%s; skipping (`make deps` installs it)", msg)
	return ""
}

// TestRealDatabase reads a real free database: it validates, and
// well-known addresses get their country.
func TestRealDatabase(t *testing.T) {
	path := realDB(t)
	cfg := Config{GeoIPDatabase: path}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate of a real database: %v", err)
	}
	e := mustNew(t, cfg)
	for addr, cc := range map[string]string{
		"8.8.8.8":           "US", // Google
		"81.2.69.142":       "GB", // MaxMind's own test address
		"2a00:1450:4001::1": "IE", // Google Ireland
		"::ffff:8.8.4.4":    "US",
	} {
		g := geoOf(t, e, addr)
		if g["country_code"] != cc {
			t.Errorf("%s: geo %v, want country_code %s", addr, g, cc)
		}
		for _, k := range []string{"city", "region", "latitude", "asn"} {
			if _, ok := g[k]; ok {
				t.Errorf("%s: %s present, but a country database does not have it: %v", addr, k, g)
			}
		}
	}
	for _, addr := range []string{"10.1.2.3", "192.168.0.1", "::1"} {
		if g := geoOf(t, e, addr); g != nil {
			t.Errorf("%s: geo %v, want none", addr, g)
		}
	}
}
