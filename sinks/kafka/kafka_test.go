package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// keyedLines returns n lines over nkeys keys; each value is "key seq" where
// seq counts that key's lines.
func keyedLines(prefix string, n, nkeys int) []line {
	seq := make([]int, nkeys)
	ls := make([]line, n)
	for i := range ls {
		k := i % nkeys
		key := fmt.Sprintf("%s-10.0.0.%d", prefix, k)
		ls[i] = line{key: key, value: fmt.Sprintf(`{"remote_addr":%q,"seq":%d}`, key, seq[k])}
		seq[k]++
	}
	return ls
}

func TestDeliversInOrderPerKeyWithHeaders(t *testing.T) {
	c := newCluster(t)
	e := newEnv(t, c, testConfig(c.ListenAddrs()))

	// Two files sending concurrently, as the agent does.
	srcs := []*sinks.Source{testSource, {Path: "/var/log/nginx/other.log", Format: "main"}}
	var mu sync.Mutex
	var batches []*sinks.Batch
	var wg sync.WaitGroup
	for fi, src := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls := keyedLines(strconv.Itoa(fi), 3000, 10)
			for i := 0; i < len(ls); i += 100 {
				b := e.batch(src, ls[i:i+100]...)
				mu.Lock()
				batches = append(batches, b)
				mu.Unlock()
				if err := e.s.Send(context.Background(), b); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	e.mustDone(batches...)

	recs := consume(t, c.ListenAddrs(), topicMain, 6000)
	if len(recs) != 6000 {
		t.Fatalf("got %d records, want 6000", len(recs))
	}
	partOf := map[string]int32{}
	next := map[string]int{}
	for _, r := range recs {
		k := string(r.Key)
		if p, ok := partOf[k]; ok && p != r.Partition {
			t.Fatalf("key %s on partitions %d and %d", k, p, r.Partition)
		}
		partOf[k] = r.Partition
		want := fmt.Sprintf(`{"remote_addr":%q,"seq":%d}`, k, next[k])
		if string(r.Value) != want {
			t.Fatalf("key %s: got %s, want %s (out of order or lost)", k, r.Value, want)
		}
		next[k]++
		if h, _ := header(r, HeaderHost); h != "web-1" {
			t.Fatalf("host header %q", h)
		}
		file, _ := header(r, HeaderLogFile)
		format, _ := header(r, HeaderFormat)
		if !(file == srcs[0].Path && format == "combined" || file == srcs[1].Path && format == "main") {
			t.Fatalf("headers log_file=%q format=%q", file, format)
		}
	}
	waitMetric(t, e.reg, 6000, "nginx_shipper_kafka_records_produced_total", "topic", topicMain)
	waitMetric(t, e.reg, float64(len(batches)), "nginx_shipper_kafka_produce_latency_seconds")
	if got := metricValue(t, e.reg, "nginx_shipper_kafka_broker_connections"); got < 1 {
		t.Errorf("broker_connections = %v, want some", got)
	}
}

func TestDoneOnlyAfterBrokerAck(t *testing.T) {
	c := newCluster(t)
	e := newEnv(t, c, testConfig(c.ListenAddrs()))
	release := make(chan struct{})
	var held atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		held.Store(true)
		c.SleepControl(func() { <-release })
		return nil, nil, false // then handled normally
	})
	b := e.batch(testSource, keyedLines("a", 10, 2)...)
	e.mustSend(b)
	deadline := time.Now().Add(10 * time.Second)
	for !held.Load() {
		if time.Now().After(deadline) {
			t.Fatal("no produce request reached the broker")
		}
		time.Sleep(time.Millisecond)
	}
	if ok, _ := e.acks.result(b); ok {
		t.Fatal("batch acknowledged before the broker answered")
	}
	close(release)
	e.mustDone(b)
}

