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
// repeat, and the addresses of one network share its fragment.
type netCache struct{ *fragCache[netip.Prefix] }

func newNetCache(capacity int) netCache { return netCache{newFragCache[netip.Prefix](capacity)} }

func (c netCache) hash(p netip.Prefix) uint64 {
	b := p.Addr().As16()
	hi := binary.LittleEndian.Uint64(b[:8])
	lo := binary.LittleEndian.Uint64(b[8:]) + uint64(p.Bits())
	return (hi*0x9E3779B97F4A7C15 ^ lo*0xBF58476D1CE4E5B9) >> 32
}

// get does not count: geoFrag counts a lookup once, over its blocks.
func (c netCache) get(p netip.Prefix) (frag, bool) {
	s := c.shard(c.hash(p))
	s.mu.Lock()
	e, ok := s.cur[p]
	if !ok {
		if e, ok = s.prev[p]; ok {
			c.promote(s, e)
		}
	}
	s.mu.Unlock()
	return e.v, ok
}

func (c netCache) set(p netip.Prefix, v frag) { c.put(c.shard(c.hash(p)), p, v) }

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
