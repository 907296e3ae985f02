package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
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
