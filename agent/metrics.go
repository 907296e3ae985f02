package agent

import (
	"math"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// metrics are the agent's own Prometheus metrics. Sinks register theirs.
type metrics struct {
	linesRead    *prometheus.CounterVec // path
	bytesRead    *prometheus.CounterVec // path
	eventsParsed *prometheus.CounterVec // input
	parseErrors  *prometheus.CounterVec // input
	schemaErrors *prometheus.CounterVec // input
	longLines    *prometheus.CounterVec // input
	rotations    *prometheus.CounterVec // path, kind
	lag          *prometheus.GaugeVec   // path
	// sinkCounts are each sink's acknowledged and failed events (in
	// a.sinks order), exported as events_acked_total and
	// sink_errors_total; ownCounts are those the agent keeps itself, for
	// sinks that keep none (all or nothing per batch).
	sinkCounts   []*sinks.Counts
	sinkNames    []string
	ownCounts    map[int]*sinks.Counts
	deadLettered *prometheus.CounterVec // sink
	eventToAck   *runHistogram
	readToAck    prometheus.Histogram

	inFlight      prometheus.Gauge
	inFlightBytes prometheus.Gauge
	openFiles     prometheus.Gauge
	checkpointAge prometheus.GaugeFunc
	checkpointErr prometheus.Counter
	filesWaiting  prometheus.Gauge
	oldestWait    prometheus.Gauge
	slotWait      prometheus.Histogram
	slotReleases  prometheus.Counter
	shelved       prometheus.Gauge
	unreadLost    prometheus.Counter
	// checkpointCorrupt is 1 when the checkpoint file was corrupt at start
	// (moved aside; files were treated as new).
	checkpointCorrupt prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, checkpointAge func() float64) *metrics {
	const ns = "nginx_shipper"
	m := &metrics{
		linesRead: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "lines_read_total",
			Help: "Lines read from log files."}, []string{"path"}),
		bytesRead: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "bytes_read_total",
			Help: "Bytes read from log files."}, []string{"path"}),
		eventsParsed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_parsed_total",
			Help: "Lines parsed into events."}, []string{"input"}),
		parseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "parse_errors_total",
			Help: "Lines that did not match the input's log_format (sent to the dead-letter path)."}, []string{"input"}),
		schemaErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "schema_errors_total",
			Help: "Parsed lines whose event does not fit its Avro schema (a value out of range; sent to the dead-letter path, stage schema)."}, []string{"input"}),
		longLines: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "long_lines_total",
			Help: "Lines longer than max_line_bytes (sent to the dead-letter path, truncated)."}, []string{"input"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "rotations_total",
			Help: "Rotations seen: kind is rename, delete or truncate."}, []string{"path", "kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "file_lag_bytes",
			Help: "Bytes between the read position and the end of the file."}, []string{"path"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "dead_lettered_events_total",
			Help: "Events a sink failed for good that were written to data_dir/dead-letter/ (the checkpoint moved past them), by the sink that failed."}, []string{"sink"}),
		eventToAck: newRunHistogram(ns+"_event_ack_latency_seconds",
			"From a line's own timestamp (the event time nginx wrote) to the moment every sink acknowledged it.",
			prometheus.ExponentialBuckets(0.01, 2, 18)), // 10ms .. ~22min
		readToAck: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "read_ack_latency_seconds",
			Help:    "From reading a batch's first line to the moment every sink acknowledged the batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 20)}), // 1ms .. ~9min
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "in_flight_events",
			Help: "Events read and not yet acknowledged by every sink."}),
		inFlightBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "in_flight_bytes",
			Help: "Bytes of events read and not yet acknowledged by every sink."}),
		openFiles: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "open_files",
			Help: "Log files being read."}),
		checkpointAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "checkpoint_age_seconds",
			Help: "Seconds since the checkpoint file was last written."}, checkpointAge),
		checkpointErr: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "checkpoint_errors_total",
			Help: "Failed writes of the checkpoint file (data_dir full or not writable)."}),
		checkpointCorrupt: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "checkpoint_corrupt",
			Help: "1 when the checkpoint file was corrupt at start: it was moved aside and files were read per read_from."}),
		filesWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "files_waiting",
			Help: "Files that wait for a free slot (max_open_files are open)."}),
		oldestWait: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "file_wait_oldest_seconds",
			Help: "How long the file that has waited longest for a slot has waited."}),
		slotWait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "file_wait_seconds",
			Help:    "How long files waited for a slot before they were opened.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300}}),
		slotReleases: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "file_slot_releases_total",
			Help: "Times a file gave its slot up for files that waited (caught up, or after its turn)."}),
		shelved: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "files_shelved",
			Help: "Files known but not open: parked (they gave their slot up) or waiting for one."}),
		unreadLost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "released_unread_bytes_total",
			Help: "Bytes a file still had unread when it could no longer be read (deleted while it waited for a slot). Must stay 0."}),
	}
	if reg != nil {
		reg.MustRegister(m.linesRead, m.bytesRead, m.eventsParsed, m.parseErrors, m.schemaErrors, m.longLines, m.rotations, m.lag,
			sinkCountsCollector{m}, m.deadLettered, m.eventToAck, m.readToAck, m.inFlight, m.inFlightBytes, m.openFiles,
			m.checkpointAge, m.checkpointErr, m.checkpointCorrupt,
			m.filesWaiting, m.oldestWait, m.slotWait, m.slotReleases, m.shelved, m.unreadLost)
	}
	return m
}

