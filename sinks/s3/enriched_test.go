package s3

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// TestEnrichedChoosesTheStream: with [enrich] on, sinks.s3.enriched says
// whether the objects hold the enriched events (default) or the originals.
func TestEnrichedChoosesTheStream(t *testing.T) {
	srv := s3test.Start(t)
	for _, enriched := range []bool{true, false} {
		cfg := testConfig(t, srv)
		cfg.Enriched = &enriched
		cfg.Prefix = "e=" + map[bool]string{true: "on", false: "off"}[enriched] + "/"
		h := newHarness(t, cfg, srv.Client())
		tm := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
		var evs []ev
		for i := range 50 {
			evs = append(evs, ev{value: jsonEvent(i, tm), t: tm})
		}
		var a acks
		b := batch(&sinks.Source{Path: "/var/log/a.log"}, evs, &a)
		for i := range b.Events {
			v := b.Events[i].Value
			b.Events[i].Enriched = append(append(v[:len(v)-1:len(v)-1], `,"client_ip":"198.51.100.9"`...), '}')
		}
		if err := h.s.Send(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "acknowledged", func() bool { return a.count() == 50 })
		if err := h.s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		lines := allLines(lakeLines(t, srv, cfg.Prefix))
		if len(lines) != 50 {
			t.Fatalf("enriched=%v: %d lines, want 50", enriched, len(lines))
		}
		for _, l := range lines {
			if got := strings.Contains(l, `"client_ip"`); got != enriched {
				t.Fatalf("enriched=%v: line %s", enriched, l)
			}
		}
	}
}
