package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nginx-shipper/nginx-shipper/agent/enrich/enrichtest"
)

func TestConfigEnrich(t *testing.T) {
	dir := t.TempDir()
	city, asn := enrichtest.CityDB(t, dir), enrichtest.ASNDB(t, dir)
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not an mmdb file\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	mainFormat := strings.Replace(baseConfig, "[[inputs]]", "[[inputs]]\nformat = \"main\"", 1)
	ok := mainFormat + `
[enrich]
client_ip_header = "x_forwarded_for"
trusted_proxies = ["10.0.0.0/8", "192.168.0.0/16", "127.0.0.1/32"]
geoip_database = "` + city + `"
asn_database = "` + asn + `"
user_agent = true
`
	c, err := ParseConfig("t.toml", []byte(ok))
	if err != nil {
		t.Fatalf("valid [enrich]: %v", err)
	}
	if c.Enrich == nil || !c.Enrich.UAEnabled() || c.Enrich.ReloadInterval.Duration <= 0 {
		t.Fatalf("[enrich] not decoded with defaults: %+v", c.Enrich)
	}
	// One input logs the header, another does not: valid (the other is
	// enriched as lines without the header).
	two := strings.Replace(ok, "[sinks.kafka]", "[[inputs]]\npaths = [\"/var/log/nginx/b.log\"]\nformat = \"combined\"\n[sinks.kafka]", 1)
	if _, err := ParseConfig("t.toml", []byte(two)); err != nil {
		t.Errorf("one of two inputs logs client_ip_header: %v", err)
	}
	none := strings.Replace(two, `format = "main"`, `format = "combined"`, 1)
	if _, err := ParseConfig("t.toml", []byte(none)); err == nil || !strings.Contains(err.Error(), "inputs[1]: enrich.client_ip_header") {
		t.Errorf("no input logs client_ip_header: %v", err)
	}
	if c, err := ParseConfig("t.toml", []byte(baseConfig)); err != nil || c.Enrich != nil {
		t.Fatalf("without [enrich]: %v, %+v", err, c.Enrich)
	}
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"missing database", city, dir + "/nope.mmdb", "enrich.geoip_database"},
		{"corrupt database", asn, garbage, "enrich.asn_database"},
		{"bad proxy", `"192.168.0.0/16"`, `"192.168.0.0/99"`, "enrich.trusted_proxies[1]"},
		{"unknown key", "user_agent = true", "user_agent = true\nuser_agents = true", "unknown key enrich.user_agents"},
		{"header not logged", `"x_forwarded_for"`, `"x_real_ip"`, `inputs[0]: enrich.client_ip_header = "x_real_ip": the log_format does not log $http_x_real_ip`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("t.toml", []byte(strings.Replace(ok, tc.from, tc.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestConfigEnrichMemoryLimit: with [enrich], memory_limit's default grows
// by the enricher's cache budget; a memory_limit set by hand stays.
func TestConfigEnrichMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	city := enrichtest.CityDB(t, dir)
	plain, err := ParseConfig("t.toml", []byte(baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	enr := baseConfig + "\n[enrich]\ngeoip_database = \"" + city + "\"\n"
	c, err := ParseConfig("t.toml", []byte(enr))
	if err != nil {
		t.Fatal(err)
	}
	if want := plain.Agent.MemoryLimit + c.Enrich.MemoryBudget(); c.Agent.MemoryLimit != want || c.Enrich.MemoryBudget() < 16<<20 {
		t.Errorf("memory_limit with [enrich] = %d, want %d (%d + the cache budget %d)", c.Agent.MemoryLimit, want, plain.Agent.MemoryLimit, c.Enrich.MemoryBudget())
	}
	set := strings.Replace(enr, "[agent]", "[agent]\nmemory_limit = 67108864", 1)
	if !strings.Contains(set, "memory_limit") {
		t.Fatal("baseConfig has no [agent] table")
	}
	if c, err := ParseConfig("t.toml", []byte(set)); err != nil || c.Agent.MemoryLimit != 64<<20 {
		t.Errorf("memory_limit set by hand: %d, %v; want 67108864", c.Agent.MemoryLimit, err)
	}
}
