// Package container unwraps container log records (CRI, as containerd and
// CRI-O write them; Docker's json-file) into the lines the program wrote,
// joins partial records, and reads the Kubernetes metadata from a log
// file's path. It is pure: no I/O but the symlink resolution of
// ResolvePath; the agent's harvester drives it, one physical line at a
// time.
//
// # Where it sits
//
// The harvester reads a file by byte offset and cuts it at '\n' as for a
// plain file: each physical line is one wrapped record. For an input with
// container set (cri, docker, auto) the harvester hands every record, with
// its offset, to a Decoder (one per file) before anything is parsed:
//
//	physical line ──Decoder.Add──▶ Line{Log, Start, Time, Stream, Truncated}
//	                                  │ stdout: format's parser
//	                                  │ stderr: stderr_format's parser (default "error")
//	                                  ▼
//	                  event JSON + `"stream"`, `"container_time"`, `"kubernetes"`
//
// The parsers are the inputs' own, compiled once at start by the agent's
// compileFormat (parser.Compile): stderr_format = "error" is the built-in
// error-log format of issue #15. (Without it, "error" compiles as a
// log_format of that one literal word: every stderr line would go to the
// dead-letter path, counted, none lost.)
//
// # Decoding, allocation-free
//
// CRI: `<time> <stream> <tags> <log>`, e.g.
// `2026-12-02T01:02:03.123456789Z stdout F GET / ...`. time is RFC 3339
// with up to nine fraction digits and either `Z` (containerd) or a numeric
// offset `+01:00` (CRI-O); it is parsed by hand (no time.Parse, no string
// conversion). stream is stdout or stderr. tags is a ':'-separated list
// whose first tag is `F` (full: the record ends a line) or `P` (partial:
// the runtime cut the line, at 16 KiB with containerd; the next record of
// the same stream continues it). Record.Log aliases the input line: no
// copy.
//
// Docker json-file: `{"log":"...\n","stream":"stdout","time":"..."}` (keys
// in any order, unknown keys such as "attrs" skipped). The log string is
// unescaped (\n, \t, \", \\, \/, \uXXXX with surrogate pairs, the \u003c
// escapes Go's encoder writes for <, >, &) into the Decoder's scratch
// buffer, reused line after line. A log value ending in "\n" is a full
// line (the newline is dropped); one without is a partial (docker cuts at
// 16 KiB).
//
// auto: a record starting with '{' is docker, anything else CRI, decided
// per record (a node moved from dockershim to containerd keeps both kinds
// of file under one glob).
//
// A record that is not a valid wrapper is a Line with Err set (ErrCRI,
// ErrDocker, with the byte position): the harvester sends its raw bytes to
// the dead-letter path with that reason, counted. Nothing is dropped.
//
// # Partial records: joined per file and stream
//
// stdout and stderr share one file and their partials interleave, so the
// Decoder keeps one pending buffer per stream. A `P` record starts or
// extends its stream's pending line; the next `F` record of that stream
// ends it. A full record with nothing pending is returned as it is (Log
// aliases the input: the common case costs no copy). The joined content is
// bounded by max_line_bytes: what is beyond is not kept, the rest of the
// partials are still consumed, and the Line comes out Truncated (the
// harvester sends it to the dead-letter path as a too-long line, as it
// does for plain files): truncated and flagged, never dropped.
//
// # Offsets and checkpoints
//
// Line.Start is the byte offset of the first record of the line, so an
// event's log_offset is where its wrapped line starts in the file. The
// checkpoint must never pass the start of a line whose event is not
// acknowledged: Hold returns the smallest start of a pending partial (or
// -1), and the harvester caps each batch's End at it. A batch handed on
// while a partial is pending therefore checkpoints up to that partial's
// first record, and after a restart reading resumes there: the partial is
// read and joined again from its start. Every record behind that offset
// belongs to a line that started at or after it (a line that started
// before it was complete, or it would be pending), so resuming there never
// joins half a line. A line of the other stream completed meanwhile may be
// sent again after a crash: a duplicate, never a loss.
//
// A file that gives its slot up (more files than max_open_files, see
// agent/doc.go) is resumed later by a new harvester with a new Decoder:
// it resumes at Hold when a line is being joined, so that line is read and
// joined again from its first record.
//
// At the end of a rotated file (kubelet renamed it; the runtime reopened)
// Flush returns what is still pending as Truncated lines: the runtime
// never continues a partial in another file's descriptor, and the bytes
// must not be lost.
//
// # Routing and klog
//
// stdout lines are parsed with the input's format, stderr lines with
// stderr_format. ingress-nginx's controller writes klog lines
// (`I1202 01:02:03.123456      7 main.go:123] ...`) to the same stderr as
// nginx's error log: a stderr line that the error format rejects and that
// looks like klog (IsKlog) goes to the dead-letter path with ErrKlog as
// its reason (counted as such), any other line that fails with the
// parser's own error. Both keep the raw, unwrapped line.
//
// # Metadata from the path
//
// kubelet writes /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log
// (n is the restart count) and links
// /var/log/containers/<pod>_<namespace>_<container>-<id>.log to it.
// ParsePath reads either (the second has no uid or restart count:
// ResolvePath follows the link once, at open, to fill them). The
// metadata of a file is rendered once, when its harvester starts, into a
// JSON fragment (AppendMeta): `"kubernetes":{"namespace":...,"pod":...,
// "pod_uid":...,"container":...,"restart_count":n,"node":...}`, node from
// NODE_NAME (the downward API's spec.nodeName). Per line the harvester
// only appends that fragment and `"stream"`, `"container_time"` before the
// event's closing brace (AppendFields): no allocation.
//
// The same metadata serves the sinks: {namespace} and {pod} in the S3
// prefix (per batch, from its file's path), and sinks.kafka.key =
// "kubernetes.pod" (or .namespace, .pod_uid, .container, .node) keys every
// record of a file by it (rendered once per file).
//
// container_time is the wrapper's time of the line's first record, in UTC
// with nanoseconds (RFC 3339). When the format carries no time of its own,
// it is also the event's time (S3 prefix hour, batching).
package container
