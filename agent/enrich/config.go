package enrich

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a Go duration string.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (want e.g. \"1m\"): %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the [enrich] table; its presence turns enrichment on.
type Config struct {
	// ClientIPHeader is the request header walked for the client address,
	// as nginx's real_ip_header, named as the log_format logs it
	// (x_forwarded_for for $http_x_forwarded_for; "X-Forwarded-For" is
	// accepted too). "": client_ip is remote_addr.
	ClientIPHeader string `toml:"client_ip_header"`
	// TrustedProxies are the addresses and CIDRs whose header entries are
	// believed, as nginx's set_real_ip_from (real_ip_recursive on).
	TrustedProxies []string `toml:"trusted_proxies"`
	// GeoIPDatabase and ASNDatabase are .mmdb files (optional).
	GeoIPDatabase string `toml:"geoip_database"`
	ASNDatabase   string `toml:"asn_database"`
	// UserAgent turns the ua fields on (default true).
	UserAgent *bool `toml:"user_agent"`
	// ReloadInterval is how often the database files are checked for
	// replacement (default 1m).
	ReloadInterval Duration `toml:"reload_interval"`
	// UACacheSize bounds the user agents remembered (default 16384).
	UACacheSize int `toml:"ua_cache_size"`
	// GeoCacheSize bounds the geo records remembered (default 16384).
	GeoCacheSize int `toml:"geo_cache_size"`
}

// Defaults fills zero values with defaults.
func (c *Config) Defaults() {
	if c.UserAgent == nil {
		t := true
		c.UserAgent = &t
	}
	if c.ReloadInterval.Duration == 0 {
		c.ReloadInterval.Duration = time.Minute
	}
	if c.UACacheSize == 0 {
		c.UACacheSize = 1 << 14
	}
	if c.GeoCacheSize == 0 {
		c.GeoCacheSize = 1 << 14
	}
}

// UAEnabled reports whether the ua fields are on (default true).
func (c *Config) UAEnabled() bool { return c.UserAgent == nil || *c.UserAgent }

// HeaderVariable returns the nginx variable of client_ip_header
// ("http_x_forwarded_for"), "" when none.
func (c *Config) HeaderVariable() string {
	h := strings.ToLower(strings.TrimSpace(c.ClientIPHeader))
	if h == "" {
		return ""
	}
	h = strings.ReplaceAll(h, "-", "_")
	h = strings.TrimPrefix(h, "http_")
	return "http_" + h
}

// Validate checks the table, opening the databases; each error names its
// key (prefixed "enrich."). A missing, unreadable or corrupt database is
// an error here.
func (c *Config) Validate() error {
	o, err := c.open(false)
	if o != nil {
		o.gen.close() // New opens them again, for its lines
	}
	return err
}

// opened is what Validate builds and New keeps.
type opened struct {
	trusted Trusted
	gen     *generation
}

// open checks the table and opens the databases, mapped whole in memory
// when populate (New's, for its lines; Validate only checks them).
func (c *Config) open(populate bool) (*opened, error) {
	var errs []error
	o := &opened{}
	if h := strings.TrimSpace(c.ClientIPHeader); h != "" {
		for _, r := range h {
			if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				errs = append(errs, fmt.Errorf("enrich.client_ip_header = %q: not a header name (want e.g. \"x_forwarded_for\")", c.ClientIPHeader))
				break
			}
		}
	}
	tr, err := ParseTrusted(c.TrustedProxies)
	if err != nil {
		errs = append(errs, fmt.Errorf("enrich.%w", err))
	}
	o.trusted = tr
	if c.ClientIPHeader != "" && len(c.TrustedProxies) == 0 {
		errs = append(errs, errors.New("enrich.trusted_proxies: empty, so enrich.client_ip_header is never walked (nginx's realip needs set_real_ip_from); list the load balancers' addresses"))
	}
	if c.UACacheSize < 0 {
		errs = append(errs, fmt.Errorf("enrich.ua_cache_size = %d: must be positive", c.UACacheSize))
	}
	if c.GeoCacheSize < 0 {
		errs = append(errs, fmt.Errorf("enrich.geo_cache_size = %d: must be positive", c.GeoCacheSize))
	}
	if c.ReloadInterval.Duration < 0 {
		errs = append(errs, fmt.Errorf("enrich.reload_interval = %v: must be positive", c.ReloadInterval.Duration))
	}
	g := &generation{}
	if c.GeoIPDatabase != "" {
		r, id, err := openDB("enrich.geoip_database", c.GeoIPDatabase, populate)
		if err != nil {
			errs = append(errs, err)
		}
		g.geo, g.geoID = r, id
	}
	if c.ASNDatabase != "" {
		r, id, err := openDB("enrich.asn_database", c.ASNDatabase, populate)
		if err != nil {
			errs = append(errs, err)
		}
		g.asn, g.asnID = r, id
	}
	if err := errors.Join(errs...); err != nil {
		g.close()
		return nil, err
	}
	o.gen = g
	return o, nil
}

func (g *generation) close() {
	if g == nil {
		return
	}
	if g.geo != nil {
		g.geo.Close()
	}
	if g.asn != nil {
		g.asn.Close()
	}
}

// MemoryBudget is the most memory the enricher's caches and parser hold
// with c's sizes, for the agent's default memory_limit: the user-agent
// parser's tables (about 6 MiB), each user-agent entry (its key, at most
// 512 bytes, and its JSON and Avro fragments) and each geo record and
// address block. Without it the soft limit meant for the events in
// flight leaves the collector little room once the caches fill: it took
// 15 % of the enriched agent's CPU in make bench, 2 % with the budget
// (README "Enrichment").
func (c *Config) MemoryBudget() int64 {
	cc := *c
	cc.Defaults()
	b := int64(2 << 20) // the enricher, databases' metadata, decoder caches
	if cc.UAEnabled() {
		b += 6<<20 + int64(cc.UACacheSize)*1024
	}
	if cc.GeoIPDatabase != "" || cc.ASNDatabase != "" {
		b += int64(cc.GeoCacheSize)*640 + int64(netCacheSize(cc.GeoCacheSize))*96
	}
	return b
}
