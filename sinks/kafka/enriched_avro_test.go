package kafka

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/enrich"
	"github.com/nginx-shipper/nginx-shipper/agent/enrich/enrichtest"
	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/parser/avrotest"
	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr"
)

// enrichedAvroBatch builds a batch as the agent does with [enrich] and
// value_format avro beside enriched_topic: Avro is the original event,
// EnrichedAvro the original's Avro followed by agent/enrich's; Value and
// Enriched the JSON of each (to compare with). With inPlace (no sink needs
// the original), Avro is the enriched record and EnrichedAvro nil.
func (e *env) enrichedAvroBatch(t *testing.T, p *parser.Parser, en *enrich.Enricher, inPlace bool, lines ...string) *sinks.Batch {
	t.Helper()
	bd, err := en.Bind(p)
	if err != nil {
		t.Fatal(err)
	}
	b := sinks.NewBatch(testSource)
	var off int64
	var r parser.Result
	var st enrich.State
	for _, l := range lines {
		ev := b.Add()
		ev.Offset, ev.Time = off, time.Now()
		meta := parser.Meta{Host: "web-1", File: testSource.Path, Offset: off}
		off += int64(len(l)) + 1
		v, err := p.Parse(nil, []byte(l), meta, &r)
		if err != nil {
			t.Fatal(err)
		}
		ev.Value, ev.Key = v, append([]byte(nil), r.Key...)
		ev.Enriched = en.AppendEvent(nil, v, bd, &st, []byte(l), &r)
		a, err := p.AppendAvro(make([]byte, 5), []byte(l), meta, &r)
		if err != nil {
			t.Fatal(err)
		}
		if inPlace {
			ev.Avro = enrich.AppendAvroFound(a, &st)
		} else {
			ev.Avro = a
			ev.EnrichedAvro = enrich.AppendAvroFound(append([]byte(nil), a...), &st)
		}
	}
	b.End = off
	b.Arm(1, e.acks.onDone)
	return b
}

// avroJSON decodes a Confluent-framed record with the schema the registry
// holds for its id and returns it as the JSON event it stands for (nulls
// left out, as the JSON leaves unknown members out), with its id.
func avroJSON(t *testing.T, rcl *sr.Client, v []byte) (map[string]any, int) {
	t.Helper()
	var hdr sr.ConfluentHeader
	id, body, err := hdr.DecodeID(v)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := rcl.SchemaByID(context.Background(), id)
	if err != nil {
		t.Fatalf("schema id %d: %v", id, err)
	}
	sch, err := avro.Parse(ss.Schema)
	if err != nil {
		t.Fatal(err)
	}
	var got any
	if rest, err := sch.Decode(body, &got); err != nil || len(rest) != 0 {
		t.Fatalf("decoding with schema %d: %v (%d bytes left)", id, err, len(rest))
	}
	j, err := avrotest.ToJSON(got)
	if err != nil {
		t.Fatalf("schema %d: %v", id, err)
	}
	return j.(map[string]any), id
}

func jsonMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return m
}

