package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/enrich"
	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are the agent's collaborators.
type Options struct {
	Log        *slog.Logger
	Registerer prometheus.Registerer // nil: no metrics registered
	// KeyField is the event field used as the Kafka record key ("" none).
	KeyField string
	// KeepRaw keeps every line's raw bytes in Event.Raw (a Kafka raw topic
	// needs them). Without it Raw is set only for lines that did not parse.
	KeepRaw bool
	// Avro makes every parsed event carry its Avro encoding too
	// (sinks.Event.Avro): the Kafka sink's value_format = "avro".
	Avro bool
	// AvroOnly (with Avro): no sink wants the JSON, so lines are matched
	// and encoded in Avro only and Event.Value is empty.
	AvroOnly bool
	// Enricher, when set ([enrich]), adds client_ip, geo and ua: each
	// parsed event also gets Event.Enriched (agent/enrich).
	Enricher *enrich.Enricher
	// EnrichedOnly: no sink wants the original events (no Kafka
	// enriched_topic, S3 enriched or off), so Event.Value is the enriched
	// event itself (made in place, no copy) and Event.Enriched is nil.
	EnrichedOnly bool
}

// input is a compiled [[inputs]] entry.
type input struct {
	idx         int
	cfg         InputConfig
	parser      *parser.Parser
	format      string // name for record headers: the built-in name or "custom"
	parsed      prometheus.Counter
	parseErrors prometheus.Counter
	longLines   prometheus.Counter
	// schemaErrors counts parsed lines whose event does not fit its Avro
	// schema (Options.Avro).
	schemaErrors prometheus.Counter
	enrich       *enrich.Binding // nil without [enrich]

	stderrParser *parser.Parser     // container inputs: stderr_format (container.go)
	klogLines    prometheus.Counter // container inputs
}

// Agent finds the files of every input, reads them and hands their lines to
// the sinks; it checkpoints what every sink acknowledged. See doc.go.
type Agent struct {
	cfg     Config
	inputs  []*input
	sinks   []sinks.Sink
	log     *slog.Logger
	reg     *Registry
	m       *metrics
	budget  *budget
	readers *readers
	runners *runners

	flights  flightPool
	pool     *parsePool // parse workers (parallel.go); nil on one core
	keepRaw  bool
	avro     bool
	avroOnly bool
	ops      *streamOps      // see health.go
	sendCtx  context.Context // see Run

	keyField string // sinks.kafka.key (container.go)

	// [enrich] (agent/enrich): nil without it; enrichedOnly is
	// Options.EnrichedOnly.
	enrich       *enrich.Enricher
	enrichedOnly bool

	mu      sync.Mutex
	open    map[fileKey]*harvester
	opening int // slots taken by files being opened
	// openingKeys are the files being opened: two openers of one file (a
	// scan and a slot's admission) would read it twice.
	openingKeys map[fileKey]bool
	pathRefs    map[string]int // open harvesters per path (their metric series, with shelfPath)
	// shelf: files known but not open (parked or queued), see slots.go.
	shelf     map[fileKey]*shelved
	shelfPath map[string]fileKey   // the shelved file last seen at a path
	queue     []*shelved           // waiting for a slot, oldest first
	queueRot  []*shelved           // rotated files waiting: served first
	nQueued   atomic.Int32         // len(queue) + len(queueRot)
	crowded   atomic.Bool          // more live files than slots (sweepShelf)
	idle      map[string]*idleLook // files read to their end, unchanged (slots.go)
	scanN     uint64               // scans made
	globs     *globCache           // the scan's directory listings (glob.go); the scan's own
	revisit   atomic.Int64         // how soon a caught-up file takes its next turn (ns; sweepShelf)
	wg        sync.WaitGroup
	scanNow   chan struct{}
	logged    map[string]*logState // repeated messages, by key
}

// logState is when a repeated message was last logged and how many times
// it was held back since.
type logState struct {
	last       time.Time
	suppressed int
}

