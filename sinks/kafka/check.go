package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors Check wraps, for callers that branch on them.
var (
	ErrBrokerUnreachable = errors.New("broker unreachable")
	ErrTopicNotFound     = errors.New("topic does not exist")
)

// Check connects to every configured broker (with TLS and SASL as
// configured) and to every broker the cluster advertises, and checks that
// topic, dead_letter_topic and raw_topic exist and may be described. It
// returns every problem found, joined, each naming the broker or topic and
// wrapping ErrBrokerUnreachable or ErrTopicNotFound where they apply. It
// does not create topics. Without a deadline on ctx it gives up after twice
// dial_timeout plus five seconds.
//
// It is for `validate --connect` and start-up; it is safe to call at any
// time, concurrently with Send.
func (s *Sink) Check(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*s.cfg.DialTimeout.Duration+5*time.Second)
		defer cancel()
	}
	var errs []error
	reachable := 0
	for i, b := range s.cl.SeedBrokers() {
		addr := "?"
		if i < len(s.cfg.Brokers) {
			addr = s.cfg.Brokers[i]
		}
		if _, err := b.Request(ctx, kmsg.NewPtrApiVersionsRequest()); err != nil {
			errs = append(errs, fmt.Errorf("sinks.kafka.brokers[%d]: %w: %s: %w", i, ErrBrokerUnreachable, addr, err))
			continue
		}
		reachable++
	}
	if reachable == 0 {
		return errors.Join(errs...)
	}

	topics := []struct{ key, name string }{{"topic", s.cfg.Topic}}
	if s.cfg.DeadLetterTopic != "" {
		topics = append(topics, struct{ key, name string }{"dead_letter_topic", s.cfg.DeadLetterTopic})
	}
	if s.cfg.RawTopic != "" {
		topics = append(topics, struct{ key, name string }{"raw_topic", s.cfg.RawTopic})
	}
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t.name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		errs = append(errs, fmt.Errorf("sinks.kafka.brokers: reading the cluster metadata from %s: %w",
			strings.Join(s.cfg.Brokers, ","), err))
		return errors.Join(errs...)
	}
	for _, t := range topics {
		found := false
		for _, rt := range resp.Topics {
			if rt.Topic == nil || *rt.Topic != t.name {
				continue
			}
			found = true
			switch err := kerr.ErrorForCode(rt.ErrorCode); {
			case errors.Is(err, kerr.UnknownTopicOrPartition):
				errs = append(errs, fmt.Errorf("sinks.kafka.%s: %w: %q on the cluster at %s",
					t.key, ErrTopicNotFound, t.name, strings.Join(s.cfg.Brokers, ",")))
			case err != nil:
				errs = append(errs, fmt.Errorf("sinks.kafka.%s: topic %q on the cluster at %s: %w",
					t.key, t.name, strings.Join(s.cfg.Brokers, ","), err))
			case len(rt.Partitions) == 0:
				errs = append(errs, fmt.Errorf("sinks.kafka.%s: topic %q has no partitions", t.key, t.name))
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("sinks.kafka.%s: %w: %q is not in the cluster's metadata answer",
				t.key, ErrTopicNotFound, t.name))
		}
	}
	// The addresses the brokers advertise are what producing uses: a
	// cluster reachable through its seeds but advertising unreachable
	// addresses (advertised.listeners) would never take a record.
	for _, b := range resp.Brokers {
		addr := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		if _, err := s.cl.Broker(int(b.NodeID)).Request(ctx, kmsg.NewPtrApiVersionsRequest()); err != nil {
			errs = append(errs, fmt.Errorf("sinks.kafka.brokers: %w: broker %d at %s (as the cluster advertises it): %w",
				ErrBrokerUnreachable, b.NodeID, addr, err))
		}
	}
	return errors.Join(errs...)
}
