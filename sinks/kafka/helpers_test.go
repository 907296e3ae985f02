package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

const (
	topicMain = "nginx-access"
	topicDLQ  = "nginx-access-invalid"
	topicRaw  = "nginx-access-raw"
)

var testSource = &sinks.Source{Path: "/var/log/nginx/access.log", Format: "combined"}

// newCluster starts a kfake cluster with the three test topics (4
// partitions each) and closes it when the test ends.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(3), kfake.SeedTopics(4, topicMain, topicDLQ, topicRaw)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// testConfig is a valid configuration for the cluster at addrs.
func testConfig(addrs []string) Config {
	return Config{
		Brokers:  addrs,
		Topic:    topicMain,
		Linger:   Duration{time.Millisecond},
		Hostname: "web-1",
		ClientID: "nginx-shipper-test",
	}
}

type env struct {
	t    testing.TB
	c    *kfake.Cluster
	s    *Sink
	reg  *prometheus.Registry
	acks *acks
}

// newEnv starts a sink on c with cfg and closes it when the test ends.
func newEnv(t testing.TB, c *kfake.Cluster, cfg Config, extra ...kgo.Opt) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	s, err := newSink(cfg, log, reg, extra...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e := &env{t: t, c: c, s: s, reg: reg, acks: newAcks()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return e
}

// line is one event to put in a test batch.
type line struct {
	key, value, raw string
	err             error
}

// acks records every event's Done through the batches' onDone.
type acks struct {
	mu      sync.Mutex
	done    map[*sinks.Batch]error
	changed chan struct{}
}

func newAcks() *acks { return &acks{done: map[*sinks.Batch]error{}, changed: make(chan struct{}, 1)} }

func (a *acks) onDone(b *sinks.Batch, err error) {
	a.mu.Lock()
	if _, dup := a.done[b]; dup {
		a.mu.Unlock()
		panic("onDone called twice for a batch")
	}
	a.done[b] = err
	a.mu.Unlock()
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// result returns whether b completed and its error.
func (a *acks) result(b *sinks.Batch) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	err, ok := a.done[b]
	return ok, err
}

// batch builds an armed batch of lines starting at file offset off.
func (e *env) batch(src *sinks.Source, lines ...line) *sinks.Batch {
	b := sinks.NewBatch(src)
	var off int64
	for _, l := range lines {
		ev := b.Add()
		if l.key != "" {
			ev.Key = []byte(l.key)
		}
		if l.err == nil {
			ev.Value = []byte(l.value)
		}
		ev.Raw = []byte(l.raw)
		if l.raw == "" {
			ev.Raw = []byte(l.value)
		}
		ev.Err = l.err
		ev.Offset = off
		ev.Time = time.Now()
		off += int64(len(ev.Raw)) + 1
	}
	b.End = off
	b.Arm(1, e.acks.onDone)
	return b
}

func (e *env) mustSend(b *sinks.Batch) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.s.Send(ctx, b); err != nil {
		e.t.Fatalf("Send: %v", err)
	}
}

// waitDone waits until every batch completed and returns their errors.
func (e *env) waitDone(timeout time.Duration, bs ...*sinks.Batch) []error {
	e.t.Helper()
	deadline := time.After(timeout)
	for {
		errs := make([]error, len(bs))
		all := true
		for i, b := range bs {
			ok, err := e.acks.result(b)
			all = all && ok
			errs[i] = err
		}
		if all {
			return errs
		}
		select {
		case <-e.acks.changed:
		case <-deadline:
			n := 0
			for _, b := range bs {
				if ok, _ := e.acks.result(b); ok {
					n++
				}
			}
			e.t.Fatalf("after %s only %d of %d batches were acknowledged", timeout, n, len(bs))
		}
	}
}

// mustDone waits for the batches and fails on any error.
func (e *env) mustDone(bs ...*sinks.Batch) {
	e.t.Helper()
	for i, err := range e.waitDone(20*time.Second, bs...) {
		if err != nil {
			e.t.Fatalf("batch %d: Done(%v)", i, err)
		}
	}
}

// consume reads n records of topic from the start, failing after timeout.
func consume(t testing.TB, addrs []string, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s before the deadline", len(recs), n, topic)
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				panic(fmt.Sprintf("fetch %s/%d: %v", t, p, err))
			}
		})
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// topicEnd returns the sum of the high watermarks of topic's partitions:
// how many records it holds.
func topicEnd(t testing.TB, addrs []string, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range mresp.Topics[0].Partitions {
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p.Partition
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		total += resp.Topics[0].Partitions[0].Offset
	}
	return total
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// metricValue sums the samples of the metric name whose labels include
// labels (name=value pairs).
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// produceError answers a produce request with code for every partition of
// topic (every topic when topic is "").
func produceError(req kmsg.Request, topic string, code int16) *kmsg.ProduceResponse {
	preq := req.(*kmsg.ProduceRequest)
	resp := preq.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range preq.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.TopicID = rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			sp.BaseOffset = -1
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// producesTo reports whether a produce request carries records for topic
// (by name, or by id from Produce v13 on).
func producesTo(req kmsg.Request, topic string, id [16]byte) bool {
	for _, rt := range req.(*kmsg.ProduceRequest).Topics {
		if rt.Topic == topic || rt.TopicID == id {
			return true
		}
	}
	return false
}

// topicID returns the id of topic.
func topicID(t testing.TB, addrs []string, topic string) [16]byte {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	resp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].TopicID
}

// freePorts returns n ports on 127.0.0.1 that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// deadAddr returns an address on 127.0.0.1 where nothing listens.
func deadAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePorts(t, 1)[0]))
}

// waitMetric waits until the metric (see metricValue) equals want: some
// are updated by franz-go hooks just after the promises ran.
func waitMetric(t testing.TB, reg *prometheus.Registry, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := metricValue(t, reg, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitMetricAtLeast waits until the metric (see metricValue) reaches min.
func waitMetricAtLeast(t testing.TB, reg *prometheus.Registry, min float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for metricValue(t, reg, name, labels...) < min {
		if time.Now().After(deadline) {
			t.Fatalf("%s%v never reached %v", name, labels, min)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// createTopic creates topic with one partition.
func createTopic(t testing.TB, addrs []string, topic string) error {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 1
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.Topics[0].ErrorCode)
}
