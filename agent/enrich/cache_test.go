package enrich

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"testing"
)

// TestUACacheSet follows one set of the user-agent cache (capacity 2:
// one set of two ways) through insertions, hits and promotions.
func TestUACacheSet(t *testing.T) {
	c := newUACache(2)
	f := func(s string) frag { return frag{json: s} }
	has := func(k string) bool {
		t.Helper()
		got, ok := c.get([]byte(k))
		if ok && got.json != k {
			t.Fatalf("%q: got the fragment of %q", k, got.json)
		}
		return ok
	}
	c.set([]byte("a"), f("a"))
	c.set([]byte("b"), f("b")) // a to the second way
	if !has("a") {             // a hit in the second way: a back to the first
		t.Fatal("a lost after one insertion into its set")
	}
	c.set([]byte("c"), f("c")) // a to the second way, b dropped
	if !has("a") {
		t.Error("a, hit since the last insertion, was dropped: a hit in the second way must move it to the first")
	}
	if has("b") {
		t.Error("b, not hit since two insertions, is still held: the set holds more than two")
	}
	if !has("c") {
		t.Error("c lost")
	}
	c.set([]byte("c"), f("c")) // again: no duplicate pushes a out
	if !has("a") {
		t.Error("setting a key the set holds dropped another")
	}
	if n := c.len(); n != 2 {
		t.Errorf("len %d, want 2", n)
	}
	if h, m := c.stats(); h != 4 || m != 1 {
		t.Errorf("hits %d, misses %d: want 4 and 1", h, m)
	}
}

// TestUACacheConcurrent: readers and writers at once (run with -race)
// never see one key's fragment under another, and the cache stays within
// its capacity.
func TestUACacheConcurrent(t *testing.T) {
	c := newUACache(64)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				k := []byte("ua/" + strconv.Itoa((i*7+g)%300))
				if v, ok := c.get(k); ok {
					if v.json != string(k) {
						t.Errorf("%q: got %q", k, v.json)
						return
					}
					continue
				}
				c.set(k, frag{json: string(k)})
			}
		}()
	}
	wg.Wait()
	if n := c.len(); n > 64 {
		t.Errorf("%d entries, capacity 64", n)
	}
}

// TestNetCacheSet follows one set of the network cache (capacity 4: one
// set of four ways) through insertions, hits and promotions.
func TestNetCacheSet(t *testing.T) {
	c := newNetCache(netWays)
	if len(c.sets) != 1 {
		t.Fatalf("%d sets for capacity %d", len(c.sets), netWays)
	}
	key := func(i int) netKey { return netKey{lo: uint64(i), bits: 32 | 1<<8} }
	put := func(i int) { c.set(key(i), frag{json: strconv.Itoa(i)}) }
	has := func(i int) bool {
		t.Helper()
		f, ok := c.get(key(i))
		if ok && f.json != strconv.Itoa(i) {
			t.Fatalf("block %d: got the fragment of %s", i, f.json)
		}
		return ok
	}
	for i := 1; i <= 4; i++ {
		put(i) // ways: 4 3 2 1
	}
	if !has(1) { // in the last way: moved to the front, 1 4 3 2
		t.Fatal("block 1 lost with the set not full")
	}
	put(5) // 5 1 4 3, 2 dropped
	if has(2) {
		t.Error("the set holds five blocks")
	}
	if !has(1) {
		t.Error("block 1, hit in the last way, was dropped: a hit in the second half of the set must move it to the front")
	}
	for _, i := range []int{3, 4, 5} {
		if !has(i) {
			t.Errorf("block %d lost", i)
		}
	}
	put(5) // already held: replaced in its way, nothing dropped
	for _, i := range []int{1, 3, 4, 5} {
		if !has(i) {
			t.Errorf("setting a block the set holds dropped block %d", i)
		}
	}
}

// TestNetCacheConcurrent: readers and writers at once (run with -race)
// never see one block's fragment under another, and the cache stays
// within its capacity.
func TestNetCacheConcurrent(t *testing.T) {
	c := newNetCache(64)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				n := (i*7 + g) % 300
				k := netKey{hi: uint64(n), bits: 24 | 1<<8}
				if v, ok := c.get(k); ok {
					if v.json != strconv.Itoa(n) {
						t.Errorf("block %d: got %q", n, v.json)
						return
					}
					continue
				}
				c.set(k, frag{json: strconv.Itoa(n)})
			}
		}()
	}
	wg.Wait()
	if n := c.len(); n > 64 {
		t.Errorf("%d entries, capacity 64", n)
	}
}

// TestBlockKeyMatchesPrefix: blockKey is netip's Prefix, for every block
// length the cache uses and every other, on random addresses of both
// families (mapped and zoned too).
func TestBlockKeyMatchesPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 200_000; i++ {
		var b [16]byte
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		a6 := netip.AddrFrom16(b)
		a4 := netip.AddrFrom4([4]byte(b[:4]))
		for _, a := range []netip.Addr{a4, a6, netip.AddrFrom16(a4.As16()), a6.WithZone("eth0")} {
			bits := rng.IntN(a.BitLen() + 1)
			for _, n := range []int{bits, 24, 32, 48, 64, 128} {
				if n > a.BitLen() {
					continue
				}
				if got, want := blockKey(a, n), blockKeyPrefix(a, n); got != want {
					t.Fatalf("blockKey(%v, %d) = %+v, want %+v", a, n, got, want)
				}
			}
		}
	}
}

// TestGeoCacheClock follows one shard of the record cache (three entries)
// through the CLOCK: a hit spares an entry from the next replacement, an
// entry not hit since the hand passed it is replaced, and the cache never
// holds more than its capacity.
func TestGeoCacheClock(t *testing.T) {
	c := newGeoCache(3 * cacheShards)
	var keys []geoKey // keys of shard 0
	for off := uintptr(0); len(keys) < 6; off++ {
		if k := (geoKey{off, notFound}); c.shard(k) == &c.shards[0] {
			keys = append(keys, k)
		}
	}
	f := func(i int) frag { return frag{json: strconv.Itoa(i)} }
	has := func(i int) bool {
		t.Helper()
		got, ok := c.get(keys[i])
		if ok && got != f(i) {
			t.Fatalf("key %d: got the fragment of %s", i, got.json)
		}
		return ok
	}
	for i := 0; i < 3; i++ {
		c.set(keys[i], f(i))
	}
	has(0)               // referenced
	c.set(keys[3], f(3)) // the hand passes 0 (clearing it) and replaces 1
	if has(1) {
		t.Error("a full shard took a fourth entry")
	}
	if !has(0) {
		t.Error("an entry hit since the hand last passed it was replaced")
	}
	if !has(2) || !has(3) {
		t.Error("lost an entry that was not replaced")
	}
	// 0, 2 and 3 are referenced now: the hand clears them all and replaces
	// the one it reaches first again, 2.
	c.set(keys[4], f(4))
	if has(2) || !has(0) || !has(3) || !has(4) {
		t.Errorf("after a turn of referenced entries: held 0 %v, 2 %v, 3 %v, 4 %v, want all but 2", has(0), has(2), has(3), has(4))
	}
	for off := uintptr(1 << 20); off < 1<<20+10000; off++ {
		c.set(geoKey{off, off}, frag{})
	}
	if n := c.len(); n > 3*cacheShards {
		t.Errorf("%d entries, capacity %d", n, 3*cacheShards)
	}
}
