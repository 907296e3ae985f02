package enrich

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
)

// frag is one cached rendering of the enrichment of a key: its JSON
// members (with their leading comma; "" when nothing is known) and its
// Avro encoding (the union branches, "" when never asked for).
type frag struct{ json, avro string }

// geoKey is the pair of record offsets of the two databases (notFound for
// none).
type geoKey struct{ city, asn uintptr }

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
	shards       [cacheShards]recordShard
	per          int
	hits, misses atomic.Uint64
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

// found counts a lookup.
func (c *geoCache) found(ok bool) {
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
}

// stats returns hits and misses so far.
func (c *geoCache) stats() (hits, misses uint64) { return c.hits.Load(), c.misses.Load() }

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

// netCache maps a block of client addresses to its rendered geo fragment
// ("" when no database knows it), in front of the tree walks: clients
// repeat, and the addresses of one network share its fragment. It is on
// every line's path, so it is a four-way set-associative array of
// immutable entries, read with atomic loads and no lock (a sharded map
// with a mutex cost twice as much per line: a lock, a generic hash and
// compare of the key, and a new map per generation). A set is one 64-byte
// cache line: four tags (the key's hash) and four entry pointers, so a
// probe loads one line and follows a pointer only when a tag matches (the
// entry's key is then compared in full: a tag is a hint). Four ways, not
// two: with two, the sets that clients' blocks overfill (three or more
// blocks in a set, which the hash makes common once the cache holds a
// quarter of its capacity) missed on every visit of every block in them
// when visits cycle (BenchmarkGeoCachedMany: 91 % hits at a quarter of
// the capacity). An insertion moves the set's ways down by one and drops
// the last; a hit in the second half of the set moves the entry to the
// first way, so a block seen between insertions into its set stays. Its
// size is fixed (the capacity rounded up to a power of two), so memory is
// bounded whatever the traffic. Racing inserts or promotions on one set
// may drop or duplicate an entry: it is only a cache.
type netCache struct {
	sets         []netSet
	mask         uint64
	hits, misses atomic.Uint64
}

const netWays = 4

// netSet is one set: 64 bytes, so that a probe touches one cache line
// (large arrays are page-aligned).
type netSet struct {
	tags [netWays]atomic.Uint64
	ents [netWays]atomic.Pointer[netEntry]
}

// netCacheSize is the network cache's capacity for geo_cache_size n:
// four blocks per record, since clients in their own /24 or /48 (each
// needs an entry) outnumber the records they share. On the bench
// generator's 1,000,000 lines (real-size databases, 40,000 clients) it
// halves the tree walks: 11.4 % of the lines with n entries, 5.1 % with
// 4n (4 % are new clients). An entry is about 72 bytes, and 16 in its set.
func netCacheSize(n int) int { return 4 * n }

// netKey is an address block: its masked address and length.
type netKey struct{ hi, lo, bits uint64 }

type netEntry struct {
	k netKey
	f frag
}

func newNetCache(capacity int) *netCache {
	n := 1
	for n*netWays < capacity {
		n <<= 1
	}
	return &netCache{sets: make([]netSet, n), mask: uint64(n - 1)}
}

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

// blockKeyPrefix is blockKey by netip.Addr.Prefix, for the test.
func blockKeyPrefix(a netip.Addr, b int) netKey {
	p, _ := a.Prefix(b)
	x := p.Addr().As16()
	k := netKey{hi: binary.BigEndian.Uint64(x[:8]), lo: binary.BigEndian.Uint64(x[8:]), bits: uint64(b)}
	if a.Is4() {
		k.bits |= 1 << 8
	}
	return k
}

func (k netKey) hash() uint64 {
	h := k.hi*0x9E3779B97F4A7C15 ^ k.lo*0xBF58476D1CE4E5B9 ^ k.bits*0x94D049BB133111EB
	return h ^ h>>29
}

// tag is the tag of hash h in its set: never 0 (an empty way).
func (c *netCache) tag(h uint64) uint64 { return h | 1 }