// every reports whether the message keyed key may be logged now, once per
// period per key so a condition that persists does not flood the journal,
// and how many times it was held back since it was last logged.
func (a *Agent) every(key string, period time.Duration) (ok bool, suppressed int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.logged == nil {
		a.logged = map[string]*logState{}
	}
	st := a.logged[key]
	if st == nil {
		st = &logState{}
		a.logged[key] = st
	}
	if !st.last.IsZero() && time.Since(st.last) < period {
		st.suppressed++
		return false, 0
	}
	n := st.suppressed
	st.last, st.suppressed = time.Now(), 0
	return true, n
}

// CompileInputs compiles the format of every input; the errors name the key.
func CompileInputs(ins []InputConfig, keyField string, readFile func(string) ([]byte, error)) ([]*parser.Parser, error) {
	var errs []error
	out := make([]*parser.Parser, len(ins))
	for i := range ins {
		p, _, err := compileFormat(ins[i].Format, ins[i].Escape, parserKey(ins[i], keyField), ins[i].Location(), readFile) // parserKey: container.go
		if err != nil {
			errs = append(errs, fmt.Errorf("inputs[%d].format: %w", i, err))
			continue
		}
		out[i] = p
	}
	if _, err := compileStderrAll(ins, keyField, readFile); err != nil {
		errs = append(errs, err) // container inputs (container.go)
	}
	return out, errors.Join(errs...)
}

// New validates and prepares an agent: it opens data_dir's checkpoints and
// compiles every input's format. It reads no file until Run.
func New(cfg Config, ins []InputConfig, ss []sinks.Sink, opts Options) (*Agent, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if len(ss) == 0 {
		return nil, errors.New("no sink enabled: enable [sinks.kafka] or [sinks.s3]")
	}
	parsers, err := CompileInputs(ins, opts.KeyField, os.ReadFile)
	if err != nil {
		return nil, err
	}
	reg, corrupt, err := OpenRegistry(cfg.DataDir, opts.Log.With("component", "checkpoint"))
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:         cfg,
		sinks:       ss,
		log:         opts.Log,
		reg:         reg,
		budget:      newBudget(int64(cfg.MaxInFlightBytes)),
		open:        map[fileKey]*harvester{},
		pathRefs:    map[string]int{},
		openingKeys: map[fileKey]bool{},
		shelf:       map[fileKey]*shelved{},
		shelfPath:   map[string]fileKey{},
		idle:        map[string]*idleLook{},
		globs:       newGlobCache(),
		readers:     newReaders(readersMax),
		runners:     newRunners(),
		scanNow:     make(chan struct{}, 1),
		keepRaw:     opts.KeepRaw,
		avro:        opts.Avro,
		avroOnly:    opts.Avro && opts.AvroOnly,
	}
	a.enrich, a.enrichedOnly = opts.Enricher, opts.EnrichedOnly
	a.m = newMetrics(opts.Registerer, func() float64 {
		t := reg.lastSaved()
		if t.IsZero() {
			return 0
		}
		return time.Since(t).Seconds()
	})
	if corrupt != "" {
		a.m.checkpointCorrupt.Set(1)
	}
	a.m.addSinks(ss)
	a.ops = &streamOps{m: a.m, dl: &deadLetters{dir: filepath.Join(cfg.DataDir, "dead-letter"), m: a.m}}
	a.ops.retry = a.retry
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(newFileCollector(a))
	}
	for i, in := range ins {
		name := "custom"
		if _, ok := parser.Builtin(in.Format); ok {
			name = in.Format
		}
		l := strconv.Itoa(i)
		a.inputs = append(a.inputs, &input{
			idx: i, cfg: in, parser: parsers[i], format: name,
			parsed:       a.m.eventsParsed.WithLabelValues(l),
			parseErrors:  a.m.parseErrors.WithLabelValues(l),
			longLines:    a.m.longLines.WithLabelValues(l),
			schemaErrors: a.m.schemaErrors.WithLabelValues(l),
		})
		if opts.Enricher != nil {
			b, err := opts.Enricher.Bind(parsers[i])
			if err != nil {
				return nil, fmt.Errorf("inputs[%d]: %w", i, err)
			}
			a.inputs[i].enrich = b
		}
	}
	if err := a.initContainerInputs(ins, opts); err != nil { // container.go
		return nil, err
	}
	return a, nil
}

