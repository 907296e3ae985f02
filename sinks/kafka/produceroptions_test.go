package kafka

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProducerOptionsProduceAsTheSink: a bare franz-go client with
// ProducerOptions, given the records the sink produced, puts each on the
// partition the sink chose (same partitioner, same keys) and they read back
// identical: what cmd/bench's fair ceiling relies on.
func TestProducerOptionsProduceAsTheSink(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.Compression = "lz4"
	e := newEnv(t, c, cfg)
	var lines []line
	for i := range 200 {
		lines = append(lines, line{key: fmt.Sprintf("10.0.%d.%d", i%7, i), value: fmt.Sprintf(`{"n":%d}`, i)})
	}
	b := e.batch(testSource, lines...)
	e.mustSend(b)
	e.mustDone(b)
	sent := consume(t, c.ListenAddrs(), topicMain, len(lines))

	c2 := newCluster(t)
	cfg2 := cfg
	cfg2.Brokers = c2.ListenAddrs()
	opts, err := ProducerOptions(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, r := range sent {
		cp := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
		if err := cl.ProduceSync(ctx, cp).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	again := consume(t, c2.ListenAddrs(), topicMain, len(sent))
	byKey := map[string]*kgo.Record{}
	for _, r := range sent {
		byKey[string(r.Key)] = r
	}
	for _, r := range again {
		o := byKey[string(r.Key)]
		if o == nil {
			t.Fatalf("record with key %q was not sent by the sink", r.Key)
		}
		if r.Partition != o.Partition || !bytes.Equal(r.Value, o.Value) || len(r.Headers) != len(o.Headers) || !r.Timestamp.Equal(o.Timestamp) {
			t.Errorf("key %q: bare producer gave partition %d value %s %d headers at %s; the sink %d %s %d at %s",
				r.Key, r.Partition, r.Value, len(r.Headers), r.Timestamp, o.Partition, o.Value, len(o.Headers), o.Timestamp)
		}
		for i := range min(len(r.Headers), len(o.Headers)) {
			if r.Headers[i].Key != o.Headers[i].Key || !bytes.Equal(r.Headers[i].Value, o.Headers[i].Value) {
				t.Errorf("key %q: header %d is %s=%s, the sink's %s=%s", r.Key, i, r.Headers[i].Key, r.Headers[i].Value, o.Headers[i].Key, o.Headers[i].Value)
			}
		}
	}
}

func TestProducerOptionsValidates(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:1"})
	cfg.Compression = "brotli"
	if _, err := ProducerOptions(cfg); err == nil || !strings.Contains(err.Error(), "compression") {
		t.Errorf("ProducerOptions with compression brotli: %v, want an error naming compression", err)
	}
}