// get looks k up; it does not count (geoFrag counts a lookup once, over
// its blocks).
func (c *netCache) get(k netKey) (frag, bool) {
	h := k.hash()
	s := &c.sets[h&c.mask]
	t := c.tag(h)
	for w := range netWays {
		if s.tags[w].Load() != t {
			continue
		}
		if e := s.ents[w].Load(); e != nil && e.k == k {
			if w >= netWays/2 {
				s.promote(w, e, t)
			}
			return e.f, true
		}
	}
	return frag{}, false
}

// promote moves the entry of way w to the first way.
func (s *netSet) promote(w int, e *netEntry, t uint64) {
	for ; w > 0; w-- {
		s.ents[w].Store(s.ents[w-1].Load())
		s.tags[w].Store(s.tags[w-1].Load())
	}
	s.ents[0].Store(e)
	s.tags[0].Store(t)
}

func (c *netCache) set(k netKey, f frag) {
	h := k.hash()
	s := &c.sets[h&c.mask]
	t := c.tag(h)
	e := &netEntry{k, f}
	w := netWays - 1 // the last way is dropped, unless k is in the set
	for i := range netWays {
		if s.tags[i].Load() == t {
			if old := s.ents[i].Load(); old != nil && old.k == k {
				w = i
				break
			}
		}
	}
	s.promote(w, e, t)
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
	for i := range c.sets {
		for w := range netWays {
			if c.sets[i].ents[w].Load() != nil {
				n++
			}
		}
	}
	return n
}

// uaCache maps a user agent (cut to maxUALen) to its rendered fragment.
// Every line with a user agent reads it, from the harvester and the parse
// workers at once, so it is built as netCache is: a two-way
// set-associative array of immutable entries, read with one atomic load
// per way and no lock, the key hashed once (a sharded map under a mutex
// hashed it twice, with maphash for the shard and again in the map, and
// moved its lock's cache line between the cores on every line). An entry
// keeps its key's hash, so a probe compares the key's bytes only when the
// hashes match. Its size is fixed (the capacity rounded up to a power of
// two), so a flood of unique user agents cannot grow it: each insertion
// moves its set's first entry to the second way and drops the second. A
// hit in the second way moves the entry back to the first, so a user
// agent seen between any two insertions into its set stays (least
// recently used within the set).
type uaCache struct {
	seed         maphash.Seed
	slots        []atomic.Pointer[uaEntry]
	mask         uint64
	hits, misses atomic.Uint64
}

type uaEntry struct {
	h uint64
	k string
	f frag
}

func newUACache(capacity int) *uaCache {
	n := 2
	for n < capacity {
		n <<= 1
	}
	return &uaCache{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[uaEntry], n), mask: uint64(n - 1)}
}

// get looks k up and counts the lookup. A lookup with a []byte key
// converts in the comparison, which the compiler does without allocating.
func (c *uaCache) get(k []byte) (frag, bool) {
	h := maphash.Bytes(c.seed, k)
	i := h & c.mask &^ 1
	if e := c.slots[i].Load(); e != nil && e.h == h && e.k == string(k) {
		c.hits.Add(1)
		return e.f, true
	}
	if e := c.slots[i|1].Load(); e != nil && e.h == h && e.k == string(k) {
		// Back to the first way; its entry takes the second. Racing
		// with another promotion or an insertion may drop or duplicate
		// an entry: it is only a cache, and its size is fixed.
		c.slots[i|1].Store(c.slots[i].Swap(e))
		c.hits.Add(1)
		return e.f, true
	}
	c.misses.Add(1)
	return frag{}, false
}

func (c *uaCache) set(k []byte, f frag) {
	h := maphash.Bytes(c.seed, k)
	i := h & c.mask &^ 1
	if old := c.slots[i].Load(); old != nil && !(old.h == h && old.k == string(k)) {
		c.slots[i|1].Store(old)
	}
	c.slots[i].Store(&uaEntry{h, string(k), f})
}

func (c *uaCache) stats() (hits, misses uint64) { return c.hits.Load(), c.misses.Load() }

// len returns the number of entries held.
func (c *uaCache) len() int {
	n := 0
	for i := range c.slots {
		if c.slots[i].Load() != nil {
			n++
		}
	}
	return n
}
