package s3

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks"
)

const (
	// groupBytes is GroupBytes' default and largest value.
	groupBytes = 4 << 20
	// maxPendingBytes bounds what Send buffers ahead of the committer;
	// Send blocks past it.
	maxPendingBytes = 8 << 20
	// maxOpenBatches bounds the open batches (partitions written at once);
	// the oldest is closed to open another.
	maxOpenBatches = 64
	// compactBelow: a closed batch whose gzip members average fewer
	// uncompressed bytes than this is rewritten as one member before upload.
	compactBelow = 256 << 10
	// tick is how often the committer looks at batch ages when idle.
	tick = time.Second
)

var _ sinks.Sink = (*Sink)(nil)

// Sink is the S3 sink. New opens (and recovers) the spool and starts the
// committer and uploader goroutines; there is no Run. Close stops them.
type Sink struct {
	cfg      Config
	log      *slog.Logger
	api      API
	uploader *manager.Uploader
	prefix   *keyTemplate
	dlPrefix *keyTemplate // nil when dead_letter_prefix is ""
	curPod   podOf        // the batch being taken by Send: its file's pod (s.mu)
	host     string       // hostname for object names (no '/')
	m        *metrics

	uploadFailing atomic.Bool            // the last upload attempt failed
	uploadErr     atomic.Pointer[string] // why, for Ready
	lastUpload    atomic.Int64           // unix ns of the last upload attempt
	probeErr      atomic.Pointer[string] // the idle probe's failure; nil: none
	counts        sinks.Counts

	mu         sync.Mutex
	closed     bool
	crashed    bool          // tests: stop as kill -9 would (see crash in export_test.go)
	changed    chan struct{} // closed and replaced by broadcast
	pend       map[partKey]*pending
	pendBytes  int64
	pendSince  time.Time
	acks       []*sinks.Batch
	spoolBytes int64
	live       map[string]time.Time // batch id -> creation, every batch on disk
	ready      []*batchFile
	commitEnd  bool // committer exited: no more batches will be closed
	uploading  int  // batches taken by uploaders
	prefixes   map[partKey]string
	inPrefix   map[string]*keyTemplate // compiled [[inputs]] s3_prefix templates
	lastKey    partKey
	lastPend   *pending
	free       []*pending             // emptied pending structs for partition to reuse
	schemas    map[int]*parser.Schema // format parquet: by input (UseSchemas)
	noSchema   map[int]bool           // inputs already warned about

	// pqCreate creates a converted Parquet file (tests inject faults).
	pqCreate func(path string) (io.WriteCloser, error)
	// pqMu lets one batch at a time be converted, whatever
	// upload_concurrency: the conversion's memory is one row group's.
	pqMu sync.Mutex

	// Owned by the committer goroutine.
	open map[string]*batchFile
	lw   *bufio.Writer // lines -> gz: one gzip Write per lineBufSize
	gz   *gzip.Writer
	bw   *bufio.Writer // gz -> cw
	cw   countingWriter

	kick       chan struct{}
	closing    chan struct{}
	closeOnce  sync.Once
	commitDone chan struct{}
	upCtx      context.Context
	upCancel   context.CancelFunc
	upWG       sync.WaitGroup
	upDone     chan struct{}
	lock       *os.File // flock of the spool directory
}

// partKey identifies a partition before its prefix is rendered: kind, input
// and event time truncated to the template's resolution.
type partKey struct {
	kind  kind
	input int
	tmpl  *keyTemplate // the prefix template: the sink's, or the input's s3_prefix
	t     int64
	pod   podOf // with {namespace} or {pod} in the template
}

// pending is what Send took for one partition since the last commit: the
// lines, each without its '\n'. An event's line is its Value, which belongs
// to the agent: it is not copied, only read by the commit that writes it,
// before that commit acknowledges its batch (DoneAll). A dead-letter line is
// owned (encoded by Send).
type pending struct {
	kind   kind
	input  int
	part   string // kind + rendered prefix
	prefix string
	vals   [][]byte
	bytes  int64 // the lines' bytes, '\n' included
}

