package kafka

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// Value formats of [sinks.kafka] value_format.
const (
	ValueJSON = "json"
	ValueAvro = "avro"
)

// Subject naming strategies (Confluent's TopicNameStrategy,
// RecordNameStrategy, TopicRecordNameStrategy).
const (
	SubjectTopic       = "topic"
	SubjectRecord      = "record"
	SubjectTopicRecord = "topic_record"
)

// RegistryConfig is [sinks.kafka.schema_registry].
type RegistryConfig struct {
	// URL or URLs: the registry's base URLs (http:// or https://); the
	// client tries them in turn.
	URL  string   `toml:"url"`
	URLs []string `toml:"urls"`
	// Username with Password or PasswordFile: HTTP basic auth.
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	// BearerTokenFile holds a bearer token (re-read at each start and reload).
	BearerTokenFile string `toml:"bearer_token_file"`
	// TLS as for the brokers ([sinks.kafka.schema_registry.tls]).
	TLS TLSConfig `toml:"tls"`
	// SubjectStrategy: topic (<topic>-value, the default), record
	// (<namespace>.<name>-value of the Avro record) or topic_record
	// (<topic>-<namespace>.<name>).
	SubjectStrategy string `toml:"subject_strategy"`
	// AutoRegister (default true) registers the schema under its subject;
	// false uses the subject's latest version, after checking with the
	// registry that it can read our events.
	AutoRegister *bool `toml:"auto_register"`
	// Timeout bounds one request to the registry. Default 10s.
	Timeout Duration `toml:"timeout"`
}

func (r *RegistryConfig) urls() []string {
	if r.URL != "" {
		return append([]string{r.URL}, r.URLs...)
	}
	return r.URLs
}

func (r *RegistryConfig) defaults() {
	if r.SubjectStrategy == "" {
		r.SubjectStrategy = SubjectTopic
	}
	if r.AutoRegister == nil {
		t := true
		r.AutoRegister = &t
	}
	if r.Timeout.Duration == 0 {
		r.Timeout.Duration = 10 * time.Second
	}
}

// validate returns the problems of the table, each naming its key.
func (r *RegistryConfig) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("sinks.kafka.schema_registry.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(r.urls()) == 0 {
		bad("url", "must be set (or urls) with value_format = \"avro\"")
	}
	for i, u := range r.urls() {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			key := "url"
			if r.URL == "" || i > 0 {
				key = fmt.Sprintf("urls[%d]", i-btoi(r.URL != ""))
			}
			bad(key, "%q must start with http:// or https://", u)
		}
	}
	switch r.SubjectStrategy {
	case SubjectTopic, SubjectRecord, SubjectTopicRecord:
	default:
		bad("subject_strategy", "%q: want topic, record or topic_record", r.SubjectStrategy)
	}
	if r.Password != "" && r.PasswordFile != "" {
		bad("password", "set password or password_file, not both")
	}
	if (r.Password != "" || r.PasswordFile != "") && r.Username == "" {
		bad("username", "must be set with a password")
	}
	if r.Username != "" && r.BearerTokenFile != "" {
		bad("bearer_token_file", "use basic auth (username) or a bearer token, not both")
	}
	if r.PasswordFile != "" {
		if _, err := readSecret(r.PasswordFile); err != nil {
			bad("password_file", "%v", err)
		}
	}
	if r.BearerTokenFile != "" {
		if _, err := readSecret(r.BearerTokenFile); err != nil {
			bad("bearer_token_file", "%v", err)
		}
	}
	if r.TLS.on() {
		if _, err := r.TLS.config(); err != nil {
			errs = append(errs, fmt.Errorf("sinks.kafka.schema_registry: %s",
				strings.ReplaceAll(err.Error(), "sinks.kafka.tls.", "schema_registry.tls.")))
		}
	}
	if r.Timeout.Duration < 100*time.Millisecond {
		bad("timeout", "must be at least 100ms, got %s", r.Timeout.Duration)
	}
	return errs
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// client builds the franz-go registry client.
func (r *RegistryConfig) client() (*sr.Client, error) {
	opts := []sr.ClientOpt{sr.URLs(r.urls()...), sr.UserAgent("nginx-shipper"),
		sr.HTTPClient(&http.Client{Timeout: r.Timeout.Duration})}
	if r.TLS.on() {
		tc, err := r.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, sr.DialTLSConfig(tc))
	}
	if r.Username != "" {
		p := r.Password
		if r.PasswordFile != "" {
			var err error
			if p, err = readSecret(r.PasswordFile); err != nil {
				return nil, fmt.Errorf("sinks.kafka.schema_registry.password_file: %w", err)
			}
		}
		opts = append(opts, sr.BasicAuth(r.Username, p))
	}
	if r.BearerTokenFile != "" {
		tok, err := readSecret(r.BearerTokenFile)
		if err != nil {
			return nil, fmt.Errorf("sinks.kafka.schema_registry.bearer_token_file: %w", err)
		}
		opts = append(opts, sr.BearerToken(tok))
	}
	return sr.NewClient(opts...)
}

