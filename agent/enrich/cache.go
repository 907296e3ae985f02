package enrich

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"unsafe"
)

// frag is one cached rendering of the enrichment of a key: its JSON
// members (with their leading comma; "" when nothing is known) and its
// Avro encoding (the union branches, "" when never asked for).
type frag struct{ json, avro string }

// geoKey is the pair of record offsets of the two databases (notFound for
// none).
type geoKey struct{ city, asn uintptr }

// lookups counts a cache's hits and misses.
type lookups struct{ hits, misses atomic.Uint64 }

// found counts a lookup.
func (l *lookups) found(ok bool) {
	if ok {
		l.hits.Add(1)
	} else {
		l.misses.Add(1)
	}
}

// stats returns hits and misses so far.
func (l *lookups) stats() (hits, misses uint64) { return l.hits.Load(), l.misses.Load() }

const cacheShards = 16

// geoCache is the record cache: it maps a pair of record offsets to the
// fragment rendered from the records. It is read only when the network
// cache misses, and its miss costs a decode of the records, so it is
// fully associative (a map per shard, 16 shards by the key's hash, each
// under its own mutex) and holds its capacity: each shard is a CLOCK of
// capacity/16 entries (a ring with a referenced bit per entry, set by a
// hit; an insertion into a full shard moves the hand past referenced
// entries, clearing their bit, and replaces the first one not hit since
// the hand last passed it). So a database whose records the clients use
// fit in the cache is decoded once per record, recently used records
// survive, and a record seen once is the first replaced (a two-generation
// cache it replaced held as few as half its capacity: on the bench
// generator's 2,000,000 lines it decoded the synthetic databases' 14,824
// records 29,836 times). Safe for concurrent use; get does not allocate.
type geoCache struct {
	shards [cacheShards]recordShard
	per    int
	lookups
}

type recordShard struct {
	mu   sync.Mutex
	idx  map[geoKey]int32 // key → ring index
	ring []recordSlot
	hand int
	_    [16]byte // keep shards on their own cache lines
}

type recordSlot struct {
	k   geoKey
	f   frag
	ref bool
}

func newGeoCache(capacity int) *geoCache {
	c := &geoCache{per: max(1, capacity/cacheShards)}
	for i := range c.shards {
		c.shards[i].idx = map[geoKey]int32{}
	}
	return c
}

func (c *geoCache) shard(k geoKey) *recordShard {
	h := (uint64(k.city)*0x9E3779B97F4A7C15 ^ uint64(k.asn)*0xBF58476D1CE4E5B9) >> 32
	return &c.shards[h%cacheShards]
}

// get looks k up; it does not count (lookup counts with found).
func (c *geoCache) get(k geoKey) (frag, bool) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.idx[k]
	if !ok {
		return frag{}, false
	}
	s.ring[i].ref = true
	return s.ring[i].f, true
}

func (c *geoCache) set(k geoKey, f frag) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.idx[k]; ok {
		s.ring[i].f = f
		return
	}
	if len(s.ring) < c.per {
		s.idx[k] = int32(len(s.ring))
		s.ring = append(s.ring, recordSlot{k: k, f: f})
		return
	}
	for s.ring[s.hand].ref { // at most one turn: the bits it passes are cleared
		s.ring[s.hand].ref = false
		s.hand = (s.hand + 1) % len(s.ring)
	}
	delete(s.idx, s.ring[s.hand].k)
	s.ring[s.hand] = recordSlot{k: k, f: f}
	s.idx[k] = int32(s.hand)
	s.hand = (s.hand + 1) % len(s.ring)
}

// len returns the number of entries held.
func (c *geoCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.ring)
		s.mu.Unlock()
	}
	return n
}

// setCache maps a key to its rendered fragment for the caches every line
// reads, from the harvester and the parse workers at once (the network
// cache and the user-agent cache): a four-way set-associative array of
// immutable entries, read with atomic loads and no lock (a sharded map
// under a mutex cost twice as much per line: a lock, the key hashed twice,
// and its lock's cache line moved between the cores on every line). A set
// is one 64-byte cache line: four tags (the key's hash) and four entry
// pointers, so a probe loads one line and follows a pointer only when a
// tag matches (the entry's key is then compared in full: a tag is a hint,
// and a torn read of a tag and its pointer is a miss, never a wrong
// answer). Four ways, not two: with two, the sets that the keys overfill
// (three or more in a set, which the hash makes common once the cache
// holds a quarter of its capacity) missed on every visit of every key in
// them when visits cycle (BenchmarkGeoCachedMany: 91 % hits at a quarter
// of the capacity). An insertion moves the set's ways down by one and
// drops the last; a hit in the second half of the set moves the entry to
// the first way, so a key seen between insertions into its set stays. Its
// size is fixed (the capacity rounded up to a multiple of four, a power of
// two), so memory is bounded whatever the traffic, and a flood of new keys
// only evicts. Racing inserts or promotions on one set may drop or
// duplicate an entry: it is only a cache.
type setCache[K comparable] struct {
	sets []cacheSet[K]
	mask uint64
	lookups
}

const setWays = 4

// cacheSet is one set: 64 bytes, so that a probe touches one cache line
// (large arrays are page-aligned).
type cacheSet[K comparable] struct {
	tags [setWays]atomic.Uint64
	ents [setWays]atomic.Pointer[cacheEntry[K]]
}