const (
	// maxFree bounds the pending structs kept for reuse, and maxFreeVals the
	// capacity of their vals slices together (24 bytes a line: 3 MiB), as
	// each keeps at most maxFreeVals/maxFree.
	maxFree     = 8
	maxFreeVals = 1 << 17
	// lineBufSize is the buffer in front of gzip: one gzip Write per
	// lineBufSize instead of two per line is measurably faster.
	lineBufSize = 16 << 10
)

// New validates cfg (after Defaults), opens the spool in cfg.SpoolDir,
// recovers what a previous run left there (closed batches are queued for
// upload; an open batch torn by a crash is cut back to its last complete gzip
// member, then queued) and starts the committer and cfg.UploadConcurrency
// uploaders. It builds the S3 client from the standard AWS credential chain
// (plus profile and role_arn); it does not contact S3 (see Check).
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	api, err := newClient(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("s3 sink: %w", err)
	}
	return newSink(cfg, log, reg, api)
}

// newSink is New with the S3 API given (tests inject faults through it).
func newSink(cfg Config, log *slog.Logger, reg prometheus.Registerer, api API) (*Sink, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		cfg:        cfg,
		log:        log.With("sink", "s3"),
		api:        api,
		host:       strings.ReplaceAll(cfg.Hostname, "/", "_"),
		changed:    make(chan struct{}),
		pend:       map[partKey]*pending{},
		live:       map[string]time.Time{},
		prefixes:   map[partKey]string{},
		inPrefix:   map[string]*keyTemplate{},
		open:       map[string]*batchFile{},
		kick:       make(chan struct{}, 1),
		closing:    make(chan struct{}),
		commitDone: make(chan struct{}),
		upDone:     make(chan struct{}),
		schemas:    map[int]*parser.Schema{},
		noSchema:   map[int]bool{},
		pqCreate:   createFile,
	}
	s.prefix, _ = compileTemplate(cfg.Prefix)
	if cfg.DeadLetterPrefix != "" {
		s.dlPrefix, _ = compileTemplate(cfg.DeadLetterPrefix)
	}
	s.uploader = manager.NewUploader(api, func(u *manager.Uploader) {
		u.PartSize = cfg.UploadPartSize
		u.Concurrency = 4
		u.LeavePartsOnError = false
	})
	s.m = newMetrics(s.oldestAge)
	s.m.spoolMaxBytes.Set(float64(cfg.SpoolMaxBytes))
	if err := s.m.register(reg); err != nil {
		return nil, fmt.Errorf("s3 sink: metrics: %w", err)
	}
	s.bw = bufio.NewWriterSize(&s.cw, 1<<20)
	s.gz, _ = gzip.NewWriterLevel(s.bw, cfg.CompressionLevel)
	s.lw = bufio.NewWriterSize(s.gz, lineBufSize)
	if err := os.MkdirAll(cfg.SpoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("s3 sink: spool: %w", err)
	}
	lock, err := lockSpool(cfg.SpoolDir)
	if err != nil {
		return nil, fmt.Errorf("s3 sink: spool: %w", err)
	}
	s.lock = lock
	if err := s.recover(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("s3 sink: spool %s: %w", cfg.SpoolDir, err)
	}
	s.upCtx, s.upCancel = context.WithCancel(context.Background())
	go s.commitLoop()
	for range cfg.UploadConcurrency {
		s.upWG.Add(1)
		go s.uploadLoop()
	}
	go func() { s.upWG.Wait(); close(s.upDone) }()
	go s.probe(probeInterval) // read here: a test's change must not race older sinks' probes
	return s, nil
}

// UseSchemas gives the event schema of every input, for format =
// "parquet": a batch of an input's events becomes a Parquet object with
// that schema's columns (kept in the batch's meta, so a batch spooled
// before a restart or reload is converted with the schema its events were
// written with). Call it before the first Send. An input without a schema
// is shipped as gzip NDJSON, with a warning. With format json it does
// nothing.
func (s *Sink) UseSchemas(schemas []InputSchema) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range schemas {
		sc := in.Schema
		s.schemas[in.Input] = &sc
	}
}

