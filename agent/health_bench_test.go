package agent

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkObserveAck is the acknowledgement-side cost of the latency
// histograms for a full batch (2048 events): per batch, not per line read.
func BenchmarkObserveAck(b *testing.B) {
	m := newMetrics(nil, func() float64 { return 0 })
	fl := newFlight()
	now := time.Now()
	for range batchMaxEvents {
		fl.b.Add().Time = now.Add(-time.Second)
	}
	fl.readAt = now.Add(-time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m.observeAck(fl, now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/batchMaxEvents, "ns/event")
}

// TestRunHistogram: observations with counts land in the buckets, count and
// sum that client_golang's histogram would give one by one.
func TestRunHistogram(t *testing.T) {
	h := newRunHistogram("x_seconds", "x", []float64{1, 2, 4})
	h.observeN(0.5, 3)
	h.observeN(2, 2) // on a bound: in the bucket le=2
	h.observeN(10, 1)
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	hm := mfs[0].Metric[0].Histogram
	if hm.GetSampleCount() != 6 || hm.GetSampleSum() != 0.5*3+2*2+10 {
		t.Fatalf("count %d sum %v, want 6 and 15.5", hm.GetSampleCount(), hm.GetSampleSum())
	}
	want := map[float64]uint64{1: 3, 2: 5, 4: 5}
	for _, b := range hm.Bucket {
		if want[b.GetUpperBound()] != b.GetCumulativeCount() {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want[b.GetUpperBound()])
		}
	}
}
