package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

var errInjected = errors.New("injected 503 SlowDown")

// sendAll sends evs in batches of n and returns the values expected in S3.
func sendAll(t testing.TB, s *Sink, src *sinks.Source, evs []ev, n int, a *acks) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < len(evs); i += n {
		if err := s.Send(ctx, batch(src, evs[i:min(i+n, len(evs))], a)); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
}

func values(evs []ev) []string {
	var v []string
	for _, e := range evs {
		if e.err == nil {
			v = append(v, e.value)
		}
	}
	slices.Sort(v)
	return v
}

func equalLines(t testing.TB, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines in S3, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("line %d differs:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

func spoolFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != "LOCK" {
			names = append(names, e.Name())
		}
	}
	return names
}

// Events land in the partition of their own time, with the right keys, the
// right headers and the same content, event by event.
func TestObjectsLandWithKeysAndContent(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.Prefix = "nginx/{hostname}/in={input}/dt=%Y-%m-%d/hour=%H/"
	h := newHarness(t, cfg, srv.Client())
	if err := h.s.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	t0 := time.Date(2026, 11, 25, 13, 59, 58, 0, time.UTC)
	var evs0, evs1 []ev
	for i := range 3000 {
		tm := t0.Add(time.Duration(i) * time.Millisecond * 2) // crosses 14:00 at i=1000
		evs0 = append(evs0, ev{value: jsonEvent(i, tm), t: tm})
		evs1 = append(evs1, ev{value: jsonEvent(100000+i, tm), t: tm})
	}
	var a acks
	sendAll(t, h.s, &sinks.Source{Path: "/var/log/a.log", Input: 0}, evs0, 100, &a)
	sendAll(t, h.s, &sinks.Source{Path: "/var/log/b.log", Input: 1}, evs1, 100, &a)
	waitFor(t, 10*time.Second, "all events acknowledged", func() bool { return a.count() == 6000 })
	if len(a.errs) > 0 {
		t.Fatalf("acks with errors: %v", a.errs)
	}
	if err := h.s.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := lakeLines(t, srv, "nginx/")
	if len(got) != 4 {
		t.Fatalf("got %d objects, want 4 (2 inputs x 2 hours): %v", len(got), keys(got))
	}
	for key, lines := range got {
		var dir string
		switch {
		case strings.HasPrefix(key, "nginx/web-1/in=0/dt=2026-11-25/hour=13/web-1-"):
			dir = "0/13"
		case strings.HasPrefix(key, "nginx/web-1/in=0/dt=2026-11-25/hour=14/web-1-"):
			dir = "0/14"
		case strings.HasPrefix(key, "nginx/web-1/in=1/dt=2026-11-25/hour=13/web-1-"):
			dir = "1/13"
		case strings.HasPrefix(key, "nginx/web-1/in=1/dt=2026-11-25/hour=14/web-1-"):
			dir = "1/14"
		default:
			t.Fatalf("unexpected key %s", key)
		}
		for _, l := range lines {
			var e struct {
				Timestamp string `json:"timestamp"`
				Offset    int    `json:"log_offset"`
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			hour := e.Timestamp[11:13]
			input := "0"
			if e.Offset >= 100000*330 {
				input = "1"
			}
			if dir != input+"/"+hour {
				t.Fatalf("event %s in %s", l, key)
			}
		}
	}
	equalLines(t, allLines(got), values(append(evs0, evs1...)))
	if n := value(h.s.m.eventsSpooled); n != 6000 {
		t.Errorf("events_spooled_total = %v", n)
	}
	if n := value(h.s.m.objects.WithLabelValues("events")); n != 4 {
		t.Errorf("objects_uploaded_total = %v", n)
	}
	if files := spoolFiles(t, h.cfg.SpoolDir); len(files) != 0 {
		t.Errorf("spool not empty after upload: %v", files)
	}
}

func keys(m map[string][]string) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

// batch_max_bytes and batch_max_events split a partition into several
// objects, each within the limits.
func TestBatchLimitsSplitObjects(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.BatchMaxBytes = 64 << 10
	cfg.BatchMaxEvents = 150
	h := newHarness(t, cfg, srv.Client())
	now := time.Now()
	evs := jsonEvents(1000, now)
	var a acks
	sendAll(t, h.s, &sinks.Source{Input: 0}, evs, 37, &a)
	waitFor(t, 10*time.Second, "acks", func() bool { return a.count() == 1000 })
	if err := h.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := lakeLines(t, srv, "nginx/")
	for key, lines := range got {
		size := 0
		for _, l := range lines {
			size += len(l) + 1
		}
		if len(lines) > 150 || size > 64<<10 {
			t.Errorf("%s: %d events, %d bytes: over the limits", key, len(lines), size)
		}
	}
	if len(got) < 1000/150 {
		t.Errorf("only %d objects", len(got))
	}
	equalLines(t, allLines(got), values(evs))
}

// Invalid events never reach the data lake; with dead_letter_prefix they go,
// raw with reason, file and offset, to dead-letter objects.
func TestInvalidEventsDeadLetter(t *testing.T) {
	for _, dl := range []string{"", "invalid/dt=%Y-%m-%d/"} {
		t.Run(fmt.Sprintf("prefix=%q", dl), func(t *testing.T) {
			srv := s3test.Start(t)
			cfg := testConfig(t, srv)
			cfg.DeadLetterPrefix = dl
			h := newHarness(t, cfg, srv.Client())
			now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			evs := []ev{
				{value: jsonEvent(1, now), t: now},
				{err: errors.New("no match for format combined"), raw: "garbage line", t: now},
				{value: jsonEvent(2, now), t: now},
				{err: errors.New("bad utf8"), raw: "bad \xff byte", t: now},
			}
			var a acks
			sendAll(t, h.s, &sinks.Source{Path: "/var/log/x.log"}, evs, 4, &a)
			waitFor(t, 10*time.Second, "acks", func() bool { return a.count() == 4 })
			if len(a.errs) != 0 {
				t.Fatalf("ack errors: %v", a.errs)
			}
			if err := h.s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(evs))
			if n := value(h.s.m.eventsInvalid); n != 2 {
				t.Errorf("events_invalid_total = %v", n)
			}
			dead := lakeLines(t, srv, "invalid/")
			if dl == "" {
				if len(dead) != 0 {
					t.Fatalf("dead letters written without a prefix: %v", dead)
				}
				return
			}
			lines := allLines(dead)
			if len(lines) != 2 || !strings.HasPrefix(keys(dead)[0], "invalid/dt=2026-11-25/web-1-") {
				t.Fatalf("dead letters: %v", dead)
			}
			var recs []deadLetter
			for _, l := range lines {
				var d deadLetter
				if err := json.Unmarshal([]byte(l), &d); err != nil {
					t.Fatal(err)
				}
				recs = append(recs, d)
			}
			slices.SortFunc(recs, func(a, b deadLetter) int { return int(a.Offset - b.Offset) })
			if recs[0].Reason != "no match for format combined" || recs[0].Raw != "garbage line" ||
				recs[0].File != "/var/log/x.log" || recs[0].Offset != 100 {
				t.Errorf("record 0: %+v", recs[0])
			}
			if recs[1].RawBase64 == "" || recs[1].Offset != 300 {
				t.Errorf("record 1 (invalid UTF-8): %+v", recs[1])
			}
		})
	}
}

