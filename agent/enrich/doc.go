// Package enrich adds to an access-log event what every consumer otherwise
// derives again: the real client address behind the load balancers
// (client_ip), where it is (geo) and what browser or bot sent the request
// (ua). It is configured by the [enrich] table; its presence turns it on.
//
// It reads databases from disk, so it lives here and not in the pure
// parser; it takes its inputs from a parsed line through the parser's
// field accessor (parser.Parser.FieldIndex and AppendValue).
//
// # The pipeline, per line
//
// Inputs, decoded values of the parsed line (escapes undone):
//
//   - remote_addr ($remote_addr), the peer of nginx's connection;
//   - the request header named by client_ip_header ($http_NAME, typically
//     x_forwarded_for), when set;
//   - the user agent ($http_user_agent), when user_agent = true.
//
// A value nginx wrote as "-" is absent. Outputs are appended to the event's
// JSON object, after its last field, in this order and only when known:
//
//	"client_ip":"203.0.113.7",
//	"geo":{"country_code":"DE","country":"Germany","region":"Hesse",
//	       "city":"Frankfurt am Main","latitude":50.11,"longitude":8.68,
//	       "asn":3320,"as_org":"Deutsche Telekom AG"},
//	"ua":{"browser":"Chrome","browser_version":"131.0.0.0","os":"Windows",
//	      "os_version":"7","device":"desktop","bot":false}
//
// A field that cannot be known is left out, never guessed: no client_ip
// when remote_addr is absent or not an address; no geo for private,
// loopback, link-local, multicast or unspecified addresses, nor for an
// address no database knows; inside geo and ua, each member only when the
// database or the parser gave it, except ua's device ("other" when the
// parser could not classify it) and bot (false unless detected), present
// whenever a user agent is. An event with nothing known gets no
// enrichment fields at all.
//
// Steps:
//
//  1. client_ip (realip.go). Exactly nginx's realip module with
//     real_ip_recursive on (ngx_http_get_forwarded_addr_internal): the
//     address starts as remote_addr; while it is in trusted_proxies and
//     the header has entries left, the header's last entry (separated by
//     ',' or ' ') is parsed as nginx's ngx_parse_addr_port does (IPv4 as
//     ngx_inet_addr, IPv6 as ngx_inet6_addr, optional :port, [v6]:port) and
//     becomes the address; an entry that does not parse stops the walk,
//     keeping the address reached so far (nginx's NGX_DONE). Trusted
//     addresses are matched as ngx_cidr_match does: an IPv4-mapped IPv6
//     address matches the IPv4 ranges. If every entry is trusted, the
//     leftmost one is the client, as with nginx. The walk is a backwards
//     scan of the header bytes: no allocation, linear in the header's
//     length, whatever it holds (a forged chain of a thousand entries, a
//     1 MiB header) — and a forged chain can only name an address a
//     trusted proxy appended, or stop at the first untrusted hop, which is
//     the point of walking from the right.
//  2. geo (geo.go). The address is looked up in geoip_database and
//     asn_database (.mmdb, read with oschwald/maxminddb-golang v2, mmap'd).
//     The network cache comes first: the fragment is cached under the
//     address's block (/24 for IPv4, /48 for IPv6) when the network the
//     databases place the address in holds that whole block, else under
//     the next longer block that fits (/64, then the address itself), so
//     a lookup probes at most two (IPv4) or three (IPv6) blocks, shortest
//     first. This is exact: the network maxminddb returns with a result
//     (found or not) is one in which every address has that result, and
//     of the two databases' networks of an address the longer lies in the
//     shorter. A new client in a known network (an IPv6 privacy address,
//     the next customer of an ISP's /24) so walks no tree. On a miss the
//     lookup walks both search trees (about 0.3 µs for two databases),
//     which give the offsets of the records in the data section without
//     decoding them; the fragment is cached by the pair of offsets (record
//     cache), so the networks of one place share it. Only a miss there
//     decodes the records (into one struct of the members read, with
//     small custom decoders where the layouts differ) and renders the
//     fragment. Layouts read:
//     GeoIP2/GeoLite2 City and Country and DB-IP Lite City/Country
//     (country.iso_code, country.names.en, subdivisions[0].names.en,
//     city.names.en, location.latitude/longitude); ip-location-db
//     (country_code, state1, city, latitude, longitude as flat fields);
//     GeoLite2 ASN, DB-IP Lite ASN and ip-location-db ASN
//     (autonomous_system_number, autonomous_system_organization). Either
//     database may hold any of these: members are merged, the geoip
//     database first.
//  3. ua (ua.go). The user agent, cut to max 512 bytes (a longer one is
//     parsed and cached by its first 512 bytes: the result depends only on
//     them), is looked up in the UA cache; a miss parses it with
//     medama-io/go-useragent (a trie, no regular expressions, no
//     allocation), completes os_version from the OS token the library
//     matched (iPhone OS 18_1, Android 14, Mac OS X 10_15_7, Windows NT
//     6.1 → 7; NT 10.0 is 10 or 11 and so is left out), marks bot for
//     known crawler and tool tokens the library does not flag (Wget,
//     okhttp, axios, "+http" crawler URLs, ...), and renders the "ua"
//     fragment into the cache. Chosen by measurement over ua-parser/uap-go
//     (see README: medama ≈0.5 µs and 0 allocations per uncached UA;
//     uap-go ≈2 µs with its own cache warm and ≈800 µs per unique UA,
//     and it marks none of curl, python-requests or Go-http-client as
//     bots).
//
// # Avro
//
// With the Kafka sink in Avro, the enriched record is the original event's
// Avro followed by AppendAvro's bytes: the enriched schema (Schema) is the
// original's with Fields appended after its last field (invalid_utf8), each
// a union ["null", T] with default null, so it is a BACKWARD-compatible
// extension and a reader of the original schema reads enriched records.
// client_ip is ["null","string"]; geo and ua are ["null", record] whose
// members are each nullable (unknown: null, as the JSON leaves them out;
// latitude and longitude together or neither, as in JSON). The caches hold
// each key's JSON and Avro side by side (frag), rendered once on a miss,
// so the Avro costs no lookup or allocation more on the cached path;
// AppendAvroFound renders what the last Append (or Find) found, without
// looking up again.
//
// # The caches
//
// The caches map a key to an immutable, already rendered JSON fragment,
// so a hit is one lookup and one append. The network cache and the
// user-agent cache, which every line reads (from the harvester and the
// parse workers at once), are one mechanism (setCache): a four-way
// set-associative array of immutable entries read with atomic loads and
// no lock, each set's four tags and four pointers in one cache line, so
// that a probe loads one line and follows a pointer only when a tag
// matches. An insertion moves its set's ways down by one and drops the
// last, so they are bounded by construction, and a flood of unique user
// agents only costs its own parse per line: it evicts, it cannot grow the
// heap. A hit in the second half of a set moves the entry to the front,
// so an entry seen between insertions into its set stays. UA entries hold
// at most 512 bytes of key, so their memory is bounded by capacity × (512
// + fragment); the typical size per entry is measured by
// BenchmarkUACacheMemory. The geo record cache, read only when the
// network cache misses, is fully associative, since its miss costs a
// decode: 16 shards by the key's hash, each a map under its own mutex and
// a CLOCK of capacity/16 entries (a hit sets the entry's referenced bit;
// an insertion into a full shard moves the hand past referenced entries,
// clearing their bit, and replaces the first one not hit since the hand
// last passed it). It holds its capacity, so records the clients use that
// fit are decoded once each, and a record seen once is the first
// replaced (see geoCache). The geo caches
// (by address block, 4 × geo_cache_size entries; by record offsets,
// geo_cache_size entries) are tied to the database generation they were
// filled from (see reload).
//
// # Bounds under hostile input
//
// Per line: the realip walk is one backwards pass over the header (any
// length, no allocation, no quadratic step); the UA parse sees at most 512
// bytes; the caches cannot grow past their capacity; the database lookup
// is a bounded tree walk (128 steps for IPv6). Garbage addresses parse to
// nothing and give no field. A 1 MiB header costs one pass over 1 MiB.
//
// # Concurrency
//
// An Enricher is shared by all harvesters; each harvester has its own
// *State (scratch buffers for the decoded inputs), so Append allocates
// nothing on the cached path. The caches are safe for concurrent use.
//
// # Database reload
//
// geoipupdate writes a new database next to the old one and renames it
// over. Every reload_interval (CheckReload, driven by Run) the enricher
// stats both paths; when a file's identity (device, inode, size, mtime)
// changed, it opens and checks the new file and, if it is good, swaps in a
// new generation (both readers and a new, empty geo cache, since record
// offsets differ between files) with one atomic pointer store. A line
// loads the pointer once and uses that generation throughout, so it never
// mixes two databases. The old reader is not closed: a line may still be
// reading it; maxminddb releases its mmap (a cleanup on the Reader) when
// the last line holding it is done and it is garbage. A new file that
// fails to open or check is logged once per identity and the old
// generation stays in use; a missing file (mid-rename) keeps it too.
//
// # Errors
//
// Config.Validate names the key: a trusted_proxies entry that is not an
// address or CIDR, a client_ip_header that is not a header name, a
// geoip_database or asn_database that is missing, unreadable, not an
// mmdb file or corrupt (the whole search tree is walked, which checks
// every node and record pointer, and records are decoded into what the
// lines read: all of a small database, a sample of a large one, see
// openDB; maxminddb's Verify is stricter than the format and refuses the
// real ip-location-db files), an empty trusted_proxies with a
// client_ip_header (nothing would ever be walked) and negative sizes.
// Config.Check names client_ip_header for a format that does not log it;
// validate fails when no input does (an input that does not is enriched as
// lines without the header, as nginx would). After start, enrichment never
// fails a line: what cannot be computed is left out.
package enrich