// TestEnrichedAvroTwoTopics: [enrich] with value_format avro and
// enriched_topic: the original schema is registered under topic's subject
// and the enriched one (enrich.Schema) under enriched_topic's; the records
// on each topic are framed with their own id and decode to the original
// and to the enriched JSON event. Without enriched_topic, topic carries
// the enriched record under its subject.
func TestEnrichedAvroTwoTopics(t *testing.T) {
	dir := t.TempDir()
	en, err := enrich.New(enrich.Config{GeoIPDatabase: enrichtest.CityDB(t, dir), ASNDatabase: enrichtest.ASNDB(t, dir)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { en.Close() })
	p := combinedParser(t)
	orig, enr := p.Schema().Avro(), enrich.Schema(p.Schema()).Avro()
	lines := []string{
		strings.Replace(combinedLine, "203.0.113.7", "81.2.69.142", 1),
		strings.Replace(combinedLine, `"curl/8.5"`, `"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"`, 1),
	}

	t.Run("enriched_topic", func(t *testing.T) {
		c := newCluster(t, kfake.SeedTopics(4, topicEnriched))
		_, srv, rcl := registry(t)
		cfg := avroConfig(c.ListenAddrs(), srv.URL)
		cfg.EnrichedTopic = topicEnriched
		e := newEnv(t, c, cfg)
		if err := e.s.UseSchemas([]InputSchema{{Input: 0, Avro: orig, EnrichedAvro: enr}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() string { return readyString(e.s) }, func() bool { return e.s.Ready() == nil })
		so, err := rcl.SchemaByVersion(context.Background(), topicMain+"-value", -1)
		if err != nil {
			t.Fatal(err)
		}
		se, err := rcl.SchemaByVersion(context.Background(), topicEnriched+"-value", -1)
		if err != nil {
			t.Fatal(err)
		}
		if so.ID == se.ID || so.Schema.Schema == se.Schema.Schema {
			t.Fatalf("one schema for both subjects: %d, %d", so.ID, se.ID)
		}
		b := e.enrichedAvroBatch(t, p, en, false, lines...)
		want := map[string][2]map[string]any{}
		for i := range b.Events {
			ev := &b.Events[i]
			want[string(ev.Key)] = [2]map[string]any{jsonMap(t, ev.Value), jsonMap(t, ev.Enriched)}
		}
		e.mustSend(b)
		e.mustDone(b)
		for ti, topic := range []string{topicMain, topicEnriched} {
			wantID := []int{so.ID, se.ID}[ti]
			for _, rec := range consume(t, c.ListenAddrs(), topic, 2) {
				got, id := avroJSON(t, rcl, rec.Value)
				if id != wantID {
					t.Errorf("%s: schema id %d, want %d", topic, id, wantID)
				}
				if w := want[string(rec.Key)][ti]; !reflect.DeepEqual(got, w) {
					gj, _ := json.Marshal(got)
					wj, _ := json.Marshal(w)
					t.Errorf("%s: record decodes to\n %s\nwant\n %s", topic, gj, wj)
				}
			}
		}
		// The enriched events do carry the enrichment.
		if g, _ := want["81.2.69.142"][1]["geo"].(map[string]any); g["city"] != "London" {
			t.Errorf("enriched event without geo: %v", want["81.2.69.142"][1])
		}
	})

	t.Run("one topic", func(t *testing.T) {
		c := newCluster(t)
		_, srv, rcl := registry(t)
		e := newEnv(t, c, avroConfig(c.ListenAddrs(), srv.URL))
		if err := e.s.UseSchemas([]InputSchema{{Input: 0, Avro: enr}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() string { return readyString(e.s) }, func() bool { return e.s.Ready() == nil })
		b := e.enrichedAvroBatch(t, p, en, true, lines...)
		want := map[string]map[string]any{}
		for i := range b.Events {
			want[string(b.Events[i].Key)] = jsonMap(t, b.Events[i].Enriched)
		}
		e.mustSend(b)
		e.mustDone(b)
		for _, rec := range consume(t, c.ListenAddrs(), topicMain, 2) {
			got, _ := avroJSON(t, rcl, rec.Value)
			if w := want[string(rec.Key)]; !reflect.DeepEqual(got, w) {
				gj, _ := json.Marshal(got)
				t.Errorf("record decodes to\n %s\nwant\n %s", gj, w)
			}
		}
	})
}

// TestEnrichedSchemaIsBackward: the enriched schema registers as the next
// version of the original's subject under the registry's BACKWARD check
// (devregistry, as TestEvolutionIsBackward), and the check does refuse a
// non-nullable addition, so it is not vacuous.
func TestEnrichedSchemaIsBackward(t *testing.T) {
	_, _, rcl := registry(t)
	ctx := context.Background()
	p := combinedParser(t)
	s := p.Schema()
	for i, sch := range []string{s.Avro(), enrich.Schema(s).Avro()} {
		ss, err := rcl.CreateSchema(ctx, "nginx-access-value", sr.Schema{Type: sr.TypeAvro, Schema: sch})
		if err != nil || ss.Version != i+1 {
			t.Fatalf("version %d: %+v, %v", i+1, ss, err)
		}
	}
	bad := s
	bad.Fields = append(append([]parser.Field(nil), s.Fields...), parser.Field{Name: "client_ip", Type: parser.TypeString, Required: true})
	if _, err := rcl.CreateSchema(ctx, "other-value", sr.Schema{Type: sr.TypeAvro, Schema: s.Avro()}); err != nil {
		t.Fatal(err)
	}
	if _, err := rcl.CreateSchema(ctx, "other-value", sr.Schema{Type: sr.TypeAvro, Schema: bad.Avro()}); err == nil {
		t.Fatal("a required field without default registered under BACKWARD")
	}
}