func TestInvalidLinesGoRawToDeadLetterTopic(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.DeadLetterTopic = topicDLQ
	e := newEnv(t, c, cfg)
	b := e.batch(testSource,
		line{value: `{"a":1}`, raw: "good 1"},
		line{raw: "garbage line", err: errors.New("line 2: does not match the log_format")},
		line{value: `{"a":3}`, raw: "good 3"},
	)
	e.mustSend(b)
	e.mustDone(b)

	dl := consume(t, c.ListenAddrs(), topicDLQ, 1)
	r := dl[0]
	if string(r.Value) != "garbage line" {
		t.Errorf("dead-letter value %q", r.Value)
	}
	for k, want := range map[string]string{
		HeaderReason: "line 2: does not match the log_format", HeaderLogFile: testSource.Path,
		HeaderLogOffset: "7", HeaderHost: "web-1", HeaderFormat: "combined",
	} {
		if got, _ := header(r, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	main := consume(t, c.ListenAddrs(), topicMain, 2)
	for _, r := range main {
		if !strings.HasPrefix(string(r.Value), `{"a":`) {
			t.Errorf("main topic got %q", r.Value)
		}
	}
	if n := topicEnd(t, c.ListenAddrs(), topicMain); n != 2 {
		t.Errorf("main topic holds %d records, want 2", n)
	}
	if got := metricValue(t, e.reg, "nginx_shipper_kafka_invalid_lines_total", "action", "dead_letter"); got != 1 {
		t.Errorf("invalid_lines_total{dead_letter} = %v", got)
	}
}

func TestInvalidLinesCountedWithoutDeadLetterTopic(t *testing.T) {
	c := newCluster(t)
	e := newEnv(t, c, testConfig(c.ListenAddrs()))
	b := e.batch(testSource,
		line{raw: "bad 1", err: errors.New("no match")},
		line{raw: "bad 2", err: errors.New("no match")},
	)
	e.mustSend(b)
	e.mustDone(b)
	if got := metricValue(t, e.reg, "nginx_shipper_kafka_invalid_lines_total", "action", "counted"); got != 2 {
		t.Errorf("invalid_lines_total{counted} = %v, want 2", got)
	}
	for _, topic := range []string{topicMain, topicDLQ} {
		if n := topicEnd(t, c.ListenAddrs(), topic); n != 0 {
			t.Errorf("%s holds %d records, want 0", topic, n)
		}
	}
}

func TestRawTopicGetsTheOriginalLine(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.RawTopic = topicRaw
	e := newEnv(t, c, cfg)
	b := e.batch(testSource, line{key: "10.0.0.1", value: `{"status":200}`, raw: `10.0.0.1 - - "GET / HTTP/1.1" 200`})
	e.mustSend(b)
	e.mustDone(b)
	raw := consume(t, c.ListenAddrs(), topicRaw, 1)[0]
	if string(raw.Value) != `10.0.0.1 - - "GET / HTTP/1.1" 200` || string(raw.Key) != "10.0.0.1" {
		t.Errorf("raw record key=%q value=%q", raw.Key, raw.Value)
	}
	parsed := consume(t, c.ListenAddrs(), topicMain, 1)[0]
	if string(parsed.Value) != `{"status":200}` {
		t.Errorf("parsed record %q", parsed.Value)
	}
}

// TestRetriableBrokerErrorsLoseNothing injects NOT_LEADER_FOR_PARTITION,
// REQUEST_TIMED_OUT answers and an unanswered (timed-out) request: every
// event is still delivered exactly once (idempotent producer) and in order.
func TestRetriableBrokerErrorsLoseNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(c *kfake.Cluster, req kmsg.Request) (kmsg.Response, error, bool)
	}{
		{"not_leader", func(_ *kfake.Cluster, req kmsg.Request) (kmsg.Response, error, bool) {
			return produceError(req, "", kerr.NotLeaderForPartition.Code), nil, true
		}},
		{"request_timed_out", func(_ *kfake.Cluster, req kmsg.Request) (kmsg.Response, error, bool) {
			return produceError(req, "", kerr.RequestTimedOut.Code), nil, true
		}},
		{"connection_dropped", func(_ *kfake.Cluster, _ kmsg.Request) (kmsg.Response, error, bool) {
			return nil, errors.New("injected: close the connection"), true
		}},
		{"no_answer", func(_ *kfake.Cluster, _ kmsg.Request) (kmsg.Response, error, bool) {
			return nil, nil, true // never answered: the client times the request out
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			cfg := testConfig(c.ListenAddrs())
			cfg.RequestTimeout = Duration{200 * time.Millisecond}
			e := newEnv(t, c, cfg, kgo.RequestTimeoutOverhead(500*time.Millisecond), kgo.MetadataMinAge(50*time.Millisecond))
			var injected atomic.Int32
			c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				if injected.Add(1) < 4 {
					c.KeepControl()
					return tc.inject(c, req)
				}
				c.DropControl()
				return nil, nil, false
			})
			var bs []*sinks.Batch
			ls := keyedLines("k", 500, 5)
			for i := 0; i < len(ls); i += 50 {
				b := e.batch(testSource, ls[i:i+50]...)
				e.mustSend(b)
				bs = append(bs, b)
			}
			e.mustDone(bs...)
			if injected.Load() < 4 {
				t.Fatalf("only %d produce requests were seen", injected.Load())
			}
			recs := consume(t, c.ListenAddrs(), topicMain, 500)
			next := map[string]int{}
			for _, r := range recs {
				want := fmt.Sprintf(`{"remote_addr":%q,"seq":%d}`, r.Key, next[string(r.Key)])
				if string(r.Value) != want {
					t.Fatalf("got %s, want %s", r.Value, want)
				}
				next[string(r.Key)]++
			}
			if n := topicEnd(t, c.ListenAddrs(), topicMain); n != 500 {
				t.Errorf("topic holds %d records, want 500 (duplicates)", n)
			}
		})
	}
}

