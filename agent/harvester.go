package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/container"
	"github.com/nginx-shipper/nginx-shipper/agent/enrich"
	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// testHookTruncating, when set (by a test), is called by truncated after
// its blocking steps, before it takes the new stream's head: where a test
// makes the file be truncated again, as a busy file can be meanwhile.
var testHookTruncating func(path string)

// errContentChanged: the file's head changed under the reader (truncated
// and written again).
var errContentChanged = errors.New("file content changed under the reader")

// ErrLineTooLong is the Err of an event whose line was longer than
// max_line_bytes; its Raw holds the first max_line_bytes bytes.
var ErrLineTooLong = errors.New("line longer than max_line_bytes")

const (
	batchMaxEvents = 2048
	batchMaxBytes  = 1 << 20
	readChunk      = 256 << 10
	minPoll        = 10 * time.Millisecond
	pathCheckEvery = 500 * time.Millisecond
	eofFresh       = 5 * time.Millisecond // how long a short read stands for an fstat (check)
)

// harvester reads one file from its open descriptor, by byte offset, and
// hands its lines in batches to the sinks. It keeps reading a file after it
// was renamed or deleted, until the file stops growing for rotate_wait, so
// lines nginx writes to the old file before it reopens its logs are not lost.
type harvester struct {
	a     *Agent
	in    *input
	path  string // the name it was opened under
	f     *os.File
	key   fileKey
	e     *entry
	s     *stream
	src   *sinks.Source
	log   *slog.Logger // logger()'s
	meta  parser.Meta
	res   parser.Result
	est   enrich.State // the enricher's scratch space ([enrich])
	lines prometheus.Counter
	bytes prometheus.Counter
	lagG  prometheus.Gauge
	ml    *joiner // joins continuation lines (multiline.go); nil for formats without

	nParsed int // lines parsed since the counter was last added to

	buf     []byte // unconsumed bytes: buf[0] is at offset (rb's, while it is held)
	offset  int64  // offset of the first unconsumed byte (a line's start)
	rb      *readBuf
	tail    int64 // bytes past offset read before rb was given back (a partial line)
	slotAt  time.Time
	discard bool  // skipping the rest of a too-long line
	longAt  int64 // offset of the too-long line's start

	rotated    bool      // the path no longer names this file
	rotatedAt  time.Time // when rotated was found
	lastGrowth time.Time // when the file's size last changed (seen by check)
	lastSize   int64     // the size check last saw
	lastMod    time.Time // the mtime check last saw
	fl         *flight   // batch being built
	flAt       time.Time // when fl was started
	timer      *time.Timer

	fd      int       // h.f's descriptor, for pread (-1: use h.f.ReadAt)
	atEOF   bool      // the last read came short: at the end until check sees growth
	eofAt   time.Time // when it came short
	headAt  int64     // the end of the last read after which the head was compared
	pathAt  time.Time // when the path was last seen naming this file (check)
	head    head      // the file's first bytes, as covered by its fingerprint
	scratch []byte    // for reading them again

	checkedAt time.Time // when check last ran (the harvester's goroutine alone)
	// lookedAt (unix ns) is when the reader last looked at its file
	// (each read compares its head; check stats it). A reader behind slow sinks does not look at
	// its file for long (it waits for room in flight, or hands on the
	// lines it read, a batch at a time); meanwhile the agent's watcher
	// (watchStale) notes each new content (generation) the file holds in
	// gens, so that if the file is truncated more than once before the
	// reader looks, the copies of the generations it never saw are read
	// too.
	lookedAt atomic.Int64
	genMu    sync.Mutex
	gens     []string // fingerprints (full length), oldest first

	par *parState // jobs handed to the parse workers (parallel.go); nil until the first

	dec   *container.Decoder // container inputs: unwraps records (container.go)
	kmeta []byte             // container inputs: the "kubernetes" member
	kkey  []byte             // container inputs: the record key from the metadata (sinks.kafka.key = "kubernetes.pod", ...)
}

// end is the offset up to which the file was read.
func (h *harvester) end() int64 {
	if h.rb != nil {
		return h.offset + int64(len(h.buf))
	}
	return h.offset + h.tail
}

// hold takes a read buffer (waiting for one while the readers are all
// busy); false when ctx ended first.
func (h *harvester) hold(ctx context.Context) bool {
	if h.rb != nil {
		return true
	}
	rb := h.a.readers.acquire(ctx)
	if rb == nil {
		return false
	}
	h.rb, h.buf, h.tail = rb, rb.b[:0], 0
	h.atEOF = false // reading starts again at offset
	return true
}

