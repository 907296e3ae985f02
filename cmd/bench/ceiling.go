package main

// The fair ceiling (issue 18): for each case, a bare franz-go producer of
// the very records the agent sent in that case (key, value, headers,
// timestamp; the same partitions follow from the same partitioner),
// preloaded in memory, with the agent's own producer options
// (sinks/kafka.ProducerOptions of the same [sinks.kafka] table), into a
// fresh broker; with S3, at the same time in the same process, a bare
// uploader that gzips the same events at the sink's level into objects of
// batch_max_bytes and uploads them as the sink does (PutObject with a
// CRC-32 below multipart_threshold, the SDK's multipart uploader above,
// upload_concurrency at once).
//
// The records are captured, not rebuilt: the first agent run of a case
// whose records are not known yet writes every record it consumes from the
// topic (to check exactly-once delivery) to a file, so the ceiling's
// records are byte for byte the agent's, for JSON, Avro (with the schema id
// the registry gave) and enriched events alike. Every later Kafka run
// (agent or ceiling) hashes the records it finds in its topic; the table's
// "same" column says whether they match the captured set (partition, key,
// value, headers, timestamp, as an order-independent sum of 64-bit hashes).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/gzip"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nginx-shipper/nginx-shipper/sinks/kafka"
	s3sink "github.com/nginx-shipper/nginx-shipper/sinks/s3"
)

// recordSeed seeds the record hashes; they are only compared within one
// bench process.
var recordSeed = maphash.MakeSeed()

// recordSet is the captured records of one kind (see bencher.kind).
type recordSet struct {
	path string
	n    int
	sum  uint64 // of recordHash over the records
}

// recordHash hashes what makes a record the same record.
func recordHash(r *kgo.Record) uint64 {
	var h maphash.Hash
	h.SetSeed(recordSeed)
	var b [12]byte
	field := func(p []byte) {
		binary.LittleEndian.PutUint32(b[:4], uint32(len(p)))
		if p == nil {
			binary.LittleEndian.PutUint32(b[:4], 1<<31) // null, not empty
		}
		h.Write(b[:4])
		h.Write(p)
	}
	binary.LittleEndian.PutUint32(b[:4], uint32(r.Partition))
	binary.LittleEndian.PutUint64(b[4:], uint64(r.Timestamp.UnixMilli()))
	h.Write(b[:])
	field([]byte(r.Topic))
	field(r.Key)
	field(r.Value)
	for _, hd := range r.Headers {
		field([]byte(hd.Key))
		field(hd.Value)
	}
	return h.Sum64()
}

// recordWriter writes records to a capture file: for each, uvarints of the
// partition, the timestamp (ms), len(key)+1 (0: no key) and the key, the
// value's length and the value, the number of headers and each header's
// key and value, length first.
type recordWriter struct {
	f   *os.File
	w   *bufio.Writer
	n   int
	sum uint64
	buf []byte
}

func newRecordWriter(path string) (*recordWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &recordWriter{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (w *recordWriter) add(r *kgo.Record) {
	b := w.buf[:0]
	b = binary.AppendUvarint(b, uint64(r.Partition))
	b = binary.AppendVarint(b, r.Timestamp.UnixMilli())
	if r.Key == nil {
		b = binary.AppendUvarint(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(r.Key))+1)
		b = append(b, r.Key...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Value)))
	b = append(b, r.Value...)
	b = binary.AppendUvarint(b, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = append(b, h.Key...)
		b = binary.AppendUvarint(b, uint64(len(h.Value)))
		b = append(b, h.Value...)
	}
	w.buf = b
	_, _ = w.w.Write(b) // the error is kept by bufio and returned by close
	w.n++
	w.sum += recordHash(r)
}

func (w *recordWriter) close() error {
	err := w.w.Flush()
	return errors.Join(err, w.f.Close())
}