// TestRejectedRecordGoesToDeadLetter: the broker rejects the main topic's
// records for good (RECORD_TOO_LARGE, TOPIC_AUTHORIZATION_FAILED); the lines
// land in the dead-letter topic with the reason and the events are
// acknowledged.
func TestRejectedRecordGoesToDeadLetter(t *testing.T) {
	for _, code := range []*kerr.Error{kerr.MessageTooLarge, kerr.TopicAuthorizationFailed} {
		t.Run(code.Message, func(t *testing.T) {
			c := newCluster(t)
			cfg := testConfig(c.ListenAddrs())
			cfg.DeadLetterTopic = topicDLQ
			e := newEnv(t, c, cfg)
			mainID := topicID(t, c.ListenAddrs(), topicMain)
			c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				if producesTo(req, topicMain, mainID) {
					return produceError(req, topicMain, code.Code), nil, true
				}
				return nil, nil, false
			})
			b := e.batch(testSource, line{key: "k", value: `{"big":true}`, raw: "the raw line"})
			e.mustSend(b)
			e.mustDone(b)
			r := consume(t, c.ListenAddrs(), topicDLQ, 1)[0]
			if string(r.Value) != "the raw line" {
				t.Errorf("dead-letter value %q", r.Value)
			}
			reason, _ := header(r, HeaderReason)
			if !strings.Contains(reason, code.Message) || !strings.Contains(reason, topicMain) {
				t.Errorf("reason header %q does not name %s and the topic", reason, code.Message)
			}
			if src, _ := header(r, HeaderSourceTopic); src != topicMain {
				t.Errorf("source_topic header %q", src)
			}
			if off, _ := header(r, HeaderLogOffset); off != "0" {
				t.Errorf("log_offset header %q", off)
			}
			if got := metricValue(t, e.reg, "nginx_shipper_kafka_rejected_records_total",
				"reason", code.Message, "action", "dead_letter"); got != 1 {
				t.Errorf("rejected_records_total = %v, want 1", got)
			}
			if got := metricValue(t, e.reg, "nginx_shipper_kafka_produce_errors_total", "kind", code.Message); got != 1 {
				t.Errorf("produce_errors_total{kind=%s} = %v, want 1", code.Message, got)
			}
		})
	}
}

// TestTooLargeForTheClientIsDeadLettered: a value over batch_max_bytes is
// refused by franz-go itself; the raw line (short here) is dead-lettered.
func TestTooLargeForTheClientIsDeadLettered(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.DeadLetterTopic = topicDLQ
	cfg.BatchMaxBytes = 16 << 10
	e := newEnv(t, c, cfg)
	b := e.batch(testSource,
		line{value: `{"ok":1}`},
		line{value: `{"x":"` + strings.Repeat("x", 20<<10) + `"}`, raw: "short raw"},
	)
	e.mustSend(b)
	e.mustDone(b)
	r := consume(t, c.ListenAddrs(), topicDLQ, 1)[0]
	if string(r.Value) != "short raw" {
		t.Errorf("dead-letter value %q", r.Value)
	}
	if n := topicEnd(t, c.ListenAddrs(), topicMain); n != 1 {
		t.Errorf("main topic holds %d, want 1", n)
	}
}

