// Command demo runs the already built agent (bin/nginx-shipper) on a bundled
// sample of nginx access-log lines, shipping them into a Kafka (franz-go's
// kfake) and an S3 (gofakes3, memory backend) that it runs in-process on
// 127.0.0.1, so that it needs nothing but Go. Kafka gets Avro records
// (value_format = "avro") whose schema the agent registers in a schema
// registry also run here (sinks/kafka/devregistry). It waits until every
// line is in both, stops the agent with SIGTERM and shows what arrived: an
// Avro record decoded through the registry, and the same event in S3.
//
//	make demo      (or: make build && go run ./cmd/demo)
//
// It exits non-zero with a message on any failure, and always removes its
// temporary directory and stops the agent.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks/kafka/devregistry"
)

const (
	topic     = "nginx-access"
	dlqTopic  = "nginx-access-invalid"
	bucket    = "logs"
	partCount = 3
)

func main() {
	bin := flag.String("bin", "bin/nginx-shipper", "the agent binary (make build)")
	sample := flag.String("sample", "testdata/sample/access.log", "nginx access log (combined format) to ship")
	timeout := flag.Duration("timeout", 60*time.Second, "give up when the lines have not all arrived by then")
	keep := flag.Bool("keep", false, "keep the temporary directory (config, agent log, data_dir)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *bin, *sample, *timeout, *keep)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, sample string, timeout time.Duration, keep bool) (err error) {
	bin, err = filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("the agent is not built (%w): run `make build` first, or use `make demo`", err)
	}
	raw, err := os.ReadFile(sample)
	if err != nil {
		return fmt.Errorf("read the sample: %w", err)
	}
	valid, invalid, err := countValid(raw)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "nginx-shipper-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if keep {
			fmt.Printf("\nkept %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	logPath := filepath.Join(dir, "log", "access.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(logPath, raw, 0o644); err != nil {
		return err
	}

	// Kafka: kfake in this process.
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partCount, topic), kfake.SeedTopics(1, dlqTopic))
	if err != nil {
		return fmt.Errorf("start kfake: %w", err)
	}
	defer kc.Close()
	brokers := kc.ListenAddrs()

	// S3: gofakes3 with its memory backend, served here.
	s3b := s3mem.New()
	if err := s3b.CreateBucket(bucket); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: gofakes3.New(s3b, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()}
	go srv.Serve(ln)
	defer srv.Close()
	endpoint := "http://" + ln.Addr().String()

	// The schema registry: srfake, checking like the real one.
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	rsrv := &http.Server{Handler: devregistry.New().Handler()}
	go rsrv.Serve(rln)
	defer rsrv.Close()
	registryURL := "http://" + rln.Addr().String()

	metrics, err := freeAddr()
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "nginx-shipper.toml")
	cfg := fmt.Sprintf(configTmpl, filepath.Join(dir, "data"), metrics, logPath, quoteList(brokers), topic, dlqTopic, registryURL, bucket, endpoint)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}

	fmt.Println("nginx-shipper demo")
	fmt.Printf("  sample  %s: %d lines (%d access-log lines, %d that are not)\n", sample, valid+invalid, valid, invalid)
	fmt.Printf("  kafka   %s (kfake, in this process), topics %s and %s\n", strings.Join(brokers, ","), topic, dlqTopic)
	fmt.Printf("  schema registry %s (srfake checking Avro and compatibility, in this process)\n", registryURL)
	fmt.Printf("  s3      %s (gofakes3, in this process), bucket %s\n", endpoint, bucket)
	fmt.Printf("  agent   %s run -c %s\n", relPath(bin), cfgPath)

	// The agent.
	agentLog, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return err
	}
	defer agentLog.Close()
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	cmd.Stdout = agentLog
	cmd.Stderr = agentLog
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID=demo", "AWS_SECRET_ACCESS_KEY=demo-secret", "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the agent: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	running := true
	defer func() {
		if running {
			cmd.Process.Kill()
			<-exited
		}
		if err != nil && strings.HasSuffix(err.Error(), ":") {
			err = fmt.Errorf("%w\n%s", err, tail(agentLog.Name(), 25))
		}
	}()

	fmt.Printf("\nwaiting for %d events in Kafka and S3 and %d dead letters ", valid, invalid)
	var st state
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	dots := 0
	for {
		st, err = observe(kc, s3b)
		if err != nil {
			fmt.Println()
			return err
		}
		if st.events >= int64(valid) && st.dead >= int64(invalid) && st.s3Lines >= int64(valid) {
			break
		}
		select {
		case <-tick.C:
			if dots++; dots%10 == 0 {
				fmt.Print(".")
			}
			continue
		case err := <-exited:
			running = false
			fmt.Println()
			return fmt.Errorf("the agent exited early (%v); its log ends with:", err)
		case <-deadline.C:
			fmt.Println()
			return fmt.Errorf("after %s: Kafka has %d of %d events and %d of %d dead letters, S3 has %d of %d; the agent's log ends with:",
				timeout, st.events, valid, st.dead, invalid, st.s3Lines, valid)
		case <-ctx.Done():
			fmt.Println()
			return errors.New("interrupted")
		}
	}
	fmt.Printf(" done in %.1fs\n", time.Since(start).Seconds())

	// Stop it as systemd would.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM the agent: %w", err)
	}
	select {
	case werr := <-exited:
		running = false
		if werr != nil {
			return fmt.Errorf("the agent did not exit cleanly on SIGTERM: %v; its log ends with:", werr)
		}
	case <-time.After(30 * time.Second):
		return errors.New("the agent did not exit within 30s of SIGTERM; its log ends with:")
	}
	fmt.Println("stopped the agent with SIGTERM: exit status 0")

	// What arrived, after the agent's final flush.
	if st, err = observe(kc, s3b); err != nil {
		return err
	}
	var problems []string
	if st.events != int64(valid) {
		problems = append(problems, fmt.Sprintf("Kafka topic %s has %d records, want %d", topic, st.events, valid))
	}
	if st.dead != int64(invalid) {
		problems = append(problems, fmt.Sprintf("Kafka topic %s has %d records, want %d", dlqTopic, st.dead, invalid))
	}
	if st.s3Lines != int64(valid) {
		problems = append(problems, fmt.Sprintf("S3 has %d events, want %d", st.s3Lines, valid))
	}

	fmt.Println("\nKafka")
	fmt.Printf("  %-22s %4d records (one per access-log line, Avro: Confluent wire format)\n", topic, st.events)
	fmt.Printf("  %-22s %4d records (the lines that did not parse, raw)\n", dlqTopic, st.dead)
	fmt.Printf("S3 (bucket %s: gzip NDJSON)\n", bucket)
	for _, o := range st.objects {
		fmt.Printf("  %s  %6d bytes  %4d events\n", o.key, o.size, o.lines)
	}

	rcl, err := sr.NewClient(sr.URLs(registryURL))
	if err != nil {
		return err
	}
	ev, dead, err := sampleRecords(ctx, brokers, rcl)
	if err != nil {
		return err
	}
	if dead != "" {
		fmt.Printf("\nA dead letter (%s): %s\n", dlqTopic, dead)
	}
	fmt.Printf("\nOne record from %s, decoded through the schema registry:\n%s\n", topic, ev)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Printf("\nOK: all %d events are in Kafka and in S3, and the %d other lines in %s.\n", valid, invalid, dlqTopic)
	return nil
}

