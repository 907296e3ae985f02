package enrich

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
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

// openDB opens and checks an mmdb file, mapped whole in memory when
// populate (see openMMDB); the error names key. The check
// reads the whole search tree once, front to back, and checks that every
// record of every node is a node, empty, or a pointer into the data
// section (so no lookup can leave the file or the tree), then decodes
// records into what the lines read (mmRecord): every record of a small
// database, the first checkAll and then one in checkSample of a large one
// (a real City database has millions of networks and hundreds of
// thousands of records: walking its networks and decoding every record
// took more than 5 s of CPU at every start and reload; the scan takes
// well under a second). So a truncated or corrupt file is refused here, not
// found line by line; a record the sample missed that does not decode
// gives no geo. maxminddb's own Verify is stricter than the format and
// refuses real databases (the ip-location-db files have an empty
// description), so it is not used.
func openDB(key, path string, populate bool) (*maxminddb.Reader, fileID, error) {
	id, err := statID(path)
	if err != nil {
		return nil, fileID{}, fmt.Errorf("%s = %q: %w", key, path, err)
	}
	var r *maxminddb.Reader
	if populate {
		r, err = openMMDB(path)
	} else {
		r, err = maxminddb.Open(path)
	}
	if err != nil {
		return nil, fileID{}, fmt.Errorf("%s = %q: not a readable MaxMind DB (.mmdb) file: %w", key, path, err)
	}
	if checked.has(id) {
		return r, id, nil // Validate checked this very file; New opens it again
	}
	if err := checkDB(r, path); err != nil {
		r.Close()
		return nil, fileID{}, fmt.Errorf("%s = %q: corrupt MaxMind DB: %w", key, path, err)
	}
	checked.add(id)
	return r, id, nil
}

// checked remembers the identities of the files checkDB passed, so that
// the agent's start (validate, then New) checks each database once.
var checked checkedFiles

type checkedFiles struct {
	mu  sync.Mutex
	ids map[fileID]bool
}

func (c *checkedFiles) has(id fileID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return id != (fileID{}) && c.ids[id]
}

func (c *checkedFiles) add(id fileID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil || len(c.ids) >= 16 {
		c.ids = map[fileID]bool{}
	}
	c.ids[id] = true
}

// checkAll records are all decoded by checkDB; past them, one in
// checkSample.
const (
	checkAll    = 4096
	checkSample = 1024
)

// metadataMarker starts an mmdb file's metadata, at most 128 KiB from its
// end.
var metadataMarker = []byte("\xAB\xCD\xEFMaxMind.com")