// letGo hands the batch being built on and gives the read buffer back; a
// partial line in it is read again next time (it is still on disk).
func (h *harvester) letGo(ctx context.Context) bool {
	ok := h.flush(ctx)
	if h.rb != nil {
		if !h.discard {
			h.tail = int64(len(h.buf))
		}
		h.rb.b = h.buf[:0]
		h.a.readers.release(h.rb)
		h.rb, h.buf = nil, nil
	}
	return ok
}

// sinceCheck is how long ago check last ran.
func (h *harvester) sinceCheck() time.Duration {
	return time.Since(h.checkedAt)
}

// maxGens bounds the generations noted for a blocked reader.
const maxGens = 16

// noteGen records fp as a generation seen at the reader's path.
func (h *harvester) noteGen(fp string) {
	h.genMu.Lock()
	defer h.genMu.Unlock()
	if slices.Contains(h.gens, fp) {
		return
	}
	if len(h.gens) == maxGens {
		h.gens = slices.Delete(h.gens, 0, 1)
	}
	h.gens = append(h.gens, fp)
}

// takeGens returns the noted generations and forgets them.
func (h *harvester) takeGens() []string {
	h.genMu.Lock()
	defer h.genMu.Unlock()
	g := h.gens
	h.gens = nil
	return g
}

// head is what a reader remembers of its file's first bytes (those its
// fingerprint covers) to see that the file still starts with them: their
// length and a 64-bit hash, not the bytes, which a parked file keeps too
// (1 KiB each, 10 MB of heap with 10,000 files taking turns). A change that
// kept the hash is a chance of 2^-64 per read.
type head struct {
	loaded bool
	gone   bool // the file was shorter than the fingerprint when loaded: truncated since
	n      int
	sum    uint64
}

var headSeed = maphash.MakeSeed()

// loadHead reads the bytes the entry's fingerprint covers.
func (h *harvester) loadHead() {
	h.a.reg.mu.Lock()
	n := h.e.FPLen
	h.a.reg.mu.Unlock()
	h.head = head{loaded: true}
	if n == 0 {
		return
	}
	b := h.headBuf(n)
	if m, _ := h.f.ReadAt(b, 0); m == n {
		h.head.n, h.head.sum = n, maphash.Bytes(headSeed, b)
	} else {
		// The fingerprint covered n bytes the file no longer has: it
		// was truncated between the two reads. Remembering nothing would
		// make every later compare pass, and a file that grew again
		// past the offset would be read on from it, mid-line.
		h.head.gone = true
	}
}

func (h *harvester) headBuf(n int) []byte {
	if cap(h.scratch) < n {
		h.scratch = make([]byte, fingerprintLen)
	}
	return h.scratch[:n]
}

// headSame reports whether the file still starts with h.head.
func (h *harvester) headSame() bool {
	if h.head.gone {
		return false
	}
	if h.head.n == 0 {
		return true
	}
	b := h.headBuf(h.head.n)
	if n, _ := h.pread(b, 0); n != len(b) {
		return false
	}
	return maphash.Bytes(headSeed, b) == h.head.sum
}

// pread is one pread(2) of the file at off (retried on EINTR): fewer bytes
// than len(b), and a nil error, when the file ends before. The descriptor
// is the harvester's alone, closed when run returns.
func (h *harvester) pread(b []byte, off int64) (int, error) {
	if h.fd < 0 {
		return h.f.ReadAt(b, off) // no raw descriptor (not an *os.File of the OS)
	}
	for {
		n, err := syscall.Pread(h.fd, b, off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "pread", Path: h.path, Err: err}
		}
		return n, nil
	}
}