// InputSchema is the Avro schema of one input's events (parser.Schema.Avro
// of its compiled format), for UseSchemas.
type InputSchema struct {
	Input int    // sinks.Source.Input
	Avro  string // the schema, JSON text
	// Topic is the input's own topic ([[inputs]] topic); "" is the sink's.
	// The subject is derived from it (subject_strategy topic and
	// topic_record), so each topic gets its subject.
	Topic string
	// EnrichedAvro is the schema of the input's enriched events ([enrich]
	// with enriched_topic: agent/enrich.Schema of Avro), registered under
	// enriched_topic's subject; "" when none go there. Without
	// enriched_topic, Avro itself is the enriched schema.
	EnrichedAvro string
}

// ErrSchemaRefused wraps the error of an input whose schema the registry
// refused (409 incompatible, 422 invalid): its events are not produced.
var ErrSchemaRefused = errors.New("schema refused by the registry")

// subjectState is the registration of one input's schema.
type subjectState struct {
	input   int
	subject string
	schema  sr.Schema
	ready   chan struct{} // closed once id or err is set
	id      atomic.Int32  // the schema id, set before ready is closed
	err     error         // ErrSchemaRefused..., set before ready is closed
	version int
}

// registrar registers (or looks up) every input's schema at start, with
// backoff while the registry is unreachable. Records are framed with the
// cached id: the registry is never asked per record.
type registrar struct {
	cfg    *RegistryConfig
	topic  string
	cl     *sr.Client
	log    logger
	byIn   map[int]*subjectState
	byEnr  map[int]*subjectState // enriched_topic's subjects, by input
	states []*subjectState

	mu      sync.Mutex
	waiting string // why some subject is not registered yet ("" when none)
	cancel  context.CancelFunc
	done    chan struct{}
}

type logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// Subject returns the registry subject of an Avro schema under the
// strategy, for topic.
func Subject(strategy, topic, avroSchema string) (string, error) {
	var rec struct{ Name, Namespace string }
	if err := json.Unmarshal([]byte(avroSchema), &rec); err != nil {
		return "", fmt.Errorf("the Avro schema is not JSON: %w", err)
	}
	full := rec.Name
	if rec.Namespace != "" && !strings.Contains(rec.Name, ".") {
		full = rec.Namespace + "." + rec.Name
	}
	switch strategy {
	case SubjectRecord:
		return full + "-value", nil
	case SubjectTopicRecord:
		return topic + "-" + full, nil
	}
	return topic + "-value", nil
}

func newRegistrar(cfg *RegistryConfig, topic, enrichedTopic string, log logger, schemas []InputSchema) (*registrar, error) {
	cl, err := cfg.client()
	if err != nil {
		return nil, err
	}
	r := &registrar{cfg: cfg, topic: topic, cl: cl, log: log, byIn: map[int]*subjectState{}, byEnr: map[int]*subjectState{}, done: make(chan struct{})}
	for _, is := range schemas {
		t := topic
		if is.Topic != "" {
			t = is.Topic
		}
		subj, err := Subject(cfg.SubjectStrategy, t, is.Avro)
		if err != nil {
			return nil, fmt.Errorf("inputs[%d]: %w", is.Input, err)
		}
		st := &subjectState{input: is.Input, subject: subj, schema: sr.Schema{Schema: is.Avro, Type: sr.TypeAvro}, ready: make(chan struct{})}
		r.byIn[is.Input] = st
		r.states = append(r.states, st)
		if is.EnrichedAvro != "" && enrichedTopic != "" {
			subj, err := Subject(cfg.SubjectStrategy, enrichedTopic, is.EnrichedAvro)
			if err != nil {
				return nil, fmt.Errorf("inputs[%d]: the enriched schema: %w", is.Input, err)
			}
			est := &subjectState{input: is.Input, subject: subj, schema: sr.Schema{Schema: is.EnrichedAvro, Type: sr.TypeAvro}, ready: make(chan struct{})}
			r.byEnr[is.Input] = est
			r.states = append(r.states, est)
		}
	}
	if len(r.states) > 0 {
		r.waiting = "registering the Avro schemas with the schema registry"
	}
	return r, nil
}