func checkDB(r *maxminddb.Reader, path string) error {
	md := r.Metadata
	if md.NodeCount == 0 {
		return errors.New("no search tree")
	}
	nodeBytes := int64(md.RecordSize) / 4
	switch md.RecordSize {
	case 24, 28, 32:
	default:
		return fmt.Errorf("record size %d", md.RecordSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	treeSize := int64(md.NodeCount) * nodeBytes
	// The data section lies between the tree (and its 16-byte separator)
	// and the metadata.
	tail := min(size, 128<<10)
	buf := make([]byte, tail)
	if _, err := f.ReadAt(buf, size-tail); err != nil {
		return err
	}
	m := bytes.LastIndex(buf, metadataMarker)
	if m < 0 {
		return errors.New("no metadata")
	}
	dataSize := size - tail + int64(m) - treeSize - 16
	if dataSize < 0 {
		return errors.New("the search tree is longer than the file")
	}
	nodes := uint64(md.NodeCount)
	var offsets []uintptr // of the records to decode
	seen := 0
	last := uint64(0)
	check := func(v uint64) error {
		if v <= nodes {
			return nil // a node, or empty
		}
		off := v - nodes - 16
		if off >= uint64(dataSize) {
			return fmt.Errorf("a record points past the data section (%d >= %d)", off, dataSize)
		}
		if v != last {
			last = v
			seen++
			if seen <= checkAll || seen%checkSample == 0 {
				offsets = append(offsets, uintptr(off))
			}
		}
		return nil
	}
	rd := io.NewSectionReader(f, 0, treeSize)
	chunk := make([]byte, nodeBytes<<16)
	for i := uint64(0); i < nodes; {
		k := min(nodes-i, 1<<16)
		b := chunk[:int64(k)*nodeBytes]
		if _, err := io.ReadFull(rd, b); err != nil {
			return fmt.Errorf("search tree: %w", err)
		}
		for ; len(b) > 0; b, i = b[nodeBytes:], i+1 {
			var left, right uint64
			switch md.RecordSize {
			case 24:
				left = uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
				right = uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
			case 28:
				left = uint64(b[3]&0xF0)<<20 | uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
				right = uint64(b[3]&0x0F)<<24 | uint64(b[4])<<16 | uint64(b[5])<<8 | uint64(b[6])
			case 32:
				left = uint64(binary.BigEndian.Uint32(b[:4]))
				right = uint64(binary.BigEndian.Uint32(b[4:8]))
			}
			if left > nodes || right > nodes {
				if err := check(left); err != nil {
					return fmt.Errorf("node %d: %w", i, err)
				}
				if err := check(right); err != nil {
					return fmt.Errorf("node %d: %w", i, err)
				}
			}
		}
	}
	for _, off := range offsets {
		var rec mmRecord
		if err := r.LookupOffset(off).Decode(&rec); err != nil {
			return fmt.Errorf("record at offset %d: %w", off, err)
		}
	}
	return nil
}

// public reports whether a is an address a database can place: not
// private, loopback, link-local, multicast or unspecified (netip's
// IsPrivate, IsLoopback, IsLinkLocalUnicast, IsMulticast, IsUnspecified,
// IsInterfaceLocalMulticast and IsLinkLocalMulticast, an IPv4-mapped
// address as its IPv4 address, as they do, but for ::ffff:0.0.0.0, which
// IsUnspecified does not call unspecified). It is on every line's path, so
// it reads the address's leading bytes once instead of making the seven
// calls (TestPublicMatchesNetip checks that it is the same function).
func public(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		switch b[0] {
		case 10, 127: // private, loopback
			return false
		case 169:
			return b[1] != 254 // link-local
		case 172:
			return b[1]&0xF0 != 16 // private
		case 192:
			return b[1] != 168 // private
		case 0:
			return b != [4]byte{} || a.Is4In6() // unspecified (netip: not ::ffff:0.0.0.0)
		}
		return b[0] < 224 || b[0] > 239 // multicast
	}
	b := a.As16()
	switch {
	case b[0] == 0xFF: // multicast, interface- and link-local multicast
		return false
	case b[0]&0xFE == 0xFC: // private (unique local)
		return false
	case b[0] == 0xFE && b[1]&0xC0 == 0x80: // link-local
		return false
	case b[0] == 0:
		hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
		// Unspecified (netip: not with a zone), loopback.
		return hi != 0 || lo > 1 || lo == 0 && a.Zone() != ""
	}
	return true
}

// generation is one pair of open databases and the geo caches filled
// from them. It is replaced whole on reload; the old one's mappings are
// released by a cleanup on its Readers when the last line using it is
// done (openMMDB).
type generation struct {
	geo, asn     *maxminddb.Reader
	geoID, asnID fileID
	cache        *geoCache // by record offsets: fragments shared by a network's addresses
	nets         *netCache // by address block, in front of the tree walks
}

// The block sizes of the network cache, shortest first: an address's
// fragment is cached under its /24 (IPv4) or /48 (IPv6) when the network
// the databases place it in holds that whole block, else under the next
// longer block that fits, down to the address itself.
var (
	blocks4 = [...]int{24, 32}
	blocks6 = [...]int{48, 64, 128}
)

// geoFrag returns the "geo" fragments for address a: the JSON member
// (with its leading comma; "" when no database knows a) and the Avro union
// (null when unknown).
func (g *generation) geoFrag(a netip.Addr) frag {
	a = a.Unmap()
	if !public(a) || g.geo == nil && g.asn == nil {
		return noGeo
	}
	blocks := blocks6[:]
	if a.Is4() {
		blocks = blocks4[:]
	}
	for _, b := range blocks {
		if f, ok := g.nets.get(blockKey(a, b)); ok {
			g.nets.found(true)
			return f
		}
	}
	g.nets.found(false)
	f, bits := g.lookup(a)
	for _, b := range blocks {
		if b >= bits {
			g.nets.set(blockKey(a, b), f)
			break
		}
	}
	return f
}

// noGeo is the fragment of an address no database knows.
var noGeo = frag{avro: avroNull}

// appendGeo appends the "geo" member for address a (with its leading
// comma), or nothing when no database knows it.
func (g *generation) appendGeo(dst []byte, a netip.Addr) []byte {
	return append(dst, g.geoFrag(a).json...)
}

// lookup walks the databases' trees for a and returns its fragment from
// the record cache, rendering it on a miss (noGeo when no database knows
// a), and the length of the network in which every address has the same
// fragment: the longer of the two databases' networks of a (each holds a,
// so one holds the other), whether they found a record or not.
func (g *generation) lookup(a netip.Addr) (frag, int) {
	k := geoKey{notFound, notFound}
	bits := 0
	var rg, ra maxminddb.Result
	if g.geo != nil {
		rg = g.geo.Lookup(a)
		bits = max(bits, netBits(a, rg))
		if rg.Found() {
			k.city = rg.Offset()
		}
	}
	if g.asn != nil {
		ra = g.asn.Lookup(a)
		bits = max(bits, netBits(a, ra))
		if ra.Found() {
			k.asn = ra.Offset()
		}
	}
	if k.city == notFound && k.asn == notFound {
		return noGeo, bits
	}
	f, ok := g.cache.get(k)
	g.cache.found(ok)
	if !ok {
		var gf geoFields
		if k.city != notFound {
			gf.from(rg)
		}
		if k.asn != notFound {
			gf.from(ra)
		}
		f = frag{json: string(gf.append(nil)), avro: string(gf.appendAvro(nil))}
		g.cache.set(k, f)
	}
	return f, bits
}

// netBits is the length, in a's family, of the network res holds for a:
// an IPv4 address in a part of an IPv6 tree above its IPv4 subtree is in a
// network of all IPv4 (0). A failed lookup (an IPv6 address in an
// IPv4-only database) counts for the address alone.
func netBits(a netip.Addr, res maxminddb.Result) int {
	if res.Err() != nil {
		return a.BitLen()
	}
	p := res.Prefix()
	if p.Addr().Is4() != a.Is4() {
		return 0
	}
	return p.Bits()
}

// geoFields are the members of "geo"; set* say which are known.
type geoFields struct {
	countryCode, country, region, city, asOrg string
	lat, lon                                  float64
	asn                                       uint64
	setLat, setLon, setASN                    bool
}

// mmRecord is every member read from a database record, in all the
// layouts doc.go lists; the reflection decoder skips the rest (other
// languages, accuracy, postal codes, ...) without decoding it.
type mmRecord struct {
	Country struct {
		ISOCode string  `maxminddb:"iso_code"`
		Names   enNames `maxminddb:"names"`
	} `maxminddb:"country"`
	CountryCode  string `maxminddb:"country_code"`
	CountryName  string `maxminddb:"country_name"`
	Subdivisions []struct {
		Names enNames `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	State1   string   `maxminddb:"state1"`
	City     cityName `maxminddb:"city"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
	Latitude  flexFloat `maxminddb:"latitude"`
	Longitude flexFloat `maxminddb:"longitude"`
	ASN       *uint64   `maxminddb:"autonomous_system_number"`
	ASOrg     string    `maxminddb:"autonomous_system_organization"`
}

type enNames struct {
	En string `maxminddb:"en"`
}

// cityName is GeoIP2's city {names: {en: ...}} or ip-location-db's city
// string.
type cityName string

// UnmarshalMaxMindDB implements mmdbdata.Unmarshaler.
func (c *cityName) UnmarshalMaxMindDB(d *mmdbdata.Decoder) error {
	k, err := d.PeekKind()
	if err != nil {
		return err
	}
	switch k {
	case mmdbdata.KindString:
		s, err := d.ReadString()
		*c = cityName(s)
		return err
	case mmdbdata.KindMap:
		return readEnName(d, (*string)(c))
	}
	return d.SkipValue()
}

// readEnName reads names.en of a map at d.
func readEnName(d *mmdbdata.Decoder, dst *string) error {
	m, _, err := d.ReadMap()
	if err != nil {
		return err
	}
	for key, err := range m {
		if err != nil {
			return err
		}
		if string(key) != "names" {
			if err := d.SkipValue(); err != nil {
				return err
			}
			continue
		}
		names, _, err := d.ReadMap()
		if err != nil {
			return err
		}
		for lang, err := range names {
			if err != nil {
				return err
			}
			if string(lang) == "en" {
				if *dst, err = d.ReadString(); err != nil {
					return err
				}
				continue
			}
			if err := d.SkipValue(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flexFloat is a coordinate stored as a double or (ip-location-db) a float.
type flexFloat struct {
	v   float64
	set bool
}

// UnmarshalMaxMindDB implements mmdbdata.Unmarshaler.
func (f *flexFloat) UnmarshalMaxMindDB(d *mmdbdata.Decoder) error {
	k, err := d.PeekKind()
	if err != nil {
		return err
	}
	switch k {
	case mmdbdata.KindFloat64:
		f.v, err = d.ReadFloat64()
		f.set = err == nil
		return err
	case mmdbdata.KindFloat32:
		x, err := d.ReadFloat32()
		if err != nil {
			return err
		}
		// The shortest decimal of the float32, not of its float64 widening
		// (50.11, not 50.11000061035156).
		f.v, _ = strconv.ParseFloat(strconv.FormatFloat(float64(x), 'f', -1, 32), 64)
		f.set = true
		return nil
	}
	return d.SkipValue()
}

// from fills the members still unknown from one database record.
func (f *geoFields) from(res maxminddb.Result) {
	var r mmRecord
	if res.Decode(&r) != nil {
		return
	}
	setStr := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	setStr(&f.countryCode, r.Country.ISOCode)
	setStr(&f.countryCode, r.CountryCode)
	setStr(&f.country, r.Country.Names.En)
	setStr(&f.country, r.CountryName)
	if len(r.Subdivisions) > 0 {
		setStr(&f.region, r.Subdivisions[0].Names.En)
	}
	setStr(&f.region, r.State1)
	setStr(&f.city, string(r.City))
	if !f.setLat {
		if r.Location.Latitude != nil {
			f.lat, f.setLat = *r.Location.Latitude, true
		} else if r.Latitude.set {
			f.lat, f.setLat = r.Latitude.v, true
		}
	}
	if !f.setLon {
		if r.Location.Longitude != nil {
			f.lon, f.setLon = *r.Location.Longitude, true
		} else if r.Longitude.set {
			f.lon, f.setLon = r.Longitude.v, true
		}
	}
	if r.ASN != nil && !f.setASN {
		f.asn, f.setASN = *r.ASN, true
	}
	setStr(&f.asOrg, r.ASOrg)
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

// appendAvro renders the Avro of the "geo" field: the union's null when no
// member is known (as append leaves it out), else the record, each member
// a nullable union, latitude and longitude only together (as in JSON).
func (f *geoFields) appendAvro(dst []byte) []byte {
	both := f.setLat && f.setLon
	if f.countryCode == "" && f.country == "" && f.region == "" && f.city == "" && !both && !f.setASN && f.asOrg == "" {
		return append(dst, 0)
	}
	dst = append(dst, 2)
	dst = appendAvroOptString(dst, f.countryCode)
	dst = appendAvroOptString(dst, f.country)
	dst = appendAvroOptString(dst, f.region)
	dst = appendAvroOptString(dst, f.city)
	if both {
		dst = appendAvroDouble(append(dst, 2), f.lat)
		dst = appendAvroDouble(append(dst, 2), f.lon)
	} else {
		dst = append(dst, 0, 0)
	}
	if f.setASN {
		dst = appendAvroLong(append(dst, 2), int64(f.asn))
	} else {
		dst = append(dst, 0)
	}
	return appendAvroOptString(dst, f.asOrg)
}
