package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
	"github.com/nginx-shipper/nginx-shipper/parser"
)

// node plays containerd and kubelet on a real directory tree: it takes the
// lines a real nginx wrote (access.log → stdout, custom.log → stderr, as
// an nginx container logging to /dev/stdout and /dev/stderr would) and
// writes them as CRI records into the container's log file, cut into 16
// KiB partials, with an ingress-nginx controller's klog lines on stderr and
// a stderr line's partials around a stdout record now and then. It
// rotates as kubelet does (rename to N.log.<timestamp>, the runtime
// reopens N.log; the previous rotated file gzipped through .gz.tmp and
// removed) and restarts the container (N+1.log).
type node struct {
	t       *testing.T
	nginx   *e2e.Nginx
	dir     string // the container's log directory
	restart int
	f       *os.File
	srcOff  [2]int64 // read offsets in access.log, custom.log
	n       int      // records written
	klogs   int
	files   []string // every log file written, rotated names included
	rotated []string // rotated files not yet compressed
}

const partialMax = 16 << 10 // containerd's

var klogLine = `I1202 01:02:03.123456       7 controller.go:214] "Backend successfully reloaded" source="node" count=%d`

func newNode(t *testing.T, n *e2e.Nginx, dir string) *node {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	nd := &node{t: t, nginx: n, dir: dir}
	nd.open()
	return nd
}

func (nd *node) live() string { return filepath.Join(nd.dir, fmt.Sprintf("%d.log", nd.restart)) }

func (nd *node) open() {
	f, err := os.OpenFile(nd.live(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		nd.t.Fatal(err)
	}
	nd.f = f
	nd.files = append(nd.files, nd.live())
}

func criRecords(b *bytes.Buffer, stream string, line []byte) {
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z")
	for len(line) > partialMax {
		fmt.Fprintf(b, "%s %s P %s\n", ts, stream, line[:partialMax])
		line = line[partialMax:]
	}
	fmt.Fprintf(b, "%s %s F %s\n", ts, stream, line)
}

// newLines returns the complete lines nginx appended to path since *off.
func newLines(t *testing.T, path string, off *int64) [][]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = b[*off:]
	end := bytes.LastIndexByte(b, '\n') + 1
	*off += int64(end)
	var out [][]byte
	for _, l := range bytes.SplitAfter(b[:end], []byte("\n")) {
		if len(l) > 0 {
			out = append(out, l[:len(l)-1])
		}
	}
	return out
}

// copy writes what nginx logged since the last copy as CRI records.
func (nd *node) copy() {
	out := newLines(nd.t, nd.nginx.AccessLog(), &nd.srcOff[0])
	errs := newLines(nd.t, nd.nginx.CustomLog(), &nd.srcOff[1])
	var b bytes.Buffer
	for i := 0; i < max(len(out), len(errs)); i++ {
		switch {
		case i < len(errs) && i < len(out) && i%9 == 4:
			// A stderr line in two partials around a stdout line.
			e := errs[i]
			ts := time.Now().UTC().Format(time.RFC3339Nano)
			cut := len(e) / 2
			fmt.Fprintf(&b, "%s stderr P %s\n", ts, e[:cut])
			criRecords(&b, "stdout", out[i])
			fmt.Fprintf(&b, "%s stderr F %s\n", ts, e[cut:])
		default:
			if i < len(out) {
				criRecords(&b, "stdout", out[i])
			}
			if i < len(errs) {
				criRecords(&b, "stderr", errs[i])
			}
		}
		if nd.n++; nd.n%40 == 0 {
			nd.klogs++
			criRecords(&b, "stderr", fmt.Appendf(nil, klogLine, nd.klogs))
		}
	}
	if _, err := nd.f.Write(b.Bytes()); err != nil {
		nd.t.Fatal(err)
	}
}