// Run reads until ctx is done. Then it stops reading, waits for its readers
// to hand on their last batches and returns; the caller closes the sinks
// (which completes what is in flight) and then calls Close for the final
// checkpoint.
func (a *Agent) Run(ctx context.Context) error {
	// Sends outlive ctx by a grace period: a batch handed to the sinks as
	// the agent stops must reach all of them or none, or the one that took
	// it gets it twice after the restart. Only a sink still blocked after
	// the grace period (an outage) is given up on.
	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSend()
	a.sendCtx = sendCtx
	a.pool = startParsePool(a) // parallel.go
	defer a.pool.stop()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.watchStale(ctx)
	}()
	go func() {
		<-ctx.Done()
		t := time.NewTimer(sendGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelSend()
		case <-sendCtx.Done():
		}
	}()
	a.scan(ctx, true)
	a.resumeRotated(ctx)
	scanT := time.NewTicker(a.cfg.ScanInterval.Duration)
	defer scanT.Stop()
	cpT := time.NewTicker(a.cfg.CheckpointInterval.Duration)
	defer cpT.Stop()
	for {
		a.heartbeat()
		select {
		case <-ctx.Done():
			a.wg.Wait()
			return nil
		case <-scanT.C:
			a.scan(ctx, false)
			a.flights.trim(time.Minute)
		case <-a.scanNow:
			a.scan(ctx, false)
		case <-cpT.C:
			a.saveCheckpoint()
		}
	}
}

// Close writes the final checkpoint. Call it after the sinks were closed.
func (a *Agent) Close() error { return a.saveCheckpoint() }

func (a *Agent) saveCheckpoint() error {
	if err := a.reg.Save(); err != nil {
		a.log.Error("checkpoint not written; will retry (nothing is lost: lines since the last checkpoint are resent after a restart)", "err", err)
		a.m.checkpointErr.Inc()
		return err
	}
	return nil
}

func (a *Agent) wakeScan() {
	select {
	case a.scanNow <- struct{}{}:
	default:
	}
}

// scan matches every input's globs and starts a reader for each new file.
func (a *Agent) scan(ctx context.Context, initial bool) {
	a.mu.Lock()
	a.scanN++
	a.mu.Unlock()
	for _, in := range a.inputs {
		for _, pat := range in.cfg.Paths {
			for _, path := range a.globs.glob(pat) {
				if excluded(in.cfg.Exclude, path) {
					continue
				}
				a.consider(ctx, in, path, initial, false)
			}
		}
	}
	a.sweepShelf(ctx)
	a.sweepIdle()
}

func excluded(pats []string, path string) bool {
	for _, p := range pats {
		if ok, _ := filepath.Match(p, path); ok {
			return true
		}
		if ok, _ := filepath.Match(p, filepath.Base(path)); ok {
			return true
		}
	}
	return false
}

