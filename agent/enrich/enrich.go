package enrich

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/oschwald/maxminddb-golang/v2"
)

// Enricher adds client_ip, geo and ua to events. It is shared by every
// harvester; each uses its own *State. New validates; Run reloads the
// databases when they are replaced; Close releases them.
type Enricher struct {
	cfg     Config
	log     *slog.Logger
	trusted Trusted
	ua      uaParser
	uaOn    bool
	uaCache *uaCache

	gen atomic.Pointer[generation]

	reloadMu sync.Mutex        // one CheckReload at a time, and Close
	failed   map[string]fileID // identity of a replacement that failed to open, per key
	closed   bool              // under reloadMu
}

// New opens the databases and builds the enricher; errors are Validate's.
// log may be nil.
func New(cfg Config, log *slog.Logger) (*Enricher, error) {
	cfg.Defaults()
	o, err := cfg.open(true)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Enricher{
		cfg: cfg, log: log, trusted: o.trusted, uaOn: cfg.UAEnabled(),
		failed: map[string]fileID{},
	}
	if e.uaOn {
		e.ua = newUAParser()
		e.uaCache = newUACache(cfg.UACacheSize)
	}
	o.gen.cache = newGeoCache(cfg.GeoCacheSize)
	o.gen.nets = newNetCache(netCacheSize(cfg.GeoCacheSize))
	e.gen.Store(o.gen)
	return e, nil
}

// Binding is where an input's log_format has the enricher's inputs.
type Binding struct {
	p                  *parser.Parser
	remote, header, ua int
}

// Bind finds the variables the enricher reads in p's format. A format
// that does not log client_ip_header is enriched as lines without the
// header (client_ip is remote_addr, as with nginx), one without
// $remote_addr gets no client_ip or geo, one without $http_user_agent no
// ua; Config.Check tells which (validate requires at least one input to
// log the header).
func (e *Enricher) Bind(p *parser.Parser) (*Binding, error) { return e.cfg.bind(p), nil }

// Check reports, naming enrich.client_ip_header, when the header is set
// and p's format does not log it.
func (c *Config) Check(p *parser.Parser) error {
	if v := c.HeaderVariable(); v != "" && c.bind(p).header < 0 {
		return fmt.Errorf("enrich.client_ip_header = %q: the log_format does not log $%s", c.ClientIPHeader, v)
	}
	return nil
}

func (c *Config) bind(p *parser.Parser) *Binding {
	b := &Binding{p: p, remote: p.FieldIndex("remote_addr"), header: -1, ua: -1}
	if v := c.HeaderVariable(); v != "" {
		b.header = p.FieldIndex(v)
	}
	if c.UAEnabled() {
		b.ua = p.FieldIndex("http_user_agent")
	}
	return b
}

// State is one harvester's scratch space; not safe for concurrent use. It
// also holds what the last Append or AppendAvro found, for AppendAvroFound.
type State struct {
	remote, header, ua []byte

	ipOK, uaOK bool
	ip         netip.Addr
	geo, uaf   frag
}

// Find looks up line's enrichment into st, for AppendAvroFound (Append
// and AppendAvro do it themselves).
func (e *Enricher) Find(b *Binding, st *State, line []byte, r *parser.Result) {
	st.ipOK, st.uaOK = false, false
	var ok bool
	if b.remote >= 0 {
		st.remote, ok = b.p.AppendValue(st.remote[:0], line, r, b.remote)
		if ok {
			var hdr []byte
			if b.header >= 0 {
				st.header, ok = b.p.AppendValue(st.header[:0], line, r, b.header)
				if ok {
					hdr = st.header
				}
			}
			if a, ok := ClientIP(st.remote, hdr, &e.trusted); ok {
				st.ip, st.ipOK = a, true
				st.geo = e.gen.Load().geoFrag(a)
			}
		}
	}
	if b.ua >= 0 {
		st.ua, ok = b.p.AppendValue(st.ua[:0], line, r, b.ua)
		if ok && len(st.ua) > 0 {
			st.uaf, st.uaOK = e.uaFrag(st.ua), true
		}
	}
}

