package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/nginx-shipper/nginx-shipper/agent/enrich"
	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/twmb/avro"
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

// TestEnrichedAvroEvents: with Avro and an enricher, Avro is the original
// record (decoding whole with the format's schema) and EnrichedAvro the
// enriched one (decoding whole with enrich.Schema: client_ip and ua set);
// with EnrichedOnly, Avro itself is the enriched record. Also when only
// Avro is made (AvroOnly: no JSON).
func TestEnrichedAvroEvents(t *testing.T) {
	p, err := parser.Compile("combined", parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	origSch, err := avro.Parse(p.Schema().Avro())
	if err != nil {
		t.Fatal(err)
	}
	enrSch, err := avro.Parse(enrich.Schema(p.Schema()).Avro())
	if err != nil {
		t.Fatal(err)
	}
	for _, avroOnly := range []bool{false, true} {
		for _, only := range []bool{false, true} {
			t.Run(fmt.Sprintf("avro_only=%v,enriched_only=%v", avroOnly, only), func(t *testing.T) {
				e := newEnv(t)
				en, err := enrich.New(enrich.Config{}, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer en.Close()
				e.opts.Enricher, e.opts.EnrichedOnly = en, only
				e.opts.Avro, e.opts.AvroOnly = true, avroOnly
				var mu sync.Mutex
				var bad []string
				n := 0
				decode := func(sch *avro.Schema, b []byte) map[string]any {
					var m map[string]any
					if len(b) < 5 {
						bad = append(bad, "no Avro")
						return nil
					}
					if rest, err := sch.Decode(b[5:], &m); err != nil || len(rest) != 0 {
						bad = append(bad, fmt.Sprintf("decoding: %v, %d bytes left", err, len(rest)))
						return nil
					}
					return m
				}
				e.sinks[0].onEvent = func(ev *sinks.Event) {
					mu.Lock()
					defer mu.Unlock()
					n++
					enriched := ev.EnrichedAvro
					if only {
						if ev.EnrichedAvro != nil {
							bad = append(bad, "EnrichedAvro set with EnrichedOnly")
							return
						}
						enriched = ev.Avro
					} else if o := decode(origSch, ev.Avro); o == nil || o["remote_addr"] == nil {
						bad = append(bad, fmt.Sprintf("original: %v", o))
						return
					}
					m := decode(enrSch, enriched)
					if m == nil || m["client_ip"] == nil || m["client_ip"] != m["remote_addr"] || m["ua"] == nil {
						bad = append(bad, fmt.Sprintf("enriched: %v", m))
					}
				}
				e.start()
				e.write(0, 300)
				e.waitDelivered(300)
				mu.Lock()
				defer mu.Unlock()
				if n < 300 || len(bad) > 0 {
					t.Fatalf("%d events seen, %d bad; first: %v", n, len(bad), bad[:min(len(bad), 1)])
				}
			})
		}
	}
}