// The server stopped for a while mid-stream and restarted: nothing is lost,
// uploads are retried.
func TestServerOutageLosesNothing(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.BatchMaxEvents = 500 // many objects, some during the outage
	h := newHarness(t, cfg, srv.Client())
	now := time.Now()
	evs := jsonEvents(6000, now)
	var a acks
	src := &sinks.Source{}
	sendAll(t, h.s, src, evs[:2000], 100, &a)
	waitFor(t, 10*time.Second, "first objects uploaded", func() bool { return value(h.s.m.objects.WithLabelValues("events")) >= 1 })
	srv.Stop()
	sendAll(t, h.s, src, evs[2000:4000], 100, &a)
	waitFor(t, 10*time.Second, "failed uploads", func() bool { return value(h.s.m.uploadErrors) >= 3 })
	srv.Start()
	sendAll(t, h.s, src, evs[4000:], 100, &a)
	waitFor(t, 10*time.Second, "acks", func() bool { return a.count() == 6000 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(evs))
	if value(h.s.m.uploadRetries) == 0 {
		t.Error("no retries counted")
	}
	if files := spoolFiles(t, h.cfg.SpoolDir); len(files) != 0 {
		t.Errorf("spool not empty: %v", files)
	}
}

func randomEvents(n, size int, t time.Time) []ev {
	evs := make([]ev, n)
	b := make([]byte, size/2)
	for i := range evs {
		rand.Read(b)
		evs[i] = ev{value: fmt.Sprintf(`{"i":%d,"r":"%s"}`, i, hex.EncodeToString(b)), t: t}
	}
	return evs
}

// When the spool is full (S3 down), Send blocks; it resumes when S3 returns,
// and nothing is lost.
func TestSpoolFullBlocksSendUntilS3Returns(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.SpoolMaxBytes = 1 << 20
	cfg.CompressionLevel = 1
	cfg.BatchMaxBytes = 256 << 10
	h := newHarness(t, cfg, srv.Client())
	srv.Stop()
	now := time.Now()
	var a acks
	var sent []ev
	src := &sinks.Source{}
	blocked := false
	for i := 0; i < 200 && !blocked; i++ {
		// ~280 KB, ~140 KB gzipped: one gzip member each, too big to be
		// compacted (which would shrink the spool under the test).
		evs := randomEvents(700, 400, now)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := h.s.Send(ctx, batch(src, evs, &a))
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			blocked = true
		case err != nil:
			t.Fatal(err)
		default:
			sent = append(sent, evs...)
			waitFor(t, 10*time.Second, "acks", func() bool { return a.count() == len(sent) })
		}
	}
	if !blocked {
		t.Fatal("Send never blocked with the spool full and S3 down")
	}
	h.s.mu.Lock()
	spool := h.s.spoolBytes
	h.s.mu.Unlock()
	if spool < cfg.SpoolMaxBytes {
		t.Fatalf("Send blocked with the spool at %d < %d", spool, cfg.SpoolMaxBytes)
	}
	if spool > 2*cfg.SpoolMaxBytes {
		t.Fatalf("spool grew to %d, far past its limit %d", spool, cfg.SpoolMaxBytes)
	}
	if err := h.s.Ready(); err == nil || !strings.Contains(err.Error(), "spool full") {
		t.Fatalf("Ready() = %v with the spool full, want a spool-full error", err)
	}
	// S3 returns: a blocked Send goes through.
	more := randomEvents(100, 400, now)
	done := make(chan error, 1)
	go func() { done <- h.s.Send(context.Background(), batch(src, more, &a)) }()
	srv.Start()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Send still blocked 30s after S3 returned")
	}
	sent = append(sent, more...)
	waitFor(t, 10*time.Second, "acks", func() bool { return a.count() == len(sent) })
	waitFor(t, 30*time.Second, "ready again", func() bool { return h.s.Ready() == nil })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(sent))
}

