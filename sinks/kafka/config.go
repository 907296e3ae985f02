package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a Go duration string ("5ms").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (want e.g. \"5ms\", \"30s\"): %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the [sinks.kafka] table.
//
// Secrets (sasl.password) come either from `${VAR}` expansion, which the
// config loader applies before Validate, or from a file (sasl.password_file);
// they are never logged.
type Config struct {
	// Enabled turns the sink off when false. Defaults fills true: the
	// table's presence enables the sink.
	Enabled *bool `toml:"enabled"`
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string `toml:"brokers"`
	// Topic receives the parsed events (JSON). Required.
	Topic string `toml:"topic"`
	// Key names the event field used as the record key. The parser extracts
	// it (sinks.Event.Key); the sink only uses what the parser put there.
	// "" means no key: records are spread by the partitioner.
	Key *string `toml:"key"`
	// Compression is one of none, gzip, snappy, lz4, zstd.
	Compression string `toml:"compression"`
	// DeadLetterTopic receives, raw, the lines that did not parse and the
	// records the broker rejected for good. "" only counts them.
	DeadLetterTopic string `toml:"dead_letter_topic"`
	// RawTopic, when set, also receives every parsed line as read, keyed like
	// the event ("original and enriched"). Off ("") by default.
	RawTopic string `toml:"raw_topic"`
	// EnrichedTopic, when set and [enrich] is on, receives every parsed
	// event with its enrichment (client_ip, geo, ua) while topic keeps the
	// original; "" (default): topic carries the enriched events.
	EnrichedTopic string `toml:"enriched_topic"`
	// Partitioner is sticky (default: murmur2 of the key like the Java
	// client, sticky batches for records without a key), uniform_bytes
	// (KIP-480: key hashing, keyless records switch partition every
	// batch_max_bytes), round_robin or least_backup. The last two ignore the
	// key, so they do not keep a key's records in order on one partition.
	Partitioner string `toml:"partitioner"`
	// ClientID is the Kafka client.id. Default "nginx-shipper".
	ClientID string `toml:"client_id"`
	// Linger is how long a partition waits for more records before a
	// produce request is built. Default 5ms.
	Linger Duration `toml:"linger"`
	// BatchMaxBytes is the largest record batch, compressed, sent to one
	// partition. It must not exceed the topic's max.message.bytes. A single
	// record larger than this is rejected for good. Default 1000000.
	BatchMaxBytes int32 `toml:"batch_max_bytes"`
	// MaxBufferedRecords and MaxBufferedBytes bound what the sink holds
	// without acknowledgement; Send blocks (backpressure) past them.
	// Defaults 100000 records and 64 MiB (value + key bytes).
	MaxBufferedRecords int   `toml:"max_buffered_records"`
	MaxBufferedBytes   int64 `toml:"max_buffered_bytes"`
	// RequestTimeout is the broker-side limit for a produce request (acks=all
	// waits for the in-sync replicas). Timed-out requests are retried, never
	// dropped. Default 30s.
	RequestTimeout Duration `toml:"request_timeout"`
	// DialTimeout bounds opening a connection to a broker. Default 10s.
	DialTimeout Duration `toml:"dial_timeout"`

	TLS  TLSConfig  `toml:"tls"`
	SASL SASLConfig `toml:"sasl"`

	// ValueFormat is json (the event's JSON, default) or avro: the
	// Confluent wire format (magic byte 0, the schema id, Avro binary) with
	// the schema registered in SchemaRegistry. See registry.go.
	ValueFormat    string         `toml:"value_format"`
	SchemaRegistry RegistryConfig `toml:"schema_registry"`

	// Hostname is the value of the "host" record header. Not read from the
	// [sinks.kafka] table: the caller sets it from [agent] hostname; Defaults
	// fills os.Hostname().
	Hostname string `toml:"-"`
}

// TLSConfig is [sinks.kafka.tls].
type TLSConfig struct {
	// Enabled turns TLS on. It is also implied by any other key of the table.
	Enabled bool `toml:"enabled"`
	// CAFile is a PEM bundle of the CAs trusted for the brokers; "" uses the
	// system roots.
	CAFile string `toml:"ca_file"`
	// CertFile and KeyFile are the client certificate and key (PEM) for
	// mutual TLS; both or neither.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// ServerName overrides the name checked in the broker certificates.
	ServerName string `toml:"server_name"`
	// InsecureSkipVerify disables certificate verification. For tests only.
	InsecureSkipVerify bool `toml:"insecure_skip_verify"`
}

// on reports whether TLS is in use.
func (t *TLSConfig) on() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// SASLConfig is [sinks.kafka.sasl].
type SASLConfig struct {
	// Mechanism is "" (no SASL), PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or
	// AWS_MSK_IAM (credentials from the standard AWS chain; the region is
	// taken from the broker host name).
	Mechanism string `toml:"mechanism"`
	Username  string `toml:"username"`
	// Password, or PasswordFile: a file whose content (trailing newline
	// trimmed) is the password. Exactly one for PLAIN and SCRAM.
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
}

// Mechanism names accepted in sasl.mechanism.
const (
	MechPlain     = "PLAIN"
	MechScram256  = "SCRAM-SHA-256"
	MechScram512  = "SCRAM-SHA-512"
	MechAWSMSKIAM = "AWS_MSK_IAM"
)

// Defaults fills zero values with defaults.
func (c *Config) Defaults() {
	if c.Enabled == nil {
		t := true
		c.Enabled = &t
	}
	if c.Key == nil {
		k := "remote_addr"
		c.Key = &k
	}
	if c.Compression == "" {
		c.Compression = "zstd"
	}
	if c.Partitioner == "" {
		c.Partitioner = "sticky"
	}
	if c.ClientID == "" {
		c.ClientID = "nginx-shipper"
	}
	if c.Linger.Duration == 0 {
		c.Linger.Duration = 5 * time.Millisecond
	}
	if c.BatchMaxBytes == 0 {
		c.BatchMaxBytes = 1_000_000
	}
	if c.MaxBufferedRecords == 0 {
		c.MaxBufferedRecords = 100_000
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = 64 << 20
	}
	if c.RequestTimeout.Duration == 0 {
		c.RequestTimeout.Duration = 30 * time.Second
	}
	if c.DialTimeout.Duration == 0 {
		c.DialTimeout.Duration = 10 * time.Second
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	c.SASL.Mechanism = strings.ToUpper(c.SASL.Mechanism)
	if c.ValueFormat == "" {
		c.ValueFormat = ValueJSON
	}
	c.SchemaRegistry.defaults()
}

// IsEnabled reports whether the sink is on (after Defaults).
func (c *Config) IsEnabled() bool { return c.Enabled == nil || *c.Enabled }

// Validate returns every problem of the configuration, joined, each naming
// its full key. Call Defaults first. It reads the files it names (CA,
// certificate, password) to check they are usable. A disabled sink
// (enabled = false) is not checked.
func (c *Config) Validate() error {
	if !c.IsEnabled() {
		return nil // a switched-off sink may be half configured
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("sinks.kafka.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "must list at least one broker (host:port)")
	}
	for i, b := range c.Brokers {
		if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
			bad(fmt.Sprintf("brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if c.Topic == "" {
		bad("topic", "must not be empty")
	}
	checkTopic := func(key, t string) {
		if err := CheckTopic(t); err != nil {
			bad(key, "%v", err)
		}
	}
	checkTopic("topic", c.Topic)
	checkTopic("dead_letter_topic", c.DeadLetterTopic)
	checkTopic("raw_topic", c.RawTopic)
	checkTopic("enriched_topic", c.EnrichedTopic)
	if c.EnrichedTopic != "" && (c.EnrichedTopic == c.Topic || c.EnrichedTopic == c.RawTopic || c.EnrichedTopic == c.DeadLetterTopic) {
		bad("enriched_topic", "must differ from sinks.kafka.topic, raw_topic and dead_letter_topic")
	}
	if c.DeadLetterTopic != "" && c.DeadLetterTopic == c.Topic {
		bad("dead_letter_topic", "must differ from sinks.kafka.topic, so bad lines never reach the consumers of parsed events")
	}
	if c.RawTopic != "" && c.RawTopic == c.Topic {
		bad("raw_topic", "must differ from sinks.kafka.topic")
	}
	if c.RawTopic != "" && c.RawTopic == c.DeadLetterTopic {
		bad("raw_topic", "must differ from sinks.kafka.dead_letter_topic")
	}
	if _, err := codec(c.Compression); err != nil {
		bad("compression", "%v", err)
	}
	if _, err := partitioner(c.Partitioner, c.BatchMaxBytes); err != nil {
		bad("partitioner", "%v", err)
	}
	if c.Linger.Duration < 0 {
		bad("linger", "must not be negative, got %s", c.Linger.Duration)
	}
	if c.BatchMaxBytes < 1024 {
		bad("batch_max_bytes", "must be at least 1024, got %d", c.BatchMaxBytes)
	}
	if c.MaxBufferedRecords < 1 {
		bad("max_buffered_records", "must be positive, got %d", c.MaxBufferedRecords)
	}
	if c.MaxBufferedBytes < int64(c.BatchMaxBytes) {
		bad("max_buffered_bytes", "must be at least batch_max_bytes (%d), got %d", c.BatchMaxBytes, c.MaxBufferedBytes)
	}
	if c.RequestTimeout.Duration < 100*time.Millisecond {
		bad("request_timeout", "must be at least 100ms, got %s", c.RequestTimeout.Duration)
	}
	if c.DialTimeout.Duration < 100*time.Millisecond {
		bad("dial_timeout", "must be at least 100ms, got %s", c.DialTimeout.Duration)
	}
	if c.TLS.on() {
		if _, err := c.TLS.config(); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.ValueFormat {
	case ValueJSON:
	case ValueAvro:
		errs = append(errs, c.SchemaRegistry.validate()...)
	default:
		bad("value_format", "%q: want json or avro", c.ValueFormat)
	}
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.Username != "" || c.SASL.Password != "" || c.SASL.PasswordFile != "" {
			bad("sasl.mechanism", "must be set when sasl.username or a password is")
		}
	case MechPlain, MechScram256, MechScram512:
		if c.SASL.Username == "" {
			bad("sasl.username", "must not be empty with mechanism %s", c.SASL.Mechanism)
		}
		switch {
		case c.SASL.Password != "" && c.SASL.PasswordFile != "":
			bad("sasl.password", "set sasl.password or sasl.password_file, not both")
		case c.SASL.Password == "" && c.SASL.PasswordFile == "":
			bad("sasl.password", "must be set (or sasl.password_file) with mechanism %s", c.SASL.Mechanism)
		case c.SASL.PasswordFile != "":
			if _, err := c.SASL.password(); err != nil {
				bad("sasl.password_file", "%v", err)
			}
		}
	case MechAWSMSKIAM:
		if c.SASL.Username != "" || c.SASL.Password != "" || c.SASL.PasswordFile != "" {
			bad("sasl.mechanism", "AWS_MSK_IAM takes its credentials from the AWS chain; remove sasl.username and the password")
		}
	default:
		bad("sasl.mechanism", "%q: want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM", c.SASL.Mechanism)
	}
	return errors.Join(errs...)
}

// password returns the SASL password, from the file when one is named. The
// error never contains the password.
func (s *SASLConfig) password() (string, error) {
	if s.PasswordFile == "" {
		return s.Password, nil
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("reading the password file: %w", err)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", fmt.Errorf("the password file %s is empty", s.PasswordFile)
	}
	return p, nil
}

// String describes the SASL settings without the password, so that a
// config printed with %v or %+v never shows it.
func (s SASLConfig) String() string {
	p := ""
	if s.Password != "" {
		p = "(redacted)"
	}
	return fmt.Sprintf("{Mechanism:%s Username:%s Password:%s PasswordFile:%s}", s.Mechanism, s.Username, p, s.PasswordFile)
}

// LogValue implements slog.LogValuer, redacting the password.
func (s SASLConfig) LogValue() slog.Value { return slog.StringValue(s.String()) }

// CheckTopic reports why t is not a valid Kafka topic name ("" is valid:
// none). The agent's per-input topic is checked with it too.
func CheckTopic(t string) error {
	if len(t) > 249 {
		return errors.New("topic names are at most 249 characters")
	}
	for _, r := range t {
		if !(r == '.' || r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("%q: topic names use only a-z A-Z 0-9 . _ -", t)
		}
	}
	return nil
}
