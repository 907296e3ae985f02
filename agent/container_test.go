package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nginx-shipper/nginx-shipper/agent/container"
	"github.com/nginx-shipper/nginx-shipper/sinks"
)

// A node, as kubelet lays it out, under the test's directory.
const (
	podDir  = "pods/ingress-nginx_ingress-nginx-controller-7d9f8b6c5-x2x7q_0b5c9a3e-8f2d-4a51-9c3e-1f2e3d4c5b6a/controller"
	linkDir = "containers"
	link    = "ingress-nginx-controller-7d9f8b6c5-x2x7q_ingress-nginx_controller-3f9a1b2c4d5e6f708192a3b4c5d6e7f8.log"
)

// criEnv is env with a container input reading CRI records.
type criEnv struct {
	*env
	root string

	mu     sync.Mutex
	events map[int][]map[string]any // by seq: every event value delivered to sink a
}

func newCRIEnv(t *testing.T) *criEnv {
	e := &criEnv{env: newEnv(t), events: map[int][]map[string]any{}}
	e.root = filepath.Join(e.dir, "node")
	os.MkdirAll(filepath.Join(e.root, podDir), 0o755)
	os.MkdirAll(filepath.Join(e.root, linkDir), 0o755)
	e.log = filepath.Join(e.root, podDir, "0.log")
	e.reopen()
	if err := os.Symlink(e.log, filepath.Join(e.root, linkDir, link)); err != nil {
		t.Fatal(err)
	}
	e.ins = []InputConfig{{
		// Both trees: the symlink and its target are one file.
		Paths:        []string{filepath.Join(e.root, "pods/*/*/*.log"), filepath.Join(e.root, linkDir, "*.log")},
		Exclude:      []string{"*.gz", "*.tmp"},
		Format:       "combined",
		Container:    "cri",
		StderrFormat: `[$time_local] "$request"`,
	}}
	e.ins[0].Defaults()
	t.Setenv("NODE_NAME", "node-7")
	e.sinks[0].onEvent = func(ev *sinks.Event) {
		var v map[string]any
		if err := json.Unmarshal(ev.Value, &v); err != nil {
			t.Errorf("event: %v", err)
			return
		}
		e.mu.Lock()
		e.events[seqOf(ev.Value)] = append(e.events[seqOf(ev.Value)], v)
		e.mu.Unlock()
	}
	return e
}

const criTime = "2026-12-02T01:02:03.123456789Z"

// cri wraps line (without newline) as containerd does: records of at most
// 16 KiB, all but the last tagged P.
func cri(stream, line string) string {
	const max = 16 << 10
	var b strings.Builder
	for len(line) > max {
		fmt.Fprintf(&b, "%s %s P %s\n", criTime, stream, line[:max])
		line = line[max:]
	}
	fmt.Fprintf(&b, "%s %s F %s\n", criTime, stream, line)
	return b.String()
}

// accessLine is line(seq) without its newline; every 7th is ~40 KiB long
// (three partial records).
func accessLine(seq int) string {
	l := strings.TrimSuffix(line(seq), "\n")
	if seq%7 == 3 {
		l = strings.Replace(l, "?q=", "?pad="+strings.Repeat("x", 40<<10)+"&q=", 1)
	}
	return l
}

func errorLine(seq int) string {
	return fmt.Sprintf(`[25/Nov/2026:15:04:05 +0000] "GET /seq/%d HTTP/1.1"`, seq)
}

const klog = `I1202 01:02:03.123456       7 controller.go:214] "Backend successfully reloaded"`

// writeMixed writes seqs [from, to): stdout access lines, every 5th seq an
// error line on stderr interleaved with the partials of the next access
// line, a klog line every 10th; returns the bytes.
func (e *criEnv) writeMixed(from, to int) {
	var b strings.Builder
	for i := from; i < to; i++ {
		if i%5 == 4 {
			// A stderr line split in two, around a stdout line.
			el := errorLine(i)
			fmt.Fprintf(&b, "%s stderr P %s\n", criTime, el[:10])
			if i+1 < to {
				b.WriteString(cri("stdout", accessLine(i+1)))
			}
			fmt.Fprintf(&b, "%s stderr F %s\n", criTime, el[10:])
			if i+1 < to {
				i++
			}
		} else {
			b.WriteString(cri("stdout", accessLine(i)))
		}
		if i%10 == 0 {
			b.WriteString(cri("stderr", klog))
		}
	}
	e.mustWrite([]byte(b.String()))
}