// TestRejectedWithoutDeadLetterIsNotAcknowledged: with no dead-letter topic,
// or when the dead-letter topic rejects too, the event fails (so it is not
// checkpointed), and that is counted.
func TestRejectedWithoutDeadLetterIsNotAcknowledged(t *testing.T) {
	for _, dlq := range []string{"", topicDLQ} {
		t.Run("dlq="+dlq, func(t *testing.T) {
			c := newCluster(t)
			cfg := testConfig(c.ListenAddrs())
			cfg.DeadLetterTopic = dlq
			e := newEnv(t, c, cfg)
			c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				return produceError(req, "", kerr.TopicAuthorizationFailed.Code), nil, true
			})
			// Two events that fail and, without a dead-letter topic, an
			// invalid line that is only counted: the batch completes
			// once, with the failure (the failed events are Done one by
			// one, the counted one with the batch).
			lines := []line{{value: `{"a":1}`}, {value: `{"a":2}`}}
			if dlq == "" {
				lines = append(lines, line{raw: "bad", err: errors.New("no match")})
			}
			b := e.batch(testSource, lines...)
			e.mustSend(b)
			err := e.waitDone(20*time.Second, b)[0]
			if !errors.Is(err, ErrRejected) || !errors.Is(err, kerr.TopicAuthorizationFailed) {
				t.Fatalf("Done(%v), want ErrRejected wrapping TOPIC_AUTHORIZATION_FAILED", err)
			}
			if got := metricValue(t, e.reg, "nginx_shipper_kafka_rejected_records_total",
				"reason", "TOPIC_AUTHORIZATION_FAILED", "action", "failed"); got != 2 {
				t.Errorf("rejected_records_total{failed} = %v, want 2", got)
			}
			if sinks.SinkOf(err) != "kafka" {
				t.Errorf("Done(%v): the error does not name the sink", err)
			}
			wantAcked := int64(0)
			if dlq == "" {
				wantAcked = 1 // the counted invalid line
			}
			if acked, failed := e.s.Counts().Load(); acked != wantAcked || failed != 2 {
				t.Errorf("Counts() = %d acknowledged, %d failed; want %d and 2", acked, failed, wantAcked)
			}
		})
	}
}

// TestBackpressureAndCancel: with the brokers stalled and the budget full,
// Send blocks; cancelling its ctx returns an error with none of the batch
// taken. The held batch completes when the brokers answer again.
func TestBackpressureAndCancel(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.MaxBufferedRecords = 10
	e := newEnv(t, c, cfg)
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	first := e.batch(testSource, keyedLines("a", 10, 1)...)
	e.mustSend(first)

	second := e.batch(testSource, keyedLines("b", 5, 1)...)
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan error, 1)
	go func() { sent <- e.s.Send(ctx, second) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.s.budget.waiting() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Send never waited for the budget")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-sent:
		t.Fatalf("Send returned %v with the budget full", err)
	default:
	}
	cancel()
	if err := <-sent; !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %v, want context.Canceled", err)
	}
	close(release)
	e.mustDone(first)
	// The cancelled batch was not taken: its onDone never runs, and a new
	// Send of it works.
	if ok, _ := e.acks.result(second); ok {
		t.Fatal("the refused batch was acknowledged")
	}
	e.mustSend(second)
	e.mustDone(second)
	if n := topicEnd(t, c.ListenAddrs(), topicMain); n != 15 {
		t.Errorf("topic holds %d, want 15", n)
	}
}

// TestCloseFailsPending: Close with the brokers stalled gives up at its
// deadline and completes every pending event with ErrClosed.
func TestCloseFailsPending(t *testing.T) {
	c := newCluster(t)
	e := newEnv(t, c, testConfig(c.ListenAddrs()))
	release := make(chan struct{})
	defer close(release)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	b := e.batch(testSource, keyedLines("a", 20, 3)...)
	e.mustSend(b)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want DeadlineExceeded", err)
	}
	// Close returned: every event must be Done by now.
	ok, err := e.acks.result(b)
	if !ok || !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("after Close: done=%v err=%v, want ErrClosed", ok, err)
	}
	if err := e.s.Send(context.Background(), e.batch(testSource, line{value: "{}"})); !errors.Is(err, sinks.ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
}

