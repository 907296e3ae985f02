package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/container"
	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/prometheus/client_golang/prometheus"
)

// Container inputs (container = cri | docker | auto): every physical line
// is a runtime record, unwrapped by a container.Decoder before it is
// parsed; see agent/container/doc.go. The harvester's hooks are:
// consume() hands each record to addRecord, batch() and consume() cap a
// batch's End with capEnd, truncated() resets the decoder, finishRotated()
// calls flushPartials, park (slots.go) resumes a file at resumeAt (a
// parked file resumes with a new harvester and decoder: at the first record
// of a line half joined, whose records are read and joined again), and the
// agent's open path calls initContainer.

// errPartialUnfinished is the Err of a line whose last partial record was
// never continued before its file ended (rotated and idle).
var errPartialUnfinished = errors.New("partial container record never continued before the file ended")

// kubernetesKeys are the record keys (sinks.kafka.key) a container input
// takes from its file's metadata rather than from the parsed line.
var kubernetesKeys = map[string]bool{
	"kubernetes.namespace": true, "kubernetes.pod": true, "kubernetes.pod_uid": true,
	"kubernetes.container": true, "kubernetes.node": true,
}

// parserKey is the key field the input's parser extracts: none when a
// container input's key comes from its metadata.
func parserKey(in InputConfig, keyField string) string {
	if in.Container != "" && kubernetesKeys[keyField] {
		return ""
	}
	return keyField
}

// metaKey is the record key of every line of a file, from its metadata.
func metaKey(m container.Meta, keyField string) []byte {
	v := map[string]string{
		"kubernetes.namespace": m.Namespace, "kubernetes.pod": m.Pod, "kubernetes.pod_uid": m.PodUID,
		"kubernetes.container": m.Container, "kubernetes.node": m.Node,
	}[keyField]
	if v == "" {
		return nil
	}
	return []byte(v)
}

// compileStderr compiles the stderr_format of a container input (nil for
// a plain input).
func compileStderr(in InputConfig, keyField string, readFile func(string) ([]byte, error)) (*parser.Parser, error) {
	if in.Container == "" {
		return nil, nil
	}
	keyField = parserKey(in, keyField)
	sf := in.StderrFormat
	if sf == "" {
		sf = "error"
	}
	// The error log's fields are not the access log's: no record key
	// from it unless it has the field.
	p, _, err := compileFormat(sf, "", "", in.Location(), readFile)
	if err != nil {
		return nil, err
	}
	if keyField != "" {
		if q, _, err := compileFormat(sf, "", keyField, in.Location(), readFile); err == nil {
			p = q
		}
	}
	return p, nil
}

// compileStderrAll reports every container input's stderr_format error,
// naming the key.
func compileStderrAll(ins []InputConfig, keyField string, readFile func(string) ([]byte, error)) ([]*parser.Parser, error) {
	var errs []error
	out := make([]*parser.Parser, len(ins))
	for i := range ins {
		p, err := compileStderr(ins[i], keyField, readFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("inputs[%d].stderr_format: %w", i, err))
		}
		out[i] = p
	}
	return out, errors.Join(errs...)
}

// initContainer prepares a harvester of a container input: its decoder
// and the kubernetes metadata of its path, rendered once.
func (h *harvester) initContainer() {
	rt, _ := container.ParseRuntime(h.in.cfg.Container)
	if rt == container.None {
		return
	}
	h.dec = container.NewDecoder(rt, h.a.cfg.MaxLineBytes)
	m, err := container.ResolvePath(h.path, filepath.EvalSymlinks)
	if err != nil {
		h.logger().Debug("no kubernetes metadata in the path", "err", err)
		return
	}
	m.Node = os.Getenv("NODE_NAME")
	h.kmeta = container.AppendMeta(nil, m)
	h.kkey = metaKey(m, h.a.keyField)
}

// resumeAt is where reading resumes after the file was parked: its read
// position, or the first record of a line still being joined (the lines
// of the other stream completed since are read again: duplicates, never a
// loss).
func (h *harvester) resumeAt() int64 {
	if h.dec != nil {
		if hold := h.dec.Hold(); hold >= 0 && hold < h.offset {
			return hold
		}
	}
	return h.offset
}

// capEnd is end, or less: a batch's checkpoint must not pass the first
// record of a line still being joined.
func (h *harvester) capEnd(end int64) int64 {
	if h.dec != nil {
		if hold := h.dec.Hold(); hold >= 0 && hold < end {
			return hold
		}
	}
	return end
}

