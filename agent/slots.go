package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Slots: at most max_open_files files are open (a harvester each, with its
// descriptor and goroutine). A file the agent knows but does not hold open
// is shelved: it gave its slot up while other files waited (parked, with
// where reading resumes and the stream of its batches still in flight), or
// it waits for a slot (queued). See doc.go, "Thousands of files".

// slotTurn is the longest a reader keeps its slot, while other files wait,
// before it yields (after handing on its batch) and queues again behind
// them: with N files wanting to read and M slots, each is read at least once
// every ceil(N/M) turns.
const slotTurn = time.Second

// slotRevisit is how soon at most, while files take turns for slots, a file
// that gave its slot up at its end (caught up) is queued for its next turn
// (Agent.revisit scales it down for few files). It is not looked at
// meanwhile (skipLook): what it gets by then is read at that turn. Every turn costs
// an open, an fstat, two reads and a close whatever it carries: with 1,000
// live files over 256 slots, a turn each second for each file was most of
// the agent's CPU. A line waits at most about slotRevisit plus a
// scan_interval for its turn. 3 s, not 2: files-live (1,000 files, 10,000
// lines/s) measured about a quarter less CPU for a maximum lag of 4.1 s
// instead of 3.1 s (README, "Many files").
const slotRevisit = 3 * time.Second

// turnsPerSecond is the rate of turns slotRevisit is scaled to: with L live
// files a caught-up file's next turn comes after min(L/turnsPerSecond s,
// slotRevisit), so a few files over a few slots take their turns at every
// scan, and 1,000 take 333 turns a second, not 1,000 (Agent.revisit).
const turnsPerSecond = 333

// shelved is a file known to the agent but not open.
type shelved struct {
	key  fileKey
	path string // where it was last seen
	in   *input

	// s, e and readTo are set when the file was parked: its batches may
	// still be in flight in s, and reading resumes at readTo (a line's
	// start), not at the checkpoint (which is behind while they are).
	s      *stream
	e      *entry
	readTo int64

	size    int64     // the size last seen
	grewAt  time.Time // when that size was first seen
	rotated bool      // found by identity under another name (priority)

	// head is the parked harvester's (the file's first bytes, as its
	// fingerprint covers them): a turn reuses it rather than reading and
	// hashing the head again (readOnce compares the head after each read,
	// so a content change is still seen).
	head   head
	seenAt time.Time // when a scan last found path naming this file

	parkedAt time.Time // when it was parked
	caughtUp bool      // it gave its slot up at its end (not for its turn's length)

	initial  bool      // queued by the first scan (read_from applies)
	queuedAt time.Time // when it started to wait; zero when not queued
	seen     bool      // matched by the current scan
}

// skipLook reports whether the scan leaves path alone this time, without
// even a stat (each of 10,000 files every scan_interval was most of an idle
// agent's CPU, and a twentieth of one with 1,000 live files): an idle file
// not due for its next look (idleLook), or a file that ended its turn at its
// end less than Agent.revisit ago while files take turns (it would not be
// queued again yet; it counts as seen, and a rotation meanwhile is found a
// scan later).
func (a *Agent) skipLook(path string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if il := a.idle[path]; il != nil {
		il.scan = a.scanN
		if time.Now().Before(il.next) {
			return true
		}
	}
	k, ok := a.shelfPath[path]
	if !ok {
		return false
	}
	sh := a.shelf[k]
	if sh == nil || sh.s == nil || !sh.caughtUp || !sh.queuedAt.IsZero() ||
		time.Since(sh.parkedAt) >= time.Duration(a.revisit.Load()) || !a.contendedLocked() {
		return false
	}
	sh.seen = true
	return true
}

// contendedLocked: files take turns for the slots (all taken, files wait,
// or more live files than slots lately). a.mu is held.
func (a *Agent) contendedLocked() bool {
	return len(a.open)+a.opening >= a.cfg.MaxOpenFiles || a.nQueued.Load() > 0 || a.crowded.Load()
}

// Idle files: a file read to its end whose size has not changed for
// idleSlowAfter is looked at (stat) every idleLookEvery rather than at every
// scan: with 10,000 idle files, a stat each every scan_interval was most of
// the idle agent's CPU. A line written to a file idle that long waits up to
// idleLookEvery more.
const (
	idleSlowAfter = time.Minute
	idleLookEvery = 4 * time.Second
)

type idleLook struct {
	size  int64     // the size last seen
	since time.Time // since when it has that size
	next  time.Time // not looked at before then
	scan  uint64    // the last scan that matched it
}

// noteIdle records that path, read to its end, has size.
func (a *Agent) noteIdle(path string, size int64) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	il := a.idle[path]
	if il == nil || il.size != size {
		il = &idleLook{size: size, since: now}
		a.idle[path] = il
	}
	il.scan = a.scanN
	if now.Sub(il.since) >= idleSlowAfter {
		il.next = now.Add(idleLookEvery)
	}
}