// rotate is kubelet's rotation: rename, the runtime reopens.
func (nd *node) rotate() string {
	nd.f.Close()
	to := fmt.Sprintf("%s.%s", nd.live(), time.Now().UTC().Format("20060102-150405.000000000"))
	if err := os.Rename(nd.live(), to); err != nil {
		nd.t.Fatal(err)
	}
	nd.files = append(nd.files, to)
	nd.rotated = append(nd.rotated, to)
	nd.open()
	return to
}

// compress gzips the oldest rotated file as kubelet does (through .tmp) and
// removes it.
func (nd *node) compress() {
	p := nd.rotated[0]
	nd.rotated = nd.rotated[1:]
	data, err := os.ReadFile(p)
	if err != nil {
		nd.t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(data)
	zw.Close()
	if err := os.WriteFile(p+".gz.tmp", z.Bytes(), 0o640); err != nil {
		nd.t.Fatal(err)
	}
	if err := os.Rename(p+".gz.tmp", p+".gz"); err != nil {
		nd.t.Fatal(err)
	}
	os.Remove(p)
}

// restartContainer: the container restarts; its runtime writes N+1.log.
func (nd *node) restartContainer() {
	nd.f.Close()
	nd.restart++
	nd.open()
}

// sendLong sends requests whose combined lines are longer than 16 KiB (a
// long URI, Referer and User-Agent, each within nginx's 8k header buffers).
func sendLong(t *testing.T, addr string, from, to int) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for seq := from; seq < to; seq++ {
		fmt.Fprintf(c, "GET /seq/%d?pad=%s HTTP/1.1\r\nHost: e2e.test\r\nReferer: https://r.example/%s\r\nUser-Agent: ua-%s\r\n\r\n",
			seq, strings.Repeat("p", 7000), strings.Repeat("r", 7000), strings.Repeat("u", 7000))
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("long request %d: %v", seq, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// containerFields are the fields a container input adds; the rest must be
// what the unwrapped line parses to.
var containerFields = []string{"host", "log_file", "log_offset", "stream", "container_time", "kubernetes"}

// expected parses every line nginx wrote (the oracle) into its event
// fields, by stream and seq.
func expected(t *testing.T, path, format string) map[int]map[string]any {
	t.Helper()
	p, err := parser.Compile(format, parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var r parser.Result
	out := map[int]map[string]any{}
	b, _ := os.ReadFile(path)
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		v, err := p.Parse(nil, l, parser.Meta{}, &r)
		if err != nil {
			t.Fatalf("%s: nginx's own line does not parse: %v: %q", path, err, l)
		}
		ev, err := e2e.DecodeEvent(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range containerFields {
			delete(ev.Fields, k)
		}
		if _, dup := out[ev.Seq]; dup {
			t.Fatalf("%s: seq %d twice", path, ev.Seq)
		}
		out[ev.Seq] = ev.Fields
	}
	return out
}

// TestE2EKubernetesNode: a simulated node (see node) with real nginx lines;
// the agent reads the container's log files through the /var/log/pods glob
// and the /var/log/containers symlink, is killed -9 and restarted while
// kubelet rotates, and the container restarts. Every line is in Kafka and
// S3, exactly as its unwrapped line parses, with its metadata.
func TestE2EKubernetesNode(t *testing.T) {
	skipShort(t)
	ph := newPhases(t)
	root := filepath.Join(t.TempDir(), "var", "log")
	const pod, ns, uid, ctr = "ingress-nginx-controller-5c8d7b9f4-q7w2z", "ingress-nginx", "3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b", "controller"
	podDir := filepath.Join(root, "pods", ns+"_"+pod+"_"+uid, ctr)
	t.Setenv("NODE_NAME", "node-1")
	env := e2e.NewEnv(t, e2e.EnvOptions{Inputs: func(n *e2e.Nginx) []e2e.Input {
		return []e2e.Input{{
			Paths:        []string{filepath.Join(root, "pods", "*", "*", "*.log"), filepath.Join(root, "containers", "*.log")},
			Exclude:      []string{"*.gz", "*.tmp"},
			Format:       "combined",
			Container:    "cri",
			StderrFormat: e2e.CustomFormat,
		}}
	}})
	nd := newNode(t, env.Nginx, podDir)
	os.MkdirAll(filepath.Join(root, "containers"), 0o755)
	if err := os.Symlink(nd.live(), filepath.Join(root, "containers", pod+"_"+ns+"_"+ctr+"-0123456789abcdef0123456789abcdef.log")); err != nil {
		t.Fatal(err)
	}
	dlt := env.Kafka.Consume(t, env.DLT)
	p := env.StartShipper()
	ph.done("setup")

	seq, longs := 0, 0
	step := func(n int) {
		reqs := e2e.Send(t, env.Nginx.Addr, seq, seq+n)
		sendLong(t, env.Nginx.Addr, 100000+seq, 100000+seq+3)
		for s := 100000 + seq; s < 100000+seq+3; s++ {
			reqs[s] = e2e.Request{Seq: s}
		}
		waitLogged(t, reqs, env.Nginx.AccessLog())
		waitLogged(t, reqs, env.Nginx.CustomLog())
		nd.copy()
		seq += n
		longs += 3
	}
	kafkaHas := func(n int) func() (bool, string) {
		return func() (bool, string) {
			return env.KafkaConsumer().Len() >= n, fmt.Sprintf("%d", env.KafkaConsumer().Len())
		}
	}

	step(300)
	nd.rotate()
	step(300)
	e2e.WaitFor(t, 60*time.Second, "half the lines in Kafka", kafkaHas(600))
	e2e.WaitFor(t, 60*time.Second, "a checkpoint past the first lines", func() (bool, string) {
		cps, err := e2e.Checkpoints(env.Cfg.DataDir)
		for _, off := range cps {
			if off > 0 {
				return true, ""
			}
		}
		return false, fmt.Sprint(cps, err)
	})
	p.Kill9()
	ph.done("600 lines, a rotation, kill -9")
	step(300) // while the agent is down
	nd.rotate()
	step(200)
	p.Start()
	ph.done("500 more lines and a rotation while down, restarted")
	step(200)
	// kubelet compresses the older rotated file once it is old; the agent
	// read it long before (as in a cluster, where rotation is at 10 MiB).
	want := 2 * (seq + longs) // access + custom lines so far
	e2e.WaitFor(t, 120*time.Second, "every line so far in Kafka", kafkaHas(want))
	nd.compress()
	// Another pod, deleted by kubelet while the agent has lines of its file
	// still to read: they were on disk when the agent opened it.
	podB := filepath.Join(root, "pods", "web_nginx-0_7a6b5c4d-0000-4000-8000-000000000001", "nginx")
	os.MkdirAll(podB, 0o755)
	fb, err := os.OpenFile(filepath.Join(podB, "0.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	var linesB bytes.Buffer
	writeB := func(from, to int) {
		var b bytes.Buffer
		for s := from; s < to; s++ {
			l := fmt.Sprintf(`10.1.0.%d - - [02/Dec/2026:01:02:03 +0000] "GET /seq/%d HTTP/1.1" 200 %d "-" "pod-b"`, s%250, s, s%900)
			linesB.WriteString(l + "\n")
			criRecords(&b, "stdout", []byte(l))
		}
		fb.Write(b.Bytes())
	}
	writeB(200000, 200200)
	e2e.WaitFor(t, 60*time.Second, "the other pod's file opened", func() (bool, string) {
		for _, ev := range env.KafkaEvents() {
			if ev.Seq >= 200000 {
				return true, ""
			}
		}
		return false, ""
	})
	writeB(200200, 200500)
	fb.Close()
	if err := os.RemoveAll(filepath.Dir(podB)); err != nil {
		t.Fatal(err)
	}
	nd.restartContainer()
	step(300)
	// A file born and renamed within one scan is never seen by name (as on
	// a host); kubelet rotates at 10 MiB, long after the agent opened it.
	e2e.WaitFor(t, 120*time.Second, "the restarted container's lines in Kafka", kafkaHas(2*(seq+longs)))
	nd.rotate()
	step(200)
	ph.done("container restarted, compressed, rotated")

	wantOut := expected(t, env.Nginx.AccessLog(), "combined")
	bfile := filepath.Join(t.TempDir(), "pod-b.log")
	os.WriteFile(bfile, linesB.Bytes(), 0o644)
	for s, f := range expected(t, bfile, "combined") {
		wantOut[s] = f
	}
	wantErr := expected(t, env.Nginx.CustomLog(), e2e.CustomFormat)
	total := len(wantOut) + len(wantErr)
	// Wait for every line; on a time-out go on to say which are missing.
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		all := true
		for _, sink := range env.Sinks() {
			all = all && len(env.Events(sink)) >= total
		}
		if all {
			break
		}
	}
	if code := p.Term(60 * time.Second); code != 0 {
		t.Errorf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}
	ph.done("both sinks caught up, stopped")
	env.Final() // the consumer read to the topic's end, every object downloaded

	for _, sink := range env.Sinks() {
		got := map[string]map[int]int{"stdout": {}, "stderr": {}}
		bad := 0
		for _, ev := range env.Events(sink) {
			stream, _ := ev.Fields["stream"].(string)
			k, _ := ev.Fields["kubernetes"].(map[string]any)
			wantNS, wantPod, wantUID, wantCtr := ns, pod, uid, ctr
			if ev.Seq >= 200000 {
				wantNS, wantPod, wantUID, wantCtr = "web", "nginx-0", "7a6b5c4d-0000-4000-8000-000000000001", "nginx"
			}
			if k["namespace"] != wantNS || k["pod"] != wantPod || k["pod_uid"] != wantUID || k["container"] != wantCtr || k["node"] != "node-1" {
				t.Errorf("%s: seq %d: kubernetes %v", sink, ev.Seq, k)
				bad++
			}
			if _, ok := ev.Fields["container_time"].(string); !ok {
				t.Errorf("%s: seq %d: no container_time", sink, ev.Seq)
			}
			w := wantOut
			if stream == "stderr" {
				w = wantErr
			}
			fields := ev.Fields
			for _, f := range containerFields {
				delete(fields, f)
			}
			if exp, ok := w[ev.Seq]; !ok || !reflect.DeepEqual(exp, fields) {
				if bad++; bad < 5 {
					t.Errorf("%s: %s seq %d: event is not its unwrapped line's parse:\n got  %v\n want %v", sink, stream, ev.Seq, fields, exp)
				}
			}
			got[stream][ev.Seq]++
		}
		var missing []int
		dups := 0
		for stream, w := range map[string]map[int]map[string]any{"stdout": wantOut, "stderr": wantErr} {
			for s := range w {
				switch c := got[stream][s]; {
				case c == 0:
					missing = append(missing, s)
				case c > 1:
					dups += c - 1
				}
			}
		}
		sort.Ints(missing)
		if len(missing) > 0 {
			t.Errorf("%s: %d of %d lines missing, first %v, last %v", sink, len(missing), total, e2e.First(missing, 10), missing[max(0, len(missing)-5):])
		}
		t.Logf("%s: lines written %d (stdout %d, stderr %d, %d of them 14-21 KiB long, 500 from a pod deleted while being read), missing %d, duplicated %d",
			sink, total, len(wantOut), len(wantErr), 2*longs, len(missing), dups)
	}
	// The controller's klog lines are dead letters, every one.
	dlt.WaitEnd(30 * time.Second)
	klogs := 0
	for _, v := range dlt.Values() {
		if bytes.HasPrefix(v, []byte("I1202 ")) {
			klogs++
		} else {
			t.Errorf("unexpected dead letter %.100q", v)
		}
	}
	if klogs < nd.klogs {
		t.Errorf("%d klog lines in the dead-letter topic, %d written", klogs, nd.klogs)
	}
	t.Logf("klog lines: %d written, %d dead letters; files: %d", nd.klogs, klogs, len(nd.files))
}