// run reads until ctx is done, the agent stops it, or the file was rotated
// and stayed idle for rotate_wait (or idle for close_inactive).
func (h *harvester) run(ctx context.Context) {
	defer h.f.Close()
	defer h.letGo(ctx)
	h.fd = -1
	if rc, err := h.f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { h.fd = int(fd) })
	}
	if !h.head.loaded { // kept by a parked file (slots.go)
		h.loadHead()
	}
	poll := minPoll
	h.lastGrowth = time.Now()
	h.lookedAt.Store(h.lastGrowth.UnixNano())
	h.slotAt = time.Now()
	for {
		n, err := h.readOnce(ctx)
		if n > 0 {
			// A busy file is polled fast again; a trickle (a few lines
			// per read) keeps backing off to poll_interval: with
			// hundreds of files open, polling each at 10 ms after every
			// line was most of the agent's work.
			if n >= readChunk/4 {
				poll = minPoll
			}
			// A full batch goes at once; the lines read after it are
			// still in buf.
			for h.full() {
				if !h.flush(ctx) {
					return
				}
				h.consumeCounted()
			}
			// Other files wait for a slot and this one had its turn:
			// it queues again behind them.
			if h.mayPark(false) && time.Since(h.slotAt) >= slotTurn {
				if h.parkNow(ctx, true) {
					return
				}
			}
			if h.sinceCheck() > time.Second {
				if !h.check(ctx) {
					return
				}
			}
			continue
		}
		if errors.Is(err, errContentChanged) {
			fi, serr := h.f.Stat()
			if serr != nil {
				return
			}
			h.truncated(ctx, fi.Size())
			h.lastSize, h.lastGrowth = fi.Size(), time.Now()
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			h.logger().Error("read failed; closing the file, it will be opened again at the next scan", "err", err)
			h.flush(ctx)
			return
		}
		if h.ml.due() && h.hold(ctx) { // an event waited multiline_timeout for its next line (multiline.go)
			if len(h.buf) > 0 {
				h.consumeCounted()
			} else {
				h.readOnce(ctx) // read again: the buffer was given back
			}
		}
		// At the end of the file. A partly filled batch waits up to
		// linger for more lines, so that a steady trickle is handed on
		// in a few batches a second rather than one per poll: every
		// batch costs a produce request, compression frames and a spool
		// commit whatever its size.
		// It still reads every poll_interval meanwhile: a reader asleep
		// for all of linger while the file grows falls behind, and one
		// far behind can miss a copytruncate.
		if age := time.Since(h.flAt); h.fl != nil && age < h.a.cfg.Linger.Duration && !h.a.readers.wanted() && !h.a.slotsWanted() && !h.a.crowded.Load() {
			if !h.sleep(ctx, min(h.a.cfg.Linger.Duration-age, h.a.cfg.PollInterval.Duration)) {
				return
			}
			poll = minPoll
			if !h.check(ctx) {
				return
			}
			continue
		}
		// Hand on what we have and give the read buffer back, then look
		// around.
		if !h.letGo(ctx) {
			return
		}
		if !h.check(ctx) {
			return
		}
		// Idle means: everything up to the size fstat reports was read, and
		// that size has not changed for a while. Time spent blocked on
		// backpressure is not idleness: check() just looked at the size.
		idle := time.Since(h.lastGrowth)
		if h.end() < h.lastSize {
			continue // more to read
		}
		// Caught up while other files wait for a slot: give it up; the
		// scan queues the file again when it grows.
		if h.mayPark(true) && h.parkNow(ctx, false) {
			return
		}
		// A rotated file is idle from its rotation on at the earliest:
		// nginx writes on to it until it reopens its logs, however long it
		// was quiet before (it was let go at once, and the lines written
		// after the rename were lost: TestDeletedFileReadToItsEndThenReleased).
		if h.rotated && time.Since(h.rotatedAt) < idle {
			idle = time.Since(h.rotatedAt)
		}
		if h.rotated && idle >= h.a.cfg.RotateWait.Duration {
			h.finishRotated(ctx)
			return
		}
		if h.rotated && time.Since(h.rotatedAt) >= h.maxHold() {
			// nginx never reopened its logs: do not hold a deleted or
			// renamed file (and its disk space) forever.
			h.logger().Warn("rotated file still growing long after rotation (was nginx sent USR1?); letting it go", "offset", h.offset, "held", time.Since(h.rotatedAt).Round(time.Second))
			h.finishRotated(ctx)
			return
		}
		if !h.rotated && idle >= h.a.cfg.CloseInactive.Duration && h.end() == h.offset {
			// Parked, not just closed: its last batches may still be in
			// flight, and reading must resume after them, not at the
			// checkpoint (that was read twice).
			h.logger().Debug("file idle; closing it until it grows", "offset", h.offset)
			h.a.park(h, false)
			return
		}
		if !h.sleep(ctx, poll) {
			return
		}
		poll = min(poll*2, h.a.cfg.PollInterval.Duration)
		// Look before reading: a copytruncate followed by fast writes can
		// refill the file past our offset while we slept.
		if !h.check(ctx) {
			return
		}
	}
}

// sleep waits for d; false when ctx ended first.
func (h *harvester) sleep(ctx context.Context, d time.Duration) bool {
	if h.timer == nil {
		h.timer = time.NewTimer(d)
	} else {
		h.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		h.timer.Stop()
		return false
	case <-h.timer.C:
		return true
	}
}

