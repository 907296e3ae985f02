// Package s3 is the S3 sink: parsed events go, through a durable local spool,
// into gzip NDJSON objects laid out for a data lake (Hive partitions read by
// Spark, Athena, Hive).
//
// # Life cycle
//
// New validates the config, opens the spool in Config.SpoolDir, recovers what
// a previous run left there and starts the goroutines: one committer and
// upload_concurrency uploaders. There is no Run. Check (HeadBucket) tells
// whether the bucket is reachable; New does not call it, so the agent can
// start, and spool, while S3 is down. Close stops Send, commits and closes the
// open batches and uploads until its context is done; what is left stays in
// the spool for the next start.
//
// # Send and the group commit
//
// Send notes each event's Value in a list per partition, without copying it
// (the batch is not acknowledged before its commit, so the agent leaves the
// bytes alone until then), and returns. The committer takes all lists at once
// (at most fsync_interval after the first pending event, or as soon as 4 MiB
// are pending), compresses each partition's lines (each Value plus '\n') as
// ONE COMPLETE GZIP MEMBER appended to that partition's open batch file,
// fsyncs the files it touched, drops its references to the values and only
// then calls DoneAll(nil) on every batch sent before it started. One fsync
// thus serves every event of the group. If writing or fsyncing fails,
// the batches are acknowledged with the error (the agent does not checkpoint
// them) and the file is cut back to its last good member.
//
// Concatenated gzip members are one valid gzip stream (RFC 1952), so a batch
// file is uploaded as it is. Each member carries its own CRC-32 and length,
// so after a crash the open batch is read member by member and cut back to
// the end of the last complete, verified member: exactly the acknowledged
// events survive, never half a line. At a low event rate members are small
// and compress poorly; a closed batch whose members average under 256 KiB
// uncompressed is rewritten as one member before upload (tmp file, fsync,
// rename).
//
// Send blocks (backpressure, nothing is dropped) while the spool holds
// spool_max_bytes or more on disk, or while 8 MiB wait for the committer,
// until there is room or its context is done.
//
// # Spool layout and crash safety
//
// Every batch is a set of files named by its id (creation time + UUID):
// <id>.meta (object key, kind, creation time; written tmp+fsync+rename before
// the data file exists), <id>.open (being appended), <id>.ready (closed:
// fsynced, then renamed, then the directory fsynced). An uploader deletes the
// data file and then the meta only after S3 confirmed the object. At start:
// .ready files are queued; an .open file is cut back to its last complete
// member, fsynced, renamed .ready and queued; a meta without data and *.tmp
// files are removed. New takes an exclusive flock on <spool>/LOCK: a second
// process on the same spool fails to start. The object key is fixed when the batch opens, so a batch
// uploaded twice (crash between upload and delete) overwrites the same object:
// no duplicate object.
//
// # Batches and keys
//
// A partition is the rendered prefix: strftime of the event's own time in UTC
// plus {hostname} and {input}; events of one Send may go to several
// partitions. A partition has at most one open batch; it is closed when its
// uncompressed size reaches batch_max_bytes (split at a line), when it holds
// batch_max_events events, when it is batch_max_age old, when 64 batches are
// open (the oldest is closed), when the spool is full with nothing else to
// upload, and at Close. Its key is
// <prefix><hostname>-<opened, 20060102T150405Z>-<uuid>.json.gz.
//
// # Upload
//
// Objects under multipart_threshold go with one PutObject carrying its
// CRC-32 (x-amz-checksum-crc32), which S3 verifies; larger ones with the SDK's multipart
// uploader (feature/s3/manager), upload_part_size parts each carrying a
// CRC-32 checksum that S3 verifies. Content-Type is application/x-ndjson,
// Content-Encoding gzip; sse, sse_kms_key_id, storage_class and tags are set
// when configured. A failed attempt is retried forever, oldest batch first,
// with exponential backoff from retry_min_backoff to retry_max_backoff and
// jitter; each attempt is bounded by upload_timeout. An aborted multipart
// upload may leave parts behind; a bucket lifecycle rule
// (AbortIncompleteMultipartUpload) cleans them.
//
// # Invalid events
//
// Events with Err set never reach the data-lake objects. They are counted
// (events_invalid_total). With dead_letter_prefix set they are spooled and
// uploaded like the rest, to objects under that prefix, as JSON records
// {"reason","file","offset","time","truncated","raw"} (raw_base64 too when
// the line is not valid UTF-8). With dead_letter_prefix "" they are only
// counted. Either way they are acknowledged with their batch.
//
// # Metrics
//
// nginx_shipper_s3_*: events_spooled_total, bytes_spooled_total,
// events_invalid_total, dead_letter_events_total, spool_commits_total,
// spool_commit_errors_total, spool_commit_duration_seconds,
// send_blocked_seconds_total, objects_uploaded_total{kind},
// bytes_uploaded_total, upload_errors_total, upload_retries_total,
// upload_duration_seconds, spool_bytes, spool_batches,
// spool_oldest_batch_age_seconds, spool_max_bytes, spool_compactions_total,
// spool_recovered_batches_total, spool_recovered_torn_bytes_total.
//
// # Performance
//
// Measured with BenchmarkSend (330-byte JSON events, 4 senders, 500-event
// batches, fsync_interval 50ms) on the 2-core test machine; see the report
// for figures. gzip runs on the committer goroutine only, so the sink uses
// at most about one core for compression: level 1 (the default) compresses
// about 3x faster than level 6 for objects about 15% larger.
package s3
