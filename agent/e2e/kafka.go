package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka is an in-process kfake cluster on 127.0.0.1; the agent process
// connects to it over loopback.
type Kafka struct {
	Cluster *kfake.Cluster
	Brokers []string
}

// StartKafka starts a one-broker kfake cluster with the topics seeded (3
// partitions each). Close is registered with t.Cleanup.
func StartKafka(t testing.TB, topics ...string) *Kafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(3, topics...))
	if err != nil {
		t.Fatalf("e2e: kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Kafka{Cluster: c, Brokers: c.ListenAddrs()}
}

// Consumer reads one topic from the beginning, in the background, and keeps
// every record value.
type Consumer struct {
	t      testing.TB
	cl     *kgo.Client
	topic  string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	values  [][]byte
	offsets map[int32]int64 // next offset to read, per partition
	err     error
}

// Consume starts a Consumer of topic. Its client is closed by t.Cleanup.
func (k *Kafka) Consume(t testing.TB, topic string) *Consumer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatalf("e2e: kafka consumer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{t: t, cl: cl, topic: topic, cancel: cancel, done: make(chan struct{}), offsets: map[int32]int64{}}
	go c.run(ctx)
	t.Cleanup(func() { cancel(); <-c.done; cl.Close() })
	return c
}

func (c *Consumer) run(ctx context.Context) {
	defer close(c.done)
	for ctx.Err() == nil {
		fs := c.cl.PollFetches(ctx)
		c.mu.Lock()
		fs.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil && c.err == nil {
				c.err = fmt.Errorf("fetch %s/%d: %w", topic, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			c.values = append(c.values, r.Value)
			c.offsets[r.Partition] = r.Offset + 1
		})
		c.mu.Unlock()
	}
}

// Events decodes every value read so far. A value that is not a JSON
// object fails the test.
func (c *Consumer) Events() []Event {
	c.t.Helper()
	c.mu.Lock()
	vals := c.values
	err := c.err
	c.mu.Unlock()
	if err != nil {
		c.t.Errorf("e2e: kafka consumer: %v", err)
	}
	out := make([]Event, 0, len(vals))
	for _, v := range vals {
		e, err := DecodeEvent(v)
		if err != nil {
			c.t.Errorf("e2e: kafka record of %s: %v", c.topic, err)
			continue
		}
		out = append(out, e)
	}
	return out
}

// Values returns the record values read so far, raw.
func (c *Consumer) Values() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.values...)
}

// Len is how many records were read so far.
func (c *Consumer) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.values)
}

// WaitEnd waits until the consumer has read every record the topic holds
// now (its end offsets), so that a final count includes everything
// produced before the call.
func (c *Consumer) WaitEnd(timeout time.Duration) {
	c.t.Helper()
	end, err := EndOffsets(context.Background(), c.cl, c.topic)
	if err != nil {
		c.t.Fatalf("e2e: %v", err)
	}
	WaitFor(c.t, timeout, "the consumer to reach the end of "+c.topic, func() (bool, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		var behind []string
		for p, e := range end {
			if c.offsets[p] < e {
				behind = append(behind, fmt.Sprintf("partition %d at %d of %d", p, c.offsets[p], e))
			}
		}
		return len(behind) == 0, strings.Join(behind, ", ")
	})
}

// EndOffsets returns the high watermark of every partition of topic.
func EndOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, t := range mresp.Topics {
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p.Partition
			rp.Timestamp = -1 // latest
			rt.Partitions = append(rt.Partitions, rp)
		}
	}
	if len(rt.Partitions) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", topic)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return nil, fmt.Errorf("list offsets of %s/%d: error code %d", topic, p.Partition, p.ErrorCode)
			}
			out[p.Partition] = p.Offset
		}
	}
	return out, nil
}