// mayPark reports whether the harvester should give its slot up for files
// that wait for one (atEnd: or, at the end of its file, because files take
// turns: there are more live files than slots (Agent.crowded), and a turn
// every slotRevisit, an open, an fstat, two reads and a close, is cheaper
// than polling at the end, an fstat and two reads every poll_interval). A
// rotated file keeps its slot until it is read to its end and idle (its
// name no longer leads to it), and so does one whose too-long line is being
// skipped, or whose event waits for its next line (multiline.go).
func (h *harvester) mayPark(atEnd bool) bool {
	if !h.a.slotsWanted() && !(atEnd && h.a.crowded.Load()) {
		return false
	}
	return !h.rotated && !h.discard && !h.ml.waiting()
}

// parkNow hands the batch on and parks the file (see Agent.park); queue
// says it has more to read. False when ctx ended.
func (h *harvester) parkNow(ctx context.Context, queue bool) bool {
	if !h.letGo(ctx) {
		return false
	}
	h.a.park(h, queue)
	h.a.m.slotReleases.Inc()
	return true
}

// readOnce reads the next chunk and turns its complete lines into events.
// It takes a read buffer first, unless the last look at the file (check)
// showed nothing new.
func (h *harvester) readOnce(ctx context.Context) (int, error) {
	if h.rb == nil {
		if h.lastSize >= 0 && h.lastSize <= h.end() {
			return 0, io.EOF
		}
		if !h.hold(ctx) {
			return 0, ctx.Err()
		}
	}
	if cap(h.buf)-len(h.buf) < readChunk/4 {
		grown := make([]byte, len(h.buf), max(2*cap(h.buf), len(h.buf)+readChunk))
		copy(grown, h.buf)
		h.buf = grown
	}
	if h.atEOF {
		return 0, io.EOF // the last read came short; check clears it when the file grows
	}
	at := h.offset + int64(len(h.buf))
	want := cap(h.buf) - len(h.buf)
	n, err := h.pread(h.buf[len(h.buf):cap(h.buf)], at)
	if n < want && err == nil {
		// A short read of a regular file: its end, now. os.File.ReadAt
		// would read again to be told so (a syscall more each time; with
		// a thousand files taking turns, syscalls were a fifth of the
		// agent's CPU).
		h.atEOF, h.eofAt = true, time.Now() // end() is where it came short until atEOF is cleared
	}
	if n <= 0 {
		if err == nil {
			err = io.EOF
		}
		return 0, err
	}
	// Was it still the same content when we read? A copytruncate followed
	// by fast writes refills the file past our offset: what we just read
	// would be new lines cut at an old offset. The head of the file tells
	// (one pread of at most 1 KiB per chunk); the chunk is then dropped and
	// the lines it should have held are read from logrotate's copy.
	same := h.headSame()
	h.lookedAt.Store(time.Now().UnixNano())
	if !same {
		return 0, errContentChanged
	}
	h.headAt = at + int64(n) // the head was the same with the file this long (check)
	h.buf = h.buf[:len(h.buf)+n]
	h.bytes.Add(float64(n))
	// A read that filled the buffer: the file is behind, its lines go to
	// the parse workers (parallel.go).
	if !h.parallel(ctx, n == want) {
		h.consumeCounted()
	}
	return n, nil
}

// consumeCounted is consume with the line counters added once per call, not
// per line.
func (h *harvester) consumeCounted() {
	h.lines.Add(float64(h.consume()))
	if h.nParsed > 0 {
		h.in.parsed.Add(float64(h.nParsed))
		h.nParsed = 0
	}
}

// full reports whether the batch being built is full.
func (h *harvester) full() bool {
	return h.fl != nil && (len(h.fl.b.Events) >= batchMaxEvents || len(h.fl.arena) >= batchMaxBytes)
}