// A sink abandoned without Close (as by kill -9), with closed batches not
// uploaded and an open batch: a new sink on the same spool uploads every
// acknowledged event, once, with no corrupt object.
func TestCrashRecoveryUploadsEverythingAcknowledged(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.BatchMaxEvents = 700
	api := &faultAPI{API: srv.Client()}
	api.setHook(func(context.Context) error { return errInjected }) // S3 unreachable for the first sink
	h1 := newHarness(t, cfg, api)
	now := time.Now()
	evs := jsonEvents(2000, now)
	var a acks
	sendAll(t, h1.s, &sinks.Source{}, evs, 50, &a)
	waitFor(t, 10*time.Second, "acks", func() bool { return a.count() == 2000 })
	h1.s.crash()
	var open, ready int
	for _, f := range spoolFiles(t, cfg.SpoolDir) {
		switch filepath.Ext(f) {
		case extOpen:
			open++
		case extReady:
			ready++
		}
	}
	if open != 1 || ready != 2 {
		t.Fatalf("spool after crash: %d open, %d ready; want 1, 2", open, ready)
	}
	h2 := newHarness(t, cfg, srv.Client())
	if n := value(h2.s.m.recoveredBatchs); n != 3 {
		t.Errorf("recovered %v batches, want 3", n)
	}
	if err := h2.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(evs))
	if files := spoolFiles(t, cfg.SpoolDir); len(files) != 0 {
		t.Errorf("spool not empty: %v", files)
	}
}

