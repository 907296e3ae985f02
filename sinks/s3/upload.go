package s3

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// API is the part of the S3 client the sink uses: what the SDK's multipart
// uploader needs, plus HeadBucket for Check. *s3.Client implements it; tests
// wrap it to inject faults.
type API interface {
	manager.UploadAPIClient
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
}

// newClient builds the S3 client: the standard credential chain (env, shared
// files with profile, container and instance roles), an assumed role_arn on
// top, endpoint and path style for S3-compatible stores.
func newClient(ctx context.Context, cfg Config) (*s3.Client, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	if cfg.RoleARN != "" {
		prov := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(awsCfg), cfg.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "nginx-shipper"
			if cfg.ExternalID != "" {
				o.ExternalID = aws.String(cfg.ExternalID)
			}
		})
		awsCfg.Credentials = aws.NewCredentialsCache(prov)
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.ForcePathStyle
	}), nil
}

// Check reports whether the bucket is reachable with the configured
// credentials (HeadBucket). For `validate --connect` and start-up.
func (s *Sink) Check(ctx context.Context) error {
	if _, err := s.api.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)}); err != nil {
		return fmt.Errorf("s3 sink: bucket %q: %w", s.cfg.Bucket, err)
	}
	return nil
}

// uploadLoop is one uploader: it takes closed batches, oldest first, and
// uploads each until S3 confirms it, then deletes it from the spool. It
// returns when the sink is closing, the committer has finished and nothing is
// left, or when the upload context is cancelled (Close's deadline).
func (s *Sink) uploadLoop() {
	defer s.upWG.Done()
	ctx := s.upCtx
	conv := &pqConverter{} // reused across this uploader's batches
	for {
		s.mu.Lock()
		for len(s.ready) == 0 {
			if s.commitEnd {
				s.mu.Unlock()
				return
			}
			ch := s.changed
			s.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
			s.mu.Lock()
		}
		bf := s.ready[0]
		s.ready = s.ready[1:]
		s.uploading++
		s.mu.Unlock()
		err := s.uploadRetrying(ctx, bf, conv)
		if bf.pq != nil {
			// Converted again by whoever uploads the batch next.
			os.Remove(bf.path(s.cfg.SpoolDir, extParquet))
			bf.pq = nil
		}
		if err != nil {
			s.mu.Lock()
			s.uploading--
			s.mu.Unlock()
			return // cancelled: the batch stays in the spool
		}
		dir := s.cfg.SpoolDir
		if err := os.Remove(bf.path(dir, extReady)); err != nil {
			s.log.Error("cannot delete uploaded batch (it will be uploaded again, same key)", "id", bf.id, "err", err)
		}
		os.Remove(bf.path(dir, extMeta))
		s.mu.Lock()
		s.uploading--
		s.spoolBytes -= bf.size
		delete(s.live, bf.id)
		s.m.spoolBytes.Set(float64(s.spoolBytes))
		s.m.spoolBatches.Set(float64(len(s.live)))
		s.broadcast()
		s.mu.Unlock()
	}
}