// schemaOf is the schema of input's events; nil (after a warning, once per
// input) when UseSchemas gave none.
func (s *Sink) schemaOf(input int) *parser.Schema {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.schemas[input]
	if sc == nil && !s.noSchema[input] {
		s.noSchema[input] = true
		s.log.Warn("format parquet: no schema for this input; its objects are gzip NDJSON", "input", input)
	}
	return sc
}

// Name implements sinks.Sink.
func (s *Sink) Name() string { return "s3" }

// Counts implements sinks.Counter: the events this sink acknowledged and
// failed.
func (s *Sink) Counts() *sinks.Counts { return &s.counts }

// Ready reports why the sink is not ready (/readyz): the spool is full
// (reading is paused), or uploads are failing. nil when it is ready.
func (s *Sink) Ready() error {
	s.mu.Lock()
	full := s.spoolBytes >= s.cfg.SpoolMaxBytes
	spooled := s.spoolBytes
	s.mu.Unlock()
	switch {
	case full:
		return fmt.Errorf("spool full (%d bytes, spool_max_bytes %d): reading is paused until uploads succeed", spooled, s.cfg.SpoolMaxBytes)
	case s.probeErr.Load() != nil:
		return fmt.Errorf("the bucket does not answer (retrying): %s", *s.probeErr.Load())
	case s.uploadFailing.Load():
		why := "see the log"
		if p := s.uploadErr.Load(); p != nil {
			why = *p
		}
		return fmt.Errorf("uploads are failing (retrying; spool %d bytes): %s", spooled, why)
	}
	return nil
}

// probeInterval is how often an idle sink checks the bucket (HeadBucket).
var probeInterval = 5 * time.Second // a var for tests

// probe checks the bucket every probeInterval while no upload was attempted
// for that long, until the sink closes: with batches closed only every
// batch_max_age, S3 going away would otherwise show only at the next
// upload.
func (s *Sink) probe(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, s.lastUpload.Load())) < every {
			s.probeErr.Store(nil) // uploads tell
			continue
		}
		ctx, cancel := context.WithTimeout(s.upCtx, min(s.cfg.UploadTimeout.Duration, 10*time.Second))
		err := s.Check(ctx)
		cancel()
		if err != nil {
			why := err.Error()
			s.probeErr.Store(&why)
		} else {
			s.probeErr.Store(nil)
		}
	}
}