// An open batch torn mid-member (the crash hit during a group commit) is cut
// back to its last complete member: every acknowledged event is uploaded and
// the object is valid gzip.
func TestTornOpenBatchIsCutToLastMember(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	api := &faultAPI{API: srv.Client()}
	h1 := newHarness(t, cfg, api)
	now := time.Now()
	evs := jsonEvents(500, now)
	var a acks
	sendAll(t, h1.s, &sinks.Source{}, evs, 50, &a)
	waitFor(t, 10*time.Second, "acks", func() bool { return a.count() == 500 })
	h1.s.crash()
	var openPath string
	for _, f := range spoolFiles(t, cfg.SpoolDir) {
		if filepath.Ext(f) == extOpen {
			openPath = filepath.Join(cfg.SpoolDir, f)
		}
	}
	if openPath == "" {
		t.Fatal("no open batch after crash")
	}
	good, err := os.ReadFile(openPath)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a group commit cut short: half of a further member.
	torn, _ := members(t, jsonEvent(999999, now)+"\n"+jsonEvent(999998, now)+"\n")
	if err := os.WriteFile(openPath, append(good, torn[:len(torn)/2]...), 0o640); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, cfg, srv.Client())
	if n := value(h2.s.m.recoveredTorn); n != float64(len(torn)/2) {
		t.Errorf("recovered torn bytes = %v, want %d", n, len(torn)/2)
	}
	if err := h2.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(evs))
}

// A storm of 503s: the upload is retried with backoff until it succeeds.
func TestUploadRetriedThrough503Storm(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	api := &faultAPI{API: srv.Client()}
	fails := 0
	api.setHook(func(context.Context) error {
		if fails < 8 {
			fails++
			return errInjected
		}
		return nil
	})
	h := newHarness(t, cfg, api)
	now := time.Now()
	evs := []ev{{value: jsonEvent(1, now), t: now}, {value: jsonEvent(2, now), t: now}}
	var a acks
	sendAll(t, h.s, &sinks.Source{}, evs, 2, &a)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := value(h.s.m.uploadErrors); got != 8 {
		t.Errorf("upload_errors_total = %v, want 8", got)
	}
	if got := value(h.s.m.uploadRetries); got != 8 {
		t.Errorf("upload_retries_total = %v, want 8", got)
	}
	equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(evs))
}

// An upload slower than Close's deadline: Close returns at the deadline, the
// batch stays in the spool and the next start uploads it.
func TestSlowUploadBeyondDeadlineStaysInSpool(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	api := &faultAPI{API: srv.Client()}
	api.setHook(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }) // hangs until cancelled
	h := newHarness(t, cfg, api)
	now := time.Now()
	evs := []ev{{value: jsonEvent(1, now), t: now}, {value: jsonEvent(2, now), t: now}}
	var a acks
	sendAll(t, h.s, &sinks.Source{}, evs, 2, &a)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := h.s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if a.count() != 2 || len(a.errs) != 0 {
		t.Fatalf("after Close: %d acked, errors %v", a.count(), a.errs)
	}
	if got := lakeLines(t, srv, "nginx/"); len(got) != 0 {
		t.Fatalf("objects uploaded by a hung upload: %v", got)
	}
	files := spoolFiles(t, cfg.SpoolDir)
	if len(files) != 2 {
		t.Fatalf("spool after Close: %v; want the batch and its meta", files)
	}
	h2 := newHarness(t, cfg, srv.Client())
	if err := h2.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(evs))
}

// Objects above multipart_threshold go up in parts, and come back the same.
func TestMultipartUpload(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.MultipartThreshold = 5 << 20
	cfg.UploadPartSize = 5 << 20
	cfg.CompressionLevel = 1
	api := &faultAPI{API: srv.Client()}
	h := newHarness(t, cfg, api)
	evs := randomEvents(14000, 800, time.Now()) // ~11 MiB, incompressible past hex
	var a acks
	sendAll(t, h.s, &sinks.Source{}, evs, 500, &a)
	waitFor(t, 20*time.Second, "acks", func() bool { return a.count() == len(evs) })
	if err := h.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := lakeLines(t, srv, "nginx/")
	if len(got) != 1 {
		t.Fatalf("%d objects, want 1", len(got))
	}
	if api.puts < 2 {
		t.Errorf("%d PutObject/UploadPart calls: not a multipart upload", api.puts)
	}
	equalLines(t, allLines(got), values(evs))
}

