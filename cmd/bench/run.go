package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

type bencher struct {
	o    options
	tl   *tools
	dir  string
	data string
	// records are the agent's records of each kind, captured by its first
	// Kafka run of that kind (ceiling.go).
	records map[string]*recordSet
	// cityDB and asnDB are the generator's databases (kafka-enrich).
	cityDB, asnDB string
}

// checkFormat parses the first lines of the data with the agent's parser,
// so that a format mismatch fails at once rather than at the deadline.
func checkFormat(path string) (avgEvent float64, err error) {
	p, err := parser.Compile(benchFormat, parser.Options{KeyField: "remote_addr"})
	if err != nil {
		return 0, fmt.Errorf("compile the bench format: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var r parser.Result
	var buf []byte
	var total, n int
	meta := parser.Meta{Host: "bench", File: path, Offset: 1 << 30}
	for ; n < 10000 && sc.Scan(); n++ {
		out, err := p.Parse(buf[:0], sc.Bytes(), meta, &r)
		if err != nil {
			return 0, fmt.Errorf("generated line %d does not parse: %v\n%s", n+1, err, sc.Bytes())
		}
		if s, ok := eventSeq(out); !ok || s != uint64(n) {
			return 0, fmt.Errorf("generated line %d: request_id not found in the event: %s", n+1, out)
		}
		total += len(out)
		buf = out
	}
	if n == 0 {
		return 0, errors.New("no lines generated")
	}
	return float64(total) / float64(n), sc.Err()
}

const agentConfig = `# written by cmd/bench
[agent]
hostname = "bench"
data_dir = %q
metrics_listen = %q
log_level = "warn"
%s%s
[[inputs]]
paths = [%q]
format = '%s'
read_from = "beginning"
`

const kafkaConfig = `
[sinks.kafka]
brokers = [%q]
topic = %q
key = "remote_addr"
compression = %q
dead_letter_topic = %q
%s`

const s3Config = `
[sinks.s3]
bucket = %q
region = %q
endpoint = %q
force_path_style = true
%s%s`

// s3BatchAge closes S3 batches after a second in the throughput cases, so a
// run ends when its last object is stored rather than after the default
// 5m. The paced case keeps the default, as on a web host: its objects are
// uploaded when the agent stops, before the bucket is checked.
const s3BatchAge = "batch_max_age = \"1s\"\n"

// config is the agent's config for case c with these servers (brokers,
// S3 endpoint, registry URL), metrics address, pprof line and input file.
// The ceiling of the case reads its [sinks.kafka] and [sinks.s3] tables.
func (b *bencher) config(c benchCase, rdir, brokers, endpoint, registryURL, metrics, pprofLine, input string) string {
	cfg := fmt.Sprintf(agentConfig, filepath.Join(rdir, "data"), metrics, pprofLine, tomlLines(b.o.agentTOML), input, benchFormat)
	if c.kafka {
		cfg += fmt.Sprintf(kafkaConfig, brokers, benchTopic, c.compression, dlqTopic, tomlLines(b.o.kafkaTOML))
		if c.avro {
			cfg += fmt.Sprintf("value_format = \"avro\"\n[sinks.kafka.schema_registry]\nurl = %q\n", registryURL)
		}
	}
	if c.s3 {
		age := s3BatchAge
		if c.paced {
			age = ""
		}
		cfg += fmt.Sprintf(s3Config, s3Bucket, s3Region, endpoint, age, tomlLines(b.o.s3TOML))
	}
	if e := b.enrichKeys(c); e != "" {
		cfg += "\n[enrich]\n" + e
	}
	return cfg
}

// enrichKeys is the [enrich] table of case c: -enrich-toml for every case
// when given; else, for kafka-enrich, the generator's databases
// (enrichdb.go) with client_ip from X-Forwarded-For past private proxies
// and user agents.
func (b *bencher) enrichKeys(c benchCase) string {
	if b.o.enrichTOML != "" {
		return tomlLines(b.o.enrichTOML)
	}
	if c.enrich {
		return fmt.Sprintf("client_ip_header = \"x_forwarded_for\"\ntrusted_proxies = [\"10.0.0.0/8\", \"172.16.0.0/12\"]\ngeoip_database = %q\nasn_database = %q\nuser_agent = true\n",
			b.cityDB, b.asnDB)
	}
	return ""
}

// runDir makes the work directory of one run, b.dir/name; cleanup removes
// it unless -keep.
func (b *bencher) runDir(name string) (dir string, cleanup func(), err error) {
	dir = filepath.Join(b.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	return dir, func() {
		if !b.o.keep {
			os.RemoveAll(dir)
		}
	}, nil
}

// agent runs one case once. With profile set ("PATH?seconds=N") it also
// serves pprof and writes a CPU profile of the first N seconds to PATH.
func (b *bencher) agent(ctx context.Context, c benchCase, runNo int, profile string) (res result, err error) {
	rdir, cleanup, err := b.runDir(fmt.Sprintf("%s-%d", c.name, runNo))
	if err != nil {
		return res, err
	}
	defer cleanup()
	var brokers, endpoint string
	var kafkaProc *proc
	if c.kafka {
		brokerProfile := ""
		if profile != "" {
			path, _, _ := strings.Cut(profile, "?")
			brokerProfile = strings.TrimSuffix(path, ".pprof") + ".broker.pprof"
		}
		p, addr, err := startKafka(b.tl, rdir, b.o.partitions, brokerProfile)
		if err != nil {
			return res, err
		}
		defer p.stop()
		kafkaProc = p
		brokers = strings.Split(addr, ",")[0]
	}
	registryURL := ""
	if c.avro {
		p, url, err := startRegistry(b.tl, rdir)
		if err != nil {
			return res, err
		}
		defer p.stop()
		registryURL = url
	}
	if c.s3 {
		p, ep, err := startS3(b.tl, rdir)
		if err != nil {
			return res, err
		}
		defer p.stop()
		endpoint = ep
	}
	metrics, err := freeAddr()
	if err != nil {
		return res, err
	}
	pprofLine := ""
	if profile != "" {
		pprofLine = fmt.Sprintf("pprof_listen = %q\n", metrics)
	}
	input := b.data
	n := b.o.lines
	if c.paced {
		input = filepath.Join(rdir, "paced.log")
		if err := os.WriteFile(input, nil, 0o644); err != nil {
			return res, err
		}
		n = b.o.pacedRate * int(b.o.pacedFor/time.Second)
	}
	cfg := b.config(c, rdir, brokers, endpoint, registryURL, metrics, pprofLine, input)
	cfgPath := filepath.Join(rdir, "nginx-shipper.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return res, err
	}

	var kcl *kgo.Client
	if c.kafka {
		if kcl, err = kgo.NewClient(kgo.SeedBrokers(brokers)); err != nil {
			return res, err
		}
		defer kcl.Close()
	}
	logPath := filepath.Join(rdir, "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return res, err
	}
	defer logf.Close()
	cmd := exec.Command(b.o.bin, "run", "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3Access, "AWS_SECRET_ACCESS_KEY="+s3Secret,
		"AWS_REGION="+s3Region, "AWS_EC2_METADATA_DISABLED=true")
	u := startUsage(kafkaProc)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start the agent: %w", err)
	}
	hwm := watchHWM(cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	running := true
	defer func() {
		if running {
			_ = cmd.Process.Kill()
			<-exited
		}
		if err != nil {
			err = fmt.Errorf("%w\nconfig %s; the agent's log ends with:\n%s", err, cfgPath, tail(logPath, 20))
		}
	}()
	deadline := time.Now().Add(b.o.timeout)

	// profile, started as soon as the agent serves HTTP.
	var profWG sync.WaitGroup
	var profErr error
	if profile != "" || c.paced {
		if err := waitHTTP(ctx, metrics, exited, deadline); err != nil {
			running = false
			return res, err
		}
	}
	if profile != "" {
		path, q, _ := strings.Cut(profile, "?")
		profWG.Add(1)
		go func() {
			defer profWG.Done()
			profErr = fetchTo(ctx, "http://"+metrics+"/debug/pprof/profile?"+q, path)
		}()
	}

	// The paced case's CPU is measured while the writer writes, after a
	// warm-up (the agent's start-up: sinks' checks, first scan), until
	// the writer stops: the steady state.
	var cpu0 time.Duration
	var t0 time.Time
	var warm <-chan time.Time
	writerDone := make(chan error, 1)
	if c.paced {
		warm = time.After(min(5*time.Second, b.o.pacedFor/4))
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { writerDone <- pacedWriter(wctx, input, b.o.pacedRate, b.o.pacedFor) }()
	}

	// Wait until every line is in every sink.
	w := waiter{c: c, n: int64(n), kcl: kcl, partitions: b.o.partitions, metrics: metrics}
	for {
		// While the paced writer writes, the lines cannot all be there
		// yet: do not poll (every scrape of /metrics is CPU the agent
		// spends on the bench, not on shipping: about 0.2% of a core at
		// 10 scrapes a second).
		if !c.paced || writerDone == nil {
			done, err := w.done(ctx)
			if err != nil {
				return res, err
			}
			if done {
				break
			}
		}
		select {
		case err := <-exited:
			running = false
			return res, fmt.Errorf("the agent exited before every line arrived (%v): %s", err, w.progress())
		case <-warm:
			warm = nil
			if cpu0, err = procCPU(cmd.Process.Pid); err != nil {
				return res, err
			}
			t0 = time.Now()
		case err := <-writerDone:
			if err != nil {
				return res, fmt.Errorf("paced writer: %w", err)
			}
			writerDone = nil
			cpu1, err := procCPU(cmd.Process.Pid)
			if err != nil {
				return res, err
			}
			res.cpuPct = 100 * (cpu1 - cpu0).Seconds() / time.Since(t0).Seconds()
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("after %s: %s", b.o.timeout, w.progress())
		}
	}
	res.dur = time.Since(start)
	res.lines = n
	if !w.firstAt.IsZero() {
		res.first = w.firstAt.Sub(start)
	}
	u.end(&res)
	kafkaProc.stopProfile()
	profWG.Wait()
	if profErr != nil {
		return res, fmt.Errorf("profile: %w", profErr)
	}
	if profile != "" { // the heap as the work ends, next to the CPU profile
		path, _, _ := strings.Cut(profile, "?")
		if err := fetchTo(ctx, "http://"+metrics+"/debug/pprof/heap", strings.TrimSuffix(path, ".pprof")+".heap.pprof"); err != nil {
			return res, fmt.Errorf("heap profile: %w", err)
		}
	}

	// Stop it; rusage gives its CPU and peak RSS.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return res, err
	}
	select {
	case werr := <-exited:
		running = false
		if werr != nil {
			return res, fmt.Errorf("the agent did not exit cleanly on SIGTERM: %v", werr)
		}
	case <-time.After(60 * time.Second):
		return res, errors.New("the agent did not exit within 60s of SIGTERM")
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return res, errors.New("no rusage")
	}
	res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	res.rssKiB = hwm.peak()

	// Ground truth: the broker's and the bucket's content.
	var errs []error
	if c.kafka {
		mode := seqJSON
		if c.avro {
			mode = seqAvro
		}
		// The first run of a kind captures its records for the ceiling;
		// the others are compared with them.
		var capture *recordWriter
		k := b.kind(c)
		if !c.paced && b.records[k] == nil {
			path := filepath.Join(b.dir, "records-"+strings.ReplaceAll(k, "+", "-")+".bin")
			if capture, err = newRecordWriter(path); err != nil {
				return res, err
			}
		}
		sum, e := verifyKafka(ctx, []string{brokers}, benchTopic, b.o.partitions, n, mode, capture)
		if capture != nil {
			if cerr := capture.close(); cerr != nil {
				return res, fmt.Errorf("writing the captured records: %w", cerr)
			}
			if e == nil {
				b.records[k] = &recordSet{path: capture.f.Name(), n: capture.n, sum: capture.sum}
			}
		} else if rs := b.records[k]; e == nil && rs != nil && !c.paced {
			res.same = sameRecords(sum == rs.sum)
		}
		errs = append(errs, e)
	}
	if c.s3 {
		_, e := verifyS3(ctx, endpoint, n)
		errs = append(errs, e)
	}
	res.check = errors.Join(errs...)
	return res, nil
}

// waiter knows when every line is in every sink of a case: Kafka by the
// topic's end offsets, S3 by the agent's metrics (every event spooled and
// the spool empty, i.e. uploaded), checked against the bucket afterwards.
type waiter struct {
	c          benchCase
	n          int64
	kcl        *kgo.Client
	partitions int
	metrics    string

	inKafka       int64
	firstAt       time.Time // when the first record was seen in Kafka
	spooled       float64
	batches       float64
	lastScrape    time.Time
	lastScrapeErr error
}

func (w *waiter) done(ctx context.Context) (bool, error) {
	if w.c.kafka && w.inKafka < w.n {
		n, err := endOffsets(ctx, w.kcl, benchTopic, w.partitions)
		if err != nil {
			return false, fmt.Errorf("kafka end offsets: %w", err)
		}
		w.inKafka = n
		if n > 0 && w.firstAt.IsZero() {
			w.firstAt = time.Now()
		}
		if n > w.n {
			return false, fmt.Errorf("kafka has %d records, more than the %d lines", n, w.n)
		}
		if n < w.n {
			return false, nil
		}
	}
	if !w.c.s3 {
		return true, nil
	}
	if time.Since(w.lastScrape) < 100*time.Millisecond {
		return false, nil
	}
	w.lastScrape = time.Now()
	m, err := scrape(ctx, w.metrics, map[string]string{
		"nginx_shipper_s3_events_spooled_total": "",
		"nginx_shipper_s3_spool_batches":        "",
	})
	if err != nil {
		w.lastScrapeErr = err // not up yet
		return false, nil
	}
	w.spooled, w.batches = m["nginx_shipper_s3_events_spooled_total"], m["nginx_shipper_s3_spool_batches"]
	if w.c.paced { // durably spooled; uploaded at stop (batch_max_age 5m)
		return w.spooled >= float64(w.n), nil
	}
	return w.spooled >= float64(w.n) && w.batches == 0, nil
}

func (w *waiter) progress() string {
	var s []string
	if w.c.kafka {
		s = append(s, fmt.Sprintf("kafka has %d of %d records", w.inKafka, w.n))
	}
	if w.c.s3 {
		s = append(s, fmt.Sprintf("s3: %.0f of %d events spooled, %.0f batches not uploaded (metrics error: %v)",
			w.spooled, w.n, w.batches, w.lastScrapeErr))
	}
	return strings.Join(s, "; ")
}

// pacedWriter appends rate lines per second to path for d, in slices of
// 10 ms, with the current time in each line.
func pacedWriter(ctx context.Context, path string, rate int, d time.Duration) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	g := newLineGen(time.Now())
	total := rate * int(d/time.Second)
	const slice = 10 * time.Millisecond
	start := time.Now()
	var buf []byte
	for seq := 0; seq < total; {
		// how many lines should be written by now
		due := int(float64(rate) * time.Since(start).Seconds())
		if due > total {
			due = total
		}
		buf = buf[:0]
		now := time.Now()
		for ; seq < due; seq++ {
			buf = append(buf, g.line(uint64(seq), now)...)
		}
		if len(buf) > 0 {
			if _, err := f.Write(buf); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(slice):
		}
	}
	return nil
}

// ceiling runs the bare producer (this binary's "produce" mode) as its own
// process into a fresh broker and measures it like the agent.
func (b *bencher) ceiling(ctx context.Context, runNo int) (res result, err error) {
	rdir, cleanup, err := b.runDir(fmt.Sprintf("ceiling-%d", runNo))
	if err != nil {
		return res, err
	}
	defer cleanup()
	p, addr, err := startKafka(b.tl, rdir, b.o.partitions, "")
	if err != nil {
		return res, err
	}
	defer p.stop()
	broker := strings.Split(addr, ",")[0]
	kcl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		return res, err
	}
	defer kcl.Close()
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	var out bytes.Buffer
	cmd := exec.Command(self, "produce", "-broker", broker, "-topic", benchTopic, "-file", b.data)
	cmd.Stdout, cmd.Stderr = &out, &out
	u := startUsage(p)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	hwm := watchHWM(cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var done time.Duration
	n := int64(b.o.lines)
	deadline := time.Now().Add(b.o.timeout)
	for done == 0 {
		got, err := endOffsets(ctx, kcl, benchTopic, b.o.partitions)
		if err != nil {
			_ = cmd.Process.Kill()
			<-exited
			return res, err
		}
		if got >= n {
			done = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return res, fmt.Errorf("ceiling: %d of %d records after %s", got, n, b.o.timeout)
		}
		select {
		case err := <-exited:
			if err != nil {
				return res, fmt.Errorf("producer: %v: %s", err, out.String())
			}
			got, err := endOffsets(ctx, kcl, benchTopic, b.o.partitions)
			if err != nil {
				return res, err
			}
			if got < n {
				return res, fmt.Errorf("the producer finished but the topic has %d of %d records", got, n)
			}
			done = time.Since(start)
			exited <- nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	u.end(&res)
	if err := <-exited; err != nil {
		return res, fmt.Errorf("producer: %v: %s", err, out.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res.lines, res.dur, res.rssKiB = b.o.lines, done, hwm.peak()
	res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	_, res.check = verifyKafka(ctx, []string{broker}, benchTopic, b.o.partitions, b.o.lines, seqRaw, nil)
	return res, nil
}

// produceMain is the ceiling: a bare franz-go producer (its defaults:
// acks=all, idempotent; no compression) of the file's lines, raw.
func produceMain(args []string) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	broker := fs.String("broker", "", "broker")
	topic := fs.String("topic", "", "topic")
	file := fs.String("file", "", "lines")
	linger := fs.Duration("linger", -1, "kgo.ProducerLinger (-1: default)")
	maxBuf := fs.Int("max-buffered", 0, "kgo.MaxBufferedRecords (0: default)")
	batch := fs.Int("batch-max-bytes", 0, "kgo.ProducerBatchMaxBytes (0: default)")
	cfgPath := fs.String("config", "", "with -records: the agent's config, whose [sinks.kafka] and [sinks.s3] say how to produce and upload")
	recPath := fs.String("records", "", "the records the agent sent (captured by the bench), instead of -file's raw lines")
	withKafka := fs.Bool("kafka", false, "with -records: produce them")
	withS3 := fs.Bool("s3", false, "with -records: upload their values as [sinks.s3] objects")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *recPath != "" {
		return produceRecordsMain(*cfgPath, *recPath, *withKafka, *withS3)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(*broker), kgo.DefaultProduceTopic(*topic),
		kgo.ProducerBatchCompression(kgo.NoCompression())}
	if *linger >= 0 {
		opts = append(opts, kgo.ProducerLinger(*linger))
	}
	if *maxBuf > 0 {
		opts = append(opts, kgo.MaxBufferedRecords(*maxBuf))
	}
	if *batch > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(*batch)))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	defer f.Close()
	var (
		mu   sync.Mutex
		perr error
	)
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 1<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	ctx := context.Background()
	for sc.Scan() {
		v := append([]byte(nil), sc.Bytes()...)
		cl.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return perr
}

// hwmWatcher follows a child's VmHWM (peak RSS) in /proc/PID/status.
//
// Not rusage's ru_maxrss: on Linux a child started by fork+exec (Go uses
// CLONE_VM) inherits the parent's RSS high-water mark at exec, so wait4
// would report the benchmark's own peak when it is larger.
type hwmWatcher struct {
	mu   sync.Mutex
	max  int64
	stop chan struct{}
	done chan struct{}
}

// watchHWM polls every 10 ms until the process is gone; the last 10 ms
// before exit may be missed.
func watchHWM(pid int) *hwmWatcher {
	w := &hwmWatcher{stop: make(chan struct{}), done: make(chan struct{})}
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		defer close(w.done)
		for {
			b, err := os.ReadFile(path)
			if err != nil {
				return
			}
			i := bytes.Index(b, []byte("VmHWM:"))
			if i < 0 {
				return // a zombie: the memory is gone
			}
			f := strings.Fields(string(b[i+len("VmHWM:"):]))
			if len(f) > 0 {
				if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					w.mu.Lock()
					w.max = max(w.max, v)
					w.mu.Unlock()
				}
			}
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return w
}

// peak returns the highest VmHWM seen, in KiB; call it after the process
// exited.
func (w *hwmWatcher) peak() int64 {
	select {
	case <-w.done:
	case <-time.After(time.Second):
		close(w.stop)
		<-w.done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max
}

// procCPU is utime+stime of a live process, from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// after the comm: state is field 3, utime 14, stime 15 (1-based).
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc/PID/stat times")
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// waitHTTP waits until the agent answers on its metrics address.
func waitHTTP(ctx context.Context, addr string, exited chan error, deadline time.Time) error {
	for {
		if _, err := scrape(ctx, addr, nil); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the agent exited at start (%v)", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("the agent does not serve metrics")
		}
	}
}

func fetchTo(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tomlLines turns "a = 1; b = 'x'" into one key per line.
func tomlLines(s string) string {
	var b strings.Builder
	for _, kv := range strings.Split(s, ";") {
		if kv = strings.TrimSpace(kv); kv != "" {
			b.WriteString(kv + "\n")
		}
	}
	return b.String()
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return "  (empty)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
}

// usage measures, from startUsage to end, the broker's CPU (when there is
// a broker) and how busy the whole machine was.
type usage struct {
	broker   *proc
	broker0  time.Duration
	machine0 machineCPU
}

func startUsage(broker *proc) usage {
	return usage{broker: broker, broker0: broker.cpu(), machine0: readMachineCPU()}
}

func (u usage) end(res *result) {
	res.machineBusy = readMachineCPU().busySince(u.machine0)
	if u.broker != nil {
		res.brokerCPU = u.broker.cpu() - u.broker0
	}
}

// machineCPU is /proc/stat's first line: jiffies busy and in all.
type machineCPU struct{ busy, total int64 }

func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return machineCPU{}
	}
	var m machineCPU
	// user nice system idle iowait irq softirq steal; guest times are in
	// user already.
	for i, v := range f[1:9] {
		n, _ := strconv.ParseInt(v, 10, 64)
		m.total += n
		if i != 3 && i != 4 { // idle, iowait
			m.busy += n
		}
	}
	return m
}

// busySince is the busy CPU between then and m, in cores.
func (m machineCPU) busySince(then machineCPU) float64 {
	if m.total <= then.total || then.total == 0 {
		return 0
	}
	return float64(m.busy-then.busy) / float64(m.total-then.total) * float64(runtime.NumCPU())
}