// consider starts reading path unless it is already being read, or queues
// it when every slot is taken (or files wait already: they go first).
// rotated says the file was found by identity, not by an input's glob.
func (a *Agent) consider(ctx context.Context, in *input, path string, initial, rotated bool) {
	if !initial && !rotated && a.skipLook(path) {
		return
	}
	// syscall.Stat rather than os.Stat: no FileInfo to allocate, for a
	// stat of every matched file at every scan.
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return
	}
	k := fileKey{Dev: uint64(st.Dev), Ino: st.Ino}
	size := st.Size
	a.mu.Lock()
	_, busy := a.open[k]
	if busy {
		a.mu.Unlock()
		return
	}
	if a.openingKeys[k] {
		a.mu.Unlock()
		return
	}
	var movedFrom fileKey
	moved := false
	if pk, ok := a.shelfPath[path]; ok && pk != k {
		movedFrom, moved = pk, true
	}
	sh := a.shelf[k]
	if sh != nil {
		sh.seen, sh.seenAt = true, time.Now()
		if size != sh.size {
			sh.size, sh.grewAt = size, time.Now()
		}
		if !sh.queuedAt.IsZero() {
			a.mu.Unlock() // waits already
			if moved {
				a.movedAway(ctx, movedFrom)
			}
			return
		}
	}
	a.mu.Unlock()
	if moved {
		a.movedAway(ctx, movedFrom)
	}
	if sh != nil && sh.s != nil {
		if size == sh.readTo && !rotated {
			a.noteIdle(path, size)
			return // parked, nothing new
		}
	} else if e := a.reg.peek(k); e != nil && e.Offset == size && e.FPLen >= min(fingerprintLen, int(size)) && !initial && !rotated {
		// Idle file fully read: nothing to do, no need to open it.
		a.noteIdle(path, size)
		return
	}
	a.mu.Lock()
	delete(a.idle, path)
	if a.open[k] != nil || a.openingKeys[k] || (a.shelf[k] != nil && !a.shelf[k].queuedAt.IsZero()) {
		a.mu.Unlock()
		return
	}
	if len(a.open)+a.opening >= a.cfg.MaxOpenFiles || a.nQueued.Load() > 0 {
		if sh == nil || a.shelf[k] != sh {
			sh = &shelved{key: k, path: path, in: in, size: size, grewAt: time.Now(), seen: true, initial: initial}
		}
		sh.rotated = sh.rotated || rotated
		if sh.path != path {
			a.unshelveLocked(sh)
			a.forgetPathLocked(sh.path)
			sh.path = path
		}
		a.shelveLocked(sh)
		a.enqueueLocked(sh)
		a.mu.Unlock()
		a.admit(ctx) // slots may be free: the queue's head goes first
		return
	}
	if sh != nil {
		a.unshelveLocked(sh)
	}
	a.opening++
	a.openingKeys[k] = true
	a.mu.Unlock()
	a.openFile(ctx, in, path, initial, rotated, sh)
	a.mu.Lock()
	a.opening--
	delete(a.openingKeys, k)
	a.mu.Unlock()
}

// openFile opens path and starts its harvester. sh, when not nil, is what
// the agent kept of the file while it was not open: a parked file resumes
// its stream where it stopped reading.
func (a *Agent) openFile(ctx context.Context, in *input, path string, initial, rotated bool, sh *shelved) {
	f, err := openLog(path)
	if err != nil {
		a.mu.Lock()
		a.forgetPathLocked(path)
		a.mu.Unlock()
		if ok, _ := a.every("open "+path, time.Minute); ok {
			a.log.Error("cannot open log file (retried every scan; logged once a minute)", "path", path, "err", err)
		}
		return
	}
	ofi, err := f.Stat()
	if err != nil {
		f.Close()
		return
	}
	a.startFile(ctx, in, path, f, ofi, initial, rotated, sh)
}

