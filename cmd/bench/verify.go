package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// endOffsets returns the sum of the high watermarks of topic's partitions:
// the records in it (no transactions, so one offset is one record).
func endOffsets(ctx context.Context, cl *kgo.Client, topic string, partitions int) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = topic
	for p := 0; p < partitions; p++ {
		pp := kmsg.NewListOffsetsRequestTopicPartition()
		pp.Partition = int32(p)
		pp.Timestamp = -1 // latest
		t.Partitions = append(t.Partitions, pp)
	}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				return 0, fmt.Errorf("list offsets %s[%d]: error code %d", rt.Topic, rp.Partition, rp.ErrorCode)
			}
			sum += rp.Offset
		}
	}
	return sum, nil
}

// tally counts how many times each sequence number arrived.
type tally struct {
	n     []uint8
	total int64
	bad   int64 // records without a readable request_id
}

func newTally(n int) *tally { return &tally{n: make([]uint8, n)} }

func (t *tally) add(seq uint64, ok bool) {
	t.total++
	if !ok || seq >= uint64(len(t.n)) {
		t.bad++
		return
	}
	if t.n[seq] < 255 {
		t.n[seq]++
	}
}

// check returns nil when every line arrived exactly once.
func (t *tally) check(where string) error {
	var missing, dup int64
	first := int64(-1)
	for i, c := range t.n {
		switch {
		case c == 0:
			missing++
			if first < 0 {
				first = int64(i)
			}
		case c > 1:
			dup++
		}
	}
	if missing == 0 && dup == 0 && t.bad == 0 {
		return nil
	}
	return fmt.Errorf("%s: %d records, %d lines missing (first: line %d), %d duplicated, %d unreadable",
		where, t.total, missing, first, dup, t.bad)
}

// eventSeq finds the request_id in a JSON event.
func eventSeq(v []byte) (uint64, bool) {
	i := bytes.Index(v, []byte(requestIDField))
	if i < 0 {
		return 0, false
	}
	return seqOf(v[i+len(requestIDField):])
}

// rawSeq reads the request_id at the end of a raw line.
func rawSeq(v []byte) (uint64, bool) {
	v = bytes.TrimRight(v, "\n")
	if len(v) < 32 {
		return 0, false
	}
	return seqOf(v[len(v)-32:])
}

// avroSeq finds the request_id in an Avro event (Confluent framing, the
// bench format): the union branch 1 (0x02), the length 32 (zig-zag
// varint 0x40), then 32 hex digits.
func avroSeq(v []byte) (uint64, bool) {
	if len(v) < 5 || v[0] != 0 {
		return 0, false
	}
	for i := 5; ; {
		j := bytes.Index(v[i:], []byte{0x02, 0x40})
		if j < 0 {
			return 0, false
		}
		i += j + 2
		if i+32 <= len(v) && isHex(v[i:i+32]) {
			return seqOf(v[i : i+32])
		}
	}
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// How verifyKafka finds a record's line.
const (
	seqJSON = iota // the JSON event
	seqRaw         // the raw line
	seqAvro        // the Avro event
)

// verifyKafka consumes the whole topic and checks that each of the n lines
// is in it exactly once. It returns the sum of the records' hashes
// (recordHash), and writes each record to capture unless it is nil.
func verifyKafka(ctx context.Context, brokers []string, topic string, partitions, n int, mode int, capture *recordWriter) (uint64, error) {
	t := newTally(n)
	var sum uint64
	err := consumeAll(ctx, brokers, topic, partitions, func(r *kgo.Record) {
		if capture != nil {
			capture.add(r)
		} else {
			sum += recordHash(r)
		}
		switch mode {
		case seqRaw:
			t.add(rawSeq(r.Value))
		case seqAvro:
			t.add(avroSeq(r.Value))
		default:
			t.add(eventSeq(r.Value))
		}
	})
	if err != nil {
		return 0, err
	}
	if capture != nil {
		sum = capture.sum
	}
	return sum, t.check("kafka topic " + topic)
}

// consumeAll hands each record of the topic, up to its end offsets when
// called, to fn.
func consumeAll(ctx context.Context, brokers []string, topic string, partitions int, fn func(*kgo.Record)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	want, err := endOffsets(ctx, cl, topic, partitions)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var got int64
	for got < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consume %s: %d of %d records: %w", topic, got, want, err)
		}
		var ferr error
		fs.EachError(func(tp string, p int32, e error) { ferr = fmt.Errorf("consume %s[%d]: %w", tp, p, e) })
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			fn(r)
		})
	}
	return nil
}

// verifyS3 reads every object in the bucket and checks that each of the n
// lines is in them exactly once. It returns the number of objects.
func verifyS3(ctx context.Context, endpoint string, n int) (int, error) {
	cl := s3Client(endpoint)
	t := newTally(n)
	objects := 0
	p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(s3Bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return objects, fmt.Errorf("list bucket: %w", err)
		}
		for _, o := range page.Contents {
			objects++
			if err := readObject(ctx, cl, aws.ToString(o.Key), t); err != nil {
				return objects, err
			}
		}
	}
	return objects, t.check(fmt.Sprintf("s3 (%d objects)", objects))
}

func readObject(ctx context.Context, cl *s3.Client, key string, t *tally) error {
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	if strings.HasSuffix(key, ".parquet") {
		return readParquet(key, out.Body, t)
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(out.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: not gzip: %w", key, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		t.add(eventSeq(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// scrape fetches the agent's metrics and returns, for each wanted name, the
// sum of its samples whose labels contain the given filter ("" for all).
func scrape(ctx context.Context, addr string, want map[string]string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	got := make(map[string]float64, len(want))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(l, " ")
		labels := ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// a label value may hold a space: cut at the closing brace.
			j := strings.LastIndexByte(l, '}')
			if j < 0 {
				continue
			}
			name, labels, rest = l[:i], l[i:j+1], strings.TrimSpace(l[j+1:])
		}
		filter, ok := want[name]
		if !ok || !strings.Contains(labels, filter) {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err == nil {
			got[name] += v
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return got, nil
}

// readParquet tallies the request_id column of a Parquet object
// ([sinks.s3] format = "parquet"), read whole into memory.
func readParquet(key string, body io.Reader, t *tally) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	type row struct {
		RequestID *string `parquet:"request_id,optional"`
	}
	r := parquet.NewGenericReader[row](bytes.NewReader(b))
	defer r.Close()
	rows := make([]row, 4096)
	for {
		n, err := r.Read(rows)
		for _, x := range rows[:n] {
			if x.RequestID == nil {
				t.add(0, false)
				continue
			}
			t.add(seqOf([]byte(*x.RequestID)))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: parquet: %w", key, err)
		}
	}
}