// Events sent at a low rate make many small gzip members; the batch is
// rewritten as one member before upload.
func TestSmallMembersCompactedBeforeUpload(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	h := newHarness(t, cfg, srv.Client())
	now := time.Now()
	var evs []ev
	var a acks
	for i := range 50 {
		e := ev{value: jsonEvent(i, now), t: now}
		evs = append(evs, e)
		sendAll(t, h.s, &sinks.Source{}, []ev{e}, 1, &a)
		waitFor(t, 5*time.Second, "ack", func() bool { return a.count() == i+1 }) // one member each
	}
	if err := h.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if value(h.s.m.compactions) != 1 {
		t.Errorf("compactions = %v, want 1", value(h.s.m.compactions))
	}
	ctx := context.Background()
	objs, err := srv.Objects(ctx, "nginx/")
	if err != nil || len(objs) != 1 {
		t.Fatalf("objects: %d, %v", len(objs), err)
	}
	if _, _, n, _ := scanMembers(strings.NewReader(string(objs[0].Body))); n != 1 {
		t.Errorf("object has %d gzip members, want 1", n)
	}
	equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(evs))
}

// Send after Close is refused; Send honours ctx while blocked.
func TestSendAfterClose(t *testing.T) {
	cfg := testConfig(t, nil)
	h := newHarness(t, cfg, &faultAPI{})
	if err := h.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var a acks
	if err := h.s.Send(context.Background(), batch(&sinks.Source{}, []ev{{value: "{}", t: time.Now()}}, &a)); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

// New builds the client from the standard credential chain (here the
// environment); Check tells a reachable bucket from a missing one or a
// stopped server.
func TestNewFromCredentialChainAndCheck(t *testing.T) {
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "absent"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "absent"))
	cfg := testConfig(t, srv)
	s, err := New(cfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	now := time.Now()
	evs := []ev{{value: jsonEvent(1, now), t: now}}
	var a acks
	sendAll(t, s, &sinks.Source{}, evs, 1, &a)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(evs))

	missing := testConfig(t, srv)
	missing.Bucket = "no-such-bucket"
	s2, err := New(missing, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	if err := s2.Check(ctx); err == nil || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Fatalf("Check of a missing bucket: %v", err)
	}
	srv.Stop()
	if err := s.Check(ctx); err == nil {
		t.Fatal("Check succeeded with the server stopped")
	}
	if _, err := New(Config{SpoolDir: t.TempDir()}, nil, nil); err == nil || !strings.Contains(err.Error(), "sinks.s3.bucket") {
		t.Fatalf("New with no bucket: %v", err)
	}
}