// Append appends the enrichment members of line (parsed by b's parser
// into r without error) to dst, each with a leading comma, to be placed
// inside the event's object after its last member: see AppendEvent. It
// appends nothing when nothing is known. It does not allocate on the
// cached path (a user agent and geo record seen before).
func (e *Enricher) Append(dst []byte, b *Binding, st *State, line []byte, r *parser.Result) []byte {
	e.Find(b, st, line, r)
	if st.ipOK {
		dst = append(dst, `,"client_ip":"`...)
		dst = st.ip.AppendTo(dst)
		dst = append(dst, '"')
		dst = append(dst, st.geo.json...)
	}
	if st.uaOK {
		dst = append(dst, st.uaf.json...)
	}
	return dst
}

// AppendAvro appends the Avro binary of line's enrichment fields
// (client_ip, geo, ua: the fields the enriched schema appends to the
// original's, see doc.go) to dst, which holds the original event's Avro:
// the two make the enriched record. It does not allocate on the cached
// path.
func (e *Enricher) AppendAvro(dst []byte, b *Binding, st *State, line []byte, r *parser.Result) []byte {
	e.Find(b, st, line, r)
	return AppendAvroFound(dst, st)
}

// AppendAvroFound is AppendAvro of the line the last Append (or
// AppendAvro) with st looked up, without looking up again.
func AppendAvroFound(dst []byte, st *State) []byte {
	if !st.ipOK {
		dst = append(dst, 0, 0) // client_ip, geo
	} else {
		dst = append(dst, 2, 0)
		n := len(dst)
		dst = st.ip.AppendTo(dst)
		if l := len(dst) - n; l < 64 {
			dst[n-1] = byte(l << 1)
		} else { // a long zone: the length takes more than one byte
			var tmp [128]byte
			ip := append(tmp[:0], dst[n:]...)
			dst = appendAvroLong(dst[:n-1], int64(len(ip)))
			dst = append(dst, ip...)
		}
		if st.geo.avro == "" {
			dst = append(dst, 0)
		} else {
			dst = append(dst, st.geo.avro...)
		}
	}
	if !st.uaOK {
		return append(dst, 0)
	}
	return append(dst, st.uaf.avro...)
}

// AppendEvent appends to dst the enriched copy of event (a JSON object as
// Parse wrote it for line): the event with Append's members before its
// closing brace. event must not overlap dst's spare capacity.
func (e *Enricher) AppendEvent(dst, event []byte, b *Binding, st *State, line []byte, r *parser.Result) []byte {
	if len(event) < 2 || event[len(event)-1] != '}' {
		return append(dst, event...)
	}
	dst = append(dst, event[:len(event)-1]...)
	dst = e.Append(dst, b, st, line, r)
	return append(dst, '}')
}

// uaFrag returns the fragments of user agent ua, from the cache or parsed.
func (e *Enricher) uaFrag(ua []byte) frag {
	if len(ua) > maxUALen {
		ua = ua[:maxUALen]
	}
	if f, ok := e.uaCache.get(ua); ok {
		return f
	}
	u := e.ua.Parse(ua)
	f := frag{json: string(appendUA(nil, u)), avro: string(appendUAAvro(nil, u))}
	e.uaCache.set(ua, f)
	return f
}

func (e *Enricher) appendUA(dst, ua []byte) []byte { return append(dst, e.uaFrag(ua).json...) }

// Lookup returns what is known of an address and a user agent, for tests
// and tools: the JSON members Append would write.
func (e *Enricher) Lookup(addr netip.Addr, ua string) string {
	var dst []byte
	if addr.IsValid() {
		dst = e.gen.Load().appendGeo(dst, addr)
	}
	if e.uaOn && ua != "" {
		dst = e.appendUA(dst, []byte(ua))
	}
	return string(dst)
}