// consume turns the complete lines at the start of buf into events and
// drops them from buf, until the batch is full. It returns the number of
// lines.
func (h *harvester) consume() int {
	maxLine := h.a.cfg.MaxLineBytes
	data := h.buf
	pos, lines := 0, 0
	for pos < len(data) && !h.full() {
		if h.discard {
			i := bytes.IndexByte(data[pos:], '\n')
			if i < 0 {
				pos = len(data)
				break
			}
			pos += i + 1
			h.discard = false
			h.batch().b.End = h.capEnd(h.offset + int64(pos))
			continue
		}
		i := bytes.IndexByte(data[pos:], '\n')
		if i < 0 {
			if len(data)-pos > maxLine {
				// Too long and no end in sight: emit the head now, skip the rest.
				h.addLong(data[pos:pos+maxLine], h.offset+int64(pos))
				lines++
				pos = len(data)
				h.discard = true
			}
			break
		}
		line := data[pos : pos+i]
		start := h.offset + int64(pos)
		if h.ml != nil { // continuation lines join their event (multiline.go)
			end, n, ok := h.ml.extent(data, pos, pos+i, start)
			if !ok {
				break // the event may go on: its lines stay in buf
			}
			line, i, lines = data[pos:end], end-pos, lines+n-1
		}
		pos += i + 1
		lines++
		if h.dec != nil { // a container record (container.go)
			h.addRecord(line, start, h.offset+int64(pos))
			continue
		}
		if len(line) > maxLine {
			h.addLong(line[:maxLine], start)
		} else {
			h.add(line, start)
		}
		h.batch().b.End = h.offset + int64(pos)
	}
	// Keep the unconsumed tail (a partial line) at the start of buf.
	rest := copy(h.buf, data[pos:])
	h.buf = h.buf[:rest]
	h.offset += int64(pos)
	if h.discard {
		// The skipped bytes were consumed, but the checkpoint must not pass
		// the line's end: the batch's End is set when the newline comes.
		h.buf = h.buf[:0]
	}
	return lines
}

func (h *harvester) batch() *flight {
	if h.fl == nil {
		h.fl = h.a.getFlight(h.src)
		h.flAt = time.Now()
		h.fl.b.Start = h.capEnd(h.offset)
		h.fl.b.End = h.fl.b.Start
	}
	return h.fl
}

// add parses one line into the batch being built.
func (h *harvester) add(line []byte, start int64) {
	fl := h.batch()
	var sp span
	h.meta.Offset = start
	sp.val0 = len(fl.arena)
	var err, avroErr error
	if h.a.avroOnly {
		// Avro (issue #13) and no sink wants the JSON: match and encode
		// Avro only; Value stays empty.
		sp.val1 = sp.val0
		err, avroErr = h.parseAvro(fl, &sp, line)
		if err == nil && avroErr == nil && h.in.enrich != nil {
			h.a.enrich.Find(h.in.enrich, &h.est, line, &h.res) // no JSON: look up only
			h.enrichAvro(fl, &sp)
		}
	} else {
		fl.arena, err = h.in.parser.Parse(fl.arena, line, h.meta, &h.res)
		sp.val1 = len(fl.arena)
		// [enrich] (agent/enrich) before Avro: in place it rewrites the
		// end of the arena, where the JSON still is.
		if err == nil && h.in.enrich != nil {
			h.enrich(fl, &sp, line)
		}
		// Avro (issue #13): the Kafka sink's value_format = "avro" wants
		// the same event in the Confluent wire format, from the same match.
		if err == nil && h.a.avro {
			avroErr = h.appendAvro(fl, &sp, line)
			if avroErr == nil && h.in.enrich != nil {
				h.enrichAvro(fl, &sp)
			}
		}
	}
	// The raw line is kept only where a sink needs it: the dead-letter
	// path of a line that did not parse (or not fit its Avro schema), or a
	// raw topic for every line.
	if err != nil || avroErr != nil || h.a.keepRaw {
		sp.raw0 = len(fl.arena)
		fl.arena = append(fl.arena, line...)
		sp.raw1 = len(fl.arena)
	}
	ev := fl.b.Add()
	ev.Offset = start
	if err != nil {
		ev.Err = err
		ev.Time = time.Now()
		h.in.parseErrors.Inc()
		h.a.logParseError(h.in, h.path, start, err)
	} else {
		ev.Time = h.res.Time
		ev.AvroErr = avroErr
		if ev.Time.IsZero() {
			ev.Time = time.Now()
		}
		if h.res.Key != nil {
			sp.key0 = len(fl.arena)
			fl.arena = append(fl.arena, h.res.Key...)
			sp.key1 = len(fl.arena)
		}
		h.nParsed++
	}
	fl.spans = append(fl.spans, sp)
}

// appendAvro appends the parsed line's event to the arena in the
// Confluent wire format: five bytes the Kafka sink fills with the magic
// byte and its schema id, then the Avro binary from the match Parse made.
// A *parser.SchemaError leaves nothing in the arena.
func (h *harvester) appendAvro(fl *flight, sp *span, line []byte) error {
	sp.avro0 = len(fl.arena)
	fl.arena = append(fl.arena, 0, 0, 0, 0, 0)
	var err error
	fl.arena, err = h.in.parser.AppendAvro(fl.arena, line, h.meta, &h.res)
	if err != nil {
		fl.arena = fl.arena[:sp.avro0]
		h.in.schemaErrors.Inc()
		return err
	}
	sp.avro1 = len(fl.arena)
	return nil
}

