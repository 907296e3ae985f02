package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the agent's own Prometheus metrics. Sinks register theirs.
type metrics struct {
	linesRead     *prometheus.CounterVec // path
	bytesRead     *prometheus.CounterVec // path
	eventsParsed  *prometheus.CounterVec // input
	parseErrors   *prometheus.CounterVec // input
	longLines     *prometheus.CounterVec // input
	rotations     *prometheus.CounterVec // path, kind
	lag           *prometheus.GaugeVec   // path
	acked         *prometheus.CounterVec // sink
	sinkErrors    *prometheus.CounterVec // sink
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
		longLines: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "long_lines_total",
			Help: "Lines longer than max_line_bytes (sent to the dead-letter path, truncated)."}, []string{"input"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "rotations_total",
			Help: "Rotations seen: kind is rename, delete or truncate."}, []string{"path", "kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "file_lag_bytes",
			Help: "Bytes between the read position and the end of the file."}, []string{"path"}),
		acked: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_acked_total",
			Help: "Events a sink acknowledged (durably accepted)."}, []string{"sink"}),
		sinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "sink_errors_total",
			Help: "Events a sink failed for good (their lines are not checkpointed)."}, []string{"sink"}),
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
		reg.MustRegister(m.linesRead, m.bytesRead, m.eventsParsed, m.parseErrors, m.longLines, m.rotations, m.lag,
			m.acked, m.sinkErrors, m.inFlight, m.inFlightBytes, m.openFiles, m.checkpointAge, m.checkpointErr, m.checkpointCorrupt,
			m.filesWaiting, m.oldestWait, m.slotWait, m.slotReleases, m.shelved, m.unreadLost)
	}
	return m
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
