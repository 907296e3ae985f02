package enrich

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"github.com/oschwald/maxminddb-golang/v2"
)

// notFound is the geoKey member of a database that has no record for the
// address (or is not configured).
const notFound = ^uintptr(0)

// fileID is what tells one version of a database file from the next:
// geoipupdate renames a new file over the old one (new inode); a copy in
// place changes size or mtime.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), uint64(st.Ino)
	}
	return id, nil
}

// openDB opens and checks an mmdb file; the error names key. The check
// walks the whole search tree and decodes the records it points to (each
// distinct one once, within a bounded memory of offsets), so a truncated
// or corrupt file is refused here, not found line by line. maxminddb's own
// Verify is stricter than the format and refuses real databases (the
// ip-location-db files have an empty description), so it is not used.
func openDB(key, path string) (*maxminddb.Reader, fileID, error) {
	id, err := statID(path)
	if err != nil {
		return nil, fileID{}, fmt.Errorf("%s = %q: %w", key, path, err)
	}
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fileID{}, fmt.Errorf("%s = %q: not a readable MaxMind DB (.mmdb) file: %w", key, path, err)
	}
	if err := checkDB(r); err != nil {
		r.Close()
		return nil, fileID{}, fmt.Errorf("%s = %q: corrupt MaxMind DB: %w", key, path, err)
	}
	return r, id, nil
}

func checkDB(r *maxminddb.Reader) error {
	if r.Metadata.NodeCount == 0 {
		return errors.New("no search tree")
	}
	seen := make(map[uintptr]struct{})
	last := notFound
	for res := range r.Networks() {
		if err := res.Err(); err != nil {
			return err
		}
		off := res.Offset()
		if off == last {
			continue
		}
		last = off
		if _, ok := seen[off]; ok {
			continue
		}
		if len(seen) >= 1<<16 {
			clear(seen)
		}
		seen[off] = struct{}{}
		var m map[string]any
		if err := res.Decode(&m); err != nil {
			return fmt.Errorf("record at offset %d: %w", off, err)
		}
	}
	return nil
}

// public reports whether a is an address a database can place: not
// private, loopback, link-local, multicast or unspecified.
func public(a netip.Addr) bool {
	return a.IsValid() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() &&
		!a.IsMulticast() && !a.IsUnspecified() && !a.IsInterfaceLocalMulticast() && !a.IsLinkLocalMulticast()
}

// generation is one pair of open databases and the geo cache filled from
// them. It is replaced whole on reload; the old one's mmaps are released
// by maxminddb's cleanup when the last line using it is done.
type generation struct {
	geo, asn     *maxminddb.Reader
	geoID, asnID fileID
	cache        geoCache
}

// appendGeo appends the "geo" member for address a (with its leading
// comma), or nothing when no database knows it.
func (g *generation) appendGeo(dst []byte, a netip.Addr) []byte {
	a = a.Unmap()
	if !public(a) {
		return dst
	}
	k := geoKey{notFound, notFound}
	var rg, ra maxminddb.Result
	if g.geo != nil {
		if rg = g.geo.Lookup(a); rg.Found() {
			k.city = rg.Offset()
		}
	}
	if g.asn != nil {
		if ra = g.asn.Lookup(a); ra.Found() {
			k.asn = ra.Offset()
		}
	}
	if k.city == notFound && k.asn == notFound {
		return dst
	}
	frag, ok := g.cache.get(k)
	if !ok {
		var gf geoFields
		if k.city != notFound {
			gf.from(rg)
		}
		if k.asn != notFound {
			gf.from(ra)
		}
		frag = string(gf.append(nil))
		g.cache.set(k, frag)
	}
	return append(dst, frag...)
}

// geoFields are the members of "geo"; set* say which are known.
type geoFields struct {
	countryCode, country, region, city, asOrg string
	lat, lon                                  float64
	asn                                       uint64
	setLat, setLon, setASN                    bool
}

// from fills the members still unknown from one database record, reading
// every layout doc.go lists.
func (f *geoFields) from(res maxminddb.Result) {
	var m map[string]any
	if res.Decode(&m) != nil {
		return
	}
	setStr := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	country := asMap(m["country"])
	setStr(&f.countryCode, asString(country["iso_code"]))
	setStr(&f.countryCode, asString(m["country_code"]))
	setStr(&f.country, enName(country))
	setStr(&f.country, asString(m["country_name"]))
	if subs, ok := m["subdivisions"].([]any); ok && len(subs) > 0 {
		setStr(&f.region, enName(asMap(subs[0])))
	}
	setStr(&f.region, asString(m["state1"]))
	switch c := m["city"].(type) {
	case map[string]any:
		setStr(&f.city, enName(c))
	case string:
		setStr(&f.city, c)
	}
	loc := asMap(m["location"])
	for _, src := range []map[string]any{loc, m} {
		if v, ok := asFloat(src["latitude"]); ok && !f.setLat {
			f.lat, f.setLat = v, true
		}
		if v, ok := asFloat(src["longitude"]); ok && !f.setLon {
			f.lon, f.setLon = v, true
		}
	}
	if v, ok := asUint(m["autonomous_system_number"]); ok && !f.setASN {
		f.asn, f.setASN = v, true
	}
	setStr(&f.asOrg, asString(m["autonomous_system_organization"]))
}

// append renders `,"geo":{...}`, or nothing when no member is known.
func (f *geoFields) append(dst []byte) []byte {
	n0 := len(dst)
	dst = append(dst, `,"geo":{`...)
	n := len(dst)
	dst = appendStrMember(dst, n, "country_code", f.countryCode)
	dst = appendStrMember(dst, n, "country", f.country)
	dst = appendStrMember(dst, n, "region", f.region)
	dst = appendStrMember(dst, n, "city", f.city)
	if f.setLat && f.setLon {
		dst = appendNumMember(dst, n, "latitude", f.lat)
		dst = appendNumMember(dst, n, "longitude", f.lon)
	}
	if f.setASN {
		dst = appendIntMember(dst, n, "asn", f.asn)
	}
	dst = appendStrMember(dst, n, "as_org", f.asOrg)
	if len(dst) == n {
		return dst[:n0]
	}
	return append(dst, '}')
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func asString(v any) string { s, _ := v.(string); return s }

func enName(m map[string]any) string { return asString(asMap(m["names"])["en"]) }

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		// The shortest decimal of the float32, not of its float64 widening
		// (50.11, not 50.11000061035156).
		v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'f', -1, 32), 64)
		return v, true
	}
	return 0, false
}

func asUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case uint64:
		return x, true
	case uint32:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case int:
		if x >= 0 {
			return uint64(x), true
		}
	case int32:
		if x >= 0 {
			return uint64(x), true
		}
	case int64:
		if x >= 0 {
			return uint64(x), true
		}
	}
	return 0, false
}
