package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// S3Reader lists and downloads the objects of a bucket, each once (objects
// are immutable), and decodes their events.
type S3Reader struct {
	t      testing.TB
	srv    *s3test.Server
	prefix string

	objects map[string][]Event // by key
	order   []string
}

// NewS3Reader reads the objects under prefix in srv's bucket.
func NewS3Reader(t testing.TB, srv *s3test.Server, prefix string) *S3Reader {
	return &S3Reader{t: t, srv: srv, prefix: prefix, objects: map[string][]Event{}}
}

// Refresh downloads the objects not seen yet. It checks each: key ending in
// .json.gz, a gzip body of newline-terminated JSON objects, and every event
// under the prefix that its own timestamp renders to (checkPrefix, when not
// nil, returns the problem or ""). Errors listing or downloading (the
// server may be down on purpose) are returned; malformed objects fail t.
func (r *S3Reader) Refresh(checkPrefix func(key string, e Event) string) error {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := r.srv.Client()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(r.srv.Bucket), Prefix: aws.String(r.prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if _, ok := r.objects[key]; ok {
				continue
			}
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.srv.Bucket), Key: o.Key})
			if err != nil {
				return fmt.Errorf("get %s: %w", key, err)
			}
			body, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", key, err)
			}
			r.objects[key] = r.decode(key, body, checkPrefix)
			r.order = append(r.order, key)
		}
	}
	return nil
}

func (r *S3Reader) decode(key string, body []byte, checkPrefix func(string, Event) string) []Event {
	r.t.Helper()
	if !strings.HasSuffix(key, ".json.gz") {
		r.t.Errorf("e2e: S3 object %s: want a .json.gz key", key)
	}
	raw, err := s3test.Gunzip(body)
	if err != nil {
		r.t.Errorf("e2e: S3 object %s: gunzip: %v", key, err)
		return nil
	}
	if len(raw) == 0 {
		r.t.Errorf("e2e: S3 object %s is empty", key)
		return nil
	}
	if raw[len(raw)-1] != '\n' {
		r.t.Errorf("e2e: S3 object %s does not end with a newline", key)
	}
	var evs []Event
	for i, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		e, err := DecodeEvent(line)
		if err != nil {
			r.t.Errorf("e2e: S3 object %s line %d: %v", key, i+1, err)
			continue
		}
		if checkPrefix != nil {
			if msg := checkPrefix(key, e); msg != "" {
				r.t.Errorf("e2e: S3 object %s line %d: %s", key, i+1, msg)
			}
		}
		evs = append(evs, e)
	}
	return evs
}

// Events returns every event of the objects downloaded so far.
func (r *S3Reader) Events() []Event {
	var out []Event
	for _, k := range r.order {
		out = append(out, r.objects[k]...)
	}
	return out
}

// Objects is how many objects were downloaded so far.
func (r *S3Reader) Objects() int { return len(r.order) }

// HourPrefix checks that an event is in an object under base + the
// dt=%Y-%m-%d/hour=%H/ of its timestamp in UTC (the prefix the e2e configs
// use).
func HourPrefix(base string) func(key string, e Event) string {
	return func(key string, e Event) string {
		ts, _ := e.Fields["timestamp"].(string)
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return fmt.Sprintf("timestamp %q: %v", ts, err)
		}
		want := base + t.UTC().Format("dt=2006-01-02/hour=15/")
		if !strings.HasPrefix(key, want) {
			return fmt.Sprintf("event at %s in an object not under %s", ts, want)
		}
		return ""
	}
}
