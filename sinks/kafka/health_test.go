package kafka

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

// waitReady waits until Ready's error matches want (nil: ready; else
// errors.Is) and returns how long that took.
func waitReady(t *testing.T, s *Sink, want error, what string) time.Duration {
	t.Helper()
	start := time.Now()
	e2e.WaitFor(t, 30*time.Second, what, func() (bool, string) {
		err := s.Ready()
		if want == nil {
			return err == nil, "Ready() = " + errString(err)
		}
		return errors.Is(err, want), "Ready() = " + errString(err)
	})
	return time.Since(start)
}

// waitNotReady waits until Ready returns any error.
func waitNotReady(t *testing.T, s *Sink) time.Duration {
	t.Helper()
	start := time.Now()
	e2e.WaitFor(t, 30*time.Second, "not ready", func() (bool, string) { return s.Ready() != nil, "ready" })
	return time.Since(start).Round(time.Millisecond)
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestReadyWrongBrokers: brokers that do not answer make the sink not ready
// (ErrNoBroker) within seconds, with nothing sent (the idle probe) and with
// a batch waiting; nginx_shipper_sink_up's source, Ready, names the broker.
func TestReadyWrongBrokers(t *testing.T) {
	dead := deadAddr(t)
	cfg := testConfig([]string{dead})
	cfg.DialTimeout = Duration{time.Second}
	e := newEnv(t, nil, cfg)
	took := waitReady(t, e.s, ErrNoBroker, "not ready with no broker, idle")
	t.Logf("idle, wrong brokers: not ready after %v", took)
	if err := e.s.Ready(); err == nil || !contains(err.Error(), dead) {
		t.Errorf("Ready() = %v, want it to name %s", err, dead)
	}
	b := e.batch(testSource, keyedLines("k", 10, 2)...)
	e.mustSend(b)
	if err := e.s.Ready(); !errors.Is(err, ErrNoBroker) {
		t.Errorf("with a batch waiting: Ready() = %v, want ErrNoBroker", err)
	}
	if ok, _ := e.acks.result(b); ok {
		t.Error("a batch to a broker that does not exist was acknowledged")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = e.s.Close(ctx) // fails the batch; read again after a restart
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestReadyFollowsTheCluster: the cluster stops with batches in flight and
// starts again on the same ports: Ready turns to ErrNoBroker and back to nil
// by itself, in both directions within seconds; nothing is lost.
func TestReadyFollowsTheCluster(t *testing.T) {
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
	cfg := testConfig(addrs)
	cfg.DialTimeout = Duration{time.Second}
	e := newEnv(t, c, cfg)
	first := e.batch(testSource, keyedLines("a", 100, 4)...)
	e.mustSend(first)
	e.mustDone(first)
	waitReady(t, e.s, nil, "ready with the cluster up")

	c.Close()
	b := e.batch(testSource, keyedLines("b", 100, 4)...)
	e.mustSend(b)
	t.Logf("brokers stopped: not ready after %v: %v", waitNotReady(t, e.s), e.s.Ready())
	if err := e.s.Ready(); !errors.Is(err, ErrProduceFailing) && !errors.Is(err, ErrNoBroker) {
		t.Errorf("cluster down: Ready() = %v, want ErrProduceFailing or ErrNoBroker", err)
	}
	if ok, err := e.acks.result(b); ok {
		t.Fatalf("a batch completed while the cluster was down: %v", err)
	}

	c = start()
	defer c.Close()
	up := time.Now()
	waitReady(t, e.s, nil, "ready again with the cluster back")
	t.Logf("brokers back: ready after %v", time.Since(up).Round(time.Millisecond))
	e.mustDone(b)
}

// TestReadyStallsOnRetriableErrors: every produce answered
// NOT_ENOUGH_REPLICAS (retriable: franz-go retries for ever) keeps records
// waiting with connections and metadata fine; past the stall bound (2 ×
// request_timeout here) Ready says ErrStalled, and once the brokers take
// the records again it is ready and the batch is acknowledged.
func TestReadyStallsOnRetriableErrors(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.RequestTimeout = Duration{200 * time.Millisecond}
	e := newEnv(t, c, cfg, kgo.RequestTimeoutOverhead(500*time.Millisecond), kgo.MetadataMinAge(50*time.Millisecond))
	warm := e.batch(testSource, keyedLines("w", 10, 2)...)
	e.mustSend(warm)
	e.mustDone(warm)

	var fail atomic.Bool
	fail.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if fail.Load() {
			return produceError(req, "", kerr.NotEnoughReplicas.Code), nil, true
		}
		return nil, nil, false
	})
	b := e.batch(testSource, keyedLines("k", 50, 5)...)
	sent := time.Now()
	e.mustSend(b)
	waitReady(t, e.s, ErrStalled, "not ready while NOT_ENOUGH_REPLICAS keeps records waiting")
	if d := time.Since(sent); d < e.s.stallBound() {
		t.Errorf("stalled after %v, before the bound %v", d, e.s.stallBound())
	}
	t.Logf("NOT_ENOUGH_REPLICAS: not ready after %v: %v", time.Since(sent).Round(time.Millisecond), e.s.Ready())
	if ok, _ := e.acks.result(b); ok {
		t.Fatal("the batch completed while every produce was refused")
	}
	fail.Store(false)
	e.mustDone(b)
	waitReady(t, e.s, nil, "ready once the records are acknowledged")
}
