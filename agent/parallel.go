package agent

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// Parallel parsing: a file that is behind has its lines parsed by the
// agent's parse workers, in jobs, while its harvester alone hands the
// batches on, in file order. See doc.go, "Parallel parsing".

// maxParseWorkers bounds the workers on a big machine: the sinks do not
// keep up with more (a worker parses about a million lines a second), and
// each worker adds a job in use (its lines and its batch: up to 2.2 MiB).
const maxParseWorkers = 7

// jobMaxRaw bounds the lines' bytes in one job (a job holds a copy of them).
const jobMaxRaw = 1 << 20

// A job's state: who parses it. A worker that takes a job from the queue
// and one of its owner's looks race for it with a compare-and-swap.
const (
	jobIdle   int32 = iota // free, or being filled by its owner
	jobQueued              // queued: the first to take it parses it
	jobWorker              // a worker parses it; it signals done
	jobOwner               // its owner parses it, or did
	jobDone                // parsed, and its owner knows
)

// parsePool is the agent's parse workers and the jobs they share.
type parsePool struct {
	queue chan *parseJob // jobs to take; may hold jobs taken already
	free  chan *parseJob // jobs not in use
	wg    sync.WaitGroup

	byWorker, byOwner atomic.Int64 // jobs parsed (tests)
}

// parseJob is a run of complete lines of one file, copied, and the batches
// they were parsed into.
type parseJob struct {
	state atomic.Int32
	done  chan struct{} // a worker sends once when it parsed the job

	// Set by the owner before the job is queued; read-only while queued.
	a     *Agent
	in    *input
	path  string
	src   *sinks.Source
	meta  parser.Meta
	raw   []byte // the lines, each ending in '\n'
	start int64  // offset of raw[0]
	lines int

	// Set by whoever parses it.
	out    []*flight
	parsed int // lines that parsed (events_parsed)
}

// parState is a harvester's part in parallel parsing.
type parState struct {
	job     *parseJob   // being filled, not queued yet
	pending []*parseJob // queued, oldest first: their batches go in this order
	ratio   float64     // arena bytes of a job's batches per byte of its lines (the last job's)
	scratch *harvester  // parses the jobs the harvester takes itself
	stopped bool        // a send failed (ctx ended): nothing more may be sent
}

// startParsePool starts GOMAXPROCS-1 workers (at most maxParseWorkers);
// nil (parse inline) on one core.
func startParsePool(a *Agent) *parsePool {
	n := min(runtime.GOMAXPROCS(0)-1, maxParseWorkers)
	if n < 1 {
		return nil
	}
	// A job for each worker and one more: the harvester parses it, or
	// fills it, while the workers parse theirs. (One more again kept the
	// worker busier, but it is another batch in memory: 1.7 MiB, and the
	// bench's peak RSS came to 63.7 MiB of its 64.)
	jobs := n + 1
	p := &parsePool{queue: make(chan *parseJob, 4*jobs), free: make(chan *parseJob, jobs)}
	for range jobs {
		p.free <- &parseJob{done: make(chan struct{}, 1)}
	}
	p.wg.Add(n)
	for range n {
		go p.work()
	}
	return p
}

// stop ends the workers; call it once no harvester runs.
func (p *parsePool) stop() {
	if p == nil {
		return
	}
	close(p.queue)
	p.wg.Wait()
}

func (p *parsePool) work() {
	defer p.wg.Done()
	w := &harvester{}
	for j := range p.queue {
		if j.state.CompareAndSwap(jobQueued, jobWorker) {
			w.parseJob(j)
			p.byWorker.Add(1)
			j.done <- struct{}{}
		}
	}
}

// parseJob parses j's lines into flights, as consume would (the plain
// case: no continuation lines, no container records); h is a scratch
// harvester.
func (h *harvester) parseJob(j *parseJob) {
	h.a, h.in, h.path, h.src, h.meta = j.a, j.in, j.path, j.src, j.meta
	h.fl, h.nParsed = nil, 0
	maxLine := h.a.cfg.MaxLineBytes
	data := j.raw
	for pos := 0; pos < len(data); {
		i := bytes.IndexByte(data[pos:], '\n') // found: every line of a job is complete
		line, start := data[pos:pos+i], j.start+int64(pos)
		if h.fl == nil {
			h.fl = h.a.getFlight(h.src)
			h.fl.b.Start = start
		}
		if len(line) > maxLine {
			h.addLong(line[:maxLine], start)
		} else {
			h.add(line, start)
		}
		pos += i + 1
		h.fl.b.End = j.start + int64(pos)
		if h.full() {
			h.fl.seal()
			j.out = append(j.out, h.fl)
			h.fl = nil
		}
	}
	if h.fl != nil {
		h.fl.seal()
		j.out = append(j.out, h.fl)
		h.fl = nil
	}
	j.parsed = h.nParsed
	h.nParsed = 0
}

