// Package parser compiles an nginx log_format into a parser that turns one
// access-log line into a typed JSON event. It is pure: no I/O.
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
// field gets the shorter value.
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
//     "server_protocol" when it is a request line (METHOD URI PROTOCOL, or
//     the HTTP/0.9 METHOD URI); otherwise (scanner garbage, "") only
//     "request". A part the format also logs as its own variable is not
//     duplicated.
//   - $http_NAME, $sent_http_NAME, $upstream_http_NAME go into the objects
//     "request_headers", "response_headers", "upstream_headers" under NAME,
//     placed where the first of their members is.
//   - integers: $status, $body_bytes_sent, $bytes_sent, $request_length,
//     $connection, $connection_requests; numbers: $request_time, $msec.
//   - arrays (nginx's ", " and " : " separated lists, "-" entries as null):
//     $upstream_response_time, $upstream_connect_time,
//     $upstream_header_time (numbers); $upstream_status,
//     $upstream_response_length, $upstream_bytes_received,
//     $upstream_bytes_sent (integers); $upstream_addr (strings).
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
// json), nginx's format string, or the string as written in nginx.conf, as
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