// startFile starts the harvester of f, opened at path (ofi is its fstat).
func (a *Agent) startFile(ctx context.Context, in *input, path string, f *os.File, ofi os.FileInfo, initial, rotated bool, sh *shelved) {
	k := keyOf(ofi)
	size := ofi.Size()
	var e *entry
	var s *stream
	offset := int64(0)
	if sh != nil && sh.s != nil && sh.key == k {
		// With the head kept (a parked file), the read that follows
		// compares it (readOnce, check): no hash of it here.
		if size >= sh.readTo && (sh.head.n > 0 || sh.e.matches(k, f, size)) {
			// Parked: resume reading where it stopped, in the same
			// stream (its batches may still be in flight).
			e, s, offset = sh.e, sh.s, sh.readTo
		} else {
			// Truncated while parked (copytruncate): the lines it had
			// not read are in logrotate's copy.
			a.log.Warn("file truncated while it was parked (copytruncate?); reading it again from the start", "path", path, "read_offset", sh.readTo, "size", size)
			a.m.rotations.WithLabelValues(path, "truncate").Inc()
			a.findCopy(ctx, in, path, k, sh.e.FP, sh.e.FPLen, sh.readTo)
		}
	}
	if e == nil {
		e = a.reg.lookup(k, f, size)
		switch {
		case e != nil:
			offset = a.reg.offsetOf(e)
			if offset > size {
				a.log.Warn("file is shorter than its checkpoint (truncated while we were down); reading it from the start", "path", path, "checkpoint", offset, "size", size)
				e, offset = nil, 0
			}
		case initial && in.cfg.ReadFrom == "end":
			offset = size
		}
	}
	if e == nil {
		e = &entry{Path: path, Dev: k.Dev, Ino: k.Ino, Offset: offset, Seen: time.Now()}
		e.FP, e.FPLen, _ = fingerprint(f, size)
		if orig := a.reg.byFingerprint(e.FP, e.FPLen, k); orig != nil {
			// A copy of a file we know (logrotate copytruncate): its lines
			// up to the original's checkpoint were delivered already.
			e.Offset = min(a.reg.offsetOf(orig), size)
			offset = e.Offset
			rotated = true
			a.log.Info("file is a copy of a known file (copytruncate); reading it from the original's checkpoint",
				"path", path, "original", orig.Path, "offset", offset)
		}
	}
	a.reg.update(func() { e.Path, e.Seen = path, time.Now() })
	a.reg.put(e)
	if s == nil {
		s = a.newStream(e)
	}

	h := &harvester{
		a: a, in: in, path: path, f: f, key: k, e: e, offset: offset, rotated: rotated, rotatedAt: time.Now(),
		src:      &sinks.Source{Path: path, Input: in.idx, Format: in.format, Topic: in.cfg.Topic, S3Prefix: in.cfg.S3Prefix},
		meta:     parser.Meta{Host: a.cfg.Hostname, File: path},
		lastSize: -1,
		s:        s,
		ml:       newJoiner(in),
	}
	if sh != nil && sh.s == s && sh.path == path {
		h.head, h.pathAt = sh.head, sh.seenAt
	}
	h.initContainer() // container inputs (container.go)
	a.mu.Lock()
	if _, busy := a.open[k]; busy {
		a.mu.Unlock()
		f.Close()
		return
	}
	a.open[k] = h
	a.pathRefs[path]++
	a.m.openFiles.Set(float64(len(a.open)))
	a.mu.Unlock()
	h.lines = a.m.linesRead.WithLabelValues(path)
	h.bytes = a.m.bytesRead.WithLabelValues(path)
	h.lagG = a.m.lag.WithLabelValues(path)
	if sh != nil && sh.s != nil {
		if a.log.Enabled(ctx, slog.LevelDebug) {
			h.logger().Debug("reading parked file again", "offset", offset, "size", size)
		}
	} else {
		h.logger().Info("reading file", "offset", offset, "size", size, "rotated", rotated)
	}
	a.wg.Add(1)
	a.runners.run(func() {
		defer a.wg.Done()
		h.run(ctx)
		a.mu.Lock()
		if a.open[k] == h { // else parked (slots.go), maybe open again
			delete(a.open, k)
			a.m.openFiles.Set(float64(len(a.open)))
		}
		a.pathRefs[path]--
		if a.pathRefs[path] <= 0 {
			delete(a.pathRefs, path)
		}
		a.forgetPathLocked(path)
		a.mu.Unlock()
		a.admit(ctx)
	})
}