func (e *criEnv) invalid() []sinks.Event {
	s := e.sinks[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinks.Event(nil), s.invalid...)
}

func TestContainerInputUnwrapsJoinsAndRoutes(t *testing.T) {
	e := newCRIEnv(t)
	const n = 200
	e.writeMixed(0, n)
	e.mustWrite([]byte("not a cri record\n"))
	e.start()
	e.waitDelivered(n)
	e.waitCheckpoint(e.log, e.size("0.log"))
	if d := e.dups(n); d != 0 {
		t.Errorf("%d duplicates (symlink and target read twice?)", d)
	}

	file, _ := os.ReadFile(e.log)
	e.mu.Lock()
	defer e.mu.Unlock()
	for seq := 0; seq < n; seq++ {
		ev := e.events[seq][0]
		stream := "stdout"
		if seq%5 == 4 {
			stream = "stderr"
		}
		k, _ := ev["kubernetes"].(map[string]any)
		if ev["stream"] != stream || ev["container_time"] != criTime || k["namespace"] != "ingress-nginx" ||
			k["pod"] != "ingress-nginx-controller-7d9f8b6c5-x2x7q" || k["pod_uid"] != "0b5c9a3e-8f2d-4a51-9c3e-1f2e3d4c5b6a" ||
			k["container"] != "controller" || k["restart_count"] != 0.0 || k["node"] != "node-7" {
			t.Fatalf("seq %d: container fields %v %v %v", seq, ev["stream"], ev["container_time"], k)
		}
		// log_offset is where the line's first record starts.
		off := int64(ev["log_offset"].(float64))
		rec := file[off:]
		rec = rec[:bytes.IndexByte(rec, '\n')]
		var r container.Record
		if err := container.DecodeCRI(rec, &r); err != nil || r.Stream.String() != stream {
			t.Fatalf("seq %d: log_offset %d is not the start of its record: %q", seq, off, rec[:min(len(rec), 80)])
		}
		want := accessLine(seq)
		if stream == "stderr" {
			want = errorLine(seq)
		}
		if !bytes.HasPrefix([]byte(want), r.Log) {
			t.Fatalf("seq %d: the record at log_offset does not start the line", seq)
		}
		if stream == "stdout" && !strings.Contains(want, ev["request_uri"].(string)) || len(ev["request"].(string)) < len(want)/2-100 {
			t.Fatalf("seq %d: request %q not the joined line", seq, ev["request"])
		}
	}

	// The dead letters: the klog lines (with their reason) and the bad record.
	var klogs, bad int
	for _, ev := range e.invalid() {
		switch {
		case errors.Is(ev.Err, container.ErrKlog) && string(ev.Raw) == klog:
			klogs++
		case errors.Is(ev.Err, container.ErrCRI) && string(ev.Raw) == "not a cri record":
			bad++
		default:
			t.Errorf("dead letter %v %q", ev.Err, ev.Raw)
		}
	}
	if klogs != n/10 || bad != 1 {
		t.Errorf("%d klog dead letters, want %d; %d bad records, want 1", klogs, n/10, bad)
	}
}

// A partial line's first record bounds the checkpoint: after a crash the
// line is joined again from its start, whole.
func TestContainerPartialHoldsCheckpointAcrossCrash(t *testing.T) {
	e := newCRIEnv(t)
	for i := 0; i < 3; i++ {
		e.mustWrite([]byte(cri("stdout", accessLine(i))))
	}
	held := e.size("0.log")
	long := accessLine(3) // three records
	recs := strings.SplitAfter(cri("stdout", long), "\n")
	e.mustWrite([]byte(recs[0] + recs[1]))
	e.start()
	e.waitDelivered(3)
	e.waitCheckpoint(e.log, held)
	e.crash()
	e.mustWrite([]byte(recs[2]))
	e.start()
	e.waitDelivered(4)
	e.waitCheckpoint(e.log, e.size("0.log"))
	e.mu.Lock()
	defer e.mu.Unlock()
	evs := e.events[3]
	if len(evs) != 1 || int64(evs[0]["log_offset"].(float64)) != held || !strings.Contains(long, evs[0]["request_uri"].(string)) || len(evs[0]["request_uri"].(string)) < 40<<10 {
		t.Fatalf("the joined line: %d events", len(evs))
	}
}

