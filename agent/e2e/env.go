package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// Env is the whole pipeline of one test: nginx, kfake, versitygw and the
// agent's config; StartShipper starts the agent.
type Env struct {
	T       testing.TB
	Nginx   *Nginx
	Kafka   *Kafka
	S3      *s3test.Server
	Topic   string
	DLT     string
	Prefix  string
	Cfg     *Config
	Shipper *Process

	consumer *Consumer
	s3r      *S3Reader
}

// EnvOptions shape an Env.
type EnvOptions struct {
	// Inputs returns the [[inputs]]; default: access.log as combined and
	// custom.log in CustomFormat.
	Inputs      func(n *Nginx) []Input
	Compression string   // Kafka compression; default "none"
	NoS3        bool     // no [sinks.s3]
	NoKafka     bool     // no [sinks.kafka]
	RotateWait  string   // default "2s"
	BatchMaxAge string   // S3; default "1s" (the minimum)
	Topics      []string // more Kafka topics to create (inputs' own topics)
	// Enrich, when set, is the body of an [enrich] table (TOML lines).
	Enrich string
	// EnrichedTopic, when set, is [sinks.kafka] enriched_topic (created in
	// the Kafka cluster).
	EnrichedTopic string
}

// Hostname is the agent's configured hostname in every Env.
const Hostname = "e2e-host"

// NewEnv starts nginx, kfake and versitygw (skipping t when a binary is
// absent, see Missing), builds the agent and writes its config. The agent
// is not started.
func NewEnv(t testing.TB, o EnvOptions) *Env {
	t.Helper()
	e := &Env{T: t, Topic: "nginx-access", DLT: "nginx-access-invalid", Prefix: "nginx/"}
	e.Nginx = StartNginx(t) // first: it skips t when nginx is absent
	Shipper(t)
	if !o.NoS3 {
		e.S3 = s3test.Start(t)
	}
	if !o.NoKafka {
		topics := append([]string{e.Topic, e.DLT}, o.Topics...)
		if o.EnrichedTopic != "" {
			topics = append(topics, o.EnrichedTopic)
		}
		e.Kafka = StartKafka(t, topics...)
	}
	if o.Inputs == nil {
		o.Inputs = func(n *Nginx) []Input {
			return []Input{
				{Paths: []string{n.AccessLog()}, Format: "combined"},
				{Paths: []string{n.CustomLog()}, Format: CustomFormat},
			}
		}
	}
	if o.Compression == "" {
		o.Compression = "none"
	}
	if o.RotateWait == "" {
		o.RotateWait = "2s"
	}
	if o.BatchMaxAge == "" {
		o.BatchMaxAge = "1s"
	}
	e.Cfg = &Config{
		Hostname:           Hostname,
		DataDir:            filepath.Join(t.TempDir(), "data"),
		MetricsListen:      FreeAddr(t),
		ScanInterval:       "100ms",
		PollInterval:       "50ms",
		CheckpointInterval: "200ms",
		RotateWait:         o.RotateWait,
		ShutdownTimeout:    "20s",
		Inputs:             o.Inputs(e.Nginx),
		Enrich:             o.Enrich,
	}
	if e.Kafka != nil {
		e.Cfg.Kafka = &KafkaSink{Brokers: e.Kafka.Brokers, Topic: e.Topic, Key: "remote_addr",
			Compression: o.Compression, DeadLetterTopic: e.DLT, EnrichedTopic: o.EnrichedTopic}
		e.consumer = e.Kafka.Consume(t, e.Topic)
	}
	if e.S3 != nil {
		e.Cfg.S3 = S3For(e.S3, e.Prefix+"dt=%Y-%m-%d/hour=%H/", o.BatchMaxAge)
		e.s3r = NewS3Reader(t, e.S3, e.Prefix)
	}
	return e
}

// StartShipper starts the agent (once; use e.Shipper.Start to restart).
func (e *Env) StartShipper() *Process {
	e.T.Helper()
	e.Shipper = StartShipper(e.T, Shipper(e.T), e.Cfg)
	return e.Shipper
}

// KafkaEvents returns the events read from the topic so far.
func (e *Env) KafkaEvents() []Event { return e.consumer.Events() }

// KafkaConsumer is the background consumer of the topic.
func (e *Env) KafkaConsumer() *Consumer { return e.consumer }

// S3Events downloads new objects and returns every event so far; err is
// set when the server could not be read (it may be down on purpose).
func (e *Env) S3Events() ([]Event, error) {
	err := e.s3r.Refresh(HourPrefix(e.Prefix))
	return e.s3r.Events(), err
}

// S3Objects is how many objects were downloaded so far.
func (e *Env) S3Objects() int { return e.s3r.Objects() }

// Sinks lists the enabled sinks by name ("kafka", "s3").
func (e *Env) Sinks() []string {
	var out []string
	if e.Kafka != nil {
		out = append(out, "kafka")
	}
	if e.S3 != nil {
		out = append(out, "s3")
	}
	return out
}

// Events returns a sink's events so far.
func (e *Env) Events(sink string) []Event {
	e.T.Helper()
	switch sink {
	case "kafka":
		return e.KafkaEvents()
	case "s3":
		evs, err := e.S3Events()
		if err != nil {
			e.T.Logf("e2e: reading S3: %v", err)
		}
		return evs
	}
	e.T.Fatalf("e2e: unknown sink %q", sink)
	return nil
}

// WaitDelivered waits until every enabled sink has, for each stream, an
// event for every wanted seq.
func (e *Env) WaitDelivered(timeout time.Duration, want map[string]map[int]bool) {
	e.T.Helper()
	for _, sink := range e.Sinks() {
		start := time.Now()
		WaitFor(e.T, timeout, sink+" to hold every line", func() (bool, string) {
			tl := TallyOf(e.Events(sink))
			for stream, w := range want {
				if ok, msg := Covers(tl[stream], w); !ok {
					return false, fmt.Sprintf("%s %s: %s", sink, stream, msg)
				}
			}
			return true, ""
		})
		e.T.Logf("e2e: %s held every line after %.2fs more", sink, time.Since(start).Seconds())
	}
}

// Final brings both sinks' views up to date after the agent stopped (the
// consumer read to the topic's end, every object downloaded) and returns,
// per sink, the tally.
func (e *Env) Final() map[string]Tally {
	e.T.Helper()
	out := map[string]Tally{}
	if e.Kafka != nil {
		e.consumer.WaitEnd(30 * time.Second)
		out["kafka"] = TallyOf(e.KafkaEvents())
	}
	if e.S3 != nil {
		evs, err := e.S3Events()
		if err != nil {
			e.T.Fatalf("e2e: reading S3: %v", err)
		}
		out["s3"] = TallyOf(evs)
	}
	return out
}

// LogSeqs reads nginx log files and counts, per seq, the lines that carry
// it. Missing files count nothing.
func LogSeqs(t testing.TB, paths ...string) map[int]int {
	t.Helper()
	out := map[int]int{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatalf("e2e: %v", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if s := ParseSeq(sc.Text()); s >= 0 {
				out[s]++
			}
		}
	}
	return out
}

// SeqSet returns the keys of counts as a set.
func SeqSet(counts map[int]int) map[int]bool {
	out := make(map[int]bool, len(counts))
	for s := range counts {
		out[s] = true
	}
	return out
}
