package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// streamOps is what every stream of an agent shares: the metrics, the
// dead-letter file and the set of live streams (those with flights pending,
// or stopped by an error), which the per-file series and /readyz are read
// from at scrape time, so the reader's path pays nothing for them.
type streamOps struct {
	m     *metrics
	dl    *deadLetters
	retry func(*flight, error) // Agent.retry

	mu   sync.Mutex
	live map[*stream]struct{}

	beat atomic.Int64 // unix ns of the main loop's last round
}

func (o *streamOps) join(s *stream) {
	o.mu.Lock()
	if o.live == nil {
		o.live = map[*stream]struct{}{}
	}
	o.live[s] = struct{}{}
	o.mu.Unlock()
}

func (o *streamOps) leave(s *stream) {
	o.mu.Lock()
	delete(o.live, s)
	o.mu.Unlock()
}

func (o *streamOps) streams() []*stream {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]*stream, 0, len(o.live))
	for s := range o.live {
		out = append(out, s)
	}
	return out
}

// FileState is one file's acknowledgement state, for /readyz and status.
type FileState struct {
	Path string `json:"path"`
	// UnackedBytes were read and handed to the sinks and are not
	// acknowledged by every sink yet: the checkpoint is behind the read
	// position by that much.
	UnackedBytes int64 `json:"unacked_bytes"`
	// WaitSeconds is how long the oldest unacknowledged batch has waited
	// since its first line was read.
	WaitSeconds float64 `json:"wait_seconds"`
	// Blocked is why the checkpoint stopped for good (until restart): a
	// sink failed lines for good and they could not be dead-lettered.
	Blocked string `json:"blocked,omitempty"`
}

