package agent

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"
	"unsafe"
)

func TestGlobCacheMatchesFilepathGlob(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a.log", "b.log", "ab.log", "c.txt", ".hidden.log", "sub/x.log", "sub2/x.log"} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := newGlobCache()
	for _, pat := range []string{
		dir + "/*.log", dir + "/a*", dir + "/[ab].log", dir + "//*.log", dir + "/./*.log",
		dir + "/*/x.log", // wildcard in the directory: filepath.Glob
		dir + "/a.log",   // no wildcard
		dir + "/missing/*.log", dir + "/c.txt/*", dir + "/[",
	} {
		want, _ := filepath.Glob(pat)
		sort.Strings(want)
		for i := range 2 { // the listing, then the cached one
			if got := c.glob(pat); !slices.Equal(got, want) {
				t.Errorf("%s (time %d): got %q, want %q", pat, i, got, want)
			}
		}
	}
	t.Chdir(dir)
	want, _ := filepath.Glob("*.log")
	if got := c.glob("*.log"); !slices.Equal(got, want) || len(got) != 4 {
		t.Errorf("relative *.log: got %q, want %q", got, want)
	}
}

// A listing is reused only while the directory is unchanged, and a file
// added after a listing is found by the next glob.
func TestGlobCacheSeesChanges(t *testing.T) {
	dir := t.TempDir()
	pat := filepath.Join(dir, "*.log")
	write := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.log")
	c := newGlobCache()
	// Just changed: not trusted, listed again at every glob.
	first := c.glob(pat)
	write("b.log") // right after the listing, maybe in the same clock tick
	if got := c.glob(pat); len(got) != 2 {
		t.Fatalf("a file created right after a listing: got %q", got)
	}
	// Long after the last change (the clock moved on): trusted.
	c.now = func() time.Time { return time.Now().Add(time.Hour) }
	listed := c.glob(pat)
	again := c.glob(pat)
	if len(again) != 2 || &again[0] != &listed[0] {
		t.Fatalf("unchanged directory listed again: %q then %q", listed, again)
	}
	if &first[0] == &listed[0] {
		t.Fatal("the first listing was reused though the directory changed after it")
	}
	// Paths are reused from listing to listing (the agent's maps hold them).
	write("c.log")
	got := c.glob(pat)
	if !slices.Equal(got, []string{filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log"), filepath.Join(dir, "c.log")}) {
		t.Fatalf("after c.log: %q", got)
	}
	if &got[0] == &listed[0] {
		t.Fatal("not listed again after a change")
	}
	if unsafeData(got[0]) != unsafeData(listed[0]) {
		t.Error("a path of the previous listing was not reused")
	}
	// Renamed away, deleted, the directory removed.
	if err := os.Rename(filepath.Join(dir, "a.log"), filepath.Join(dir, "a.log.1")); err != nil {
		t.Fatal(err)
	}
	if got := c.glob(pat); len(got) != 2 || got[0] != filepath.Join(dir, "b.log") {
		t.Fatalf("after a rename away: %q", got)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if got := c.glob(pat); len(got) != 0 || len(c.m) != 0 {
		t.Fatalf("removed directory: %q, %d listings kept", got, len(c.m))
	}
}

func unsafeData(s string) *byte { return unsafe.StringData(s) }