const configTmpl = `# written by cmd/demo
[agent]
hostname = "demo-web-1"
data_dir = %q
metrics_listen = %q

[[inputs]]
paths = [%q]
format = "combined"
escape = "default"
read_from = "beginning"

[sinks.kafka]
brokers = %s
topic = %q
key = "remote_addr"
compression = "zstd"
dead_letter_topic = %q
value_format = "avro"

[sinks.kafka.schema_registry]
url = %q

[sinks.s3]
bucket = %q
region = "us-east-1"
endpoint = %q
force_path_style = true
prefix = "nginx/dt=%%Y-%%m-%%d/hour=%%H/"
batch_max_age = "2s"
`

// countValid counts the sample's lines that the combined format parses, and
// those it does not.
func countValid(raw []byte) (valid, invalid int, err error) {
	p, err := parser.Compile("combined", parser.Options{})
	if err != nil {
		return 0, 0, fmt.Errorf("compile the combined format: %w", err)
	}
	var r parser.Result
	var buf []byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if _, err := p.Parse(buf[:0], sc.Bytes(), parser.Meta{}, &r); err != nil {
			invalid++
		} else {
			valid++
		}
	}
	return valid, invalid, sc.Err()
}

type object struct {
	key   string
	size  int64
	lines int64
}

type state struct {
	events, dead, s3Lines int64
	objects               []object
}