func TestCloseFlushes(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.Linger = Duration{time.Second} // only Flush sends before a second passed
	e := newEnv(t, c, cfg)
	b := e.batch(testSource, keyedLines("a", 100, 3)...)
	e.mustSend(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ok, err := e.acks.result(b); !ok || err != nil {
		t.Fatalf("after Close: done=%v err=%v", ok, err)
	}
	if n := topicEnd(t, c.ListenAddrs(), topicMain); n != 100 {
		t.Errorf("topic holds %d, want 100", n)
	}
}

func TestCheck(t *testing.T) {
	c := newCluster(t)
	t.Run("ok", func(t *testing.T) {
		cfg := testConfig(c.ListenAddrs())
		cfg.DeadLetterTopic, cfg.RawTopic = topicDLQ, topicRaw
		e := newEnv(t, c, cfg)
		if err := e.s.Check(context.Background()); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
	t.Run("missing topic", func(t *testing.T) {
		cfg := testConfig(c.ListenAddrs())
		cfg.DeadLetterTopic = "no-such-topic"
		e := newEnv(t, c, cfg)
		err := e.s.Check(context.Background())
		if !errors.Is(err, ErrTopicNotFound) || !strings.Contains(err.Error(), `"no-such-topic"`) ||
			!strings.Contains(err.Error(), "sinks.kafka.dead_letter_topic") {
			t.Fatalf("Check = %v, want a topic-not-found error naming the topic and key", err)
		}
	})
	t.Run("unreachable broker", func(t *testing.T) {
		dead := deadAddr(t)
		cfg := testConfig([]string{dead, c.ListenAddrs()[0]})
		e := newEnv(t, c, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := e.s.Check(ctx)
		if !errors.Is(err, ErrBrokerUnreachable) || !strings.Contains(err.Error(), dead) ||
			!strings.Contains(err.Error(), "sinks.kafka.brokers[0]") {
			t.Fatalf("Check = %v, want an unreachable error naming %s", err, dead)
		}
		if strings.Contains(err.Error(), "brokers[1]") {
			t.Errorf("the reachable broker was reported: %v", err)
		}
	})
}

// TestClusterRestartLosesNothing stops the whole cluster mid-stream and
// starts it again on the same ports and data: every event is acknowledged
// and in the topic.
func TestClusterRestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 3)
	start := func() *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.Ports(ports...), kfake.DataDir(dir), kfake.SeedTopics(4, topicMain))
		if err != nil {
			t.Fatalf("kfake: %v", err)
		}
		return c
	}
	c := start()
	addrs := c.ListenAddrs()
	e := newEnv(t, c, testConfig(addrs))

	ls := keyedLines("k", 4000, 8)
	var bs []*sinks.Batch
	send := func(from, to int) {
		for i := from; i < to; i += 100 {
			b := e.batch(testSource, ls[i:i+100]...)
			e.mustSend(b)
			bs = append(bs, b)
		}
	}
	send(0, 1000)
	e.mustDone(bs...)
	send(1000, 2000) // some of these are in flight when the cluster stops
	c.Close()
	send(2000, 3000) // the cluster is down: buffered, not acknowledged
	// Stay down until the client has failed to reconnect many times.
	deadline := time.Now().Add(60 * time.Second)
	for metricValue(t, e.reg, "nginx_shipper_kafka_broker_connect_errors_total") < 12 {
		if time.Now().After(deadline) {
			t.Fatal("the client never retried connecting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, b := range bs[20:] {
		if ok, err := e.acks.result(b); ok && err != nil {
			t.Fatalf("a batch failed while the cluster was down: %v", err)
		}
	}
	c = start()
	defer c.Close()
	send(3000, 4000)
	e.mustDone(bs...)

	recs := consume(t, addrs, topicMain, 4000)
	seen := map[string]bool{}
	for _, r := range recs {
		seen[string(r.Value)] = true
	}
	for _, l := range ls {
		if !seen[l.value] {
			t.Fatalf("lost %s", l.value)
		}
	}
}

// TestBatchLargerThanTheBudget: a batch over max_buffered_records is taken
// once nothing else is held, not refused forever.
func TestBatchLargerThanTheBudget(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.MaxBufferedRecords = 10
	e := newEnv(t, c, cfg)
	var bs []*sinks.Batch
	for i := range 3 {
		b := e.batch(testSource, keyedLines(strconv.Itoa(i), 50, 3)...)
		e.mustSend(b)
		bs = append(bs, b)
	}
	e.mustDone(bs...)
	if n := topicEnd(t, c.ListenAddrs(), topicMain); n != 150 {
		t.Errorf("topic holds %d, want 150", n)
	}
}

// TestSendRacingClose: batches sent while Close runs are either refused
// (Send error, never acknowledged) or taken and acknowledged, exactly once,
// by the time Close returns.
func TestSendRacingClose(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.DeadLetterTopic = topicDLQ
	cfg.MaxBufferedRecords = 200
	e := newEnv(t, c, cfg)
	type sent struct {
		b   *sinks.Batch
		err error
	}
	results := make(chan sent, 10000)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ls := keyedLines(fmt.Sprintf("%d-%d", g, i), 20, 3)
				ls[5] = line{raw: "junk", err: errors.New("bad line")}
				b := e.batch(testSource, ls...)
				err := e.s.Send(context.Background(), b)
				results <- sent{b, err}
				if err != nil {
					return
				}
			}
		}()
	}
	waitMetricAtLeast(t, e.reg, 500, "nginx_shipper_kafka_records_produced_total")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(stop)
	wg.Wait()
	close(results)
	var taken, refused int
	for r := range results {
		ok, _ := e.acks.result(r.b)
		switch {
		case r.err == nil && !ok:
			t.Fatal("a taken batch was not acknowledged when Close returned")
		case r.err != nil && ok:
			t.Fatal("a refused batch was acknowledged")
		case r.err != nil:
			if !errors.Is(r.err, sinks.ErrClosed) {
				t.Fatalf("Send = %v, want ErrClosed", r.err)
			}
			refused++
		default:
			taken++
		}
	}
	if taken == 0 || refused == 0 {
		t.Logf("taken %d, refused %d", taken, refused)
	}
}

