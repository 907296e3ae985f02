package s3

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// An input's s3_prefix (Source.S3Prefix) overrides the sink's prefix for its
// events; an input without one uses the sink's; dead-letter lines keep the
// shared dead_letter_prefix; no object mixes two prefixes.
func TestInputPrefixRoutesEvents(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.Prefix = "nginx/access/dt=%Y-%m-%d/"
	cfg.DeadLetterPrefix = "nginx/invalid/"
	h := newHarness(t, cfg, srv.Client())
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	var access, errs []ev
	for i := range 500 {
		access = append(access, ev{value: fmt.Sprintf(`{"input":"access","i":%d}`, i), t: t0})
		errs = append(errs, ev{value: fmt.Sprintf(`{"input":"error","i":%d}`, i), t: t0})
	}
	errs[7] = ev{err: errors.New("no date"), raw: "not an error line", t: t0}
	var a acks
	// Two inputs alternate batches, so the sink holds both at once.
	acc := &sinks.Source{Path: "/var/log/nginx/access.log", Input: 0}
	el := &sinks.Source{Path: "/var/log/nginx/error.log", Input: 1, S3Prefix: "nginx/error/{hostname}/dt=%Y-%m-%d/"}
	for i := 0; i < 500; i += 50 {
		sendAll(t, h.s, acc, access[i:i+50], 50, &a)
		sendAll(t, h.s, el, errs[i:i+50], 50, &a)
	}
	waitFor(t, 10*time.Second, "all events acknowledged", func() bool { return a.count() == 1000 })
	if err := h.s.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := lakeLines(t, srv, "nginx/")
	n := map[string]int{}
	for key, lines := range got {
		var want string
		switch {
		case strings.HasPrefix(key, "nginx/access/dt=2026-12-02/web-1-"):
			want = `{"input":"access"`
		case strings.HasPrefix(key, "nginx/error/web-1/dt=2026-12-02/web-1-"):
			want = `{"input":"error"`
		case strings.HasPrefix(key, "nginx/invalid/"):
			want = "not an error line"
		default:
			t.Errorf("object %s under no expected prefix", key)
			continue
		}
		n[want] += len(lines)
		for _, l := range lines {
			if !strings.Contains(l, want) {
				t.Errorf("object %s holds %s", key, l)
			}
		}
	}
	if n[`{"input":"access"`] != 500 || n[`{"input":"error"`] != 499 || n["not an error line"] != 1 {
		t.Errorf("lines per prefix %v, want access 500, error 499, invalid 1", n)
	}
}