// resumeRotated finds, at start, the files of checkpoints that no glob
// matched: a file rotated (renamed) while the agent was down is found by its
// identity in its old directory and read to its end from its checkpoint.
func (a *Agent) resumeRotated(ctx context.Context) {
	dirs := dirListings{}
	for _, e := range a.reg.all() {
		k := fileKey{e.Dev, e.Ino}
		a.mu.Lock()
		_, busy := a.open[k]
		a.mu.Unlock()
		if busy {
			continue
		}
		in := a.inputFor(e.Path)
		if in == nil {
			continue
		}
		if fi, err := os.Lstat(e.Path); err == nil && fi.Mode().IsRegular() && keyOf(fi) == k {
			// Under its name (most checkpoints): read or not, the scan
			// has it (it may have given its slot up already; taking it
			// for a rotated file held a slot for minutes).
			continue
		}
		dir := filepath.Dir(e.Path)
		found := false
		if de := dirs.byKey(dir)[k]; de != nil {
			info, err := de.Info()
			if err != nil {
				continue
			}
			if info.Size() <= e.Offset {
				found = true // fully read already
			} else if de.Name() == filepath.Base(e.Path) {
				found = true // under its name again (renamed back)
			} else {
				a.log.Info("found a file rotated while the agent was down", "checkpoint_path", e.Path, "now", filepath.Join(dir, de.Name()))
				a.consider(ctx, in, filepath.Join(dir, de.Name()), false, true)
				found = true
			}
		}
		if !found && time.Since(e.Seen) > 7*24*time.Hour {
			a.reg.forget(e.e)
		}
	}
	a.resumeSiblings(ctx, dirs)
}

// dirListings are the directories resumeRotated and resumeSiblings look
// in, each read once: with thousands of checkpoints in one directory, a
// listing for each was quadratic (10,000 files: 100 M directory entries
// read at start).
type dirListings map[string]*dirListing

type dirListing struct {
	ents []os.DirEntry // sorted by name; nil when the directory could not be read
	keys map[fileKey]os.DirEntry
}

func (d dirListings) get(dir string) *dirListing {
	l := d[dir]
	if l == nil {
		l = &dirListing{}
		l.ents, _ = os.ReadDir(dir)
		d[dir] = l
	}
	return l
}

// byKey returns dir's regular files by identity (an lstat of each, once).
func (d dirListings) byKey(dir string) map[fileKey]os.DirEntry {
	l := d.get(dir)
	if l.keys == nil {
		l.keys = map[fileKey]os.DirEntry{}
		for _, de := range l.ents {
			if !de.Type().IsRegular() {
				continue
			}
			if info, err := de.Info(); err == nil && info.Mode().IsRegular() {
				l.keys[keyOf(info)] = de
			}
		}
	}
	return l.keys
}

// compressedExt are rotated files we cannot read as text.
// (".tmp": kubelet gzips a rotated container log through NAME.gz.tmp.)
var compressedExt = []string{".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z", ".zip", ".tmp"}