// TestManyRejectedRecordsAllDeadLettered: a main topic that refuses
// everything sends every line, once, to the dead-letter topic.
func TestManyRejectedRecordsAllDeadLettered(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.DeadLetterTopic = topicDLQ
	e := newEnv(t, c, cfg)
	mainID := topicID(t, c.ListenAddrs(), topicMain)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if producesTo(req, topicMain, mainID) {
			return produceError(req, topicMain, kerr.TopicAuthorizationFailed.Code), nil, true
		}
		return nil, nil, false
	})
	var bs []*sinks.Batch
	ls := keyedLines("k", 600, 7)
	for i := 0; i < len(ls); i += 100 {
		b := e.batch(testSource, ls[i:i+100]...)
		e.mustSend(b)
		bs = append(bs, b)
	}
	e.mustDone(bs...)
	recs := consume(t, c.ListenAddrs(), topicDLQ, 600)
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Value)]++
	}
	for _, l := range ls {
		if seen[l.value] != 1 {
			t.Fatalf("%s dead-lettered %d times", l.value, seen[l.value])
		}
	}
	if n := topicEnd(t, c.ListenAddrs(), topicDLQ); n != 600 {
		t.Errorf("dead-letter topic holds %d, want 600", n)
	}
}

func TestCompressionCodecs(t *testing.T) {
	c := newCluster(t)
	for codecName, want := range map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4} {
		t.Run(codecName, func(t *testing.T) {
			cfg := testConfig(c.ListenAddrs())
			cfg.Topic = "codec-" + codecName
			cfg.Compression = codecName
			e := newEnv(t, c, cfg)
			if err := createTopic(t, c.ListenAddrs(), cfg.Topic); err != nil {
				t.Fatal(err)
			}
			b := e.batch(testSource, keyedLines("k", 50, 1)...) // one key: one partition, one batch
			e.mustSend(b)
			e.mustDone(b)
			for _, r := range consume(t, c.ListenAddrs(), cfg.Topic, 50) {
				if got := r.Attrs.CompressionType(); got != want {
					t.Fatalf("compression type %d, want %d", got, want)
				}
			}
		})
	}
}

func TestLongDeadLetterLineIsTruncated(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.DeadLetterTopic = topicDLQ
	cfg.BatchMaxBytes = 16 << 10
	e := newEnv(t, c, cfg)
	long := strings.Repeat("y", 20<<10)
	b := e.batch(testSource, line{raw: long, err: errors.New("too long")})
	e.mustSend(b)
	e.mustDone(b)
	r := consume(t, c.ListenAddrs(), topicDLQ, 1)[0]
	if len(r.Value) != e.s.dlqMax || !strings.HasPrefix(long, string(r.Value)) {
		t.Errorf("dead-letter value of %d bytes, want the first %d", len(r.Value), e.s.dlqMax)
	}
	if tr, _ := header(r, HeaderTruncated); tr != "true" {
		t.Errorf("truncated header %q", tr)
	}
}
