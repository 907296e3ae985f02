package enrich

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"testing"
)

// TestSetCacheSet follows one set of a setCache (capacity 4: one set of
// four ways) through insertions, hits and promotions. Every key has the
// same hash, so the tags all match and only the full compare of the keys
// tells them apart.
func TestSetCacheSet(t *testing.T) {
	c := newSetCache[int](setWays)
	if len(c.sets) != 1 {
		t.Fatalf("%d sets for capacity %d", len(c.sets), setWays)
	}
	const h = 0x5EED
	put := func(i int) { c.set(h, i, frag{json: strconv.Itoa(i)}) }
	has := func(i int) bool {
		t.Helper()
		f, ok := c.get(h, i)
		if ok && f.json != strconv.Itoa(i) {
			t.Fatalf("key %d: got the fragment of %s", i, f.json)
		}
		return ok
	}
	for i := 1; i <= 4; i++ {
		put(i) // ways: 4 3 2 1
	}
	if !has(1) { // in the last way: moved to the front, 1 4 3 2
		t.Fatal("key 1 lost with the set not full")
	}
	put(5) // 5 1 4 3, 2 dropped
	if has(2) {
		t.Error("the set holds five keys")
	}
	if !has(1) {
		t.Error("key 1, hit in the last way, was dropped: a hit in the second half of the set must move it to the front")
	}
	for _, i := range []int{3, 4, 5} {
		if !has(i) {
			t.Errorf("key %d lost", i)
		}
	}
	put(5) // already held: replaced in its way, nothing dropped
	for _, i := range []int{1, 3, 4, 5} {
		if !has(i) {
			t.Errorf("setting a key the set holds dropped key %d", i)
		}
	}
	if n := c.len(); n != setWays {
		t.Errorf("len %d, want %d", n, setWays)
	}
}

// TestUACacheKeys: the user-agent cache finds a user agent by its bytes
// and counts its lookups (the network cache's are counted by geoFrag).
func TestUACacheKeys(t *testing.T) {
	c := newUACache(64)
	c.set([]byte("curl/8.5.0"), frag{json: "curl"})
	k := []byte("curl/8.5.0!")
	if f, ok := c.get(k[:len(k)-1]); !ok || f.json != "curl" {
		t.Errorf("get of the same bytes in another slice = %q, %v", f.json, ok)
	}
	if _, ok := c.get([]byte("curl/8.5.1")); ok {
		t.Error("another user agent hit")
	}
	if h, m := c.stats(); h != 1 || m != 1 {
		t.Errorf("hits %d, misses %d: want 1 and 1", h, m)
	}
}

// TestCachesConcurrent: readers and writers at once on the network and
// user-agent caches (run with -race) never see one key's fragment under
// another, and each stays within its capacity.
func TestCachesConcurrent(t *testing.T) {
	nets, uas := newNetCache(64), newUACache(64)
	for _, c := range []struct {
		name string
		get  func(n int) (frag, bool)
		set  func(n int, f frag)
		len  func() int
	}{
		{"network",
			func(n int) (frag, bool) { return nets.get(netKey{hi: uint64(n), bits: 24 | 1<<8}) },
			func(n int, f frag) { nets.set(netKey{hi: uint64(n), bits: 24 | 1<<8}, f) },
			nets.len},
		{"user agent",
			func(n int) (frag, bool) { return uas.get([]byte("ua/" + strconv.Itoa(n))) },
			func(n int, f frag) { uas.set([]byte("ua/"+strconv.Itoa(n)), f) },
			uas.len},
	} {
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20000; i++ {
					n := (i*7 + g) % 300
					if v, ok := c.get(n); ok {
						if v.json != strconv.Itoa(n) {
							t.Errorf("%s cache, key %d: got %q", c.name, n, v.json)
							return
						}
						continue
					}
					c.set(n, frag{json: strconv.Itoa(n)})
				}
			}()
		}
		wg.Wait()
		if n := c.len(); n > 64 {
			t.Errorf("%s cache: %d entries, capacity 64", c.name, n)
		}
	}
}

// blockKeyPrefix is blockKey by netip.Addr.Prefix.
func blockKeyPrefix(a netip.Addr, b int) netKey {
	p, _ := a.Prefix(b)
	x := p.Addr().As16()
	k := netKey{hi: binary.BigEndian.Uint64(x[:8]), lo: binary.BigEndian.Uint64(x[8:]), bits: uint64(b)}
	if a.Is4() {
		k.bits |= 1 << 8
	}
	return k
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