// observe counts the records in both topics (high watermarks: no
// transactions, so one offset is one record) and the events in the bucket.
func observe(kc *kfake.Cluster, s3b *s3mem.Backend) (state, error) {
	var st state
	for _, pi := range kc.PartitionInfos(topic) {
		st.events += pi.HighWatermark
	}
	for _, pi := range kc.PartitionInfos(dlqTopic) {
		st.dead += pi.HighWatermark
	}
	list, err := s3b.ListBucket(bucket, nil, gofakes3.ListBucketPage{})
	if err != nil {
		return st, fmt.Errorf("list the bucket: %w", err)
	}
	for _, c := range list.Contents {
		o, err := s3b.GetObject(bucket, c.Key, nil)
		if err != nil {
			return st, fmt.Errorf("get %s: %w", c.Key, err)
		}
		n, err := countGzipLines(o.Contents)
		o.Contents.Close()
		if err != nil {
			return st, fmt.Errorf("object %s: %w", c.Key, err)
		}
		st.objects = append(st.objects, object{key: c.Key, size: c.Size, lines: n})
		st.s3Lines += n
	}
	sort.Slice(st.objects, func(i, j int) bool { return st.objects[i].key < st.objects[j].key })
	return st, nil
}

func countGzipLines(r io.Reader) (int64, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return 0, fmt.Errorf("not gzip: %w", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return 0, fmt.Errorf("gunzip: %w", err)
	}
	return int64(bytes.Count(b, []byte("\n"))), nil
}

// sampleRecords consumes both topics and returns one event, decoded from
// its Avro record with the schema the registry holds for the record's id,
// shown with the framing (one whose user agent had escaped quotes, when
// there is one), and one dead letter.
func sampleRecords(ctx context.Context, brokers []string, rcl *sr.Client) (event, dead string, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic, dlqTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return "", "", err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	schemas := map[int]*avro.Schema{}
	var hdr sr.ConfluentHeader
	decode := func(v []byte) (string, error) {
		id, body, err := hdr.DecodeID(v)
		if err != nil {
			return "", fmt.Errorf("not the Confluent wire format: %w", err)
		}
		sch := schemas[id]
		if sch == nil {
			ss, err := rcl.SchemaByID(ctx, id)
			if err != nil {
				return "", fmt.Errorf("schema %d from the registry: %w", id, err)
			}
			if sch, err = avro.Parse(ss.Schema); err != nil {
				return "", err
			}
			schemas[id] = sch
		}
		var rec map[string]any
		if _, err := sch.Decode(body, &rec); err != nil {
			return "", fmt.Errorf("decoding with schema %d: %w", id, err)
		}
		for k, x := range rec {
			if t, ok := x.(time.Time); ok {
				rec[k] = t.UTC().Format(time.RFC3339Nano)
			}
		}
		js, err := json.MarshalIndent(rec, "", "  ")
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("magic byte %d, schema id %d, %d bytes of Avro:\n%s", v[0], id, len(body), js), nil
	}
	var first, quoted string
	for (quoted == "" || dead == "") && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(t string, p int32, e error) {
			if !errors.Is(e, context.DeadlineExceeded) && !errors.Is(e, context.Canceled) {
				err = fmt.Errorf("consume %s[%d]: %w", t, p, e)
			}
		})
		if err != nil {
			return "", "", err
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case dlqTopic:
				if dead == "" {
					dead = string(r.Value)
				}
			case topic:
				if err != nil || quoted != "" {
					return
				}
				var ev string
				if ev, err = decode(r.Value); err != nil {
					return
				}
				if first == "" {
					first = ev
				}
				if strings.Contains(ev, `\"`) && strings.Contains(ev, `user_agent`) {
					quoted = ev
				}
			}
		})
		if err != nil {
			return "", "", err
		}
	}
	if quoted == "" {
		quoted = first
	}
	if quoted == "" {
		return "", "", errors.New("could not consume an event from Kafka")
	}
	return quoted, dead, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func relPath(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return p
}

// tail returns the last n lines of the agent's log, indented.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return "  (the agent's log is empty)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
}
