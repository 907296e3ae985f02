package kafka

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const topicEnriched = "nginx-access-enriched"

// TestEnrichedTopicGetsTheEnrichedEvent: with enriched_topic, topic keeps
// the original event and enriched_topic gets the enriched one, both keyed
// alike; the batch completes once both were acknowledged.
func TestEnrichedTopicGetsTheEnrichedEvent(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(4, topicEnriched))
	cfg := testConfig(c.ListenAddrs())
	cfg.EnrichedTopic = topicEnriched
	cfg.RawTopic = topicRaw // three records per line
	e := newEnv(t, c, cfg)
	b := e.batch(testSource, line{key: "10.0.0.1", value: `{"status":200}`, raw: `raw line`}, line{key: "10.0.0.2", value: `{"status":404}`})
	b.Events[0].Enriched = []byte(`{"status":200,"client_ip":"81.2.69.142"}`)
	b.Events[1].Enriched = []byte(`{"status":404,"client_ip":"10.0.0.2"}`)
	e.mustSend(b)
	e.mustDone(b)
	got := map[string]string{}
	for _, r := range consume(t, c.ListenAddrs(), topicEnriched, 2) {
		got[string(r.Key)] = string(r.Value)
	}
	if got["10.0.0.1"] != `{"status":200,"client_ip":"81.2.69.142"}` || got["10.0.0.2"] != `{"status":404,"client_ip":"10.0.0.2"}` {
		t.Errorf("enriched topic: %v", got)
	}
	got = map[string]string{}
	for _, r := range consume(t, c.ListenAddrs(), topicMain, 2) {
		got[string(r.Key)] = string(r.Value)
	}
	if got["10.0.0.1"] != `{"status":200}` || got["10.0.0.2"] != `{"status":404}` {
		t.Errorf("main topic (originals): %v", got)
	}
	if raw := consume(t, c.ListenAddrs(), topicRaw, 2); len(raw) != 2 {
		t.Errorf("raw topic: %d records", len(raw))
	}
}

// TestEnrichedWithoutEnrichedTopic: [enrich] on and no enriched_topic: the
// single topic carries the enriched events.
func TestEnrichedWithoutEnrichedTopic(t *testing.T) {
	c := newCluster(t)
	e := newEnv(t, c, testConfig(c.ListenAddrs()))
	b := e.batch(testSource, line{key: "k", value: `{"status":200}`})
	b.Events[0].Enriched = []byte(`{"status":200,"ua":{"bot":true}}`)
	e.mustSend(b)
	e.mustDone(b)
	if r := consume(t, c.ListenAddrs(), topicMain, 1)[0]; string(r.Value) != `{"status":200,"ua":{"bot":true}}` {
		t.Errorf("main topic: %q", r.Value)
	}
}

// produceRefusing answers a produce request with code for topic's
// partitions (by name, or by id) and, when the request also carries other
// topics' records, with a retriable NOT_LEADER_FOR_PARTITION for those
// (kfake cannot store part of a request): they come back in a request of
// their own and land.
func produceRefusing(req kmsg.Request, topic string, id [16]byte, code int16) *kmsg.ProduceResponse {
	resp := produceError(req, "", kerr.NotLeaderForPartition.Code)
	for i, rt := range req.(*kmsg.ProduceRequest).Topics {
		if rt.Topic == topic || rt.TopicID == id {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
	}
	return resp
}

// TestEnrichedTopicHoldsTheAck: an event is acknowledged only when both
// of its records are. While the broker refuses enriched_topic's records
// (retriable NOT_LEADER_FOR_PARTITION, retried again and again), the
// batch is not acknowledged; once enriched_topic takes records again, it
// is, with each record once in each topic. A permanent refusal
// (TOPIC_AUTHORIZATION_FAILED, no dead-letter topic) fails the events
// although their originals landed in topic: the agent does not checkpoint
// them.
func TestEnrichedTopicHoldsTheAck(t *testing.T) {
	for _, permanent := range []bool{false, true} {
		t.Run(fmt.Sprintf("permanent=%v", permanent), func(t *testing.T) {
			c := newCluster(t, kfake.SeedTopics(4, topicEnriched))
			cfg := testConfig(c.ListenAddrs())
			cfg.EnrichedTopic = topicEnriched
			e := newEnv(t, c, cfg, kgo.MetadataMinAge(50*time.Millisecond))
			id := topicID(t, c.ListenAddrs(), topicEnriched)
			code := kerr.NotLeaderForPartition.Code
			if permanent {
				code = kerr.TopicAuthorizationFailed.Code
			}
			var refused atomic.Int32
			var lifted atomic.Bool
			c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				if lifted.Load() || !producesTo(req, topicEnriched, id) {
					return nil, nil, false
				}
				refused.Add(1)
				return produceRefusing(req, topicEnriched, id, code), nil, true
			})
			ls := keyedLines("k", 20, 4)
			b := e.batch(testSource, ls...)
			for i := range b.Events {
				b.Events[i].Enriched = fmt.Appendf(nil, `{"seq":%d,"client_ip":"81.2.69.142"}`, i)
			}
			e.mustSend(b)
			if permanent {
				// The originals land (a request of their own once the
				// enriched records failed for good), the events fail.
				if got := consume(t, c.ListenAddrs(), topicMain, len(ls)); len(got) != len(ls) {
					t.Fatalf("%d originals in topic, want %d", len(got), len(ls))
				}
				err := e.waitDone(20*time.Second, b)[0]
				if !errors.Is(err, ErrRejected) || !errors.Is(err, kerr.TopicAuthorizationFailed) {
					t.Fatalf("Done(%v), want ErrRejected wrapping TOPIC_AUTHORIZATION_FAILED", err)
				}
				if acked, failed := e.s.Counts().Load(); acked != 0 || int(failed) != len(ls) {
					t.Errorf("Counts() = %d acknowledged, %d failed; want 0 and %d", acked, failed, len(ls))
				}
				return
			}
			// ... and, retried, the enriched records are refused again
			// and again, and the batch waits for them.
			e2eWait(t, 20*time.Second, "the enriched records retried", func() bool { return refused.Load() >= 3 })
			if ok, _ := e.acks.result(b); ok {
				t.Fatal("batch acknowledged while enriched_topic refused its records")
			}
			lifted.Store(true)
			e.mustDone(b)
			if n := topicEnd(t, c.ListenAddrs(), topicEnriched); n != int64(len(ls)) {
				t.Errorf("enriched_topic holds %d records, want %d", n, len(ls))
			}
			if n := topicEnd(t, c.ListenAddrs(), topicMain); n != int64(len(ls)) {
				t.Errorf("topic holds %d records, want %d (duplicates)", n, len(ls))
			}
		})
	}
}

// e2eWait polls cond until it holds or timeout passes.
func e2eWait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
