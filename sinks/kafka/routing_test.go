package kafka

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// An input's topic (Source.Topic) overrides sinks.kafka.topic for its
// events; lines that did not parse still go to the shared dead-letter topic.
func TestInputTopicRoutesEvents(t *testing.T) {
	const topicErr = "nginx-error"
	c := newCluster(t, kfake.SeedTopics(2, topicErr))
	cfg := testConfig(c.ListenAddrs())
	cfg.DeadLetterTopic = topicDLQ
	e := newEnv(t, c, cfg)
	errSrc := &sinks.Source{Path: "/var/log/nginx/error.log", Input: 1, Format: "error", Topic: topicErr}
	b1 := e.batch(errSrc,
		line{key: "192.0.2.1", value: `{"level":"error","n":1}`},
		line{raw: "  thrown in /x.php", err: errors.New("not an error.log line")},
		line{key: "192.0.2.2", value: `{"level":"warn","n":2}`})
	b2 := e.batch(testSource, line{key: "192.0.2.3", value: `{"status":200}`})
	e.mustSend(b1)
	e.mustSend(b2)
	e.mustDone(b1, b2)

	got := consume(t, c.ListenAddrs(), topicErr, 2)
	vals := map[string]bool{}
	for _, r := range got {
		vals[string(r.Value)] = true
	}
	if len(got) != 2 || !vals[`{"level":"error","n":1}`] || !vals[`{"level":"warn","n":2}`] {
		t.Fatalf("%s: %d records %v", topicErr, len(got), vals)
	}
	if main := consume(t, c.ListenAddrs(), topicMain, 1); string(main[0].Value) != `{"status":200}` {
		t.Fatalf("%s: %s", topicMain, main[0].Value)
	}
	if n := topicEnd(t, c.ListenAddrs(), topicMain); n != 1 {
		t.Errorf("%s holds %d records, want only the access event", topicMain, n)
	}
	if dl := consume(t, c.ListenAddrs(), topicDLQ, 1); !strings.Contains(string(dl[0].Value), "thrown in /x.php") {
		t.Fatalf("dead-letter: %s", dl[0].Value)
	}
}