// broadcast wakes everything waiting on s.changed. Call with s.mu held.
func (s *Sink) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Send implements sinks.Sink. It notes the batch's values, per partition,
// without copying them, and returns; the committer compresses them (each
// followed by '\n') into the spool, fsyncs and then calls b.DoneAll(nil) (or
// DoneAll(err) when the spool could not be written): the values are read only
// until then. Invalid events (Err set) never reach the data-lake objects:
// they are counted and, with dead_letter_prefix, go to dead-letter objects as
// JSON records (encoded by Send); they are acknowledged with the batch.
//
// Send blocks while the spool holds spool_max_bytes or more (S3 is behind or
// down) or while the committer is far behind, until there is room or ctx is
// done (then it returns ctx's error and takes nothing). After Close it
// returns sinks.ErrClosed.
func (s *Sink) Send(ctx context.Context, b *sinks.Batch) error {
	if len(b.Events) == 0 {
		return nil // an empty batch completed when it was armed
	}
	s.mu.Lock()
	var blockedSince time.Time
	for !s.closed && (s.spoolBytes >= s.cfg.SpoolMaxBytes || s.pendBytes >= maxPendingBytes) {
		if blockedSince.IsZero() {
			blockedSince = time.Now()
		}
		select { // the committer closes open batches when the spool is full
		case s.kick <- struct{}{}:
		default:
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			s.m.sendBlocked.Add(time.Since(blockedSince).Seconds())
			return ctx.Err()
		}
		s.mu.Lock()
	}
	if !blockedSince.IsZero() {
		s.m.sendBlocked.Add(time.Since(blockedSince).Seconds())
	}
	if s.closed {
		s.mu.Unlock()
		return sinks.ErrClosed
	}
	input, file := 0, ""
	tmpl := s.prefix
	if b.Source != nil {
		input, file = b.Source.Input, b.Source.Path
		if b.Source.S3Prefix != "" {
			tmpl = s.inputPrefix(b.Source.S3Prefix)
		}
	}
	s.curPod = podOf{}
	if s.prefix.pods || (s.dlPrefix != nil && s.dlPrefix.pods) {
		s.curPod = podOfPath(file) // once a batch: one file's events
	}
	var added int64
	for i := range b.Events {
		ev := &b.Events[i]
		if ev.Err != nil {
			s.m.eventsInvalid.Inc()
			if s.dlPrefix == nil {
				continue
			}
			p := s.partition(kindDeadLetter, s.dlPrefix, input, ev.Time)
			rec := deadLetterRecord(ev, file)
			p.vals = append(p.vals, rec)
			p.bytes += int64(len(rec) + 1)
			added += int64(len(rec) + 1)
			continue
		}
		val := ev.Value
		if ev.Enriched != nil && (s.cfg.Enriched == nil || *s.cfg.Enriched) {
			val = ev.Enriched // [enrich] on and sinks.s3.enriched
		}
		if len(val) == 0 {
			continue
		}
		p := s.partition(kindEvents, tmpl, input, ev.Time)
		p.vals = append(p.vals, val)
		p.bytes += int64(len(val) + 1)
		added += int64(len(val) + 1)
	}
	if len(s.acks) == 0 {
		s.pendSince = time.Now()
	}
	s.acks = append(s.acks, b)
	s.pendBytes += added
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// inputPrefix returns the compiled template of an input's s3_prefix (the
// agent validated it; one that does not compile falls back to prefix).
// Call with s.mu held.
func (s *Sink) inputPrefix(p string) *keyTemplate {
	t, ok := s.inPrefix[p]
	if !ok {
		var err error
		if t, err = compileTemplate(p); err != nil {
			s.log.Error("invalid s3_prefix of an input; using sinks.s3.prefix", "s3_prefix", p, "err", err)
			t = s.prefix
		}
		s.inPrefix[p] = t
	}
	return t
}

// partition returns the pending lines of the event's partition under the
// prefix template tmpl. Call with s.mu held.
func (s *Sink) partition(k kind, tmpl *keyTemplate, input int, t time.Time) *pending {
	key := partKey{kind: k, input: input, tmpl: tmpl, t: t.Truncate(tmpl.resolution).UnixNano()}
	if tmpl.pods {
		key.pod = s.curPod
	}
	if s.lastPend != nil && key == s.lastKey {
		return s.lastPend
	}
	p := s.pend[key]
	if p == nil {
		prefix, ok := s.prefixes[key]
		if !ok {
			if len(s.prefixes) > 4096 {
				clear(s.prefixes)
			}
			prefix = string(tmpl.renderPod(nil, t, s.host, input, key.pod))
			s.prefixes[key] = prefix
		}
		if n := len(s.free); n > 0 {
			p = s.free[n-1]
			s.free = s.free[:n-1]
		} else {
			p = &pending{}
		}
		p.kind, p.input, p.prefix, p.part = k, input, prefix, string(k)+prefix
		s.pend[key] = p
	}
	s.lastKey, s.lastPend = key, p
	return p
}

// deadLetter is the JSON record of an invalid line.
type deadLetter struct {
	Reason    string    `json:"reason"`
	File      string    `json:"file"`
	Offset    int64     `json:"offset"`
	Time      time.Time `json:"time"`
	Truncated bool      `json:"truncated,omitempty"`
	Raw       string    `json:"raw"`
	// RawBase64 holds the exact bytes when Raw is not valid UTF-8 (Raw then
	// has U+FFFD in place of the invalid bytes).
	RawBase64 string `json:"raw_base64,omitempty"`
}

// deadLetterRecord returns the dead-letter line of an invalid event, without
// its '\n', in newly allocated bytes (not the agent's).
func deadLetterRecord(ev *sinks.Event, file string) []byte {
	d := deadLetter{Reason: ev.Err.Error(), File: file, Offset: ev.Offset, Time: ev.Time.UTC(),
		Truncated: ev.Truncated, Raw: string(ev.Raw)}
	if !utf8.Valid(ev.Raw) {
		d.RawBase64 = base64.StdEncoding.EncodeToString(ev.Raw)
	}
	b, _ := json.Marshal(d)
	return b
}

// Close implements sinks.Sink. It stops Send, commits what is pending (every
// accepted event is then acknowledged), closes the open batches and uploads
// what it can until ctx is done; what is not uploaded then stays in the spool
// and is uploaded by the next New on the same directory. If ctx ends before
// the last group commit finished, Close returns ctx's error; the committer
// still acknowledges those events (nil after its fsync, or its error).
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.broadcast()
		s.mu.Unlock()
		close(s.closing)
	})
	select {
	case <-s.commitDone:
	case <-ctx.Done():
		s.upCancel()
		return fmt.Errorf("s3 sink: close: last commit not finished: %w", ctx.Err())
	}
	select {
	case <-s.upDone:
	case <-ctx.Done():
		s.upCancel()
		<-s.upDone
	}
	s.upCancel()
	s.mu.Lock()
	left, bytes := len(s.live), s.spoolBytes
	if s.lock != nil {
		s.lock.Close() // the committer and uploaders are done with the spool
		s.lock = nil
	}
	s.mu.Unlock()
	if left > 0 {
		s.log.Warn("batches left in the spool for the next start", "batches", left, "bytes", bytes)
	}
	return nil
}