// addRecord decodes one record (start: its offset; end: the offset after
// its newline) and adds the line it completes, if any.
func (h *harvester) addRecord(rec []byte, start, end int64) {
	l, ok := h.dec.Add(rec, start)
	if ok {
		h.addLine(&l, nil)
	}
	if ok || h.fl != nil {
		h.batch().b.End = h.capEnd(end)
	}
}

// flushPartials adds the lines still being joined when the file ends.
func (h *harvester) flushPartials() {
	for {
		l, ok := h.dec.Flush()
		if !ok {
			return
		}
		h.addLine(&l, errPartialUnfinished)
	}
}

// addLine parses an unwrapped line into the batch being built: stdout with
// the input's format, stderr with its stderr_format; the container fields
// are added to the event. A bad record, a too-long line and a line that
// does not parse go to the dead-letter path with their reason.
func (h *harvester) addLine(l *container.Line, cut error) {
	fl := h.batch()
	var sp span
	ev := fl.b.Add()
	ev.Offset = l.Start
	fail := func(err error, raw []byte) {
		sp.raw0 = len(fl.arena)
		fl.arena = append(fl.arena, raw...)
		sp.raw1 = len(fl.arena)
		sp.val0, sp.val1 = sp.raw1, sp.raw1
		ev.Err = err
		ev.Time = time.Now()
		fl.spans = append(fl.spans, sp)
	}
	switch {
	case l.Err != nil:
		h.in.parseErrors.Inc()
		h.a.logParseError(h.in, h.path, l.Start, l.Err)
		fail(l.Err, l.Log)
		return
	case l.Truncated:
		err := cut
		if err == nil {
			err = fmt.Errorf("%w (%d)", ErrLineTooLong, h.a.cfg.MaxLineBytes)
			h.in.longLines.Inc()
		}
		fail(err, l.Log)
		ev.Truncated = true
		h.a.log.Warn("container line sent to the dead-letter path truncated", "path", h.path, "offset", l.Start, "reason", err)
		return
	}
	p := h.in.parser
	if l.Stream == container.Stderr && h.in.stderrParser != nil {
		p = h.in.stderrParser
	}
	h.meta.Offset = l.Start
	sp.val0 = len(fl.arena)
	var err error
	fl.arena, err = p.Parse(fl.arena, l.Log, h.meta, &h.res)
	if err != nil {
		if l.Stream == container.Stderr && container.IsKlog(l.Log) {
			err = container.ErrKlog
			h.in.klogLines.Inc()
		} else {
			h.in.parseErrors.Inc()
			h.a.logParseError(h.in, h.path, l.Start, err)
		}
		fail(err, l.Log)
		return
	}
	fl.arena = container.AppendFields(fl.arena, l, h.kmeta)
	sp.val1 = len(fl.arena)
	if h.a.keepRaw {
		sp.raw0 = len(fl.arena)
		fl.arena = append(fl.arena, l.Log...)
		sp.raw1 = len(fl.arena)
	}
	ev.Time = h.res.Time
	if ev.Time.IsZero() {
		ev.Time = l.Time
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	key := h.res.Key
	if h.kkey != nil {
		key = h.kkey
	}
	if key != nil {
		sp.key0 = len(fl.arena)
		fl.arena = append(fl.arena, key...)
		sp.key1 = len(fl.arena)
	}
	h.nParsed++
	fl.spans = append(fl.spans, sp)
}

// initContainerInputs compiles the stderr formats of the container inputs
// and sets up their klog counter. Called once by New.
func (a *Agent) initContainerInputs(ins []InputConfig, opts Options) error {
	a.keyField = opts.KeyField
	ps, err := compileStderrAll(ins, opts.KeyField, os.ReadFile)
	if err != nil {
		return err
	}
	klog := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "nginx_shipper", Name: "container_klog_lines_total",
		Help: "stderr lines of container inputs that are klog lines (the ingress-nginx controller's own log), sent to the dead-letter path."}, []string{"input"})
	some := false
	for i, in := range a.inputs {
		in.stderrParser = ps[i]
		in.klogLines = klog.WithLabelValues(strconv.Itoa(i))
		some = some || ps[i] != nil
	}
	if some && opts.Registerer != nil {
		return opts.Registerer.Register(klog)
	}
	return nil
}

// CompileStderrInputs compiles the stderr_format of every container input
// (nil for the others), as New does: for the schema of what a container
// input's stderr lines become (the S3 sink's Parquet columns).
func CompileStderrInputs(ins []InputConfig, keyField string, readFile func(string) ([]byte, error)) ([]*parser.Parser, error) {
	return compileStderrAll(ins, keyField, readFile)
}