// start registers every schema in the background until each is
// registered or refused, or stop is called.
func (r *registrar) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		for _, st := range r.states {
			r.register(ctx, st)
		}
		r.mu.Lock()
		r.waiting = ""
		r.mu.Unlock()
	}()
}

func (r *registrar) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

// register resolves one subject, retrying with exponential backoff (0.5s
// doubling to 30s) while the registry cannot be reached or answers 5xx.
func (r *registrar) register(ctx context.Context, st *subjectState) {
	backoff := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		id, version, err := r.resolve(ctx, st)
		if err == nil {
			st.id.Store(int32(id))
			st.version = version
			close(st.ready)
			r.log.Info("Avro schema registered", "input", st.input, "subject", st.subject, "version", version, "id", id)
			return
		}
		if errors.Is(err, ErrSchemaRefused) {
			st.err = err
			close(st.ready)
			r.log.Error("the schema registry refused the input's schema: the input is not read until the configuration or the registry changes (then reload)",
				"input", st.input, "err", err)
			return
		}
		var re *sr.ResponseError
		if errors.As(err, &re) {
			err = fmt.Errorf("%s %s: HTTP %d, error code %d: %w", re.Method, re.URL, re.StatusCode, re.ErrorCode, err)
		}
		r.mu.Lock()
		r.waiting = fmt.Sprintf("cannot register subject %s yet (attempt %d, retrying with backoff; reading waits): %v", st.subject, attempt, err)
		r.mu.Unlock()
		r.log.Warn("the schema registry did not take the schema; reading waits, retrying", "subject", st.subject, "attempt", attempt, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// resolve registers (auto_register) or looks up and checks st's schema.
// A refusal wraps ErrSchemaRefused and names the subject, the version it
// conflicts with and the registry's words; other errors are transient.
func (r *registrar) resolve(ctx context.Context, st *subjectState) (id, version int, err error) {
	if *r.cfg.AutoRegister {
		ss, err := r.cl.CreateSchema(ctx, st.subject, st.schema)
		if err == nil {
			return ss.ID, ss.Version, nil
		}
		return 0, 0, r.refusal(ctx, st, err)
	}
	latest, err := r.cl.SchemaByVersion(ctx, st.subject, -1)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return 0, 0, fmt.Errorf("%w: subject %s has no registered version and auto_register is false: register it first (nginx-shipper schema --as avro prints it): %s",
				ErrSchemaRefused, st.subject, re.Message)
		}
		return 0, 0, err
	}
	// Our events are written with our schema and read with the latest:
	// the latest must read them. The registry's own compatibility check
	// answers for its configured level; data written with our schema
	// must be decodable with the latest, which is the check here.
	res, err := r.cl.CheckCompatibility(sr.WithParams(ctx, sr.Verbose), st.subject, latest.Version, st.schema)
	if err != nil {
		return 0, 0, r.refusal(ctx, st, err)
	}
	if !res.Is {
		return 0, 0, fmt.Errorf("%w: subject %s version %d is not compatible with this input's schema: %s",
			ErrSchemaRefused, st.subject, latest.Version, strings.Join(res.Messages, "; "))
	}
	// Frame with the id of our own schema if the registry has it under the
	// subject, else with the latest (which reads our events).
	if ss, err := r.cl.LookupSchema(ctx, st.subject, st.schema); err == nil {
		return ss.ID, ss.Version, nil
	}
	return 0, 0, fmt.Errorf("%w: subject %s: auto_register is false and the registry does not hold this input's schema (version %d is compatible with it, but records must carry the id of the schema they are written with): register it",
		ErrSchemaRefused, st.subject, latest.Version)
}