// oldestAge is the age in seconds of the oldest batch on disk.
func (s *Sink) oldestAge() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest time.Time
	for _, t := range s.live {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return time.Since(oldest).Seconds()
}

// addLive records a batch on disk. Call with s.mu held.
func (s *Sink) addLive(bf *batchFile) {
	s.live[bf.id] = bf.meta.Created
	s.m.spoolBatches.Set(float64(len(s.live)))
}

// commitLoop is the committer: it owns the open batch files. It commits
// pending events (group commit: at most fsync_interval after the first
// pending event, or at once when GroupBytes are pending), closes batches
// that are full or old, and on Close commits the rest and closes them all.
func (s *Sink) commitLoop() {
	defer close(s.commitDone)
	timer := time.NewTimer(tick)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if s.crashed {
			s.mu.Unlock()
			return
		}
		closing := s.closed
		has := len(s.acks) > 0
		wait := tick
		due := false
		if has {
			left := s.cfg.FsyncInterval.Duration - time.Since(s.pendSince)
			due = closing || s.pendBytes >= s.cfg.GroupBytes || left <= 0
			wait = min(wait, max(left, 0))
		}
		s.mu.Unlock()
		if due {
			s.commit()
			s.maintain(false) // under steady load every turn commits
			continue
		}
		if next := s.maintain(closing); next > 0 {
			wait = min(wait, next) // close the batch on time, not at the next tick
		}
		if closing {
			s.mu.Lock()
			s.commitEnd = true
			s.broadcast()
			s.mu.Unlock()
			return
		}
		timer.Reset(wait)
		select {
		case <-s.kick:
		case <-timer.C:
		case <-s.closing:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// commit writes everything pending as one gzip member per touched batch,
// fsyncs those files and acknowledges the batches sent before it started.
// It reads the events' values only before it acknowledges their batches, and
// keeps no reference to them afterwards.
func (s *Sink) commit() {
	start := time.Now()
	s.mu.Lock()
	pend, acks := s.pend, s.acks
	s.pend = make(map[partKey]*pending, len(pend))
	s.acks = nil
	s.pendBytes = 0
	s.lastPend = nil
	s.broadcast()
	s.mu.Unlock()

	var errs []error
	var touched []*batchFile
	var events, raw int64
	dead := 0
	for _, p := range pend {
		vals, left := p.vals, p.bytes
		for len(vals) > 0 {
			bf, err := s.openBatch(p)
			if err != nil {
				errs = append(errs, err)
				break
			}
			k, n := cut(vals, left, s.cfg.BatchMaxBytes-bf.raw, s.cfg.BatchMaxEvents-bf.events, bf.raw == 0)
			if k == 0 {
				s.closeBatch(bf)
				continue
			}
			if err := s.writeMember(bf, vals[:k]); err != nil {
				errs = append(errs, err)
				break
			}
			bf.raw += n
			bf.events += k
			if !slices.Contains(touched, bf) {
				touched = append(touched, bf)
			}
			if p.kind == kindEvents {
				events += int64(k)
				raw += n
			} else {
				dead += k
			}
			vals, left = vals[k:], left-n
			if bf.raw >= s.cfg.BatchMaxBytes || bf.events >= s.cfg.BatchMaxEvents {
				s.closeBatch(bf) // fsyncs first
			}
		}
	}
	for _, bf := range touched {
		if bf.f == nil || !bf.dirty {
			continue // closed (and fsynced) above
		}
		if err := bf.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("fsync %s: %w", bf.f.Name(), err))
			continue
		}
		bf.dirty = false
	}
	err := errors.Join(errs...)
	if err != nil {
		s.m.commitErrors.Inc()
		s.log.Error("spool commit failed; events acknowledged with the error", "err", err, "batches", len(acks))
		err = sinks.Failed("s3", fmt.Errorf("s3 sink: spool (%w): %w", sinks.ErrRetriable, err))
	} else {
		s.m.eventsSpooled.Add(float64(events))
		s.m.bytesSpooled.Add(float64(raw))
		s.m.deadLetters.Add(float64(dead))
	}
	// Drop the references to the values before the agent may reuse them.
	for _, p := range pend {
		clear(p.vals)
		p.vals, p.bytes = p.vals[:0], 0
	}
	for _, b := range acks {
		if err != nil {
			s.counts.Failed(len(b.Events))
		} else {
			s.counts.Acked(len(b.Events))
		}
		b.DoneAll(err)
	}
	s.m.commits.Inc()
	s.m.commitSeconds.Observe(time.Since(start).Seconds())

	s.mu.Lock()
	for _, p := range pend {
		if len(s.free) == maxFree {
			break
		}
		if cap(p.vals) > maxFreeVals/maxFree {
			p.vals = nil
		}
		s.free = append(s.free, p)
	}
	s.mu.Unlock()
}