// Files returns the state of every file with unacknowledged lines or a
// blocked checkpoint, by path (streams of the same path, as after a
// truncation, are summed).
func (a *Agent) Files() []FileState {
	now := time.Now()
	by := map[string]*FileState{}
	for _, s := range a.ops.streams() {
		path, unacked, wait, stuck := s.state(now)
		fs := by[path]
		if fs == nil {
			fs = &FileState{Path: path}
			by[path] = fs
		}
		fs.UnackedBytes += unacked
		fs.WaitSeconds = max(fs.WaitSeconds, wait.Seconds())
		if stuck != nil && forGood(stuck) && fs.Blocked == "" {
			fs.Blocked = stuck.Error()
		}
	}
	out := make([]FileState, 0, len(by))
	for _, fs := range by {
		out = append(out, *fs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// fileCollector exports Files as per-file series; a file that is no longer
// read and has nothing pending has no series.
type fileCollector struct {
	a                      *Agent
	unacked, wait, blocked *prometheus.Desc
}

func newFileCollector(a *Agent) *fileCollector {
	return &fileCollector{
		a: a,
		unacked: prometheus.NewDesc("nginx_shipper_file_unacked_bytes",
			"Bytes read from the file and handed to the sinks that not every sink acknowledged yet: how far the checkpoint is behind the read position.",
			[]string{"path"}, nil),
		wait: prometheus.NewDesc("nginx_shipper_file_ack_wait_seconds",
			"How long the file's oldest unacknowledged batch has waited since its first line was read; 0 when everything read is acknowledged.",
			[]string{"path"}, nil),
		blocked: prometheus.NewDesc("nginx_shipper_file_blocked",
			"1 when the file's checkpoint stopped until restart: a sink failed lines for good and they could not be written to the dead-letter file.",
			[]string{"path"}, nil),
	}
}

func (c *fileCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.unacked
	ch <- c.wait
	ch <- c.blocked
}

func (c *fileCollector) Collect(ch chan<- prometheus.Metric) {
	for _, fs := range c.a.Files() {
		ch <- prometheus.MustNewConstMetric(c.unacked, prometheus.GaugeValue, float64(fs.UnackedBytes), fs.Path)
		ch <- prometheus.MustNewConstMetric(c.wait, prometheus.GaugeValue, fs.WaitSeconds, fs.Path)
		b := 0.0
		if fs.Blocked != "" {
			b = 1
		}
		ch <- prometheus.MustNewConstMetric(c.blocked, prometheus.GaugeValue, b, fs.Path)
	}
}

// deadLetters appends the events of flights a sink failed for good to
// data_dir/dead-letter/YYYY-MM-DD.jsonl, one JSON object a line, fsynced
// before the checkpoint moves past them.
type deadLetters struct {
	dir string
	m   *metrics
	mu  sync.Mutex
}

// deadLetterRecord is one line of the dead-letter file.
type deadLetterRecord struct {
	Time   time.Time       `json:"time"`
	Path   string          `json:"path"`
	Offset int64           `json:"offset"`
	Sink   string          `json:"sink,omitempty"`
	Error  string          `json:"error"`
	Event  json.RawMessage `json:"event,omitempty"`        // the event as the sinks got it, when JSON
	Value  string          `json:"value_base64,omitempty"` // otherwise (Avro)
	Raw    string          `json:"raw,omitempty"`          // the line as read, when kept
}

// write appends fl's events; nil when they are on disk. It runs on its own
// goroutine (never in a sink's callback).
func (d *deadLetters) write(s *stream, fl *flight, cause error) error {
	now := time.Now().UTC()
	fpath := s.path()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range fl.b.Events {
		ev := &fl.b.Events[i]
		r := deadLetterRecord{Time: now, Path: fpath, Offset: ev.Offset, Sink: sinks.SinkOf(cause), Error: cause.Error()}
		switch {
		case len(ev.Value) > 0 && json.Valid(ev.Value):
			r.Event = ev.Value
		case len(ev.Value) > 0:
			r.Value = base64.StdEncoding.EncodeToString(ev.Value)
		}
		if len(ev.Raw) > 0 {
			r.Raw = string(ev.Raw)
		}
		if err := enc.Encode(&r); err != nil {
			return err
		}
	}
	path := filepath.Join(d.dir, now.Format("2006-01-02")+".jsonl")
	err := d.append(path, buf.Bytes())
	if err != nil {
		err = fmt.Errorf("%w (and writing the dead-letter file %s failed: %v)", cause, path, err)
		return sinks.Failed(sinks.SinkOf(cause), err)
	}
	s.log.Error("a sink failed lines for good: they were written to the dead-letter file and the checkpoint moves past them",
		"path", s.file, "sink", sinks.SinkOf(cause), "cause", cause, "offset", fl.b.Start, "end", fl.b.End,
		"events", len(fl.b.Events), "dead_letter_file", path)
	d.m.deadLettered.WithLabelValues(sinks.SinkOf(cause)).Add(float64(len(fl.b.Events)))
	return nil
}

func (d *deadLetters) append(path string, b []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.MkdirAll(d.dir, 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// newStream makes the stream of one reading of e, with the agent's
// dead-letter path and metrics.
func (a *Agent) newStream(e *entry) *stream {
	s := newStream(a.reg, e, a.log, a.release)
	s.ops = a.ops
	return s
}

// countDone counts a released flight's events per sink: from each sink's
// own Counts where it keeps them (sinks.Counter), else all or nothing.
func (a *Agent) countDone(fl *flight) {
	n := len(fl.b.Events)
	for _, c := range a.m.ownCounts {
		if fl.err == nil {
			c.Acked(n)
		} else {
			c.Failed(n)
		}
	}
}

// sendFailed counts the events sink i refused (its Send returned an error).
func (a *Agent) sendFailed(i, n int) {
	if c := a.m.sinkCounts[i]; c != nil {
		if _, own := a.m.ownCounts[i]; !own {
			c.Failed(n)
		}
	}
}

// retry sends fl again to the sink that failed it retriably (err names
// it), after a backoff that doubles from 100ms to 30s; it runs on its own
// goroutine. When the agent stops meanwhile, fl settles with err: the
// checkpoint stays before it and the lines are read again at the next start.
func (a *Agent) retry(fl *flight, err error) {
	name := sinks.SinkOf(err)
	var sk sinks.Sink
	for _, s := range a.sinks {
		if s.Name() == name {
			sk = s
		}
	}
	if sk == nil {
		fl.s.settle(fl, err) // cannot tell which sink: stop here, visibly
		return
	}
	d := min(100*time.Millisecond<<min(fl.retries, 9), 30*time.Second)
	fl.retries++
	if ok, n := a.every("retry "+fl.s.path(), 10*time.Second); ok {
		fl.s.log.Warn("a sink failed lines it may take later; sending them to it again (the checkpoint waits)",
			"path", fl.s.file, "sink", name, "cause", err, "offset", fl.b.Start, "attempt", fl.retries, "retry_in", d, "suppressed", n)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.sendCtx.Done():
		fl.s.settle(fl, err)
		return
	}
	fl.b.Arm(1, fl.onDone)
	if serr := sk.Send(a.sendCtx, &fl.b); serr != nil {
		a.sendFailed(slicesIndex(a.sinks, sk), len(fl.b.Events))
		serr = sinks.Failed(name, serr)
		for i := range fl.b.Events {
			fl.b.Events[i].Done(serr)
		}
	}
}

func slicesIndex(ss []sinks.Sink, s sinks.Sink) int {
	for i := range ss {
		if ss[i] == s {
			return i
		}
	}
	return -1
}

// heartbeat notes that the main loop went round (see Heartbeat).
func (a *Agent) heartbeat() { a.ops.beat.Store(time.Now().UnixNano()) }

// Heartbeat is when the agent's main loop last went round: at least every
// scan_interval and checkpoint_interval while it runs, whatever the sinks
// do. The systemd watchdog is fed from it. Zero before Run.
func (a *Agent) Heartbeat() time.Time {
	n := a.ops.beat.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Checkpoint is one file's entry in data_dir/checkpoints.json, for
// `nginx-shipper status`.
type Checkpoint struct {
	Path     string    `json:"path"`
	Dev      uint64    `json:"dev"`
	Inode    uint64    `json:"inode"`
	Offset   int64     `json:"acked_offset"` // every line before it was acknowledged by every sink
	LastSeen time.Time `json:"last_seen"`
}

// ReadCheckpoints reads data_dir/checkpoints.json without taking it over
// (the daemon may be running): its entries and when it was written. A
// missing file is no error (no entries, zero time).
func ReadCheckpoints(dataDir string) ([]Checkpoint, time.Time, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "checkpoints.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	var rf registryFile
	if err := json.Unmarshal(b, &rf); err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %w", filepath.Join(dataDir, "checkpoints.json"), err)
	}
	written, _ := time.Parse(time.RFC3339Nano, rf.Written)
	if written.IsZero() {
		if fi, err := os.Stat(filepath.Join(dataDir, "checkpoints.json")); err == nil {
			written = fi.ModTime()
		}
	}
	out := make([]Checkpoint, 0, len(rf.Files))
	for _, e := range rf.Files {
		out = append(out, Checkpoint{Path: e.Path, Dev: e.Dev, Inode: e.Ino, Offset: e.Offset, LastSeen: e.Seen})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, written, nil
}
