package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Readiness errors, wrapped by Ready, for callers that branch on them.
var (
	// ErrNoBroker: no connection is open and the last attempt to open one
	// failed (wrong brokers, all down, TLS or SASL refused).
	ErrNoBroker = errors.New("no broker answers")
	// ErrProduceFailing: the last produce request failed on the wire.
	ErrProduceFailing = errors.New("produce requests are failing")
	// ErrMetadataFailing: the last metadata request (or probe) failed.
	ErrMetadataFailing = errors.New("metadata requests are failing")
	// ErrStalled: records wait longer than the stall bound with no batch
	// acknowledged (e.g. NOT_ENOUGH_REPLICAS retried for ever).
	ErrStalled = errors.New("records wait with no acknowledgement")
)

// health is what Ready reads: fed by the franz-go hooks (connections,
// metadata and produce requests), the budget (when a batch last completed)
// and a probe that asks the cluster for metadata while the sink is idle, so
// wrong brokers show before the first line is sent. Every field is updated
// without locks; Ready reads them.
type health struct {
	mu             sync.Mutex
	brokers        map[int32]bool // node id (seeds: franz-go's negative ids) -> the last dial or request to it failed
	dialErr        atomic.Pointer[string]
	metaFailing    atomic.Bool // the last metadata request or probe failed
	metaErr        atomic.Pointer[string]
	produceFailing atomic.Bool // the last produce request failed on the wire
}

// setBroker notes whether the last dial of, or request to, a broker failed.
func (h *health) setBroker(node int32, addr string, err error) {
	if err != nil {
		msg := addr + ": " + err.Error()
		h.dialErr.Store(&msg)
	}
	h.mu.Lock()
	if h.brokers == nil {
		h.brokers = map[int32]bool{}
	}
	h.brokers[node] = err != nil
	h.mu.Unlock()
}

// noBroker reports whether every broker the client tried failed at its
// last dial or request.
func (h *health) noBroker() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, failing := range h.brokers {
		if !failing {
			return false
		}
	}
	return len(h.brokers) > 0
}

func (h *health) setMeta(err error) {
	if err == nil {
		h.metaFailing.Store(false)
		return
	}
	msg := err.Error()
	h.metaErr.Store(&msg)
	h.metaFailing.Store(true)
}

func load(p *atomic.Pointer[string]) string {
	if s := p.Load(); s != nil {
		return *s
	}
	return "?"
}

// stallBound is how long records may wait with no batch acknowledged before
// the sink is not ready: twice request_timeout, at most 30s.
func (s *Sink) stallBound() time.Duration {
	return min(2*s.cfg.RequestTimeout.Duration, 30*time.Second)
}

// Ready reports why the sink is not ready (/readyz, nginx_shipper_sink_up),
// nil when it is. Not ready: no broker of the seed list (nor any broker the
// cluster advertised) can be connected to; metadata or produce requests
// fail; or records have waited longer than min(2 × request_timeout, 30s)
// with no batch acknowledged. Each wraps its sentinel (ErrNoBroker,
// ErrMetadataFailing, ErrProduceFailing, ErrStalled). Records are retried
// all the while; Ready turns nil again as soon as the cluster answers.
// Safe for concurrent use; it does not block.
func (s *Sink) Ready() error {
	h := &s.h
	if h.noBroker() {
		return fmt.Errorf("%w: %s (retrying)", ErrNoBroker, load(&h.dialErr))
	}
	if h.metaFailing.Load() {
		return fmt.Errorf("%w: %s (retrying)", ErrMetadataFailing, load(&h.metaErr))
	}
	if h.produceFailing.Load() {
		return fmt.Errorf("%w: a broker did not take or answer a produce request (retrying)", ErrProduceFailing)
	}
	if n, since := s.budget.waitingSince(); n > 0 {
		if d := time.Since(since); d > s.stallBound() {
			return fmt.Errorf("%w for %s (%d batches, %d records buffered; bound %s): the brokers do not acknowledge (e.g. NOT_ENOUGH_REPLICAS, leaderless partitions, missing topic)",
				ErrStalled, d.Round(time.Second), n, s.cl.BufferedProduceRecords(), s.stallBound())
		}
	}
	return s.RegistryReady()
}

// probeInterval is how often the idle sink asks the cluster for metadata.
const probeInterval = 2 * time.Second

// probe pings the cluster (a metadata request) every probeInterval while no
// batch is held, until stop is closed: without traffic nothing would
// connect, and wrong brokers would look ready. While batches are held the
// produce path itself tells (connection, produce and metadata hooks).
func (s *Sink) probe(stop <-chan struct{}) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	go func() { <-stop; cancelBase() }()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if n, _ := s.budget.waitingSince(); n > 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(base, s.cfg.DialTimeout.Duration+s.cfg.RequestTimeout.Duration)
		err := s.cl.Ping(ctx)
		cancel()
		select {
		case <-stop:
			return
		default:
		}
		if err != nil {
			s.h.setMeta(fmt.Errorf("probe: %w", err))
		} else {
			s.h.setMeta(nil)
		}
	}
}
