package s3

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	eventsSpooled   prometheus.Counter
	bytesSpooled    prometheus.Counter
	eventsInvalid   prometheus.Counter
	deadLetters     prometheus.Counter
	commits         prometheus.Counter
	commitErrors    prometheus.Counter
	commitSeconds   prometheus.Histogram
	sendBlocked     prometheus.Counter
	objects         *prometheus.CounterVec
	bytesUploaded   prometheus.Counter
	uploadErrors    prometheus.Counter
	uploadRetries   prometheus.Counter
	uploadSeconds   prometheus.Histogram
	spoolBytes      prometheus.Gauge
	spoolBatches    prometheus.Gauge
	spoolOldestAge  prometheus.GaugeFunc
	spoolMaxBytes   prometheus.Gauge
	compactions     prometheus.Counter
	recoveredTorn   prometheus.Counter
	recoveredBatchs prometheus.Counter
	pqConverted     prometheus.Counter
	pqErrors        prometheus.Counter
	pqDropped       prometheus.Counter
	pqSeconds       prometheus.Counter
}

func newMetrics(oldest func() float64) *metrics {
	const ns, sub = "nginx_shipper", "s3"
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	return &metrics{
		eventsSpooled: c("events_spooled_total", "Events written and fsynced into the spool."),
		bytesSpooled:  c("bytes_spooled_total", "Uncompressed bytes (NDJSON) written and fsynced into the spool."),
		eventsInvalid: c("events_invalid_total", "Events that did not parse (not written to the data-lake objects)."),
		deadLetters:   c("dead_letter_events_total", "Invalid events written to dead-letter objects."),
		commits:       c("spool_commits_total", "Group commits (gzip member + fsync)."),
		commitErrors:  c("spool_commit_errors_total", "Group commits that failed; their events were acknowledged with the error."),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "spool_commit_duration_seconds", Help: "Time to compress, write and fsync one group commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		sendBlocked: c("send_blocked_seconds_total", "Time Send spent blocked by backpressure (spool full or commit behind)."),
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "objects_uploaded_total", Help: "Objects stored in S3, by kind (events, dead_letter)."}, []string{"kind"}),
		bytesUploaded: c("bytes_uploaded_total", "Compressed bytes stored in S3."),
		uploadErrors:  c("upload_errors_total", "Upload attempts that failed."),
		uploadRetries: c("upload_retries_total", "Upload attempts that were retries of a failed one."),
		uploadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "upload_duration_seconds", Help: "Time of successful upload attempts.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		spoolBytes:   g("spool_bytes", "Compressed bytes in the spool (open and closed batches)."),
		spoolBatches: g("spool_batches", "Batches in the spool (open and closed)."),
		spoolOldestAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "spool_oldest_batch_age_seconds", Help: "Age of the oldest batch in the spool; 0 when empty."}, oldest),
		spoolMaxBytes:   g("spool_max_bytes", "The configured spool_max_bytes."),
		compactions:     c("spool_compactions_total", "Closed batches of many small gzip members rewritten as one before upload."),
		recoveredTorn:   c("spool_recovered_torn_bytes_total", "Bytes cut from torn open batches at start (never acknowledged)."),
		recoveredBatchs: c("spool_recovered_batches_total", "Batches found in the spool at start."),
		pqConverted:     c("parquet_conversions_total", "Closed batches converted to a Parquet object (format parquet)."),
		pqErrors:        c("parquet_conversion_errors_total", "Conversions to Parquet that failed (the upload is retried)."),
		pqDropped:       c("parquet_dropped_values_total", "JSON values with no Parquet column (a field not in the input's schema) or of the wrong type; written as null or left out."),
		pqSeconds:       c("parquet_conversion_seconds_total", "Time spent converting batches to Parquet."),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.eventsSpooled, m.bytesSpooled, m.eventsInvalid, m.deadLetters,
		m.commits, m.commitErrors, m.commitSeconds, m.sendBlocked, m.objects, m.bytesUploaded, m.uploadErrors,
		m.uploadRetries, m.uploadSeconds, m.spoolBytes, m.spoolBatches, m.spoolOldestAge, m.spoolMaxBytes,
		m.compactions, m.recoveredTorn, m.recoveredBatchs, m.pqConverted, m.pqErrors, m.pqDropped, m.pqSeconds} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