// readRecords loads a capture file into memory: the records' bytes point
// into one buffer.
func readRecords(path, topic string) (recs []kgo.Record, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var hdrs []kgo.RecordHeader
	names := map[string]string{} // header keys, interned
	bad := errors.New("truncated record file " + path)
	uv := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			panic(bad)
		}
		b = b[n:]
		return v
	}
	bytesN := func(n uint64) []byte {
		if uint64(len(b)) < n {
			panic(bad)
		}
		p := b[:n:n]
		b = b[n:]
		return p
	}
	defer func() {
		if r := recover(); r != nil {
			if r != bad {
				panic(r)
			}
			err = bad
		}
	}()
	for len(b) > 0 {
		var r kgo.Record
		r.Topic = topic
		r.Partition = int32(uv())
		ts, n := binary.Varint(b)
		if n <= 0 {
			return nil, bad
		}
		b = b[n:]
		r.Timestamp = time.UnixMilli(ts)
		if k := uv(); k > 0 {
			r.Key = bytesN(k - 1)
		}
		r.Value = bytesN(uv())
		nh := int(uv())
		if len(hdrs) < nh {
			hdrs = make([]kgo.RecordHeader, max(nh, 64<<10))
		}
		r.Headers, hdrs = hdrs[:nh:nh], hdrs[nh:]
		for i := range r.Headers {
			k := bytesN(uv())
			name, ok := names[string(k)]
			if !ok {
				name = string(k)
				names[name] = name
			}
			r.Headers[i].Key = name
			r.Headers[i].Value = bytesN(uv())
		}
		recs = append(recs, r)
	}
	return recs, err
}

// kind names the records a case makes: the same lines give the same
// records whatever the compression and whichever other sink is on.
func (b *bencher) kind(c benchCase) string {
	k := "json"
	if c.avro {
		k = "avro"
	}
	if b.enrichKeys(c) != "" {
		k += "+enrich"
	}
	return k
}

// recordsFor returns the captured records of c's kind; when no agent run
// captured them yet, it makes an unmeasured one (Kafka, no compression) that
// does.
func (b *bencher) recordsFor(ctx context.Context, c benchCase) (*recordSet, error) {
	k := b.kind(c)
	if rs := b.records[k]; rs != nil {
		return rs, nil
	}
	cc := benchCase{name: "capture-" + strings.ReplaceAll(k, "+", "-"), kafka: true, compression: "none", avro: c.avro, enrich: c.enrich}
	res, err := b.agent(ctx, cc, 0, "")
	if err != nil {
		return nil, fmt.Errorf("capturing the agent's %s records: %w", k, err)
	}
	if res.check != nil {
		return nil, fmt.Errorf("capturing the agent's %s records: %w", k, res.check)
	}
	if rs := b.records[k]; rs != nil {
		return rs, nil
	}
	return nil, fmt.Errorf("capturing the agent's %s records: none captured", k)
}

// hasCeiling reports whether a case is measured against its own ceiling.
func (c benchCase) hasCeiling() bool { return !c.paced && (c.kafka || c.s3) }