// CacheStats are the caches' counters.
type CacheStats struct {
	UAHits, UAMisses, GeoHits, GeoMisses uint64
	// NetHits and NetMisses are the network cache's: a miss walks the
	// databases' trees.
	NetHits, NetMisses uint64
	// GeoEntries are the geo records rendered, NetEntries the address
	// blocks (or addresses) cached in front of the tree walks.
	UAEntries, GeoEntries, NetEntries int
}

// Stats returns the caches' counters; the geo counters carry on across
// database reloads, its entries are those of the current databases.
func (e *Enricher) Stats() CacheStats {
	var s CacheStats
	if e.uaOn {
		s.UAHits, s.UAMisses = e.uaCache.stats()
		s.UAEntries = e.uaCache.len()
	}
	g := e.gen.Load()
	// A geo lookup hits in the network cache, or walks the trees and hits
	// in the record cache; it misses when the records are decoded.
	ah, am := g.nets.stats()
	s.NetHits, s.NetMisses = ah, am
	rh, rm := g.cache.stats()
	s.GeoHits, s.GeoMisses = ah+rh, rm
	s.GeoEntries = g.cache.len()
	s.NetEntries = g.nets.len()
	return s
}

// Run checks the databases for replacement every reload_interval until
// ctx is done.
func (e *Enricher) Run(ctx context.Context) {
	if e.cfg.GeoIPDatabase == "" && e.cfg.ASNDatabase == "" {
		return
	}
	t := time.NewTicker(e.cfg.ReloadInterval.Duration)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.CheckReload()
		}
	}
}

// CheckReload swaps in the databases when a file was replaced (its
// identity changed) and the new one opens and checks out; it reports
// whether it did. A bad replacement is logged once per identity and the
// current databases stay in use.
func (e *Enricher) CheckReload() bool {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if e.closed {
		return false
	}
	cur := e.gen.Load()
	next := *cur
	changed := false
	try := func(key, path string, id fileID, dst **maxminddb.Reader, dstID *fileID) {
		if path == "" {
			return
		}
		nid, err := statID(path)
		if err != nil || nid == id {
			return // a missing file (mid-rename) keeps the open one
		}
		if e.failed[key] == nid {
			return
		}
		r, oid, err := openDB(key, path, true)
		if err != nil {
			e.failed[key] = nid
			e.log.Error("replaced database does not open; keeping the one in use", "key", key, "err", err)
			return
		}
		*dst, *dstID = r, oid
		changed = true
		e.log.Info("database reloaded", "key", key, "path", path, "type", r.Metadata.DatabaseType)
	}
	try("enrich.geoip_database", e.cfg.GeoIPDatabase, cur.geoID, &next.geo, &next.geoID)
	try("enrich.asn_database", e.cfg.ASNDatabase, cur.asnID, &next.asn, &next.asnID)
	if !changed {
		return false
	}
	// The cache is keyed by record offsets of the old files.
	next.cache = newGeoCache(e.cfg.GeoCacheSize)
	next.nets = newNetCache(netCacheSize(e.cfg.GeoCacheSize))
	// The counters continue (monotonic for metrics; a lookup still running
	// on the old generation may go uncounted).
	h, m := cur.cache.stats()
	next.cache.hits.Store(h)
	next.cache.misses.Store(m)
	h, m = cur.nets.stats()
	next.nets.hits.Store(h)
	next.nets.misses.Store(m)
	e.gen.Store(&next)
	// The old readers are not closed: lines in flight may still read them.
	// maxminddb releases each mmap when its Reader is garbage.
	return true
}

// Close releases the databases. No Append may run during or after it.
func (e *Enricher) Close() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if !e.closed {
		e.closed = true
		e.gen.Load().close()
	}
	return nil
}