// refusal turns a registry error into ErrSchemaRefused for 409 and 422,
// naming the subject's latest version; other errors are returned as they
// are (transient: retried).
func (r *registrar) refusal(ctx context.Context, st *subjectState, err error) error {
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusConflict && re.StatusCode != http.StatusUnprocessableEntity {
		return err
	}
	what := "incompatible with"
	if re.StatusCode == http.StatusUnprocessableEntity {
		what = "rejected as invalid (422) by"
	}
	ver := "no registered version"
	if latest, lerr := r.cl.SchemaByVersion(ctx, st.subject, -1); lerr == nil {
		ver = fmt.Sprintf("version %d (id %d)", latest.Version, latest.ID)
	}
	return fmt.Errorf("%w: subject %s: this input's schema is %s the registry, whose latest is %s; the registry says (%d, error code %d): %s",
		ErrSchemaRefused, st.subject, what, ver, re.StatusCode, re.ErrorCode, re.Message)
}

// wait returns the schema id of input's events, waiting (backpressure)
// until it is registered or ctx is done. A refused schema waits for ctx
// too: the input is not read, and its error is returned then.
func (r *registrar) wait(ctx context.Context, input int) (int32, error) {
	st := r.byIn[input]
	if st == nil {
		return 0, fmt.Errorf("%w: input %d has no Avro schema (UseSchemas was not given it)", ErrSchemaRefused, input)
	}
	return st.wait(ctx)
}

// hasEnriched reports whether input has an enriched schema for
// enriched_topic.
func (r *registrar) hasEnriched(input int) bool { return r != nil && r.byEnr[input] != nil }

// waitEnriched is wait for the input's enriched schema (enriched_topic).
func (r *registrar) waitEnriched(ctx context.Context, input int) (int32, error) {
	return r.byEnr[input].wait(ctx)
}

// wait returns the schema id once registered; a refused schema waits
// until ctx ends.
func (st *subjectState) wait(ctx context.Context) (int32, error) {
	select {
	case <-st.ready:
		if st.err == nil {
			return st.id.Load(), nil
		}
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	<-ctx.Done()
	return 0, fmt.Errorf("%w (%w)", st.err, ctx.Err())
}

// ready reports why the registry part of the sink is not ready, or nil.
func (r *registrar) ready() error {
	var refused []string
	for _, st := range r.states {
		select {
		case <-st.ready:
			if st.err != nil {
				refused = append(refused, st.err.Error())
			}
		default:
		}
	}
	r.mu.Lock()
	w := r.waiting
	r.mu.Unlock()
	if w != "" {
		refused = append(refused, w)
	}
	if len(refused) > 0 {
		return errors.New(strings.Join(refused, "; "))
	}
	return nil
}

// check asks the registry whether every schema would be accepted, without
// registering it (POST /compatibility/...): for validate --connect.
func (r *registrar) check(ctx context.Context) error {
	var errs []error
	for _, st := range r.states {
		vers, err := r.cl.SubjectVersions(ctx, st.subject)
		var re *sr.ResponseError
		if err != nil && errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			if !*r.cfg.AutoRegister {
				errs = append(errs, fmt.Errorf("sinks.kafka.schema_registry: inputs[%d]: subject %s has no version and auto_register is false", st.input, st.subject))
			}
			continue // registering the first version needs only a valid schema
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("sinks.kafka.schema_registry.url: %s: %w", strings.Join(r.cfg.urls(), ","), err))
			return errors.Join(errs...)
		}
		latest := vers[len(vers)-1]
		res, err := r.cl.CheckCompatibility(sr.WithParams(ctx, sr.Verbose), st.subject, -1, st.schema)
		if err != nil {
			errs = append(errs, fmt.Errorf("sinks.kafka.schema_registry: inputs[%d]: subject %s: %w", st.input, st.subject, err))
			continue
		}
		if !res.Is {
			errs = append(errs, fmt.Errorf("sinks.kafka.schema_registry: inputs[%d]: %w: subject %s: this input's schema is not compatible with version %d: %s",
				st.input, ErrSchemaRefused, st.subject, latest, strings.Join(res.Messages, "; ")))
		}
	}
	return errors.Join(errs...)
}

// frame writes the Confluent wire-format header (magic byte 0, the schema
// id big-endian) into the five bytes reserved at the start of v.
func frame(v []byte, id int32) {
	v[0] = 0
	binary.BigEndian.PutUint32(v[1:5], uint32(id))
}