// caseCeiling runs c's own ceiling once: the captured records (and, with
// S3, their gzip objects) produced by `bench produce -records` into a fresh
// broker and S3, measured like the agent from the moment it starts
// producing (loading the records is not counted; its peak RSS holds them).
func (b *bencher) caseCeiling(ctx context.Context, c benchCase, runNo int) (res result, err error) {
	rs, err := b.recordsFor(ctx, c)
	if err != nil {
		return res, err
	}
	rdir, cleanup, err := b.runDir(fmt.Sprintf("ceil-%s-%d", c.name, runNo))
	if err != nil {
		return res, err
	}
	defer cleanup()
	var brokers, endpoint string
	var kafkaProc *proc
	var kcl *kgo.Client
	if c.kafka {
		p, addr, err := startKafka(b.tl, rdir, b.o.partitions, "")
		if err != nil {
			return res, err
		}
		defer p.stop()
		kafkaProc = p
		brokers = strings.Split(addr, ",")[0]
		if kcl, err = kgo.NewClient(kgo.SeedBrokers(brokers)); err != nil {
			return res, err
		}
		defer kcl.Close()
	}
	if c.s3 {
		p, ep, err := startS3(b.tl, rdir)
		if err != nil {
			return res, err
		}
		defer p.stop()
		endpoint = ep
	}
	// The agent's config for the case, with this run's servers; the
	// registry is not asked (the records carry their schema id).
	cfg := b.config(c, rdir, brokers, endpoint, "http://127.0.0.1:9", "127.0.0.1:0", "", b.data)
	cfgPath := filepath.Join(rdir, "nginx-shipper.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return res, err
	}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	args := []string{"produce", "-config", cfgPath, "-records", rs.path}
	if c.kafka {
		args = append(args, "-kafka")
	}
	if c.s3 {
		args = append(args, "-s3")
	}
	var errOut bytes.Buffer
	cmd := exec.Command(self, args...)
	cmd.Stderr = &errOut
	cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return res, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	hwm := watchHWM(cmd.Process.Pid)
	exited := make(chan error, 1)
	loaded := make(chan error, 1)
	go func() {
		l, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && !strings.HasPrefix(l, "loaded") {
			err = fmt.Errorf("unexpected %q", l)
		}
		loaded <- err
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	running := true
	defer func() {
		if running {
			_ = cmd.Process.Kill()
			<-exited
		}
		if err != nil {
			err = fmt.Errorf("%w\nconfig %s; the producer said: %s", err, cfgPath, errOut.String())
		}
	}()
	select {
	case err := <-loaded:
		if err != nil {
			return res, fmt.Errorf("the producer did not load its records: %v", err)
		}
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(b.o.timeout):
		return res, errors.New("the producer did not load its records in time")
	}
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	u := startUsage(kafkaProc)
	start := time.Now()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		return res, err
	}
	n := int64(b.o.lines)
	deadline := start.Add(b.o.timeout)
	kafkaDone := !c.kafka
	var exitErr error
	exitedNow := false
	for !(kafkaDone && (exitedNow || !c.s3)) {
		if !kafkaDone {
			got, err := endOffsets(ctx, kcl, benchTopic, b.o.partitions)
			if err != nil {
				return res, err
			}
			if got >= n {
				kafkaDone = true
				res.dur = time.Since(start)
				continue
			}
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("ceiling not done after %s", b.o.timeout)
		}
		select {
		case exitErr = <-exited:
			running, exitedNow = false, true
			if exitErr != nil {
				return res, fmt.Errorf("producer: %v", exitErr)
			}
			if c.s3 {
				res.dur = max(res.dur, time.Since(start))
			}
			if !kafkaDone { // it flushed: the offsets are final
				got, err := endOffsets(ctx, kcl, benchTopic, b.o.partitions)
				if err != nil {
					return res, err
				}
				if got < n {
					return res, fmt.Errorf("the producer finished but the topic has %d of %d records", got, n)
				}
				kafkaDone = true
				res.dur = max(res.dur, time.Since(start))
			}
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	u.end(&res)
	if running {
		exitErr = <-exited
		running = false
		if exitErr != nil {
			return res, fmt.Errorf("producer: %v", exitErr)
		}
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res.lines, res.rssKiB = b.o.lines, hwm.peak()
	res.cpu = time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) - cpu0
	var errs []error
	if c.kafka {
		mode := seqJSON
		if c.avro {
			mode = seqAvro
		}
		sum, e := verifyKafka(ctx, []string{brokers}, benchTopic, b.o.partitions, b.o.lines, mode, nil)
		errs = append(errs, e)
		if e == nil {
			res.same = sameRecords(sum == rs.sum)
		}
	}
	if c.s3 {
		_, e := verifyS3(ctx, endpoint, b.o.lines)
		errs = append(errs, e)
	}
	res.check = errors.Join(errs...)
	return res, nil
}

// sameRecords is result.same for a comparison.
func sameRecords(ok bool) int8 {
	if ok {
		return 1
	}
	return -1
}

// produceRecordsMain is `bench produce -config FILE -records FILE [-kafka]
// [-s3]`: the fair ceiling's process. It loads the records, says "loaded N"
// on stdout, waits for a line on stdin, then produces them with the
// producer options of the config's [sinks.kafka] and, at the same time,
// uploads their values as the config's [sinks.s3] would store them.
func produceRecordsMain(cfgPath, recPath string, withKafka, withS3 bool) error {
	var file struct {
		Sinks struct {
			Kafka kafka.Config  `toml:"kafka"`
			S3    s3sink.Config `toml:"s3"`
		} `toml:"sinks"`
	}
	if _, err := toml.DecodeFile(cfgPath, &file); err != nil {
		return fmt.Errorf("%s: %w", cfgPath, err)
	}
	kc, sc := file.Sinks.Kafka, file.Sinks.S3
	kc.Hostname, sc.Hostname = "bench", "bench"
	sc.Defaults()
	recs, err := readRecords(recPath, kc.Topic)
	if err != nil {
		return err
	}
	var cl *kgo.Client
	if withKafka {
		opts, err := kafka.ProducerOptions(kc)
		if err != nil {
			return err
		}
		if cl, err = kgo.NewClient(opts...); err != nil {
			return err
		}
		defer cl.Close()
	}
	// The preloaded records are a live heap the agent does not have (1.5
	// GB for 2M lines): collecting it while producing would charge the
	// ceiling for the preload. Collect once now, then only past a limit
	// well above it.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	debug.SetMemoryLimit(int64(ms.HeapAlloc) + 2<<30)
	debug.SetGCPercent(-1)
	fmt.Printf("loaded %d\n", len(recs))
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for go: %w", err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var s3Err error
	if withS3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s3Err = uploadObjects(ctx, sc, recs)
		}()
	}
	var (
		mu   sync.Mutex
		perr error
	)
	if withKafka {
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		}
		for i := range recs {
			r := &recs[i]
			r.Partition = 0 // the partitioner's choice, as for the agent
			cl.Produce(ctx, r, promise)
		}
		if err := cl.Flush(ctx); err != nil {
			return err
		}
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(perr, s3Err)
}