type cacheEntry[K comparable] struct {
	k K
	f frag
}

func newSetCache[K comparable](capacity int) setCache[K] {
	n := 1
	for n*setWays < capacity {
		n <<= 1
	}
	return setCache[K]{sets: make([]cacheSet[K], n), mask: uint64(n - 1)}
}

// get looks k, of hash h, up; it does not count.
func (c *setCache[K]) get(h uint64, k K) (frag, bool) {
	s := &c.sets[h&c.mask]
	t := h | 1 // never 0, an empty way
	for w := range setWays {
		if s.tags[w].Load() != t {
			continue
		}
		if e := s.ents[w].Load(); e != nil && e.k == k {
			if w >= setWays/2 {
				s.promote(w, e, t)
			}
			return e.f, true
		}
	}
	return frag{}, false
}

// set inserts k, of hash h, at the front of its set.
func (c *setCache[K]) set(h uint64, k K, f frag) {
	s := &c.sets[h&c.mask]
	t := h | 1
	w := setWays - 1 // the last way is dropped, unless k is in the set
	for i := range setWays {
		if s.tags[i].Load() == t {
			if old := s.ents[i].Load(); old != nil && old.k == k {
				w = i
				break
			}
		}
	}
	s.promote(w, &cacheEntry[K]{k, f}, t)
}

// promote moves the ways before w down by one and puts e first.
func (s *cacheSet[K]) promote(w int, e *cacheEntry[K], t uint64) {
	for ; w > 0; w-- {
		s.ents[w].Store(s.ents[w-1].Load())
		s.tags[w].Store(s.tags[w-1].Load())
	}
	s.ents[0].Store(e)
	s.tags[0].Store(t)
}

// len returns the number of entries held.
func (c *setCache[K]) len() int {
	n := 0
	for i := range c.sets {
		for w := range setWays {
			if c.sets[i].ents[w].Load() != nil {
				n++
			}
		}
	}
	return n
}

// netCache maps a block of client addresses to its rendered geo fragment
// ("" when no database knows it), in front of the tree walks: clients
// repeat, and the addresses of one network share its fragment. It does not
// count its lookups: geoFrag counts one over the blocks it probes.
type netCache struct{ setCache[netKey] }

// netCacheSize is the network cache's capacity for geo_cache_size n:
// four blocks per record, since clients in their own /24 or /48 (each
// needs an entry) outnumber the records they share. On the bench
// generator's 1,000,000 lines (real-size databases, 40,000 clients) it
// halves the tree walks: 11.4 % of the lines with n entries, 5.1 % with
// 4n (4 % are new clients). An entry is about 72 bytes, and 16 in its set.
func netCacheSize(n int) int { return 4 * n }

func newNetCache(capacity int) *netCache { return &netCache{newSetCache[netKey](capacity)} }

// netKey is an address block: its masked address and length.
type netKey struct{ hi, lo, bits uint64 }

func (c *netCache) get(k netKey) (frag, bool) { return c.setCache.get(k.hash(), k) }

func (c *netCache) set(k netKey, f frag) { c.setCache.set(k.hash(), k, f) }

// blockKey is the key of a's block of b bits: a.Prefix(b)'s address and
// length, masked here on the address's two words (on every line's path;
// TestBlockKeyMatchesPrefix checks that it is the same).
func blockKey(a netip.Addr, b int) netKey {
	x := a.As16()
	hi, lo := binary.BigEndian.Uint64(x[:8]), binary.BigEndian.Uint64(x[8:])
	n := b // of the 128 bits
	k := netKey{bits: uint64(b)}
	if a.Is4() {
		n += 96
		k.bits |= 1 << 8 // not an IPv4-mapped IPv6 block
	}
	switch {
	case n < 64:
		hi &= ^uint64(0) << (64 - n)
		lo = 0
	case n < 128:
		lo &= ^uint64(0) << (128 - n)
	}
	k.hi, k.lo = hi, lo
	return k
}

func (k netKey) hash() uint64 {
	h := k.hi*0x9E3779B97F4A7C15 ^ k.lo*0xBF58476D1CE4E5B9 ^ k.bits*0x94D049BB133111EB
	return h ^ h>>29
}

// uaCache maps a user agent (cut to maxUALen) to its rendered fragment:
// a setCache keyed by the string, hashed with maphash. Its size is fixed,
// so a flood of unique user agents cannot grow it; each entry holds at
// most maxUALen bytes of key.
type uaCache struct {
	seed maphash.Seed
	setCache[string]
}

func newUACache(capacity int) *uaCache {
	return &uaCache{seed: maphash.MakeSeed(), setCache: newSetCache[string](capacity)}
}

// get looks k up and counts the lookup. The key is compared as a string
// over k's bytes, without a copy: get keeps nothing of it.
func (c *uaCache) get(k []byte) (frag, bool) {
	f, ok := c.setCache.get(maphash.Bytes(c.seed, k), unsafe.String(unsafe.SliceData(k), len(k)))
	c.found(ok)
	return f, ok
}

func (c *uaCache) set(k []byte, f frag) {
	c.setCache.set(maphash.Bytes(c.seed, k), string(k), f)
}