// parallel hands the complete lines in buf to the parse workers when the
// file is behind (its read filled the buffer) and the case is plain; it
// reports whether it did. When it did not, the lines are consumed inline,
// after the batches of any job handed on before (drained first).
func (h *harvester) parallel(ctx context.Context, behind bool) bool {
	if h.a.pool == nil {
		return false
	}
	if !behind || h.ml != nil || h.dec != nil || h.discard || ctx.Err() != nil {
		if h.par != nil && (h.par.job != nil || len(h.par.pending) > 0) {
			h.drain(ctx)
		}
		return false
	}
	cut := bytes.LastIndexByte(h.buf, '\n') + 1
	if cut == 0 {
		if h.par != nil {
			h.drain(ctx)
		}
		return false // one line fills the buffer: consume handles it
	}
	if h.fl != nil && !h.flush(ctx) { // its lines go first
		return false // ctx ended: run stops at its next flush
	}
	if h.par == nil {
		h.par = &parState{ratio: 2.5, scratch: &harvester{}}
	}
	p := h.par
	data := h.buf[:cut]
	taken := 0
	for taken < len(data) {
		if p.job == nil {
			if p.job = h.takeJob(ctx); p.job == nil {
				break // none free and none of ours pending: inline
			}
		}
		j := p.job
		if len(j.raw) == 0 {
			j.start = h.offset + int64(taken)
		}
		n := j.fill(data[taken:], h.jobRoom())
		taken += n
		if taken < len(data) || j.lines >= batchMaxEvents {
			p.job = nil
			if !h.submit(ctx, j) {
				break
			}
		}
	}
	rest := copy(h.buf, h.buf[taken:])
	h.buf = h.buf[:rest]
	h.offset += int64(taken)
	if taken < cut || len(h.buf) > h.a.cfg.MaxLineBytes {
		// Lines left (no job free, or ctx ended), or a too-long line
		// begins: consume takes them, after the jobs' batches.
		h.drain(ctx)
		return false
	}
	h.handOnReady(ctx)
	return true
}

// jobRoom is how many bytes of lines a job of this file takes: about one
// batch once parsed.
func (h *harvester) jobRoom() int {
	room := int(0.95 * batchMaxBytes / h.par.ratio)
	return min(max(room, 64<<10), jobMaxRaw)
}

// fill appends the complete lines at the start of data that fit: at most
// room bytes (but at least one line into an empty job) and batchMaxEvents
// lines in the job. It returns the bytes taken.
func (j *parseJob) fill(data []byte, room int) int {
	room -= len(j.raw)
	n := len(data)
	if room < n {
		n = bytes.LastIndexByte(data[:max(room, 0)], '\n') + 1
	}
	if n == 0 {
		if len(j.raw) > 0 {
			return 0
		}
		n = bytes.IndexByte(data, '\n') + 1
	}
	lines := bytes.Count(data[:n], []byte{'\n'})
	if k := batchMaxEvents - j.lines; lines > k {
		n = 0
		for range k {
			n += bytes.IndexByte(data[n:], '\n') + 1
		}
		lines = k
	}
	j.raw = append(j.raw, data[:n]...)
	j.lines += lines
	return n
}

// takeJob returns a free job, set up for this file; when none is free it
// hands on its own oldest pending job (waiting for it) to free one. Nil
// when none is free and none of its jobs is pending (other files hold
// them all), or ctx ended.
func (h *harvester) takeJob(ctx context.Context) *parseJob {
	p := h.par
	for {
		select {
		case j := <-h.a.pool.free:
			j.a, j.in, j.path, j.src, j.meta = h.a, h.in, h.path, h.src, h.meta
			j.lines, j.raw = 0, j.raw[:0]
			return j
		default:
		}
		if len(p.pending) == 0 || !h.handOnOldest(ctx) {
			return nil
		}
	}
}