// sweepIdle forgets the idle files the last scan did not match.
func (a *Agent) sweepIdle() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for p, il := range a.idle {
		if il.scan != a.scanN {
			delete(a.idle, p)
		}
	}
}

// forgetPathLocked removes path's per-file series (metrics.forgetPath) once
// no harvester has it open and no shelved file is kept under it: a file
// parked between its turns keeps its series (re-created every turn, they
// were a twentieth of the agent's CPU with 1,000 live files over 256 slots,
// and each turn reset its counters to zero); one forgotten (idle past
// close_inactive, rotated away, deleted) loses them. a.mu is held.
func (a *Agent) forgetPathLocked(path string) {
	if a.pathRefs[path] > 0 {
		return
	}
	if _, ok := a.shelfPath[path]; ok {
		return
	}
	a.m.forgetPath(path)
}

// slotsWanted reports whether files wait for a slot: a reader that is caught
// up then gives its slot up, and one that has held it for a turn yields.
func (a *Agent) slotsWanted() bool { return a.nQueued.Load() > 0 }

// enqueue puts sh in the queue (rotated files first: they are read to their
// end before the next rotation takes them away). a.mu is held.
func (a *Agent) enqueueLocked(sh *shelved) {
	if !sh.queuedAt.IsZero() {
		return
	}
	sh.queuedAt = time.Now()
	if sh.rotated {
		a.queueRot = append(a.queueRot, sh)
	} else {
		a.queue = append(a.queue, sh)
	}
	a.nQueued.Add(1)
}

// shelveLocked records sh (replacing what was shelved under its key).
// a.mu is held.
func (a *Agent) shelveLocked(sh *shelved) {
	if old := a.shelf[sh.key]; old != nil && old != sh {
		a.unshelveLocked(old)
		if old.path != sh.path {
			a.forgetPathLocked(old.path)
		}
	}
	a.shelf[sh.key] = sh
	if !sh.rotated {
		a.shelfPath[sh.path] = sh.key
	}
}

// unshelveLocked forgets sh, and takes it out of the queue. a.mu is held.
func (a *Agent) unshelveLocked(sh *shelved) {
	if a.shelf[sh.key] == sh {
		delete(a.shelf, sh.key)
	}
	if a.shelfPath[sh.path] == sh.key {
		delete(a.shelfPath, sh.path)
	}
	if !sh.queuedAt.IsZero() {
		q := &a.queue
		if sh.rotated {
			q = &a.queueRot
		}
		if i := slices.Index(*q, sh); i >= 0 {
			*q = slices.Delete(*q, i, i+1)
			a.nQueued.Add(-1)
		}
		sh.queuedAt = time.Time{}
	}
}

// admit opens queued files, oldest first, while slots are free.
func (a *Agent) admit(ctx context.Context) {
	for ctx.Err() == nil {
		a.mu.Lock()
		if len(a.open)+a.opening >= a.cfg.MaxOpenFiles {
			a.mu.Unlock()
			return
		}
		var sh *shelved
		switch {
		case len(a.queueRot) > 0:
			sh = a.queueRot[0]
		case len(a.queue) > 0:
			sh = a.queue[0]
		default:
			a.mu.Unlock()
			return
		}
		waited := time.Since(sh.queuedAt)
		a.unshelveLocked(sh)
		if a.open[sh.key] != nil || a.openingKeys[sh.key] {
			a.mu.Unlock()
			continue // opened meanwhile
		}
		a.opening++
		a.openingKeys[sh.key] = true
		a.mu.Unlock()
		a.m.slotWait.Observe(waited.Seconds())
		a.openShelved(ctx, sh)
		a.mu.Lock()
		a.opening--
		delete(a.openingKeys, sh.key)
		a.mu.Unlock()
	}
}