// addSinks sets up the per-sink counts, in ss order.
func (m *metrics) addSinks(ss []sinks.Sink) {
	m.ownCounts = map[int]*sinks.Counts{}
	for i, s := range ss {
		m.sinkNames = append(m.sinkNames, s.Name())
		if c, ok := s.(sinks.Counter); ok {
			m.sinkCounts = append(m.sinkCounts, c.Counts())
			continue
		}
		c := &sinks.Counts{}
		m.ownCounts[i] = c
		m.sinkCounts = append(m.sinkCounts, c)
	}
}

var (
	ackedDesc = prometheus.NewDesc("nginx_shipper_events_acked_total",
		"Events the sink acknowledged (durably accepted), counted by the sink itself.", []string{"sink"}, nil)
	sinkErrorsDesc = prometheus.NewDesc("nginx_shipper_sink_errors_total",
		"Events the sink failed (for good: dead-lettered or blocking; or refused while closing).", []string{"sink"}, nil)
)

// sinkCountsCollector exports each sink's Counts.
type sinkCountsCollector struct{ m *metrics }

func (c sinkCountsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ackedDesc
	ch <- sinkErrorsDesc
}

func (c sinkCountsCollector) Collect(ch chan<- prometheus.Metric) {
	for i, sc := range c.m.sinkCounts {
		acked, failed := sc.Load()
		ch <- prometheus.MustNewConstMetric(ackedDesc, prometheus.CounterValue, float64(acked), c.m.sinkNames[i])
		ch <- prometheus.MustNewConstMetric(sinkErrorsDesc, prometheus.CounterValue, float64(failed), c.m.sinkNames[i])
	}
}

// forgetPath removes the per-file series of path (no harvester has it open
// any more): with thousands of files, and date-named rotated ones, the
// series of files let go would otherwise grow without bound, and a stale
// file_lag_bytes would stay behind.
func (m *metrics) forgetPath(path string) {
	m.linesRead.DeleteLabelValues(path)
	m.bytesRead.DeleteLabelValues(path)
	m.lag.DeleteLabelValues(path)
	m.rotations.DeletePartialMatch(prometheus.Labels{"path": path})
}

// observeAck records the latencies of a flight every sink acknowledged:
// read to acknowledgement once, and each event's own time to
// acknowledgement.
func (m *metrics) observeAck(fl *flight, now time.Time) {
	if !fl.readAt.IsZero() {
		m.readToAck.Observe(now.Sub(fl.readAt).Seconds())
	}
	// nginx's times have a resolution of a second (or a millisecond):
	// the events of a batch come in runs of equal times, each observed
	// once with its count.
	evs := fl.b.Events
	for i := 0; i < len(evs); {
		t := evs[i].Time
		j := i + 1
		for j < len(evs) && evs[j].Time.Equal(t) {
			j++
		}
		if !t.IsZero() {
			m.eventToAck.observeN(max(now.Sub(t).Seconds(), 0), uint64(j-i))
		}
		i = j
	}
}

// runHistogram is a Prometheus histogram that takes a value with a count
// (client_golang's takes one value at a time): the latency of a batch's
// events, most of which share their time, costs one observation per run.
type runHistogram struct {
	desc   *prometheus.Desc
	upper  []float64
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // float64 bits
	count  atomic.Uint64
}

func newRunHistogram(name, help string, buckets []float64) *runHistogram {
	return &runHistogram{
		desc:   prometheus.NewDesc(name, help, nil, nil),
		upper:  buckets,
		counts: make([]atomic.Uint64, len(buckets)+1),
	}
}

// observeN records n observations of v.
func (h *runHistogram) observeN(v float64, n uint64) {
	i := sort.SearchFloat64s(h.upper, v) // first bucket with upper >= v
	h.counts[i].Add(n)
	h.count.Add(n)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v*float64(n))) {
			return
		}
	}
}

func (h *runHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h *runHistogram) Collect(ch chan<- prometheus.Metric) {
	buckets := make(map[float64]uint64, len(h.upper))
	var cum uint64
	for i, u := range h.upper {
		cum += h.counts[i].Load()
		buckets[u] = cum
	}
	count := cum + h.counts[len(h.upper)].Load()
	ch <- prometheus.MustNewConstHistogram(h.desc, count, math.Float64frombits(h.sum.Load()), buckets)
}
