package agent

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Globs. Every scan matches each input's patterns again, so that new files
// are found within scan_interval. For the usual pattern, a directory without
// wildcards and a file name with them (/var/log/nginx/*.log), filepath.Glob
// reads the whole directory each time and joins a new path string for each
// entry: with 10,000 files, about 10,000 allocations a second for a list
// that has not changed. globCache reads a directory again only when it may
// have changed: when its modification or change time differs from the last
// read's, or when that time was within dirSettle of the read (a file created
// in the same clock tick as the read, after it, would leave the times as
// they were). Patterns with wildcards in their directory part go to
// filepath.Glob as before.

// dirSettle: a listing is trusted while the directory is unchanged only if
// its last change came this long before the listing was read (timestamps
// come from the kernel's coarse clock, a few milliseconds a tick).
const dirSettle = time.Second

type globEntry struct {
	mtime, ctime syscall.Timespec
	dev, ino     uint64
	readAt       time.Time // when the listing was read (its start)
	matches      []string  // sorted
}

// globCache is the listings of the scans' patterns. Only the scan uses it
// (one goroutine); the matches it returns must not be changed.
type globCache struct {
	m   map[string]*globEntry
	now func() time.Time // time.Now; tests move it
}

func newGlobCache() *globCache {
	return &globCache{m: map[string]*globEntry{}, now: time.Now}
}

// glob returns the sorted matches of pat, as filepath.Glob does.
func (c *globCache) glob(pat string) []string {
	dir, file := filepath.Split(pat)
	if hasMeta(dir) || !hasMeta(file) {
		m, _ := filepath.Glob(pat)
		sort.Strings(m)
		return m
	}
	d := filepath.Clean(dir)
	if dir == "" {
		d = "."
	}
	var st syscall.Stat_t
	if err := syscall.Stat(d, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		delete(c.m, pat)
		return nil
	}
	if e := c.m[pat]; e != nil && e.mtime == st.Mtim && e.ctime == st.Ctim &&
		e.dev == uint64(st.Dev) && e.ino == st.Ino &&
		e.readAt.Sub(time.Unix(st.Ctim.Unix())) > dirSettle {
		return e.matches
	}
	readAt := c.now()
	f, err := os.Open(d)
	if err != nil {
		delete(c.m, pat)
		return nil
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	sort.Strings(names)
	old := c.m[pat]
	e := &globEntry{mtime: st.Mtim, ctime: st.Ctim, dev: uint64(st.Dev), ino: st.Ino, readAt: readAt}
	// Paths of the previous listing are reused: the agent's maps are keyed
	// by them, and a new string per scan would be new garbage each time.
	var prev []string
	if old != nil {
		prev = old.matches
	}
	for _, n := range names {
		if ok, err := filepath.Match(file, n); err != nil || !ok {
			continue
		}
		p := filepath.Join(dir, n)
		for len(prev) > 0 && prev[0] < p {
			prev = prev[1:]
		}
		if len(prev) > 0 && prev[0] == p {
			p = prev[0]
		}
		e.matches = append(e.matches, p)
	}
	sort.Strings(e.matches) // Join may have changed the order (a "." dir)
	c.m[pat] = e
	return e.matches
}

// hasMeta reports whether path contains any of filepath.Match's special
// characters.
func hasMeta(path string) bool {
	return strings.ContainsAny(path, `*?[\`)
}