// Tags, storage class and SSE go on every object.
func TestObjectOptions(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.Tags = map[string]string{"team": "sre", "source": "nginx shipper"}
	cfg.StorageClass = "STANDARD"
	cfg.SSE = "AES256"
	h := newHarness(t, cfg, srv.Client())
	in := h.s.putInput(&batchFile{meta: batchMeta{Key: "k"}})
	if aws.ToString(in.Tagging) != "source=nginx+shipper&team=sre" || in.StorageClass != "STANDARD" || in.ServerSideEncryption != "AES256" {
		t.Fatalf("put input: tagging %q, class %q, sse %q", aws.ToString(in.Tagging), in.StorageClass, in.ServerSideEncryption)
	}
	now := time.Now()
	var a acks
	sendAll(t, h.s, &sinks.Source{}, []ev{{value: jsonEvent(1, now), t: now}}, 1, &a)
	if err := h.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := lakeLines(t, srv, "nginx/")
	if len(got) != 1 {
		t.Fatalf("%d objects", len(got))
	}
	out, err := srv.Client().GetObjectTagging(context.Background(), &s3sdk.GetObjectTaggingInput{Bucket: aws.String(srv.Bucket), Key: aws.String(keys(got)[0])})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, tg := range out.TagSet {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags["team"] != "sre" || tags["source"] != "nginx shipper" {
		t.Fatalf("tags: %v", tags)
	}
}

// A batch is closed and uploaded at batch_max_age without Close; the spool
// gauges show it meanwhile.
func TestBatchMaxAgeClosesBatch(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.BatchMaxAge = Duration{time.Second}
	api := &faultAPI{API: srv.Client()}
	release := make(chan struct{})
	api.setHook(func(ctx context.Context) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	h := newHarness(t, cfg, api)
	now := time.Now()
	evs := []ev{{value: jsonEvent(1, now), t: now}, {value: jsonEvent(2, now), t: now}}
	var a acks
	sendAll(t, h.s, &sinks.Source{}, evs, 2, &a)
	waitFor(t, 10*time.Second, "batch closed and upload started", func() bool {
		api.mu.Lock()
		defer api.mu.Unlock()
		return api.puts > 0
	})
	if b := value(h.s.m.spoolBytes); b <= 0 {
		t.Errorf("spool_bytes = %v while a batch waits", b)
	}
	if age := h.s.oldestAge(); age < 1 {
		t.Errorf("oldest batch age %vs, want >= 1s", age)
	}
	close(release)
	waitFor(t, 10*time.Second, "object uploaded", func() bool { return value(h.s.m.objects.WithLabelValues("events")) == 1 })
	equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(evs))
	if b := value(h.s.m.spoolBytes); b != 0 {
		t.Errorf("spool_bytes = %v after upload", b)
	}
}

// The committer wakes when the oldest open batch reaches batch_max_age, not
// at its next idle tick (every 1s): with batch_max_age 1.5s the object is on
// its way at 1.5s, not at the tick after it (2s).
func TestBatchMaxAgeIsKeptPromptly(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.BatchMaxAge = Duration{1500 * time.Millisecond}
	api := &faultAPI{API: srv.Client()}
	var put time.Time
	api.setHook(func(ctx context.Context) error {
		api.mu.Lock() // the hook runs with api.mu free
		if put.IsZero() {
			put = time.Now()
		}
		api.mu.Unlock()
		return nil
	})
	h := newHarness(t, cfg, api)
	now := time.Now()
	var a acks
	sent := time.Now()
	sendAll(t, h.s, &sinks.Source{}, []ev{{value: jsonEvent(1, now), t: now}}, 1, &a)
	waitFor(t, 10*time.Second, "object uploaded", func() bool { return value(h.s.m.objects.WithLabelValues("events")) == 1 })
	api.mu.Lock()
	took := put.Sub(sent)
	api.mu.Unlock()
	// The old committer closed it at its tick after 1.5s, at 2s; a loaded
	// machine adds tens of milliseconds, not 400.
	if took >= 1900*time.Millisecond {
		t.Errorf("upload started %s after the batch opened; batch_max_age is 1.5s", took)
	}
	t.Logf("upload started %s after the batch opened", took)
}

// A spool full of one open batch (spool_max_bytes below what batch_max_bytes
// would hold) is closed and uploaded at once, not after batch_max_age: Send
// never waits for it.
func TestFullSpoolOfOpenBatchIsClosed(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.SpoolMaxBytes = 1 << 20
	cfg.CompressionLevel = 1
	h := newHarness(t, cfg, srv.Client())
	now := time.Now()
	var a acks
	var sent []ev
	for range 100 { // ~4 MB gzipped in total, 4x the spool
		evs := randomEvents(100, 800, now)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := h.s.Send(ctx, batch(&sinks.Source{}, evs, &a))
		cancel()
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		sent = append(sent, evs...)
	}
	waitFor(t, 20*time.Second, "acks", func() bool { return a.count() == len(sent) })
	if err := h.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := lakeLines(t, srv, "nginx/")
	if len(got) < 2 {
		t.Errorf("%d objects: the open batch was not closed when the spool filled", len(got))
	}
	equalLines(t, allLines(got), values(sent))
}

// Two sinks never share a spool.
func TestSpoolLocked(t *testing.T) {
	cfg := testConfig(t, nil)
	h := newHarness(t, cfg, &faultAPI{})
	if _, err := newSink(cfg, testLogger(t), nil, &faultAPI{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second sink on the same spool: %v", err)
	}
	if err := h.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2, err := newSink(cfg, testLogger(t), nil, &faultAPI{})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	s2.Close(context.Background())
}

// corruptOnce flips a byte of the first PutObject body, keeping the checksum
// the sink computed: the store must refuse it, and the retry stores the
// object intact.
type corruptOnce struct {
	API
	mu   sync.Mutex
	done bool
}

func (c *corruptOnce) PutObject(ctx context.Context, in *s3sdk.PutObjectInput, opts ...func(*s3sdk.Options)) (*s3sdk.PutObjectOutput, error) {
	c.mu.Lock()
	first := !c.done
	c.done = true
	c.mu.Unlock()
	if first {
		body, err := io.ReadAll(in.Body)
		if err != nil {
			return nil, err
		}
		body[len(body)/2] ^= 0xff
		cp := *in
		cp.Body = bytes.NewReader(body)
		return c.API.PutObject(ctx, &cp, opts...)
	}
	return c.API.PutObject(ctx, in, opts...)
}

// TestUploadChecksumVerified: every PutObject carries a checksum the store
// verifies, so bytes damaged on the way are refused and sent again, never
// stored.
func TestUploadChecksumVerified(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	api := &corruptOnce{API: srv.Client()}
	h := newHarness(t, cfg, api)
	now := time.Now()
	evs := jsonEvents(200, now)
	var a acks
	sendAll(t, h.s, &sinks.Source{}, evs, len(evs), &a)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.s.Close(ctx); err != nil { // closes the batch and uploads it
		t.Fatal(err)
	}
	if n := value(h.s.m.objects.WithLabelValues("events")); n != 1 {
		t.Fatalf("%v objects uploaded, want 1", n)
	}
	if n := value(h.s.m.uploadErrors); n < 1 {
		t.Errorf("upload_errors_total = %v: the store took a damaged body", n)
	}
	equalLines(t, allLines(lakeLines(t, srv, "nginx/")), values(evs))
}

// TestReadyFollowsTheBucketWhenIdle: with no batch to upload (batches close
// every batch_max_age), the sink's probe still finds the store gone within
// seconds (versitygw stopped), and ready again once it is back.
func TestReadyFollowsTheBucketWhenIdle(t *testing.T) {
	old := probeInterval
	probeInterval = 200 * time.Millisecond
	defer func() { probeInterval = old }()
	srv := s3test.Start(t)
	h := newHarness(t, testConfig(t, srv), srv.Client())
	waitFor(t, 10*time.Second, "ready", func() bool { return h.s.Ready() == nil })
	srv.Stop()
	start := time.Now()
	waitFor(t, 20*time.Second, "not ready with the store stopped", func() bool { return h.s.Ready() != nil })
	t.Logf("idle, S3 stopped: not ready after %v: %v", time.Since(start).Round(time.Millisecond), h.s.Ready())
	srv.Start()
	start = time.Now()
	waitFor(t, 20*time.Second, "ready with the store back", func() bool { return h.s.Ready() == nil })
	t.Logf("idle, S3 back: ready after %v", time.Since(start).Round(time.Millisecond))
}

// A group commit starts once GroupBytes are pending, without waiting for
// fsync_interval: the agent stops reading when its in-flight budget is
// unacknowledged, so a group that waited to fill past it waited the whole
// interval every time (the S3 case of make bench fell from 198 k to 47 k
// lines/s when flights were charged what they hold). Then an event below
// GroupBytes waits for the interval.
func TestGroupCommitStartsAtGroupBytes(t *testing.T) {
	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.FsyncInterval = Duration{time.Minute}
	cfg.GroupBytes = GroupBytesFor(256 << 10) // 64 KiB
	h := newHarness(t, cfg, srv.Client())
	now := time.Now()
	evs := jsonEvents(400, now) // about 120 KB
	size := 0
	for _, e := range evs {
		size += len(e.value) + 1
	}
	if int64(size) < cfg.GroupBytes {
		t.Fatalf("events of %d B do not fill a group of %d B", size, cfg.GroupBytes)
	}
	var a acks
	sendAll(t, h.s, &sinks.Source{}, evs, len(evs), &a)
	waitFor(t, 20*time.Second, "the batch acknowledged by a group commit", func() bool { return a.count() == len(evs) })

	var b acks
	sendAll(t, h.s, &sinks.Source{}, evs[:1], 1, &b)
	h.s.mu.Lock()
	pending := len(h.s.acks)
	h.s.mu.Unlock()
	if b.count() != 0 || pending != 1 {
		t.Errorf("one small event: %d acknowledged, %d batches pending; want it held for fsync_interval", b.count(), pending)
	}
}

func TestGroupBytesFor(t *testing.T) {
	for _, c := range []struct {
		in   int
		want int64
	}{{8 << 20, 2 << 20}, {64 << 20, 4 << 20}, {65536, 16 << 10}, {1 << 20, 256 << 10}} {
		if got := GroupBytesFor(c.in); got != c.want {
			t.Errorf("GroupBytesFor(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}