// cut returns how many of vals (lines without their '\n', of total bytes
// with the newlines) fit in a batch with roomBytes and roomLines left: k
// lines of n bytes, newlines included. An empty batch takes at least one
// line, however long.
func cut(vals [][]byte, total, roomBytes int64, roomLines int, empty bool) (k int, n int64) {
	if roomLines <= 0 {
		return 0, 0
	}
	if total <= roomBytes && len(vals) <= roomLines {
		return len(vals), total
	}
	for k < len(vals) && k < roomLines {
		end := n + int64(len(vals[k])) + 1
		if end > roomBytes && !(k == 0 && empty) {
			break
		}
		n, k = end, k+1
	}
	return k, n
}

// writeMember appends vals, each followed by '\n', to bf as one complete gzip
// member. On error the file is cut back to its previous size.
func (s *Sink) writeMember(bf *batchFile, vals [][]byte) error {
	s.cw.w, s.cw.n = bf.f, 0
	s.bw.Reset(&s.cw)
	s.gz.Reset(s.bw)
	s.lw.Reset(s.gz)
	var err error
	for _, v := range vals {
		if _, err = s.lw.Write(v); err != nil {
			break
		}
		if err = s.lw.WriteByte('\n'); err != nil {
			break
		}
	}
	if err == nil {
		err = s.lw.Flush()
	}
	if err == nil {
		err = s.gz.Close()
	}
	if err == nil {
		err = s.bw.Flush()
	}
	if err != nil {
		err = fmt.Errorf("write %s: %w", bf.f.Name(), err)
		if terr := bf.f.Truncate(bf.size); terr != nil {
			// The file may hold a partial member; recovery at the next
			// start cuts it. Stop writing to this batch.
			s.log.Error("cannot cut back a failed write; closing the batch", "file", bf.f.Name(), "err", terr)
			s.closeBatch(bf)
		}
		return err
	}
	bf.size += s.cw.n
	bf.members++
	bf.dirty = true
	s.mu.Lock()
	s.spoolBytes += s.cw.n
	s.m.spoolBytes.Set(float64(s.spoolBytes))
	s.mu.Unlock()
	return nil
}

