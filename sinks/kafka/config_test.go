package kafka

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

const sampleTOML = `
enabled = true
brokers = ["127.0.0.1:9092", "[::1]:9093"]
topic = "nginx-access"
key = ""
compression = "lz4"
dead_letter_topic = "nginx-access-invalid"
raw_topic = "nginx-access-raw"
partitioner = "uniform_bytes"
client_id = "web-1"
linger = "20ms"
batch_max_bytes = 500000
max_buffered_records = 5000
max_buffered_bytes = 10000000
request_timeout = "45s"
dial_timeout = "3s"

[tls]
enabled = true
server_name = "kafka.internal"

[sasl]
mechanism = "SCRAM-SHA-512"
username = "shipper"
password = "from-env"
`

func TestConfigDecodesEveryKey(t *testing.T) {
	var c Config
	md, err := toml.Decode(sampleTOML, &c)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("undecoded keys: %v", u)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if *c.Key != "" || c.Linger.Duration != 20*time.Millisecond || c.RequestTimeout.Duration != 45*time.Second ||
		c.SASL.Mechanism != MechScram512 || c.TLS.ServerName != "kafka.internal" || c.BatchMaxBytes != 500000 {
		t.Fatalf("decoded %+v", c)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Brokers: []string{"k:9092"}, Topic: "t"}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if !c.IsEnabled() || *c.Key != "remote_addr" || c.Compression != "zstd" || c.DeadLetterTopic != "" ||
		c.Partitioner != "sticky" || c.MaxBufferedRecords != 100_000 || c.Hostname == "" {
		t.Fatalf("defaults: %+v", c)
	}
	off := false
	c = Config{Enabled: &off}
	c.Defaults()
	if c.IsEnabled() {
		t.Fatal("enabled = false is not honoured")
	}
}

func TestConfigValidateNamesEveryProblem(t *testing.T) {
	c := Config{
		Brokers:         []string{"no-port"},
		Topic:           "",
		Compression:     "brotli",
		DeadLetterTopic: "bad topic!",
		Partitioner:     "random",
		Linger:          Duration{-time.Second},
		BatchMaxBytes:   10,
		TLS:             TLSConfig{CAFile: "/nonexistent/ca.pem", CertFile: "/x.pem"},
		SASL:            SASLConfig{Mechanism: "GSSAPI"},
	}
	c.Defaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, key := range []string{
		"sinks.kafka.brokers[0]", "sinks.kafka.topic:", "sinks.kafka.compression", "sinks.kafka.dead_letter_topic",
		"sinks.kafka.partitioner", "sinks.kafka.linger", "sinks.kafka.batch_max_bytes", "sinks.kafka.tls.ca_file",
		"sinks.kafka.tls.key_file", "sinks.kafka.sasl.mechanism",
	} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("no problem reported for %s in:\n%v", key, err)
		}
	}
}

func TestConfigSASLNeedsCredentials(t *testing.T) {
	for name, tc := range map[string]struct {
		sasl SASLConfig
		want string
	}{
		"no user":        {SASLConfig{Mechanism: "PLAIN", Password: "p"}, "sinks.kafka.sasl.username"},
		"no password":    {SASLConfig{Mechanism: "PLAIN", Username: "u"}, "sinks.kafka.sasl.password"},
		"both passwords": {SASLConfig{Mechanism: "PLAIN", Username: "u", Password: "p", PasswordFile: "f"}, "not both"},
		"missing file":   {SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "u", PasswordFile: "/nonexistent"}, "sinks.kafka.sasl.password_file"},
		"iam with user":  {SASLConfig{Mechanism: "aws_msk_iam", Username: "u"}, "AWS chain"},
	} {
		t.Run(name, func(t *testing.T) {
			c := Config{Brokers: []string{"k:9092"}, Topic: "t", SASL: tc.sasl}
			c.Defaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
			if err != nil && tc.sasl.Password != "" && strings.Contains(err.Error(), tc.sasl.Password+`"`) {
				t.Fatalf("password in error: %v", err)
			}
		})
	}
	f := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(f, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{Brokers: []string{"k:9092"}, Topic: "t", SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", PasswordFile: f}}
	c.Defaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("Validate with an empty password file = %v", err)
	}
}

func TestConfigNeverPrintsThePassword(t *testing.T) {
	c := Config{SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", Password: "hunter2-secret"}}
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprint(c.SASL)} {
		if strings.Contains(s, "hunter2-secret") {
			t.Fatalf("password printed: %s", s)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "sasl", c.SASL)
	if strings.Contains(buf.String(), "hunter2-secret") {
		t.Fatalf("password logged: %s", buf.String())
	}
}

func TestAWSMSKIAMMechanism(t *testing.T) {
	s := SASLConfig{Mechanism: MechAWSMSKIAM}
	m, err := s.mechanism()
	if err != nil || m == nil || m.Name() != "AWS_MSK_IAM" {
		t.Fatalf("mechanism() = %v, %v", m, err)
	}
}
