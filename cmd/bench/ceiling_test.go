package main

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nginx-shipper/nginx-shipper/parser"
	s3sink "github.com/nginx-shipper/nginx-shipper/sinks/s3"
)

// benchRecords are n records as the agent makes them from the generator's
// lines: the JSON event, its key, the three headers.
func benchRecords(t *testing.T, n int) []kgo.Record {
	t.Helper()
	p, err := parser.Compile(benchFormat, parser.Options{KeyField: "remote_addr"})
	if err != nil {
		t.Fatal(err)
	}
	g := newLineGen(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	var res parser.Result
	recs := make([]kgo.Record, n)
	for i := range recs {
		l := g.line(uint64(i), g.base.Add(time.Duration(i)*time.Millisecond))
		v, err := p.Parse(nil, l[:len(l)-1], parser.Meta{Host: "bench", File: "/x/access.log", Offset: int64(i)}, &res)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = kgo.Record{Topic: benchTopic, Partition: int32(i % 6), Key: append([]byte(nil), res.Key...), Value: v,
			Timestamp: res.Time.Truncate(time.Millisecond),
			Headers:   []kgo.RecordHeader{{Key: "host", Value: []byte("bench")}, {Key: "log_file", Value: []byte("/x/access.log")}, {Key: "format", Value: []byte("custom")}}}
	}
	return recs
}

// A capture file reads back as the same records: the same hash sum, and
// every field equal; a changed byte changes the hash, and a record with
// no key differs from one with an empty key.
func TestRecordFileRoundTrip(t *testing.T) {
	recs := benchRecords(t, 500)
	recs[3].Key = nil
	recs[4].Key = []byte{}
	path := filepath.Join(t.TempDir(), "records.bin")
	w, err := newRecordWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		w.add(&recs[i])
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	got, err := readRecords(path, benchTopic)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) || w.n != len(recs) {
		t.Fatalf("read %d records, wrote %d (counted %d)", len(got), len(recs), w.n)
	}
	var sum uint64
	for i := range got {
		sum += recordHash(&got[i])
		if string(got[i].Value) != string(recs[i].Value) || string(got[i].Key) != string(recs[i].Key) ||
			got[i].Partition != recs[i].Partition || !got[i].Timestamp.Equal(recs[i].Timestamp) || len(got[i].Headers) != 3 {
			t.Fatalf("record %d read back as %+v, wrote %+v", i, got[i], recs[i])
		}
	}
	if sum != w.sum {
		t.Errorf("hash sum of the records read %x, of those written %x", sum, w.sum)
	}
	if got[3].Key != nil || got[4].Key == nil {
		t.Errorf("keys: nil read back as %v, empty as %v", got[3].Key, got[4].Key)
	}
	if recordHash(&recs[3]) == recordHash(&kgo.Record{Topic: recs[3].Topic, Partition: recs[3].Partition, Key: []byte{}, Value: recs[3].Value, Timestamp: recs[3].Timestamp, Headers: recs[3].Headers}) {
		t.Error("a record without a key hashes as one with an empty key")
	}
	h := recordHash(&got[7])
	got[7].Value[10] ^= 1
	if recordHash(&got[7]) == h {
		t.Error("a changed value byte does not change the hash")
	}
}

// The ceiling's S3 half stores every event exactly once, in objects of at
// most batch_max_bytes (uncompressed), as gzip NDJSON the bench's own
// check reads.
func TestUploadObjects(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	defer srv.Close()
	ctx := context.Background()
	if _, err := s3Client(srv.URL).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s3Bucket)}); err != nil {
		t.Fatal(err)
	}
	cfg := s3sink.Config{Bucket: s3Bucket, Endpoint: srv.URL, ForcePathStyle: true, Region: s3Region, BatchMaxBytes: 64 << 10}
	cfg.Defaults()
	recs := benchRecords(t, 2000)
	if err := uploadObjects(ctx, cfg, recs); err != nil {
		t.Fatal(err)
	}
	objects, err := verifyS3(ctx, srv.URL, len(recs))
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for _, r := range recs {
		total += len(r.Value) + 1
	}
	if want := (total + int(cfg.BatchMaxBytes) - 1) / int(cfg.BatchMaxBytes); objects < want {
		t.Errorf("%d objects for %d bytes of events at batch_max_bytes %d: want at least %d", objects, total, cfg.BatchMaxBytes, want)
	}
}

// The ratio to the own ceiling pairs each run with its own ceiling run:
// a slow run under load is compared with a ceiling measured under the
// same load, not with the fastest ceiling.
func TestOwnRatioPairsRuns(t *testing.T) {
	r := func(rate float64) result { return result{lines: int(rate), dur: time.Second} }
	agent := []result{r(100), r(400), r(300)}
	ceil := []result{r(125), r(500), r(1000)}
	x, ok := ownRatio(agent, ceil)
	if !ok || x != 0.8 {
		t.Errorf("ownRatio = %v, %v; want 0.8 (the median of 0.8, 0.8, 0.3)", x, ok)
	}
	if _, ok := ownRatio(agent, ceil[:2]); ok {
		t.Error("ownRatio with a ceiling run missing gave a ratio")
	}
}