// openBatch returns the open batch of p's partition, creating it (meta file,
// then data file, then fsync of the directory) if needed.
func (s *Sink) openBatch(p *pending) (*batchFile, error) {
	if bf := s.open[p.part]; bf != nil {
		return bf, nil
	}
	if len(s.open) >= maxOpenBatches {
		var oldest *batchFile
		for _, bf := range s.open {
			if oldest == nil || bf.meta.Created.Before(oldest.meta.Created) {
				oldest = bf
			}
		}
		s.closeBatch(oldest)
	}
	now := time.Now()
	id, uuid := newID(now)
	bf := &batchFile{id: id, part: p.part, meta: batchMeta{
		Key:     p.prefix + s.host + "-" + now.UTC().Format("20060102T150405Z") + "-" + uuid + ".json.gz",
		Kind:    p.kind.String(),
		Created: now,
	}}
	if p.kind == kindEvents && s.cfg.Format == FormatParquet {
		if sc := s.schemaOf(p.input); sc != nil {
			bf.meta.Format, bf.meta.Schema = FormatParquet, sc
			bf.meta.Key = strings.TrimSuffix(bf.meta.Key, ".json.gz") + ".parquet"
		}
	}
	mb, _ := json.Marshal(bf.meta)
	dir := s.cfg.SpoolDir
	if err := writeFileSync(dir, id+extMeta, mb); err != nil {
		return nil, fmt.Errorf("create batch: %w", err)
	}
	f, err := os.OpenFile(bf.path(dir, extOpen), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o640)
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.Remove(bf.path(dir, extOpen))
		os.Remove(bf.path(dir, extMeta))
		return nil, fmt.Errorf("create batch: %w", err)
	}
	bf.f = f
	s.open[p.part] = bf
	s.mu.Lock()
	s.addLive(bf)
	s.mu.Unlock()
	return bf, nil
}

// closeBatch fsyncs bf, renames it to .ready and queues it for upload. An
// empty batch is deleted. Errors are logged: the files stay, and the next
// start recovers them.
func (s *Sink) closeBatch(bf *batchFile) {
	delete(s.open, bf.part)
	dir := s.cfg.SpoolDir
	var err error
	if bf.dirty {
		err = bf.f.Sync()
	}
	if cerr := bf.f.Close(); err == nil {
		err = cerr
	}
	bf.f = nil
	if err == nil && bf.size == 0 {
		os.Remove(bf.path(dir, extOpen))
		os.Remove(bf.path(dir, extMeta))
		s.mu.Lock()
		delete(s.live, bf.id)
		s.m.spoolBatches.Set(float64(len(s.live)))
		s.mu.Unlock()
		return
	}
	if err == nil {
		err = os.Rename(bf.path(dir, extOpen), bf.path(dir, extReady))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		s.log.Error("cannot close batch; it stays in the spool until the next start", "id", bf.id, "err", err)
		return
	}
	s.mu.Lock()
	s.ready = append(s.ready, bf)
	s.broadcast()
	s.mu.Unlock()
}