// openShelved opens a file that waited, found by its identity: under the
// name it was seen with, or, when that name now holds another file (it was
// rotated while it waited), in the same directory under its new name.
func (a *Agent) openShelved(ctx context.Context, sh *shelved) {
	// The common case, one open and one fstat: the name still names it.
	if f, err := openLog(sh.path); err == nil {
		if fi, err := f.Stat(); err == nil && keyOf(fi) == sh.key {
			a.startFile(ctx, sh.in, sh.path, f, fi, sh.initial, sh.rotated, sh)
			return
		}
		f.Close()
	}
	path, ok := findByInode(sh) // rotated while it waited
	if !ok {
		a.lostWhileShelved(sh)
		return
	}
	a.openFile(ctx, sh.in, path, sh.initial, sh.rotated || path != sh.path, sh)
}

// openLog opens path for reading. Not os.Open: that also registers the
// descriptor with the runtime's poller (epoll_ctl, which fails for a
// regular file), a syscall more on every turn of a slot.
func openLog(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// locate finds sh's file: at its path if that still names it, else by inode
// in its directory.
func (a *Agent) locate(sh *shelved) (string, bool) {
	if fi, err := os.Stat(sh.path); err == nil && keyOf(fi) == sh.key {
		return sh.path, true
	}
	return findByInode(sh)
}

// findByInode finds sh's file by inode in its directory.
func findByInode(sh *shelved) (string, bool) {
	dir := filepath.Dir(sh.path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", false
	}
	for _, de := range ents {
		if !de.Type().IsRegular() {
			continue
		}
		info, err := de.Info()
		if err == nil && keyOf(info) == sh.key {
			return filepath.Join(dir, de.Name()), true
		}
	}
	return "", false
}

// lostWhileShelved reports a file that was deleted while it was not open:
// what it held beyond where reading stopped can no longer be read.
func (a *Agent) lostWhileShelved(sh *shelved) {
	a.mu.Lock()
	a.forgetPathLocked(sh.path)
	a.mu.Unlock()
	from := sh.readTo
	if sh.s == nil {
		if e := a.reg.peek(sh.key); e != nil {
			from = a.reg.offsetOf(e)
		}
	}
	lost := max(sh.size-from, 0)
	if lost > 0 {
		a.log.Error("file deleted while it waited for a slot (max_open_files); its unread bytes are lost: raise max_open_files, or rotate by rename and keep the rotated file longer",
			"path", sh.path, "inode", sh.key.Ino, "read_to", from, "size", sh.size, "lost_bytes", lost, "max_open_files", a.cfg.MaxOpenFiles)
		a.m.unreadLost.Add(float64(lost))
	}
}

// movedAway is called when a scan finds path naming file k while the file
// shelved under that path is another one: the shelved file was rotated (or
// deleted). It is queued, with priority, under its new name; one deleted is
// reported.
func (a *Agent) movedAway(ctx context.Context, old fileKey) {
	a.mu.Lock()
	sh := a.shelf[old]
	a.mu.Unlock()
	if sh == nil {
		return
	}
	path, ok := a.locate(sh)
	a.mu.Lock()
	if a.shelf[old] != sh {
		a.mu.Unlock()
		return
	}
	a.unshelveLocked(sh)
	a.forgetPathLocked(sh.path)
	if ok {
		sh.path, sh.rotated = path, true
		a.shelveLocked(sh)
		a.enqueueLocked(sh)
	}
	a.mu.Unlock()
	if !ok {
		a.lostWhileShelved(sh)
		return
	}
	a.log.Info("a file that was not open was rotated; it will be read to its end", "path", path)
	a.admit(ctx)
}

// park shelves h's file as it gives its slot up (for files that wait, or
// idle for close_inactive): its stream goes on, reading resumes at
// h.offset. queue says it has more to read (it yielded).
func (a *Agent) park(h *harvester, queue bool) {
	sh := &shelved{
		key: h.key, path: h.path, in: h.in,
		s: h.s, e: h.e, readTo: h.resumeAt(), // resumeAt: container.go
		size: h.lastSize, grewAt: h.lastGrowth,
		head: h.head, seenAt: h.pathAt,
		parkedAt: time.Now(), caughtUp: !queue,
	}
	a.mu.Lock()
	// The slot is free from here on, in the same step as the file is
	// shelved: an admission between the two found it still open, dropped
	// it from the shelf as "opened meanwhile", and the next scan opened it
	// from its checkpoint, reading the batches still in flight again.
	if a.open[h.key] == h {
		delete(a.open, h.key)
		a.m.openFiles.Set(float64(len(a.open)))
	}
	a.shelveLocked(sh)
	if queue {
		a.enqueueLocked(sh)
	}
	a.mu.Unlock()
}

// sweepShelf runs after each scan: shelved files that the scan did not see
// under their name were rotated or deleted (moved away); parked files idle
// for close_inactive are forgotten (their checkpoint entry stays, as for any
// file closed when idle). It also logs, once a minute, how many files wait.
func (a *Agent) sweepShelf(ctx context.Context) {
	now := time.Now()
	var moved []fileKey
	a.mu.Lock()
	for k, sh := range a.shelf {
		switch {
		case sh.seen:
			sh.seen = false
		case !sh.queuedAt.IsZero() && sh.rotated:
			// Found by identity: no glob names it. It is opened by
			// identity when its turn comes.
		default:
			moved = append(moved, k)
			continue
		}
		if sh.queuedAt.IsZero() && now.Sub(sh.grewAt) >= a.cfg.CloseInactive.Duration && (sh.s == nil || sh.s.settled()) {
			a.unshelveLocked(sh)
			a.forgetPathLocked(sh.path)
		}
	}
	n := len(a.queue) + len(a.queueRot)
	// Live files: the open ones and those that had a turn lately (a file
	// parked more than slotRevisit and two scans ago has not grown
	// since, or it would be queued again). Crowded: more than slots.
	live := len(a.open) + n
	var cooled []string
	for _, sh := range a.shelf {
		if sh.s == nil || !sh.queuedAt.IsZero() {
			continue
		}
		if now.Sub(sh.parkedAt) < slotRevisit+2*a.cfg.ScanInterval.Duration {
			live++
			continue
		}
		// No longer taking turns: what a turn reuses (its head, its
		// series) is let go, so that an idle file costs
		// little (10,000 idle files kept 10 MB of heads and 30,000
		// series, above the soft memory limit: the GC ran without
		// pause).
		if sh.head.loaded {
			sh.head = head{}
			cooled = append(cooled, sh.path)
		}
	}
	for _, p := range cooled {
		if a.pathRefs[p] == 0 {
			a.m.forgetPath(p)
		}
	}
	a.crowded.Store(n > 0 || live > a.cfg.MaxOpenFiles)
	a.revisit.Store(int64(min(slotRevisit, time.Duration(live)*time.Second/turnsPerSecond)))
	var oldest time.Duration
	for _, q := range [][]*shelved{a.queueRot, a.queue} {
		if len(q) > 0 {
			oldest = max(oldest, now.Sub(q[0].queuedAt))
		}
	}
	a.m.shelved.Set(float64(len(a.shelf)))
	a.mu.Unlock()
	a.m.filesWaiting.Set(float64(n))
	a.m.oldestWait.Set(oldest.Seconds())
	if n > 0 {
		if ok, _ := a.every("slots", time.Minute); ok {
			a.log.Warn("files wait for a free slot (max_open_files reached); each is read in its turn", "waiting", n, "longest_wait", oldest.Round(time.Millisecond), "max_open_files", a.cfg.MaxOpenFiles)
		}
	}
	for _, k := range moved {
		a.movedAwayOrGone(ctx, k)
	}
}

// movedAwayOrGone: a shelved file its scan did not see. Its name may still
// name it (a glob no longer matches, or the scan raced a rotation): then it
// just stays shelved.
func (a *Agent) movedAwayOrGone(ctx context.Context, k fileKey) {
	a.mu.Lock()
	sh := a.shelf[k]
	a.mu.Unlock()
	if sh == nil {
		return
	}
	fi, err := os.Stat(sh.path)
	if err == nil && keyOf(fi) == k {
		a.mu.Lock()
		if !sh.queuedAt.IsZero() || fi.Size() == sh.readTo {
			a.mu.Unlock()
			return
		}
		if fi.Size() != sh.size {
			sh.size, sh.grewAt = fi.Size(), time.Now()
		}
		a.enqueueLocked(sh)
		a.mu.Unlock()
		a.admit(ctx)
		return
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return
	}
	a.movedAway(ctx, k)
}