// uploadRetrying uploads bf until it succeeds, waiting between attempts with
// capped exponential backoff and jitter. It fails only when ctx is done.
func (s *Sink) uploadRetrying(ctx context.Context, bf *batchFile, conv *pqConverter) error {
	backoff := s.cfg.RetryMinBackoff.Duration
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			s.m.uploadRetries.Inc()
		}
		start := time.Now()
		s.lastUpload.Store(start.UnixNano())
		err := s.uploadOnce(ctx, bf, conv)
		if err == nil {
			s.uploadFailing.Store(false)
			s.probeErr.Store(nil)
			s.m.uploadSeconds.Observe(time.Since(start).Seconds())
			s.m.objects.WithLabelValues(bf.meta.Kind).Inc()
			if bf.pq != nil {
				s.m.bytesUploaded.Add(float64(bf.pq.size))
			} else {
				s.m.bytesUploaded.Add(float64(bf.size))
			}
			if attempt > 1 {
				s.log.Info("upload succeeded after retries", "key", bf.meta.Key, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.m.uploadErrors.Inc()
		why := err.Error()
		s.uploadErr.Store(&why)
		s.uploadFailing.Store(true)
		// Full jitter in [backoff/2, backoff].
		d := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		s.log.Warn("upload failed; retrying", "key", bf.meta.Key, "attempt", attempt, "retry_in", d, "err", err)
		backoff = min(2*backoff, s.cfg.RetryMaxBackoff.Duration)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// uploadOnce makes one attempt: PutObject with a CRC-32 (S3 checks it)
// below multipart_threshold, else a multipart upload with a CRC-32 checksum
// per part (S3 checks each). A closed batch of many small gzip members is
// first rewritten as one member (smaller object, same lines).
func (s *Sink) uploadOnce(ctx context.Context, bf *batchFile, conv *pqConverter) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.UploadTimeout.Duration)
	defer cancel()
	dir := s.cfg.SpoolDir
	path := bf.path(dir, extReady)
	if bf.meta.Format == FormatParquet {
		if bf.meta.Schema != nil {
			return s.uploadParquet(ctx, bf, conv)
		}
		// A meta edited by hand: ship the events as they are, not lose them.
		s.log.Error("parquet batch without a schema in its meta; uploading it as gzip NDJSON", "id", bf.id)
		bf.meta.Format = ""
		bf.meta.Key = strings.TrimSuffix(bf.meta.Key, ".parquet") + ".json.gz"
	}
	if bf.members > 1 && bf.raw/int64(bf.members) < compactBelow {
		size, err := compactFile(dir, path, bf.path(dir, extTmp), s.cfg.CompressionLevel)
		if err != nil {
			s.log.Warn("cannot compact batch; uploading it as it is", "id", bf.id, "err", err)
		} else {
			s.m.compactions.Inc()
			s.mu.Lock()
			s.spoolBytes += size - bf.size
			s.m.spoolBytes.Set(float64(s.spoolBytes))
			s.broadcast()
			s.mu.Unlock()
			bf.size = size
		}
		bf.members = 1
	}
	in := s.putInput(bf)
	in.ContentType = aws.String("application/x-ndjson")
	in.ContentEncoding = aws.String("gzip")
	return s.put(ctx, in, path, bf.size, 0, false)
}

// uploadParquet converts the batch to a Parquet file beside it (once: the
// file is kept for the next attempts, and deleted after the last one) and
// uploads that file with its CRC-32. A crash during the conversion leaves a
// torn .parquet.tmp that the next start deletes; nothing reaches S3 before
// the file is complete, and S3 verifies the checksum of what it stores.
func (s *Sink) uploadParquet(ctx context.Context, bf *batchFile, conv *pqConverter) error {
	dir := s.cfg.SpoolDir
	pqPath := bf.path(dir, extParquet)
	if bf.pq == nil {
		s.pqMu.Lock()
		start := time.Now()
		res, err := conv.convertFile(newPQPlan(*bf.meta.Schema), bf.path(dir, extReady), pqPath,
			pqOptions{codec: s.cfg.ParquetCompression, rowGroupBytes: s.cfg.ParquetRowGroupBytes}, s.pqCreate)
		s.m.pqSeconds.Add(time.Since(start).Seconds())
		s.pqMu.Unlock()
		if err != nil {
			s.m.pqErrors.Inc()
			return err
		}
		s.m.pqConverted.Inc()
		if res.dropped > 0 {
			s.m.pqDropped.Add(float64(res.dropped))
			s.log.Warn("parquet: JSON values without a column in the input's schema (or of the wrong type) were left out",
				"key", bf.meta.Key, "values", res.dropped)
		}
		s.log.Debug("converted batch to parquet", "key", bf.meta.Key, "rows", res.rows, "row_groups", res.groups,
			"ndjson_bytes", res.rawBytes, "gzip_bytes", bf.size, "parquet_bytes", res.size)
		bf.pq = &res
	}
	in := s.putInput(bf)
	in.ContentType = aws.String("application/vnd.apache.parquet")
	return s.put(ctx, in, pqPath, bf.pq.size, bf.pq.crc, true)
}

// put uploads the file at path (size bytes): PutObject with its CRC-32
// (computed here unless known) below multipart_threshold, else multipart.
func (s *Sink) put(ctx context.Context, in *s3.PutObjectInput, path string, size int64, sum uint32, known bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	in.Body = f
	if size < s.cfg.MultipartThreshold {
		// A CRC-32 the store verifies (x-amz-checksum-crc32), as for
		// multipart parts: the same protection as Content-MD5 for a
		// tenth of the CPU.
		if !known {
			h := crc32.NewIEEE()
			if _, err := io.Copy(h, f); err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			sum = h.Sum32()
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], sum)
		in.ChecksumCRC32 = aws.String(base64.StdEncoding.EncodeToString(b[:]))
		in.ContentLength = aws.Int64(size)
		if _, err := s.api.PutObject(ctx, in, unsignedPayload); err != nil {
			return fmt.Errorf("put %s: %w", *in.Key, err)
		}
		return nil
	}
	in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	if _, err := s.uploader.Upload(ctx, in); err != nil {
		return fmt.Errorf("multipart upload %s: %w", *in.Key, err)
	}
	return nil
}

// unsignedPayload signs PutObject's headers but not its body: the SDK would
// otherwise read the whole object once more for its SHA-256 (on plain-HTTP
// endpoints). The body is protected by its CRC-32, which the store verifies.
var unsignedPayload = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

// putInput is the object's request without body and content headers.
func (s *Sink) putInput(bf *batchFile) *s3.PutObjectInput {
	in := &s3.PutObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(bf.meta.Key),
	}
	switch s.cfg.SSE {
	case "AES256":
		in.ServerSideEncryption = types.ServerSideEncryptionAes256
	case "aws:kms":
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		if s.cfg.SSEKMSKeyID != "" {
			in.SSEKMSKeyId = aws.String(s.cfg.SSEKMSKeyID)
		}
	}
	if s.cfg.StorageClass != "" {
		in.StorageClass = types.StorageClass(s.cfg.StorageClass)
	}
	if len(s.cfg.Tags) > 0 {
		in.Tagging = aws.String(encodeTags(s.cfg.Tags))
	}
	return in
}

func encodeTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(tags[k]))
	}
	return b.String()
}