// maintain closes batches older than batch_max_age, every batch when closing,
// and every batch when the spool is full and nothing else is left to upload
// (else Send could wait for batch_max_age). It returns how long until the
// next open batch reaches batch_max_age (0: none is open).
func (s *Sink) maintain(closing bool) (next time.Duration) {
	if len(s.open) == 0 {
		return 0
	}
	s.mu.Lock()
	full := s.spoolBytes >= s.cfg.SpoolMaxBytes && len(s.ready) == 0 && s.uploading == 0
	s.mu.Unlock()
	for _, bf := range s.open {
		left := s.cfg.BatchMaxAge.Duration - time.Since(bf.meta.Created)
		if closing || full || left <= 0 {
			s.closeBatch(bf)
		} else if next == 0 || left < next {
			next = left
		}
	}
	return next
}

// recover scans the spool directory at start: closed batches are queued, a
// torn open batch is cut back to its last complete gzip member and queued,
// scratch files are removed.
func (s *Sink) recover() error {
	dir := s.cfg.SpoolDir
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	files := map[string]map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		ext := filepath.Ext(name)
		id := strings.TrimSuffix(name, ext)
		switch ext {
		case extTmp:
			os.Remove(filepath.Join(dir, name))
		case extMeta, extOpen, extReady:
			if files[id] == nil {
				files[id] = map[string]bool{}
			}
			files[id][ext] = true
		}
	}
	ids := make([]string, 0, len(files))
	for id := range files {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	changed := false
	for _, id := range ids {
		exts := files[id]
		bf := &batchFile{id: id}
		if !exts[extOpen] && !exts[extReady] {
			os.Remove(bf.path(dir, extMeta)) // created, never written, or deleted half-way
			changed = true
			continue
		}
		meta, err := readMeta(bf.path(dir, extMeta))
		if err != nil {
			// Cannot happen in our write order (meta first, deleted last);
			// keep the data rather than lose it.
			now := time.Now()
			_, uuid := newID(now)
			meta = batchMeta{Key: string(s.prefix.render(nil, now, s.host, 0)) + s.host + "-" +
				now.UTC().Format("20060102T150405Z") + "-" + uuid + ".json.gz", Kind: kindEvents.String(), Created: now}
			s.log.Error("spool batch without readable meta; uploading it under a new key", "id", id, "err", err, "key", meta.Key)
			mb, _ := json.Marshal(meta)
			if err := writeFileSync(dir, id+extMeta, mb); err != nil {
				return err
			}
		}
		bf.meta = meta
		if exts[extReady] {
			if exts[extOpen] {
				os.Remove(bf.path(dir, extOpen)) // compaction finished, cleanup did not
				changed = true
			}
		} else {
			if err := s.recoverOpen(bf); err != nil {
				return err
			}
			changed = true
			if bf.size == 0 {
				continue
			}
		}
		fi, err := os.Stat(bf.path(dir, extReady))
		if err != nil {
			return err
		}
		bf.size = fi.Size()
		s.spoolBytes += bf.size
		s.addLive(bf)
		s.ready = append(s.ready, bf)
		s.m.recoveredBatchs.Inc()
	}
	s.m.spoolBytes.Set(float64(s.spoolBytes))
	if changed {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	if len(s.ready) > 0 {
		s.log.Info("spool recovered", "batches", len(s.ready), "bytes", s.spoolBytes)
	}
	return nil
}

// recoverOpen cuts an open batch back to its last complete gzip member,
// fsyncs it and renames it to .ready. An empty result is deleted (size 0).
func (s *Sink) recoverOpen(bf *batchFile) error {
	dir := s.cfg.SpoolDir
	path := bf.path(dir, extOpen)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	end, raw, members, err := scanMembers(f)
	if err != nil {
		return fmt.Errorf("scan %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != end {
		s.log.Warn("cut torn open batch back to its last complete gzip member", "id", bf.id,
			"size", fi.Size(), "kept", end)
		s.m.recoveredTorn.Add(float64(fi.Size() - end))
		if err := f.Truncate(end); err != nil {
			return err
		}
	}
	if end == 0 {
		f.Close()
		os.Remove(path)
		os.Remove(bf.path(dir, extMeta))
		return nil
	}
	if err := f.Sync(); err != nil {
		return err
	}
	bf.size, bf.raw, bf.members = end, raw, members
	return os.Rename(path, bf.path(dir, extReady))
}
