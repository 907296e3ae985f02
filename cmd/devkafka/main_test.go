package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestOptionsRejectsBadFlags(t *testing.T) {
	_, err := options("0.0.0.0:1,127.0.0.1:x", "a:0,:3")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"127.0.0.1 only", "bad port", "positive integer", "empty topic name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// The cluster devkafka starts takes what the agent sends: an idempotent
// producer with acks=all (franz-go's defaults), into a seeded topic.
func TestSeededClusterTakesIdempotentAcksAll(t *testing.T) {
	opts, err := options("127.0.0.1:0,127.0.0.1:0", "logs:3,dlq")
	if err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := len(c.ListenAddrs()); n != 2 {
		t.Fatalf("%d brokers, want 2", n)
	}
	if n := len(c.PartitionInfos("logs")); n != 3 {
		t.Fatalf("topic logs has %d partitions, want 3", n)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 100; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "logs", Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	var n int64
	for _, p := range c.PartitionInfos("logs") {
		n += p.HighWatermark
	}
	if n != 100 {
		t.Errorf("topic has %d records, want 100", n)
	}
}