// parseAvro is add's parse when only Avro is wanted: the line's event in
// the Confluent wire format (as appendAvro) straight from the match. It
// returns the *parser.ParseError of a line that does not match, or the
// *parser.SchemaError of one whose event does not fit its schema.
func (h *harvester) parseAvro(fl *flight, sp *span, line []byte) (parseErr, schemaErr error) {
	sp.avro0 = len(fl.arena)
	fl.arena = append(fl.arena, 0, 0, 0, 0, 0)
	var err error
	fl.arena, err = h.in.parser.ParseAvro(fl.arena, line, h.meta, &h.res)
	if err != nil {
		fl.arena = fl.arena[:sp.avro0]
		if _, ok := err.(*parser.SchemaError); ok {
			h.in.schemaErrors.Inc()
			return nil, err
		}
		return err, nil
	}
	sp.avro1 = len(fl.arena)
	return nil, nil
}

// enrich adds [enrich]'s fields (agent/enrich) to the event just parsed
// at the end of the arena: in place when no sink needs the original
// (Options.EnrichedOnly), else as a copy after it (Event.Enriched).
func (h *harvester) enrich(fl *flight, sp *span, line []byte) {
	en := h.a.enrich
	if h.a.enrichedOnly {
		fl.arena = en.Append(fl.arena[:sp.val1-1], h.in.enrich, &h.est, line, &h.res) // before its '}'
		fl.arena = append(fl.arena, '}')
		sp.val1 = len(fl.arena)
		return
	}
	sp.enr0 = len(fl.arena)
	fl.arena = en.AppendEvent(fl.arena, fl.arena[sp.val0:sp.val1], h.in.enrich, &h.est, line, &h.res)
	sp.enr1 = len(fl.arena)
}

// enrichAvro adds the Avro of [enrich]'s fields, which the enricher
// looked up for this line into h.est, to the line's Avro just written at
// the end of the arena: in place (the enriched record) when no sink needs
// the original (Options.EnrichedOnly), else after a copy of it
// (Event.EnrichedAvro).
func (h *harvester) enrichAvro(fl *flight, sp *span) {
	if h.a.enrichedOnly {
		fl.arena = enrich.AppendAvroFound(fl.arena, &h.est)
		sp.avro1 = len(fl.arena)
		return
	}
	sp.eav0 = len(fl.arena)
	fl.arena = append(fl.arena, fl.arena[sp.avro0:sp.avro1]...)
	fl.arena = enrich.AppendAvroFound(fl.arena, &h.est)
	sp.eav1 = len(fl.arena)
}

// addLong adds the head of a too-long line as a dead-letter event.
func (h *harvester) addLong(head []byte, start int64) {
	fl := h.batch()
	var sp span
	sp.raw0 = len(fl.arena)
	fl.arena = append(fl.arena, head...)
	sp.raw1 = len(fl.arena)
	sp.val0, sp.val1 = sp.raw1, sp.raw1
	ev := fl.b.Add()
	ev.Offset = start
	ev.Err = fmt.Errorf("%w (%d)", ErrLineTooLong, h.a.cfg.MaxLineBytes)
	ev.Truncated = true
	ev.Time = time.Now()
	fl.spans = append(fl.spans, sp)
	h.in.longLines.Inc()
	h.a.log.Warn("line longer than max_line_bytes: sent to the dead-letter path truncated", "path", h.path, "offset", start, "max_line_bytes", h.a.cfg.MaxLineBytes)
}

// flush hands the batch being built to the sinks. It returns false when the
// context ended while waiting for room in the in-flight budget.
func (h *harvester) flush(ctx context.Context) bool {
	// The jobs handed to the parse workers hold earlier lines: their
	// batches go first (parallel.go).
	if h.par != nil && !h.drain(ctx) {
		if h.fl != nil {
			h.a.flights.put(h.fl)
			h.fl = nil
		}
		return false
	}
	fl := h.fl
	if fl == nil {
		return ctx.Err() == nil
	}
	h.fl = nil
	fl.seal()
	return h.a.send(ctx, h.s, fl)
}

