package kafka

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// metrics are the sink's Prometheus series. Success is counted per produced
// batch (a franz-go hook), not per record, to keep the hot path free of
// metric updates.
type metrics struct {
	records         *prometheus.CounterVec // topic
	bytes           *prometheus.CounterVec // topic
	compressedBytes *prometheus.CounterVec // topic
	errors          *prometheus.CounterVec // kind
	invalid         *prometheus.CounterVec // action
	invalidEvents   *prometheus.CounterVec // stage, action
	rejected        *prometheus.CounterVec // reason, action
	latency         prometheus.Histogram   //
	conns           *prometheus.GaugeVec   // broker
	connectErrors   *prometheus.CounterVec // broker
	buffered        prometheus.Collector   // GaugeFunc, set in register
	bufferedBytes   prometheus.Collector   // GaugeFunc, set in register
	all             []prometheus.Collector // for (un)registering
}

const ns, sub = "nginx_shipper", "kafka"

func newMetrics() *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "records_produced_total",
			Help: "Records acknowledged by the brokers, by topic.",
		}, []string{"topic"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "bytes_produced_total",
			Help: "Uncompressed record batch bytes acknowledged by the brokers, by topic.",
		}, []string{"topic"}),
		compressedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "compressed_bytes_produced_total",
			Help: "Record batch bytes as sent (after compression) and acknowledged, by topic.",
		}, []string{"topic"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "produce_errors_total",
			Help: "Produce errors by kind: a Kafka error code name for records that failed for good, " +
				"client_closed, write and read for produce requests that failed on the wire (retried).",
		}, []string{"kind"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "invalid_lines_total",
			Help: "Lines that did not parse: action=dead_letter (produced to dead_letter_topic), " +
				"counted (no dead_letter_topic: acknowledged and only counted), failed (dead-letter produce failed).",
		}, []string{"action"}),
		invalidEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "invalid_events_total",
			Help: "Events that failed validation, by stage: parse (the line did not match the log_format) or " +
				"schema (its event does not fit the Avro schema); action as for invalid_lines_total.",
		}, []string{"stage", "action"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rejected_records_total",
			Help: "Records the brokers rejected for good, by reason (Kafka error name) and action: " +
				"dead_letter (routed to dead_letter_topic) or failed (not acknowledged, so not checkpointed).",
		}, []string{"reason", "action"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "produce_latency_seconds",
			Help:    "Time from Send to the acknowledgement of a batch's last event.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1ms .. 32s
		}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "broker_connections",
			Help: "Open connections per broker (node id and address); 0 means disconnected.",
		}, []string{"broker"}),
		connectErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "broker_connect_errors_total",
			Help: "Failed connection attempts (dial, TLS or SASL) per broker.",
		}, []string{"broker"}),
	}
	return m
}

// register adds the buffered gauges, which read the client, and registers
// every collector with reg (nil: none).
func (m *metrics) register(reg prometheus.Registerer, cl *kgo.Client, b *budget) error {
	m.buffered = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "buffered_records",
		Help: "Records handed to the sink and not yet acknowledged (dead-letter and raw records included).",
	}, func() float64 { return float64(cl.BufferedProduceRecords()) })
	m.bufferedBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "buffered_bytes",
		Help: "Key and value bytes held by the sink for events not yet acknowledged (the max_buffered_bytes budget in use).",
	}, func() float64 { return float64(b.usedBytes()) })
	m.all = []prometheus.Collector{m.records, m.bytes, m.compressedBytes, m.errors, m.invalid, m.invalidEvents,
		m.rejected, m.latency, m.conns, m.connectErrors, m.buffered, m.bufferedBytes}
	if reg == nil {
		return nil
	}
	for i, c := range m.all {
		if err := reg.Register(c); err != nil {
			for _, c := range m.all[:i] {
				reg.Unregister(c)
			}
			return err
		}
	}
	return nil
}

// errKind is the bounded label for an error: the Kafka error name, or a
// small fixed set of client-side kinds.
func errKind(err error) string {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return ke.Message
	case errors.Is(err, kgo.ErrClientClosed):
		return "client_closed"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "other"
}

func brokerLabel(meta kgo.BrokerMetadata) string {
	return strconv.Itoa(int(meta.NodeID)) + "/" + net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
}

// hooks feeds the metrics from franz-go. Every hook only updates metrics.
type hooks struct {
	m *metrics
	h *health
}

var (
	_ kgo.HookBrokerConnect       = hooks{}
	_ kgo.HookBrokerDisconnect    = hooks{}
	_ kgo.HookBrokerE2E           = hooks{}
	_ kgo.HookProduceBatchWritten = hooks{}
)

func (h hooks) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	h.h.setBroker(meta.NodeID, net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))), err)
	if err != nil {
		h.m.connectErrors.WithLabelValues(brokerLabel(meta)).Inc()
		return
	}
	h.m.conns.WithLabelValues(brokerLabel(meta)).Inc()
}

func (h hooks) OnBrokerDisconnect(meta kgo.BrokerMetadata, _ net.Conn) {
	h.m.conns.WithLabelValues(brokerLabel(meta)).Dec()
}

func (h hooks) OnBrokerE2E(meta kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if e2e.WriteErr != nil || e2e.ReadErr != nil {
		h.h.setBroker(meta.NodeID, net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))), e2e.Err())
	} else {
		h.h.setBroker(meta.NodeID, "", nil)
	}
	switch key {
	case 3: // kmsg.Metadata
		h.h.setMeta(e2e.Err())
		return
	case 0: // kmsg.Produce
	default:
		return
	}
	if e2e.WriteErr != nil {
		h.m.errors.WithLabelValues("write").Inc()
		h.h.produceFailing.Store(true)
	} else if e2e.ReadErr != nil {
		h.m.errors.WithLabelValues("read").Inc()
		h.h.produceFailing.Store(true)
	} else {
		h.h.produceFailing.Store(false)
	}
}

func (h hooks) OnProduceBatchWritten(_ kgo.BrokerMetadata, topic string, _ int32, pm kgo.ProduceBatchMetrics) {
	h.m.records.WithLabelValues(topic).Add(float64(pm.NumRecords))
	h.m.bytes.WithLabelValues(topic).Add(float64(pm.UncompressedBytes))
	h.m.compressedBytes.WithLabelValues(topic).Add(float64(pm.CompressedBytes))
}