// resumeSiblings finds files rotated in while the agent was down that it
// never saw (rotated twice: access.log.1 was born and renamed while down):
// in the directory of each input's live files, a file named after a live
// file plus "." or "-" (logrotate's numbered and dateext names), not
// compressed, unknown to the checkpoints, changed since the previous run's
// last checkpoint, is read from its start (or from its original's
// checkpoint, when it is a copy).
func (a *Agent) resumeSiblings(ctx context.Context, dirs dirListings) {
	since := a.reg.prevWritten
	if since.IsZero() {
		return // first run: nothing was missed
	}
	// The kernel stamps mtime from a coarse clock that can lag the one
	// the checkpoint's time came from; and a file rotated in and away
	// within one scan before the stop was missed too. Look a little back.
	since = since.Add(-(a.cfg.ScanInterval.Duration + 5*time.Second))
	seen := map[string]bool{}
	for _, e := range a.reg.all() {
		in := a.inputFor(e.Path)
		if in == nil || seen[e.Path] {
			continue
		}
		seen[e.Path] = true
		dir, base := filepath.Dir(e.Path), filepath.Base(e.Path)
		ents := dirs.get(dir).ents
		// The names that start with base, in order: base+"-..." and
		// base+"."... sort after base.
		i, _ := slices.BinarySearchFunc(ents, base, func(de os.DirEntry, b string) int { return strings.Compare(de.Name(), b) })
		for _, de := range ents[i:] {
			name := de.Name()
			if !strings.HasPrefix(name, base) {
				break
			}
			if name == base || !(strings.HasPrefix(name, base+".") || strings.HasPrefix(name, base+"-")) {
				continue
			}
			if slices.ContainsFunc(compressedExt, func(x string) bool { return strings.HasSuffix(name, x) }) {
				continue
			}
			info, err := de.Info()
			if err != nil || !info.Mode().IsRegular() || info.ModTime().Before(since) {
				continue
			}
			if a.reg.peek(keyOf(info)) != nil {
				continue
			}
			p := filepath.Join(dir, name)
			a.log.Info("found a file rotated in while the agent was down", "path", p)
			a.consider(ctx, in, p, false, true)
		}
	}
}

// inputFor returns the input whose globs match path (or matched it before
// rotation: its directory and pattern).
func (a *Agent) inputFor(path string) *input {
	for _, in := range a.inputs {
		for _, pat := range in.cfg.Paths {
			if ok, _ := filepath.Match(pat, path); ok {
				return in
			}
		}
	}
	for _, in := range a.inputs {
		for _, pat := range in.cfg.Paths {
			if filepath.Dir(pat) == filepath.Dir(path) {
				return in
			}
		}
	}
	return nil
}

func (a *Agent) getFlight(src *sinks.Source) *flight {
	fl := a.flights.get()
	fl.b.Reset(src)
	fl.arena = fl.arena[:0]
	fl.spans = fl.spans[:0]
	return fl
}

// release is called once per flight, in order, after every sink finished it.
func (a *Agent) release(fl *flight) {
	n := len(fl.b.Events)
	a.countDone(fl)
	a.m.inFlight.Sub(float64(n))
	a.budget.release(fl.cost)
	a.m.inFlightBytes.Set(float64(a.budget.inUse()))
	a.flights.put(fl)
}

// sendGrace is how long sends may still block after the agent was told to
// stop.
const sendGrace = 5 * time.Second

// send hands fl to every sink. It blocks while the in-flight budget is spent
// (backpressure) and returns false if ctx ended first. A batch is never
// begun once ctx is done (its lines are simply read again after a restart);
// once begun it is handed to every sink under the agent's send context.
func (a *Agent) send(ctx context.Context, s *stream, fl *flight) bool {
	if ctx.Err() != nil {
		a.flights.put(fl)
		return false
	}
	ctx = a.sendCtx
	// The memory the flight holds, not the bytes its batch uses: a few
	// lines in a flight grown by an earlier, full batch hold all of it
	// while in flight (with many files, most batches are such).
	fl.cost = int64(flightSize(fl)) + flightOverhead
	if err := a.budget.acquire(ctx, fl.cost); err != nil {
		a.flights.put(fl)
		return false // not pushed: never checkpointed, read again next start
	}
	a.m.inFlight.Add(float64(len(fl.b.Events)))
	a.m.inFlightBytes.Set(float64(a.budget.inUse()))
	s.push(fl)
	fl.b.Arm(len(a.sinks), fl.onDone) // completes an empty batch at once
	if len(fl.b.Events) == 0 {
		return true
	}
	for si, sk := range a.sinks {
		if err := sk.Send(ctx, &fl.b); err != nil {
			a.sendFailed(si, len(fl.b.Events))
			err = sinks.Failed(sk.Name(), err)
			for i := range fl.b.Events {
				fl.b.Events[i].Done(err)
			}
		}
	}
	return true
}