// seal points the events at their bytes in the arena, which no longer
// moves.
func (fl *flight) seal() {
	for i := range fl.b.Events {
		sp := fl.spans[i]
		ev := &fl.b.Events[i]
		if sp.raw1 > sp.raw0 || ev.Err != nil {
			ev.Raw = fl.arena[sp.raw0:sp.raw1:sp.raw1]
		}
		if ev.Err == nil {
			ev.Value = fl.arena[sp.val0:sp.val1:sp.val1]
			if sp.enr1 > sp.enr0 {
				ev.Enriched = fl.arena[sp.enr0:sp.enr1:sp.enr1]
			}
		}
		if sp.key1 > sp.key0 {
			ev.Key = fl.arena[sp.key0:sp.key1:sp.key1]
		}
		if sp.avro1 > sp.avro0 {
			ev.Avro = fl.arena[sp.avro0:sp.avro1:sp.avro1]
		}
		if sp.eav1 > sp.eav0 {
			ev.EnrichedAvro = fl.arena[sp.eav0:sp.eav1:sp.eav1]
		}
	}
}

// check looks at the file and its path: truncation (copytruncate), rename
// and deletion.
func (h *harvester) check(ctx context.Context) bool {
	now := time.Now()
	h.checkedAt = now
	h.lookedAt.Store(now.UnixNano())
	end := h.end()
	var size int64
	var mod time.Time
	if h.atEOF && now.Sub(h.eofAt) < eofFresh {
		// A read came short at end a moment ago: that is the file's
		// size, and its head was compared after that read. No fstat:
		// with a thousand files taking turns, each turn's syscalls
		// were most of its cost.
		size, mod = end, h.lastMod
	} else {
		fi, err := h.f.Stat()
		if err != nil {
			h.logger().Error("stat of open file failed", "err", err)
			return true
		}
		size, mod = fi.Size(), fi.ModTime()
	}
	// The head is read again only when the file changed since the last
	// look (size or mtime), and not when a read just compared it at this
	// very size: an unchanged file's check is one fstat and one stat.
	changed := size != h.lastSize || !mod.Equal(h.lastMod)
	h.lastMod = mod
	if size != h.lastSize {
		h.lastSize, h.lastGrowth = size, now
	}
	if size > end {
		h.atEOF = false
	}
	h.lagG.Set(float64(max(size-end, 0)))
	if size < end || (changed && size != h.headAt && !h.sameContent(size)) {
		h.truncated(ctx, size)
		h.lastSize, h.lastGrowth = size, time.Now()
	} else {
		h.refreshFingerprint(size)
	}
	// Is the path still this file's? Looked at twice a second at most: a
	// file that just had its turn (slots.go) was seen there by the scan
	// that queued it. One renamed meanwhile and parked again under its old
	// name is found by that name's next scan (movedAway).
	if !h.rotated && time.Since(h.pathAt) >= pathCheckEvery {
		h.pathAt = time.Now()
		pfi, err := os.Stat(h.path)
		switch {
		case err != nil && errors.Is(err, os.ErrNotExist):
			h.rotated, h.rotatedAt = true, time.Now()
			h.a.m.rotations.WithLabelValues(h.path, "delete").Inc()
			h.logger().Info("file deleted or renamed away; reading it to its end", "offset", end)
		case err == nil && keyOf(pfi) != h.key:
			h.rotated, h.rotatedAt = true, time.Now()
			h.a.m.rotations.WithLabelValues(h.path, "rename").Inc()
			h.logger().Info("file rotated; reading the old file to its end", "offset", end)
			h.a.wakeScan()
		}
	}
	return ctx.Err() == nil
}

