package enrich

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
)

const cacheShards = 16

// fragCache maps a key to an immutable rendered JSON fragment. It is
// bounded: each shard keeps two generations of at most perGen entries
// (see doc.go, "The caches"). Safe for concurrent use; Get does not
// allocate.
type fragCache[K comparable] struct {
	seed   maphash.Seed
	perGen int
	shards [cacheShards]cacheShard[K]

	hits, misses atomic.Uint64
}

type cacheShard[K comparable] struct {
	mu        sync.Mutex
	cur, prev map[K]entry[K]
	_         [40]byte // keep shards on their own cache lines
}

// entry keeps its own key, so that moving it from the previous generation
// to the current one reuses the key (for strings: no copy).
type entry[K comparable] struct {
	k K
	v frag
}

// frag is one cached rendering of the enrichment of a key: its JSON
// members (with their leading comma; "" when nothing is known) and its
// Avro encoding (the union branches, "" when never asked for).
type frag struct{ json, avro string }

func newFragCache[K comparable](capacity int) *fragCache[K] {
	per := capacity / (2 * cacheShards)
	if per < 1 {
		per = 1
	}
	c := &fragCache[K]{seed: maphash.MakeSeed(), perGen: per}
	for i := range c.shards {
		c.shards[i].cur = make(map[K]entry[K])
	}
	return c
}

// shard picks the shard of a key by its hash h.
func (c *fragCache[K]) shard(h uint64) *cacheShard[K] { return &c.shards[h%cacheShards] }

// found counts a lookup.
func (c *fragCache[K]) found(ok bool) {
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
}

// promote moves a previous-generation entry to the current one; s.mu held.
func (c *fragCache[K]) promote(s *cacheShard[K], e entry[K]) { c.putLocked(s, e) }

func (c *fragCache[K]) put(s *cacheShard[K], k K, v frag) {
	s.mu.Lock()
	c.putLocked(s, entry[K]{k, v})
	s.mu.Unlock()
}

func (c *fragCache[K]) putLocked(s *cacheShard[K], e entry[K]) {
	if _, ok := s.cur[e.k]; !ok && len(s.cur) >= c.perGen {
		s.prev = s.cur
		s.cur = make(map[K]entry[K], c.perGen)
	}
	s.cur[e.k] = e
}

// len returns the number of entries held.
func (c *fragCache[K]) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.prev)
		s.mu.Unlock()
	}
	return n
}

// stats returns hits and misses so far.
func (c *fragCache[K]) stats() (hits, misses uint64) { return c.hits.Load(), c.misses.Load() }

// geoKey is the pair of record offsets of the two databases (notFound for
// none).
type geoKey struct{ city, asn uintptr }

type geoCache struct{ *fragCache[geoKey] }

func newGeoCache(capacity int) geoCache { return geoCache{newFragCache[geoKey](capacity)} }

func (c geoCache) hash(k geoKey) uint64 {
	return (uint64(k.city)*0x9E3779B97F4A7C15 ^ uint64(k.asn)*0xBF58476D1CE4E5B9) >> 32
}

func (c geoCache) get(k geoKey) (frag, bool) {
	s := c.shard(c.hash(k))
	s.mu.Lock()
	e, ok := s.cur[k]
	if !ok {
		if e, ok = s.prev[k]; ok {
			c.promote(s, e)
		}
	}
	s.mu.Unlock()
	return e.v, ok
}

func (c geoCache) set(k geoKey, v frag) { c.put(c.shard(c.hash(k)), k, v) }

// netCache maps a block of client addresses to its rendered geo fragment
// ("" when no database knows it), in front of the tree walks: clients
// repeat, and the addresses of one network share its fragment. It is on
// every line's path, so it is a two-way set-associative array of
// immutable entries, read with one atomic load per way and no lock (a
// sharded map with a mutex cost twice as much per line: a lock, a generic
// hash and compare of the key, and a new map per generation): a set's
// newest entry is in its first way, an insertion moves the first to the
// second and drops what the second held. Its size is fixed (the capacity
// rounded up to a power of two), so memory is bounded whatever the
// traffic. Two inserts racing on one set may drop one: it is only a cache.
type netCache struct {
	slots        []atomic.Pointer[netEntry]
	mask         uint64
	hits, misses atomic.Uint64
}

// netCacheSize is the network cache's capacity for geo_cache_size n:
// four blocks per record, since clients in their own /24 or /48 (each
// needs an entry) outnumber the records they share. On the bench
// generator's 1,000,000 lines (real-size databases, 40,000 clients) it
// halves the tree walks: 11.4 % of the lines with n entries, 5.1 % with
// 4n (4 % are new clients). An entry is about 72 bytes.
func netCacheSize(n int) int { return 4 * n }

// netKey is an address block: its masked address and length.
type netKey struct{ hi, lo, bits uint64 }

type netEntry struct {
	k netKey
	f frag
}

func newNetCache(capacity int) *netCache {
	n := 2
	for n < capacity {
		n <<= 1
	}
	return &netCache{slots: make([]atomic.Pointer[netEntry], n), mask: uint64(n - 1)}
}

// blockKey is the key of a's block of b bits.
func blockKey(a netip.Addr, b int) netKey {
	p, _ := a.Prefix(b)
	x := p.Addr().As16()
	k := netKey{hi: binary.BigEndian.Uint64(x[:8]), lo: binary.BigEndian.Uint64(x[8:]), bits: uint64(b)}
	if a.Is4() {
		k.bits |= 1 << 8 // not an IPv4-mapped IPv6 block
	}
	return k
}

func (k netKey) hash() uint64 {
	h := k.hi*0x9E3779B97F4A7C15 ^ k.lo*0xBF58476D1CE4E5B9 ^ k.bits*0x94D049BB133111EB
	return h ^ h>>29
}

// get looks k up; it does not count (geoFrag counts a lookup once, over
// its blocks).
func (c *netCache) get(k netKey) (frag, bool) {
	i := k.hash() & c.mask
	if e := c.slots[i].Load(); e != nil && e.k == k {
		return e.f, true
	}
	if e := c.slots[i^1].Load(); e != nil && e.k == k {
		return e.f, true
	}
	return frag{}, false
}

func (c *netCache) set(k netKey, f frag) {
	i := k.hash() & c.mask
	first := &c.slots[i&^1]
	if old := first.Load(); old != nil && old.k != k {
		c.slots[i|1].Store(old)
	}
	first.Store(&netEntry{k, f})
}

// found counts a lookup.
func (c *netCache) found(ok bool) {
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
}

func (c *netCache) stats() (hits, misses uint64) { return c.hits.Load(), c.misses.Load() }

// len returns the number of entries held.
func (c *netCache) len() int {
	n := 0
	for i := range c.slots {
		if c.slots[i].Load() != nil {
			n++
		}
	}
	return n
}

// uaCache is keyed by the user-agent string (cut to maxUALen). A lookup
// with a []byte key converts in the map index expression, which the
// compiler does without allocating.
type uaCache struct{ *fragCache[string] }

func newUACache(capacity int) uaCache { return uaCache{newFragCache[string](capacity)} }

func (c uaCache) get(k []byte) (frag, bool) {
	s := c.shard(maphash.Bytes(c.seed, k))
	s.mu.Lock()
	e, ok := s.cur[string(k)]
	if !ok {
		if e, ok = s.prev[string(k)]; ok {
			c.promote(s, e)
		}
	}
	s.mu.Unlock()
	c.found(ok)
	return e.v, ok
}

func (c uaCache) set(k []byte, v frag) {
	c.put(c.shard(maphash.Bytes(c.seed, k)), string(k), v)
}