func (a *Agent) logParseError(in *input, path string, off int64, err error) {
	if ok, n := a.every("parse", 10*time.Second); ok {
		a.log.Warn("line does not match the log_format; sent to the dead-letter path", "input", in.idx, "path", path, "offset", off, "err", err,
			"suppressed", n)
	}
}

// watchStale notes, every poll_interval, the generations of the files whose
// readers have not looked at them for twice that (harvester.lookedAt): a
// reader behind slow sinks waits for room in flight, or hands on what it
// read a batch at a time, without looking at its file, and a busy file can
// be truncated more than once meanwhile. A reader at the end of its file
// looks every poll_interval, and one reading looks at every read, so only
// readers held up by the sinks are watched. Before, the scan noted
// generations only for a reader that had not checked its file for 2 s,
// and a generation that came and went in less while its reader handed on
// a backlog was lost whole (TestCopytruncateTwiceWhileBlocked,
// TestCopytruncateUnderLoad).
func (a *Agent) watchStale(ctx context.Context) {
	every := a.cfg.PollInterval.Duration
	t := time.NewTicker(every)
	defer t.Stop()
	var hs []*harvester
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stale := time.Now().UnixNano() - 2*int64(every)
		hs = hs[:0]
		a.mu.Lock()
		for _, h := range a.open {
			if h.lookedAt.Load() < stale {
				hs = append(hs, h)
			}
		}
		a.mu.Unlock()
		for _, h := range hs {
			a.noteGeneration(h)
		}
		clear(hs)
	}
}

// noteGeneration notes the content h's file holds now as a generation if it
// is not the content h's entry is reading. It reads the file through h's
// descriptor (the same inode whatever its path names now; a descriptor
// closed meanwhile fails the read, and nothing is noted).
func (a *Agent) noteGeneration(h *harvester) {
	fi, err := h.f.Stat()
	if err != nil || fi.Size() < fingerprintLen {
		return // a generation's copy is found by its first KiB
	}
	fp, n, err := fingerprint(h.f, fi.Size())
	if err != nil || n != fingerprintLen {
		return
	}
	a.reg.mu.Lock()
	e := a.reg.entries[h.key]
	var efp string
	efpLen := 0
	if e != nil {
		efp, efpLen = e.FP, e.FPLen
	}
	a.reg.mu.Unlock()
	if e == nil || fp == efp {
		return
	}
	if efpLen < fingerprintLen {
		// The entry's generation was shorter than a KiB when it was
		// fingerprinted: the file still holds it if it starts with the
		// same bytes.
		if short, n, err := fingerprint(h.f, int64(efpLen)); err != nil || n != efpLen || short == efp {
			return
		}
	}
	h.noteGen(fp)
}

// findCopy looks, after a truncation, for the copy logrotate made of the
// file (same leading bytes, another inode, at least as long as what was
// read) in the file's directory, and reads it from readTo: the lines written
// between our last read and the truncation are there.
func (a *Agent) findCopy(ctx context.Context, in *input, path string, not fileKey, fp string, fpLen int, readTo int64) {
	if fpLen < fingerprintLen {
		return
	}
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range ents {
		info, err := de.Info()
		if err != nil || !info.Mode().IsRegular() || keyOf(info) == not || info.Size() <= readTo {
			continue
		}
		k := keyOf(info)
		a.mu.Lock()
		_, busy := a.open[k]
		a.mu.Unlock()
		if busy || a.reg.peek(k) != nil {
			continue
		}
		p := filepath.Join(dir, de.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		got, n, _ := fingerprint(f, info.Size())
		f.Close()
		if n != fpLen || got != fp {
			continue
		}
		e := &entry{Path: p, Dev: k.Dev, Ino: k.Ino, FP: fp, FPLen: n, Offset: readTo, Seen: time.Now()}
		a.reg.put(e)
		a.log.Info("found the copy of a truncated file; reading the lines written before the truncation", "path", p, "offset", readTo, "size", info.Size())
		a.consider(ctx, in, p, false, true)
		return
	}
}
