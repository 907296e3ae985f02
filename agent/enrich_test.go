package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/nginx-shipper/nginx-shipper/agent/enrich"
	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// TestEnrichedEvents: with an enricher every parsed event carries its
// enriched copy (the original plus client_ip and ua) and the original is
// unchanged; with EnrichedOnly the event itself is enriched, in place.
func TestEnrichedEvents(t *testing.T) {
	for _, only := range []bool{false, true} {
		t.Run(fmt.Sprintf("enriched_only=%v", only), func(t *testing.T) {
			e := newEnv(t)
			en, err := enrich.New(enrich.Config{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer en.Close()
			e.opts.Enricher, e.opts.EnrichedOnly = en, only
			var mu sync.Mutex
			var bad []string
			n := 0
			e.sinks[0].onEvent = func(ev *sinks.Event) {
				mu.Lock()
				defer mu.Unlock()
				n++
				enriched := ev.Enriched
				if only {
					if ev.Enriched != nil {
						bad = append(bad, "Enriched set with EnrichedOnly")
						return
					}
					enriched = ev.Value
				}
				var m map[string]any
				switch {
				case json.Unmarshal(enriched, &m) != nil:
					bad = append(bad, "not JSON: "+string(enriched))
				case m["client_ip"] != m["remote_addr"] || m["ua"] == nil:
					bad = append(bad, fmt.Sprintf("client_ip/ua missing: %s", enriched))
				case !only && !bytes.HasPrefix(enriched, ev.Value[:len(ev.Value)-1]):
					bad = append(bad, "does not extend the original: "+string(enriched))
				case !only && bytes.Contains(ev.Value, []byte(`"client_ip"`)):
					bad = append(bad, "original event enriched: "+string(ev.Value))
				}
			}
			e.start()
			e.write(0, 500)
			e.waitDelivered(500)
			mu.Lock()
			defer mu.Unlock()
			if n < 500 || len(bad) > 0 {
				t.Fatalf("%d events seen, %d bad; first: %v", n, len(bad), bad[:min(len(bad), 1)])
			}
		})
	}
}
