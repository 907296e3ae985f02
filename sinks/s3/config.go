package s3

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Duration is a time.Duration written in TOML as a Go duration string ("5m").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (want e.g. \"50ms\", \"5m\"): %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the [sinks.s3] table. Defaults fills every zero value; Validate
// reports every problem at once.
type Config struct {
	// Enabled turns the sink off when false. Defaults fills true: the
	// table's presence enables the sink.
	Enabled *bool `toml:"enabled"`
	// Bucket receives the objects. Required.
	Bucket string `toml:"bucket"`
	// Region of the bucket. Default "us-east-1".
	Region string `toml:"region"`
	// Endpoint is the URL of an S3-compatible store ("http://127.0.0.1:7070");
	// "" means AWS.
	Endpoint string `toml:"endpoint"`
	// ForcePathStyle addresses the bucket in the path, not the host name
	// (most S3-compatible stores need it).
	ForcePathStyle bool `toml:"force_path_style"`
	// Enriched says which stream the objects hold when [enrich] is on: the
	// enriched events (true, the default) or the originals (false).
	// Without [enrich] events have no enriched form and it has no effect.
	Enriched *bool `toml:"enriched"`
	// Prefix is the key template of an object's folder: strftime conversions
	// (%Y %m %d %H %M %S %j %y %F %T %s %%) of the event time in UTC, and the
	// placeholders {hostname}, {input} (the index of the [[inputs]] entry),
	// {namespace} and {pod} (from a kubelet log path; "_" for other files).
	// Events are split by the rendered prefix: an event lands in the
	// partition of its own time. Default "nginx/dt=%Y-%m-%d/hour=%H/".
	Prefix string `toml:"prefix"`
	// BatchMaxBytes bounds an object's uncompressed size. Default 64 MiB.
	BatchMaxBytes int64 `toml:"batch_max_bytes"`
	// BatchMaxAge is how long the oldest event of a batch waits before the
	// batch is closed for upload. Default 5m.
	BatchMaxAge Duration `toml:"batch_max_age"`
	// BatchMaxEvents bounds the events in one object. Default 1000000.
	BatchMaxEvents int `toml:"batch_max_events"`
	// CompressionLevel is the gzip level, 1 (fastest) to 9 (smallest).
	// Default 1: about 3x less CPU than 6 for objects about 15% larger
	// (see the package doc for measurements).
	CompressionLevel int `toml:"compression_level"`
	// Format of the objects: "json" (gzip NDJSON, .json.gz; the default)
	// or "parquet" (.parquet, typed columns from each input's log_format;
	// see the package doc). The spool is gzip NDJSON either way: a closed
	// batch is converted at upload.
	Format string `toml:"format"`
	// ParquetCompression is the codec of Parquet pages: "zstd" (default)
	// or "snappy".
	ParquetCompression string `toml:"parquet_compression"`
	// ParquetRowGroupBytes bounds a row group by the uncompressed NDJSON
	// bytes it holds: the conversion's memory grows with it (about 30 MiB
	// of heap at 16 MiB; see the package doc). Default 16 MiB: four row
	// groups in an object of the default batch_max_bytes.
	ParquetRowGroupBytes int64 `toml:"parquet_row_group_bytes"`
	// MultipartThreshold: objects at least this large (compressed) are sent
	// with a multipart upload of UploadPartSize parts; smaller ones with one
	// PutObject. Defaults 16 MiB and 8 MiB (minimum 5 MiB, an S3 limit).
	MultipartThreshold int64 `toml:"multipart_threshold"`
	UploadPartSize     int64 `toml:"upload_part_size"`
	// UploadConcurrency is how many objects are uploaded at once. Default 2.
	UploadConcurrency int `toml:"upload_concurrency"`
	// UploadTimeout bounds one upload attempt. Default 10m.
	UploadTimeout Duration `toml:"upload_timeout"`
	// RetryMinBackoff and RetryMaxBackoff bound the wait between upload
	// attempts: it doubles from the minimum up to the maximum, with jitter.
	// Uploads are retried forever. Defaults 1s and 2m.
	RetryMinBackoff Duration `toml:"retry_min_backoff"`
	RetryMaxBackoff Duration `toml:"retry_max_backoff"`
	// SpoolMaxBytes bounds the spool on disk (compressed bytes of open and
	// closed batches). When it is full Send blocks (backpressure upstream);
	// nothing is dropped. Default 1 GiB.
	SpoolMaxBytes int64 `toml:"spool_max_bytes"`
	// FsyncInterval is the longest an accepted event waits for the group
	// commit (gzip member + fsync) that makes it durable and acknowledges it.
	// A commit also starts as soon as GroupBytes are pending. Default 100ms.
	FsyncInterval Duration `toml:"fsync_interval"`
	// GroupBytes starts a group commit before FsyncInterval once this much
	// is pending. It is not a key of [sinks.s3]: the program's config
	// derives it from agent.max_in_flight_bytes (GroupBytesFor), since the
	// agent stops reading once its budget is in flight, unacknowledged, so
	// a group that waits to fill past it waits for FsyncInterval every
	// time. Default (0) 4 MiB.
	GroupBytes int64 `toml:"-"`

	// RoleARN, when set, is assumed (STS) with the credentials of the
	// standard chain, with ExternalID if set.
	RoleARN    string `toml:"role_arn"`
	ExternalID string `toml:"external_id"`
	// Profile selects a profile of the shared config and credentials files.
	Profile string `toml:"profile"`
	// SSE is the server-side encryption: "" (the bucket's default), "AES256"
	// or "aws:kms" (with SSEKMSKeyID, or the AWS managed key when empty).
	SSE         string `toml:"sse"`
	SSEKMSKeyID string `toml:"sse_kms_key_id"`
	// StorageClass of the objects ("STANDARD", "STANDARD_IA", ...); "" is the
	// bucket's default.
	StorageClass string `toml:"storage_class"`
	// Tags are set on every object.
	Tags map[string]string `toml:"tags"`
	// DeadLetterPrefix, when set, receives the lines that did not parse, raw,
	// as NDJSON records {"reason","file","offset","time","raw"} in gzip
	// objects under this key template (same placeholders as Prefix). When
	// "" (the default) such lines are only counted and acknowledged.
	DeadLetterPrefix string `toml:"dead_letter_prefix"`

	// SpoolDir is the spool's directory (<data_dir>/spool/s3). Set by the
	// caller, not read from the table. Required.
	SpoolDir string `toml:"-"`
	// Hostname is the {hostname} of the keys and the start of object names.
	// Set by the caller from [agent] hostname; Defaults fills os.Hostname().
	Hostname string `toml:"-"`
}

// Defaults fills zero values with the defaults.
func (c *Config) Defaults() {
	if c.Enabled == nil {
		t := true
		c.Enabled = &t
	}
	if c.Enriched == nil {
		t := true
		c.Enriched = &t
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.Prefix == "" {
		c.Prefix = "nginx/dt=%Y-%m-%d/hour=%H/"
	}
	if c.BatchMaxBytes == 0 {
		c.BatchMaxBytes = 64 << 20
	}
	if c.BatchMaxAge.Duration == 0 {
		c.BatchMaxAge.Duration = 5 * time.Minute
	}
	if c.BatchMaxEvents == 0 {
		c.BatchMaxEvents = 1_000_000
	}
	if c.CompressionLevel == 0 {
		c.CompressionLevel = 1
	}
	if c.Format == "" {
		c.Format = FormatJSON
	}
	if c.ParquetCompression == "" {
		c.ParquetCompression = ParquetZstd
	}
	if c.ParquetRowGroupBytes == 0 {
		c.ParquetRowGroupBytes = 16 << 20
	}
	if c.MultipartThreshold == 0 {
		c.MultipartThreshold = 16 << 20
	}
	if c.UploadPartSize == 0 {
		c.UploadPartSize = 8 << 20
	}
	if c.UploadConcurrency == 0 {
		c.UploadConcurrency = 2
	}
	if c.UploadTimeout.Duration == 0 {
		c.UploadTimeout.Duration = 10 * time.Minute
	}
	if c.RetryMinBackoff.Duration == 0 {
		c.RetryMinBackoff.Duration = time.Second
	}
	if c.RetryMaxBackoff.Duration == 0 {
		c.RetryMaxBackoff.Duration = 2 * time.Minute
	}
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = 1 << 30
	}
	if c.GroupBytes <= 0 {
		c.GroupBytes = groupBytes
	}
	if c.FsyncInterval.Duration == 0 {
		c.FsyncInterval.Duration = 100 * time.Millisecond
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
}

// IsEnabled reports whether the sink is on (Enabled nil counts as on).
func (c *Config) IsEnabled() bool { return c.Enabled == nil || *c.Enabled }

// Validate returns every problem of the (defaulted) configuration, joined,
// each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("sinks.s3.%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.Bucket == "" {
		bad("bucket", "must not be empty")
	}
	if c.Region == "" {
		bad("region", "must not be empty")
	}
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		bad("endpoint", "must be an http:// or https:// URL, got %q", c.Endpoint)
	}
	if err := checkTemplate(c.Prefix); err != nil {
		bad("prefix", "%v", err)
	}
	if strings.HasPrefix(c.Prefix, "/") {
		bad("prefix", "must not start with /")
	}
	if c.DeadLetterPrefix != "" {
		if err := checkTemplate(c.DeadLetterPrefix); err != nil {
			bad("dead_letter_prefix", "%v", err)
		}
	}
	if c.BatchMaxBytes < 1024 {
		bad("batch_max_bytes", "must be at least 1024, got %d", c.BatchMaxBytes)
	}
	if c.BatchMaxAge.Duration < time.Second {
		bad("batch_max_age", "must be at least 1s, got %s", c.BatchMaxAge)
	}
	if c.BatchMaxEvents < 1 {
		bad("batch_max_events", "must be at least 1, got %d", c.BatchMaxEvents)
	}
	if c.CompressionLevel < 1 || c.CompressionLevel > 9 {
		bad("compression_level", "must be 1 to 9, got %d", c.CompressionLevel)
	}
	if c.Format != FormatJSON && c.Format != FormatParquet {
		bad("format", `must be "json" or "parquet", got %q`, c.Format)
	}
	if c.ParquetCompression != ParquetZstd && c.ParquetCompression != ParquetSnappy {
		bad("parquet_compression", `must be "zstd" or "snappy", got %q`, c.ParquetCompression)
	}
	if c.ParquetRowGroupBytes < 1<<20 {
		bad("parquet_row_group_bytes", "must be at least 1 MiB (1048576), got %d", c.ParquetRowGroupBytes)
	}
	if c.UploadPartSize < 5<<20 {
		bad("upload_part_size", "must be at least 5 MiB (5242880), got %d", c.UploadPartSize)
	}
	if c.MultipartThreshold < c.UploadPartSize {
		bad("multipart_threshold", "must be at least upload_part_size (%d), got %d", c.UploadPartSize, c.MultipartThreshold)
	}
	if c.UploadConcurrency < 1 || c.UploadConcurrency > 64 {
		bad("upload_concurrency", "must be 1 to 64, got %d", c.UploadConcurrency)
	}
	if c.UploadTimeout.Duration <= 0 {
		bad("upload_timeout", "must be positive, got %s", c.UploadTimeout)
	}
	if c.RetryMinBackoff.Duration <= 0 {
		bad("retry_min_backoff", "must be positive, got %s", c.RetryMinBackoff)
	}
	if c.RetryMaxBackoff.Duration < c.RetryMinBackoff.Duration {
		bad("retry_max_backoff", "must be at least retry_min_backoff (%s), got %s", c.RetryMinBackoff, c.RetryMaxBackoff)
	}
	if c.SpoolMaxBytes < 1<<20 {
		bad("spool_max_bytes", "must be at least 1 MiB (1048576), got %d", c.SpoolMaxBytes)
	}
	if c.FsyncInterval.Duration < 0 || c.FsyncInterval.Duration > time.Minute {
		bad("fsync_interval", "must be between 0 and 1m, got %s", c.FsyncInterval)
	}
	if c.ExternalID != "" && c.RoleARN == "" {
		bad("external_id", "needs role_arn")
	}
	switch c.SSE {
	case "", "AES256", "aws:kms":
	default:
		bad("sse", `must be "", "AES256" or "aws:kms", got %q`, c.SSE)
	}
	if c.SSEKMSKeyID != "" && c.SSE != "aws:kms" {
		bad("sse_kms_key_id", `needs sse = "aws:kms"`)
	}
	if c.StorageClass != "" && !slices.Contains(types.StorageClass("").Values(), types.StorageClass(c.StorageClass)) {
		bad("storage_class", "unknown storage class %q (want one of %v)", c.StorageClass, types.StorageClass("").Values())
	}
	for k := range c.Tags {
		if k == "" || len(k) > 128 {
			bad("tags", "tag key %q must be 1 to 128 characters", k)
		}
	}
	if len(c.Tags) > 10 {
		bad("tags", "at most 10 tags, got %d", len(c.Tags))
	}
	if c.SpoolDir == "" {
		errs = append(errs, errors.New("sinks.s3: spool directory (agent.data_dir) must not be empty"))
	}
	if c.Hostname == "" {
		errs = append(errs, errors.New("sinks.s3: hostname (agent.hostname) must not be empty"))
	}
	return errors.Join(errs...)
}

// GroupBytesFor is GroupBytes for an agent whose in-flight budget is
// maxInFlight bytes: a quarter of it (a flight is charged the memory it
// holds, about twice the events it carries), at most 4 MiB.
func GroupBytesFor(maxInFlight int) int64 {
	return min(int64(maxInFlight)/4, groupBytes)
}