// kubelet's rotation: 0.log renamed to 0.log.<timestamp> (containerd
// reopens 0.log), the older rotated file gzipped through .gz.tmp; then
// the container restarts into 1.log. Nothing is lost, nothing read twice,
// nothing compressed read as text.
func TestContainerKubeletRotationAndRestart(t *testing.T) {
	e := newCRIEnv(t)
	e.start()
	const per = 300
	dir := filepath.Join(e.root, podDir)
	for r := 0; r < 3; r++ {
		e.writeMixed(r*per, (r+1)*per)
		rotated := fmt.Sprintf("0.log.2026120%d-010203", r+1)
		if err := os.Rename(e.log, filepath.Join(dir, rotated)); err != nil {
			t.Fatal(err)
		}
		e.reopen()
		if r > 0 {
			// gzip the previous rotated file as kubelet does.
			prev := filepath.Join(dir, fmt.Sprintf("0.log.2026120%d-010203", r))
			data, _ := os.ReadFile(prev)
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(data)
			zw.Close()
			os.WriteFile(prev+".gz.tmp", z.Bytes(), 0o640)
			os.Rename(prev+".gz.tmp", prev+".gz")
			e.waitDelivered(r * per) // kubelet deletes only what it compressed; the agent read it first
			os.Remove(prev)
		}
	}
	e.writeMixed(3*per, 4*per)
	// The container restarts: 1.log in the same directory.
	e.w.Close()
	e.log = filepath.Join(dir, "1.log")
	e.reopen()
	e.writeMixed(4*per, 5*per)
	e.waitDelivered(5 * per)
	if d := e.dups(5 * per); d != 0 {
		t.Errorf("%d duplicates", d)
	}
	for _, ev := range e.invalid() {
		if !errors.Is(ev.Err, container.ErrKlog) {
			t.Errorf("dead letter %v %q (a compressed file read as text?)", ev.Err, ev.Raw[:min(len(ev.Raw), 60)])
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if k := e.events[5*per-1][0]["kubernetes"].(map[string]any); k["restart_count"] != 1.0 {
		t.Errorf("after the restart: %v", k)
	}
}

func TestContainerInputConfig(t *testing.T) {
	for _, tc := range []struct {
		in   InputConfig
		want string // "" valid
	}{
		{InputConfig{Paths: []string{"/var/log/pods/*/*/*.log"}, Container: "cri"}, ""},
		{InputConfig{Paths: []string{"/var/log/pods/*/*/*.log"}, Container: "auto", StderrFormat: "combined"}, ""},
		{InputConfig{Paths: []string{"/x"}, Container: "containerd"}, `inputs[0].container: must be "" (a plain file), cri, docker or auto, got "containerd"`},
		{InputConfig{Paths: []string{"/x"}, StderrFormat: "error"}, "inputs[0].stderr_format: is only for container inputs"},
	} {
		tc.in.Defaults()
		err := tc.in.Validate(0)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: err %v, want %q", tc.in, err, tc.want)
		}
	}
	in := InputConfig{Paths: []string{"/x"}, Container: "cri"}
	in.Defaults()
	if in.StderrFormat != "error" {
		t.Errorf("stderr_format default %q", in.StderrFormat)
	}
	in.StderrFormat = "$remote_addr$status" // two variables with nothing between
	if _, err := CompileInputs([]InputConfig{in}, "", os.ReadFile); err == nil || !strings.Contains(err.Error(), "inputs[0].stderr_format:") {
		t.Errorf("bad stderr_format: %v", err)
	}
}

// With more files than slots, a file parked with a line half joined
// resumes at that line's first record: the line comes out whole.
func TestContainerParkedWithPartialResumesAtItsStart(t *testing.T) {
	e := newCRIEnv(t)
	e.cfg.MaxOpenFiles = 1
	dirB := filepath.Join(e.root, "pods/web_nginx-0_uid-b/nginx")
	os.MkdirAll(dirB, 0o755)
	fB, err := os.OpenFile(filepath.Join(dirB, "0.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fB.Close()
	tails := map[*os.File]string{}
	for f, base := range map[*os.File]int{e.w: 0, fB: 105} {
		var b strings.Builder
		for i := base; i < base+20; i++ {
			b.WriteString(cri("stdout", accessLine(i)))
		}
		recs := strings.SplitAfter(cri("stdout", accessLine(base+3)), "\n") // a long line: P, P, F
		b.WriteString(recs[0] + recs[1])
		tails[f] = recs[2]
		if _, err := f.WriteString(b.String()); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	e.waitFor("both files' full lines", func() bool {
		return e.sinks[0].count(19) > 0 && e.sinks[0].count(124) > 0 && e.sinks[1].count(19) > 0 && e.sinks[1].count(124) > 0
	})
	for f, tail := range tails {
		f.WriteString(tail)
	}
	e.waitFor("the joined lines", func() bool {
		return e.sinks[0].count(3) > 1 && e.sinks[0].count(108) > 1 && e.sinks[1].count(3) > 1 && e.sinks[1].count(108) > 1
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, seq := range []int{3, 108} {
		for _, ev := range e.events[seq] {
			if uri := ev["request_uri"].(string); len(uri) < 40<<10 && strings.Contains(uri, "pad=") {
				t.Errorf("seq %d: a long line came out cut: %d bytes of request_uri", seq, len(uri))
			}
		}
	}
}

// sinks.kafka.key = "kubernetes.pod" (or .namespace, ...): a container
// input's records are keyed by its file's metadata; a plain input cannot.
func TestContainerRecordKeyFromMetadata(t *testing.T) {
	if _, err := CompileInputs([]InputConfig{{Format: "combined", Container: "cri"}}, "kubernetes.pod", os.ReadFile); err != nil {
		t.Errorf("container input keyed by kubernetes.pod: %v", err)
	}
	if _, err := CompileInputs([]InputConfig{{Format: "combined"}}, "kubernetes.pod", os.ReadFile); err == nil {
		t.Error("a plain input keyed by kubernetes.pod was accepted")
	}
	e := newCRIEnv(t)
	var mu sync.Mutex
	keys := map[string]int{}
	e.sinks[1].onEvent = func(ev *sinks.Event) {
		mu.Lock()
		keys[string(ev.Key)]++
		mu.Unlock()
	}
	for i := 0; i < 20; i++ {
		e.mustWrite([]byte(cri("stdout", accessLine(i))))
	}
	ss := []sinks.Sink{e.sinks[0], e.sinks[1]}
	a, err := New(e.cfg, e.ins, ss, Options{KeyField: "kubernetes.pod"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.a, e.stopF, e.done = a, cancel, make(chan error, 1)
	go func() { e.done <- a.Run(ctx) }()
	e.waitDelivered(20)
	mu.Lock()
	defer mu.Unlock()
	if keys["ingress-nginx-controller-7d9f8b6c5-x2x7q"] != 20 || len(keys) != 1 {
		t.Errorf("record keys %v", keys)
	}
}

// docker's json-file: escapes decoded, 16 KiB partials (no trailing "\n")
// joined, the record's stream and time kept.
func TestContainerDockerJSONFile(t *testing.T) {
	e := newCRIEnv(t)
	e.ins[0].Container = "docker"
	var b bytes.Buffer
	for i := 0; i < 50; i++ {
		l := accessLine(i) + "\n"
		for len(l) > 0 {
			n := min(len(l), 16<<10)
			rec, _ := json.Marshal(map[string]string{"log": l[:n], "stream": "stdout", "time": criTime})
			b.Write(rec)
			b.WriteByte('\n')
			l = l[n:]
		}
	}
	e.mustWrite(b.Bytes())
	e.start()
	e.waitDelivered(50)
	e.waitCheckpoint(e.log, e.size("0.log"))
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := 0; i < 50; i++ {
		ev := e.events[i][0]
		want := accessLine(i)
		if ev["stream"] != "stdout" || ev["container_time"] != criTime || !strings.Contains(want, ev["request_uri"].(string)) ||
			ev["request_headers"].(map[string]any)["user_agent"] != `test-agent/1.0 ("quoted")` {
			t.Fatalf("seq %d: %v", i, ev)
		}
	}
}