// uploadObjects is the S3 half of the ceiling: the values, one per line,
// gzipped at the sink's compression_level into objects of batch_max_bytes
// (uncompressed) on one goroutine (the sink gzips on its one committer),
// uploaded by upload_concurrency uploaders as the sink uploads.
func uploadObjects(ctx context.Context, cfg s3sink.Config, recs []kgo.Record) error {
	cl := s3Client(cfg.Endpoint)
	up := manager.NewUploader(cl, func(u *manager.Uploader) { u.PartSize = cfg.UploadPartSize })
	objects := make(chan []byte, cfg.UploadConcurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var uerr error
	seq := 0
	for range cfg.UploadConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for obj := range objects {
				mu.Lock()
				seq++
				key := fmt.Sprintf("ceiling/%06d.json.gz", seq)
				mu.Unlock()
				if err := putObject(ctx, cl, up, cfg, key, obj); err != nil {
					mu.Lock()
					uerr = errors.Join(uerr, err)
					mu.Unlock()
				}
			}
		}()
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, cfg.CompressionLevel)
	if err != nil {
		close(objects)
		wg.Wait()
		return err
	}
	var raw int64
	flush := func() error {
		if err := zw.Close(); err != nil {
			return err
		}
		objects <- bytes.Clone(buf.Bytes())
		buf.Reset()
		zw.Reset(&buf)
		raw = 0
		return nil
	}
	nl := []byte{'\n'}
	for i := range recs {
		v := recs[i].Value
		if raw > 0 && raw+int64(len(v))+1 > cfg.BatchMaxBytes {
			if err := flush(); err != nil {
				break
			}
		}
		_, _ = zw.Write(v)
		_, _ = zw.Write(nl)
		raw += int64(len(v)) + 1
	}
	if raw > 0 {
		err = flush()
	}
	close(objects)
	wg.Wait()
	return errors.Join(err, uerr)
}

// putObject stores one object as sinks/s3 does: PutObject with its CRC-32
// (unsigned payload) below multipart_threshold, else the SDK's multipart
// uploader with CRC-32 parts.
func putObject(ctx context.Context, cl *s3.Client, up *manager.Uploader, cfg s3sink.Config, key string, obj []byte) error {
	in := &s3.PutObjectInput{
		Bucket:          aws.String(cfg.Bucket),
		Key:             aws.String(key),
		Body:            bytes.NewReader(obj),
		ContentType:     aws.String("application/x-ndjson"),
		ContentEncoding: aws.String("gzip"),
	}
	if int64(len(obj)) < cfg.MultipartThreshold {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], crc32.ChecksumIEEE(obj))
		in.ChecksumCRC32 = aws.String(base64.StdEncoding.EncodeToString(b[:]))
		in.ContentLength = aws.Int64(int64(len(obj)))
		_, err := cl.PutObject(ctx, in, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
		return err
	}
	in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	_, err := up.Upload(ctx, in)
	return err
}