// truncated handles a file that shrank below the read position: copytruncate.
// What was read is in flight under the old entry; reading starts again at 0
// under a new entry (a new stream), so late acknowledgements of the old
// content never move the new checkpoint.
func (h *harvester) truncated(ctx context.Context, size int64) {
	h.logger().Warn("file truncated (copytruncate?); reading it again from the start", "read_offset", h.offset, "size", size)
	h.a.m.rotations.WithLabelValues(h.path, "truncate").Inc()
	// The content at the path now is the next generation, which the new
	// stream reads from 0. What follows can block (the flush waits for
	// room in flight while the sinks are slow or down), and a busy file
	// can be truncated again meanwhile: then this generation came and went
	// unread, and its lines are in its copy. Its head, taken now, tells.
	nextFP, nextLen, _ := fingerprint(h.f, size)
	h.flush(ctx)
	h.a.reg.mu.Lock()
	oldFP, oldLen := h.e.FP, h.e.FPLen
	h.a.reg.mu.Unlock()
	h.a.findCopy(ctx, h.in, h.path, h.key, oldFP, oldLen, h.offset)
	// Generations that came and went while we were blocked: their copies
	// are read whole.
	for _, fp := range h.takeGens() {
		if fp != oldFP {
			h.a.findCopy(ctx, h.in, h.path, h.key, fp, fingerprintLen, 0)
		}
	}
	if testHookTruncating != nil {
		testHookTruncating(h.path)
	}
	// The new stream's head, taken as the one at the truncation was (both
	// cover the first min(size, 1 KiB) bytes): if they differ, the file was
	// truncated again while we were blocked, and the generation seen at the
	// truncation is read whole from its copy (findCopy skips a copy the
	// generations above already found).
	fp, fpLen, _ := fingerprint(h.f, size)
	if nextLen > 0 && (fpLen != nextLen || fp != nextFP) {
		if nextLen < fingerprintLen {
			h.logger().Warn("file truncated again while handling a truncation; the lines of the generation in between were too few to find its copy by, and are lost", "bytes", nextLen)
		} else {
			h.logger().Warn("file truncated again while handling a truncation; reading the generation in between from its copy")
		}
		h.a.m.rotations.WithLabelValues(h.path, "truncate").Inc()
		h.a.findCopy(ctx, h.in, h.path, h.key, nextFP, nextLen, 0) // a no-op under 1 KiB
	}
	h.buf = h.buf[:0]
	h.tail = 0
	h.atEOF, h.headAt = false, -1
	h.discard = false
	h.ml.reset()
	h.offset = 0
	if h.dec != nil {
		h.dec.Reset()
	}
	e := &entry{Path: h.path, Dev: h.key.Dev, Ino: h.key.Ino, Seen: time.Now(), FP: fp, FPLen: fpLen}
	h.a.reg.put(e)
	h.e = e
	h.s = h.a.newStream(e)
	h.loadHead()
}

// finishRotated hands on a last line without newline (nginx never writes
// one; a full disk might) and lets the file go.
func (h *harvester) finishRotated(ctx context.Context) {
	if h.ml != nil {
		h.ml.force = true // the events waiting for a next line are complete (multiline.go)
	}
	h.atEOF = false // a last look at the end
	if h.end() > h.offset && !h.discard && h.hold(ctx) {
		for {
			if n, _ := h.readOnce(ctx); n <= 0 {
				break
			}
		}
	}
	for h.ml != nil && h.full() { // what a full batch left in buf
		if !h.flush(ctx) {
			return
		}
		h.consumeCounted()
	}
	if len(h.buf) > 0 && !h.discard {
		line := h.buf
		if h.dec != nil {
			h.addRecord(line, h.offset, h.offset+int64(len(line)))
		} else {
			h.add(line, h.offset)
		}
		h.offset += int64(len(line))
		h.buf = h.buf[:0]
		h.batch().b.End = h.capEnd(h.offset)
		h.flush(ctx)
	}
	if h.dec != nil && h.dec.Hold() >= 0 {
		h.flushPartials()
		h.batch().b.End = h.offset
		h.flush(ctx)
	}
	h.logger().Info("rotated file read to its end and idle; closing it", "offset", h.offset, "idle", time.Since(h.lastGrowth).Round(time.Millisecond))
}

// refreshFingerprint extends a short fingerprint as the file grows, so that
// the checkpoint identifies the file by its first fingerprintLen bytes.
func (h *harvester) refreshFingerprint(size int64) {
	if h.e.FPLen >= fingerprintLen || size <= int64(h.e.FPLen) {
		return
	}
	fp, n, err := fingerprint(h.f, size)
	if err != nil {
		return
	}
	h.a.reg.setFingerprint(h.e, fp, n)
	h.loadHead()
}

// sameContent reports whether the file still starts with the bytes its
// entry's fingerprint covers (false after a truncation and rewrite).
func (h *harvester) sameContent(size int64) bool {
	if size < int64(h.head.n) {
		return false
	}
	return h.headSame()
}

// maxHold bounds how long a rotated file that keeps growing is held.
func (h *harvester) maxHold() time.Duration {
	return max(10*h.a.cfg.RotateWait.Duration, 5*time.Minute)
}

// logger is the file's logger, made when the file first logs: with
// thousands of files taking turns, a logger each (slog's With formats its
// attributes at once) kept by every parked file was about 300 B of heap a
// file, for messages seldom logged. The harvester's goroutine calls it.
func (h *harvester) logger() *slog.Logger {
	if h.log == nil {
		h.log = h.a.log.With("path", h.path, "inode", h.key.Ino)
	}
	return h.log
}
