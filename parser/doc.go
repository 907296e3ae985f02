// Package parser compiles an nginx log_format into a parser that turns one
// access-log line into a typed JSON event; the built-in format "error"
// parses nginx's error.log the same way. It is pure: no I/O.
//
// # Design
//
// A log_format is compiled once, at start-up, into a list of variables,
// each with the literal text that follows it (the format's leading literal
// is kept apart). Parsing a line has two phases and no allocation:
//
//  1. Match. Each variable's value runs from where the previous literal
//     ended to the next occurrence of its own literal. Values are taken as
//     short as possible; if the rest of the line then fails to match, the
//     next occurrence is tried (backtracking, bounded by maxSteps per line).
//     The match records where each value is (Result.spans).
//  2. Encode. The event's JSON is appended to the caller's buffer following
//     a plan computed at compile time, decoding escapes on the way:
//     escape=default decodes \xHH, escape=json decodes JSON escapes
//     (\uXXXX with surrogate pairs), escape=none takes bytes as they are.
//     A value is first copied in runs of 8 bytes known not to need JSON
//     escaping; only values holding a backslash are decoded (into
//     Result.scratch). Invalid UTF-8 is replaced by U+FFFD, and the event
//     then carries "invalid_utf8": true (Result.InvalidUTF8).
//
// Two things keep the match exact and nearly always single-pass. First,
// nginx escapes '"' inside values with escape=default (as \x22) and
// escape=json (as \"), so with those escapes a string value ends at the
// first unescaped quote, and a quoted value is found with one IndexByte.
// Second, typed variables ($status, $request_time, upstream lists, times)
// only accept their own alphabet and shape, so a wrong split fails fast.
// With escape=none a value may contain its own delimiter (a quote in the
// user agent, a space in $remote_user): the types of the fields after it,
// and the anchoring of the last field at the end of the line, decide the
// split wherever the format makes it decidable. Where two splits are both
// valid (two adjacent quoted strings that both contain `" "`), the earlier
// field gets the shorter value. The types that decide are in varKinds:
// besides numbers, lists and times, "tokens" that never hold a space
// ($remote_addr, $server_addr, $request_id, ...), so that in
// `$http_x_forwarded_for $remote_addr` the list takes "a, b" and
// $remote_addr the last address; an upstream list's entries hold no space
// and never end in ',' (that comma is the list's separator), so a list
// followed by another unquoted field takes all its entries; and
// $upstream_cache_status is one of its closed set.
//
// A line that does not match returns a *ParseError naming the variable (or
// "literal" for the format's leading text), the byte position where that
// variable's value starts, and why: the deepest point the match reached.
// Parse never panics (fuzzed: FuzzParse, FuzzCompile).
//
// # The event
//
// Keys follow the format's variable order, then "host", "log_file",
// "log_offset" from Meta, then "invalid_utf8" when true. Field names are
// nginx's variable names, with these rules:
//
//   - $time_local, $time_iso8601, $msec give one "timestamp", RFC 3339
//     with milliseconds and the offset nginx wrote ($msec: +00:00), placed
//     where the first time variable is; when several are present the most
//     precise wins ($msec, then $time_iso8601, then $time_local).
//     $msec is also kept as the number "msec". Result.Time is set.
//   - $request gives "request" plus "request_method", "request_uri" and
//     "server_protocol" when it is a request line (TOKEN URI HTTP/x.y, or
//     the HTTP/0.9 TOKEN URI, the method a token of any case: nginx logs
//     "geti / HTTP/1.1" with a 400, and forensics needs it); otherwise
//     (a TLS handshake, scanner garbage, "") only "request". A part the format also logs as its own variable is not
//     duplicated.
//   - $http_NAME, $sent_http_NAME, $upstream_http_NAME go into the objects
//     "request_headers", "response_headers", "upstream_headers" under NAME,
//     placed where the first of their members is.
//   - the http and stream modules' documented variables are typed by
//     varKinds in compile.go, the one table of types (the event schema is
//     derived from it through kindInfo): integers $status,
//     $body_bytes_sent, $bytes_sent, $bytes_received, $request_length,
//     $connection, $connection_requests, $connections_*; numbers
//     $request_time, $session_time, $connection_time, $msec.
//   - arrays (nginx's ", " and " : " separated lists, "-" entries as null):
//     $upstream_response_time, $upstream_connect_time,
//     $upstream_header_time, $upstream_queue_time,
//     $upstream_first_byte_time, $upstream_session_time (numbers);
//     $upstream_status, $upstream_response_length,
//     $upstream_bytes_received, $upstream_bytes_sent (integers);
//     $upstream_addr (strings: IPv4, [IPv6]:port, unix:path, group name).
//   - any other variable is a string under its own name, except names the
//     event itself uses ("host", "log_file", "log_offset", ...): nginx's
//     $host becomes "nginx_host".
//   - a value nginx wrote as "-" is left out; so is an empty value of a
//     typed variable, and any empty value with escape=json or escape=none
//     (nginx writes a missing value as "" there). With escape=default an
//     empty string is kept ("" for an empty Referer header). An empty
//     $request is kept.
//   - a variable logged twice is written once, from its first occurrence.
//
// A JSON-template format (escape=json, text like {"ts":"$time_iso8601",
// "status":$status}) is compiled the same way: the JSON text between
// variables is literal, so the line is matched exactly and each variable
// typed as above; the template's own key names are not used, the event
// uses the variable names. The built-in "json" is such a format.
//
// # error.log
//
// Compile("error", Options{Timezone: loc}) parses nginx's error log:
//
//	YYYY/MM/DD HH:MM:SS [level] PID#TID: *CID message[, client: A][, server: S]
//	    [, request: "R"][, subrequest: "U"][, upstream: "U"][, host: "H"][, referrer: "F"]
//
// It is a Parser like the others, compiled from the pseudo-format
// errorLogFormat so that its fields have variables and kinds (Fields,
// Variables and the schema need no special case): "timestamp" (kTimeError:
// the line has no zone, Options.Timezone gives it; nil is time.Local),
// "level" (kLevel, debug ... emerg), "pid", "tid", "connection" (the *CID,
// absent when the line has none), "message", "remote_addr" (client:),
// "server_name", "request" split as in the access log, "subrequest",
// "upstream", "nginx_host" (host:), "request_headers.referer" (referrer:),
// the stream proxy's "bytes_received", "bytes_sent",
// "upstream_bytes_received", "upstream_bytes_sent" (its trailing
// ", bytes from/to client:R/S, bytes from/to upstream:R/S"; the stream
// module's client may read "udp client:"),
// and "truncated": true when the line is 2047 bytes long, nginx's
// NGX_MAX_ERROR_STR (2048) less the newline: nginx cut it.
//
// The header is matched from the left; the context nginx appends
// (ngx_http_log_error, ngx_http_log_error_handler) from the right, in its
// fixed order: referrer, host, upstream, subrequest, request (quoted),
// server, client (unquoted, no space or comma). Each is taken only where
// the text left of the fields already taken ends with it, so the message
// keeps its quotes, commas, colons and " while reading response header
// from upstream". A truncated line has no complete context at its end: its
// context is read forward from the last ", client: ", the field that was
// cut keeping what is there. Values are bytes as nginx wrote them
// (escape=none): invalid UTF-8 is replaced and flagged as in the access
// log. An absent context field is left out.
//
// Continuation lines (a PHP-FPM stack trace, an OpenSSL dump) do not start
// with a date. StartsEvent says whether a line starts an event, Multiline
// whether the format has continuation lines at all (only "error"). The
// joining is the agent's (its reader holds an event's lines until the next
// event starts, bounded in bytes and time): Parse then gets the event's
// lines joined by '\n', and the context is read from the right of the
// whole text, where nginx wrote it; when it is not there but ends an
// earlier line (another writer appended lines after a complete event), it
// is read from there and the message keeps the whole text.
//
// # Schema and Avro
//
// The compiled format also describes its event: Parser.Schema returns a
// neutral Schema (ordered fields, each with a Type, nested records for the
// header groups, arrays for the upstream lists), built from the same plan
// and kinds table that type the JSON (kindTypes beside varKinds), so the
// schema cannot drift from the events. From it the package renders Avro
// (Schema.Avro), JSON Schema 2020-12 (Schema.JSONSchema) and the Athena /
// Hive CREATE EXTERNAL TABLE of the S3 objects (Schema.TableDDL). Other
// event producers extend the same Schema (Schema.Fields is exported):
// enrichment appends nullable fields, Parquet writes columns from it.
//
// In Avro every field the format writes is a union ["null", T] with
// default null (nginx writes "-", the JSON leaves the field out: Avro
// writes null). Integers are long, numbers double, upstream lists arrays
// of ["null", T] items ("-" entries are null), the header groups records
// of the header names the format logs. The timestamp is two fields:
// "timestamp" (long, logicalType timestamp-millis, the instant) and
// "timestamp_offset" (int, minutes east of UTC that nginx wrote), so the
// JSON string can be rebuilt exactly. The agent's fields host, log_file
// (string) and log_offset (long) are required; invalid_utf8 is
// ["null","boolean"], true or null as in the JSON. An Avro name must match
// [A-Za-z_][A-Za-z0-9_]*: a variable whose name starts with a digit ($1)
// is "_1" in Avro (the JSON key is unchanged).
//
// Avro is encoded from the matched spans, like the JSON, with a second
// plan walk (encodeAvro): match once, encode twice. Parse then AppendAvro
// gives both from one match (the agent with a Kafka sink in Avro); ParseAvro
// matches and encodes Avro only. Nothing is allocated per line: strings are
// decoded into the Result's scratch space as for JSON, a string's length
// prefix is reserved (2 bytes) and fixed up after the bytes are written.
// Invalid UTF-8 is replaced by U+FFFD as in JSON. Encoding is the schema
// check: an integer outside the range of long (nginx's $status with 19
// digits matches the format) fails with a *SchemaError, which the agent
// sends to the dead-letter topic (stage "schema"), never to the topic.
//
// The Avro output is checked by decoding it with github.com/twmb/avro
// against the rendered schema and comparing every record with the JSON
// event of the same line (TestAvroMatchesJSON, over the golden logs).
//
// # Formats
//
// Compile takes a log_format as text: a built-in name (combined, main,
// json, ingress_upstreaminfo: the ingress-nginx controller's default
// log-format-upstream, error), nginx's format string, or the string as written in nginx.conf, as
// quoted pieces that nginx concatenates. The latter is recognised when the
// text starts with a single quote, or starts with a double quote and spans
// several lines, and consists of quoted pieces only ('$a ' "$b"); a
// one-line text starting with a double quote ("$request" $status) is taken
// literally. Variables are $name or ${name}. Two variables with nothing
// between them cannot be split and are rejected.
//
// ResolveFormat handles the agent's format setting: built-in names,
// "nginx.conf:PATH:NAME" (FromNginxConf reads log_format NAME from nginx's
// own config, includes and wildcards followed, through the caller's
// ReadFileFunc and GlobFunc, so this package does no I/O), a pasted
// "log_format NAME ...;" directive, or a literal format.
package parser