// submit queues j. False when ctx ended (j is dropped, and nothing more is
// sent).
func (h *harvester) submit(ctx context.Context, j *parseJob) bool {
	p := h.par
	if p.stopped || ctx.Err() != nil {
		p.stopped = true
		h.dropJob(j)
		return false
	}
	j.out, j.parsed = j.out[:0], 0
	j.state.Store(jobQueued)
	p.pending = append(p.pending, j)
	select {
	case h.a.pool.queue <- j:
	default: // the queue is full of jobs taken already: the owner parses it
	}
	return true
}

// dropJob gives back a job that was not queued.
func (h *harvester) dropJob(j *parseJob) {
	j.state.Store(jobIdle)
	h.a.pool.free <- j
}

// drain queues the job being filled and hands on every pending job's
// batches, oldest first. False when ctx ended (nothing more may be sent).
func (h *harvester) drain(ctx context.Context) bool {
	p := h.par
	if j := p.job; j != nil {
		p.job = nil
		if len(j.raw) > 0 {
			h.submit(ctx, j)
		} else {
			h.dropJob(j)
		}
	}
	for len(p.pending) > 0 {
		h.handOnOldest(ctx)
	}
	return !p.stopped && ctx.Err() == nil
}

// handOnReady hands on the pending jobs at the head that are parsed
// already, without waiting.
func (h *harvester) handOnReady(ctx context.Context) {
	for len(h.par.pending) > 0 && h.jobParsed(h.par.pending[0]) {
		h.handOnOldest(ctx)
	}
}

// jobParsed reports, without waiting, whether j is parsed.
func (h *harvester) jobParsed(j *parseJob) bool {
	switch j.state.Load() {
	case jobDone:
		return true
	case jobWorker:
		select {
		case <-j.done:
			j.state.Store(jobDone)
			return true
		default:
		}
	}
	return false
}

// await returns when j is parsed: it parses j itself if no worker took it
// yet, else it parses its file's later jobs that no worker took meanwhile.
func (h *harvester) await(j *parseJob) {
	if j.state.CompareAndSwap(jobQueued, jobOwner) {
		h.par.scratch.parseJob(j)
		h.a.pool.byOwner.Add(1)
		j.state.Store(jobDone)
		return
	}
	for !h.jobParsed(j) {
		if !h.helpOne() {
			<-j.done
			j.state.Store(jobDone)
			return
		}
	}
}

// helpOne parses one of the file's pending jobs that no worker took;
// false when there is none.
func (h *harvester) helpOne() bool {
	for _, j := range h.par.pending[1:] {
		if j.state.CompareAndSwap(jobQueued, jobOwner) {
			h.par.scratch.parseJob(j)
			h.a.pool.byOwner.Add(1)
			j.state.Store(jobDone)
			return true
		}
	}
	return false
}

// handOnOldest waits for the oldest pending job and sends its batches
// (send waits for room in the in-flight budget); once a send failed (ctx
// ended) it drops them. It frees the job. False when the batches were not
// sent.
func (h *harvester) handOnOldest(ctx context.Context) bool {
	p := h.par
	j := p.pending[0]
	h.await(j)
	copy(p.pending, p.pending[1:])
	p.pending[len(p.pending)-1] = nil
	p.pending = p.pending[:len(p.pending)-1]

	arena := 0
	for _, fl := range j.out {
		arena += len(fl.arena)
		if p.stopped {
			h.a.flights.put(fl)
			continue
		}
		if !h.a.send(ctx, h.s, fl) { // it took fl back
			p.stopped = true
		}
	}
	ok := !p.stopped
	if ok {
		h.lines.Add(float64(j.lines))
		if j.parsed > 0 {
			h.in.parsed.Add(float64(j.parsed))
		}
		if len(j.raw) > 0 {
			p.ratio = max(float64(arena)/float64(len(j.raw)), 0.1)
		}
	}
	clear(j.out)
	j.out = j.out[:0]
	j.a, j.in, j.src = nil, nil, nil
	j.state.Store(jobIdle)
	h.a.pool.free <- j
	return ok
}
