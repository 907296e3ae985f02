package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/nginx-shipper/nginx-shipper/agent"
	"github.com/nginx-shipper/nginx-shipper/agent/enrich"
	"github.com/nginx-shipper/nginx-shipper/sinks/kafka"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3"
)

// DefaultConfigPath is where run and validate look without -c.
const DefaultConfigPath = "/etc/nginx-shipper/nginx-shipper.toml"

// Config is the whole TOML file. Each table's struct lives next to its
// component, with its defaults and Validate.
type Config struct {
	Agent  agent.Config        `toml:"agent"`
	Inputs []agent.InputConfig `toml:"inputs"`
	Sinks  SinksConfig         `toml:"sinks"`
	// Enrich is the [enrich] table; its presence turns enrichment on.
	Enrich *enrich.Config `toml:"enrich"`
}

// SinksConfig is the [sinks] table: a sink is enabled by its table's
// presence, unless it says enabled = false.
type SinksConfig struct {
	Kafka *kafka.Config `toml:"kafka"`
	S3    *s3.Config    `toml:"s3"`
}

// KafkaEnabled reports whether [sinks.kafka] is present and enabled.
func (c *Config) KafkaEnabled() bool { return c.Sinks.Kafka != nil && enabled(c.Sinks.Kafka.Enabled) }

// S3Enabled reports whether [sinks.s3] is present and enabled.
func (c *Config) S3Enabled() bool { return c.Sinks.S3 != nil && enabled(c.Sinks.S3.Enabled) }

func enabled(b *bool) bool { return b == nil || *b }

// LoadConfig reads, expands, defaults and validates a config file. The
// error lists every problem, one per line, each naming its key (and line
// where known).
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, b)
}

// ParseConfig is LoadConfig on bytes; path is used in messages.
func ParseConfig(path string, b []byte) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			if pe.LastKey != "" {
				return nil, fmt.Errorf("%s:%d: %s: %s", path, pe.Position.Line, pe.LastKey, pe.Message)
			}
			return nil, fmt.Errorf("%s:%d: %s", path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	for _, k := range md.Undecoded() {
		if line := lineOfKey(b, k); line > 0 {
			errs = append(errs, fmt.Errorf("%s:%d: unknown key %s", path, line, k))
		} else {
			errs = append(errs, fmt.Errorf("%s: unknown key %s", path, k))
		}
	}
	if err := expandEnv(reflect.ValueOf(&c).Elem(), ""); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Defaults fills every component's defaults.
func (c *Config) Defaults() {
	// [enrich]'s caches are bounded memory the default memory_limit
	// (meant for the events in flight) does not count: add them.
	enrichLimit := c.Enrich != nil && c.Agent.MemoryLimit == 0
	c.Agent.Defaults()
	if enrichLimit {
		c.Agent.MemoryLimit += c.Enrich.MemoryBudget()
	}
	for i := range c.Inputs {
		c.Inputs[i].Defaults()
	}
	if c.Sinks.Kafka != nil {
		c.Sinks.Kafka.Defaults()
		c.Sinks.Kafka.Hostname = c.Agent.Hostname
	}
	if c.Enrich != nil {
		c.Enrich.Defaults()
	}
	if c.Sinks.S3 != nil {
		// A group commit must fill within what the agent lets be in
		// flight, or every group waits for fsync_interval.
		c.Sinks.S3.GroupBytes = s3.GroupBytesFor(c.Agent.MaxInFlightBytes)
		c.Sinks.S3.Defaults()
		c.Sinks.S3.SpoolDir = filepath.Join(c.Agent.DataDir, "spool", "s3")
		c.Sinks.S3.Hostname = c.Agent.Hostname
	}
}

// Validate checks every component and the compiled formats.
func (c *Config) Validate() error {
	var errs []error
	errs = append(errs, c.Agent.Validate())
	if len(c.Inputs) == 0 {
		errs = append(errs, errors.New("inputs: at least one [[inputs]] table is required"))
	}
	for i := range c.Inputs {
		errs = append(errs, c.Inputs[i].Validate(i))
		errs = append(errs, c.validateRouting(i))
	}
	if c.KafkaEnabled() {
		errs = append(errs, c.Sinks.Kafka.Validate())
	}
	if c.S3Enabled() {
		errs = append(errs, c.Sinks.S3.Validate())
	}
	if c.Enrich != nil {
		errs = append(errs, c.Enrich.Validate())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	parsers, err := agent.CompileInputs(c.Inputs, c.KeyField(), os.ReadFile)
	if err != nil {
		return err
	}
	// [enrich]: at least one input must log client_ip_header (a typo
	// would otherwise walk nothing); the others are enriched as lines
	// without the header, as nginx would (client_ip is remote_addr).
	if c.Enrich != nil {
		errs = nil
		for i, p := range parsers {
			if err := c.Enrich.Check(p); err != nil {
				errs = append(errs, fmt.Errorf("inputs[%d]: %w", i, err))
			}
		}
		if len(errs) == len(parsers) {
			return errors.Join(errs...)
		}
	}
	return nil
}

// wantsOriginals reports whether, with [enrich], a sink also takes the
// original events: Kafka with enriched_topic, or S3 with enriched = false.
func (c *Config) wantsOriginals() bool {
	return c.KafkaEnabled() && c.Sinks.Kafka.EnrichedTopic != "" ||
		c.S3Enabled() && c.Sinks.S3.Enriched != nil && !*c.Sinks.S3.Enriched
}

// KeyField is the event field used as the Kafka key, "" without Kafka.
func (c *Config) KeyField() string {
	if c.KafkaEnabled() && c.Sinks.Kafka.Key != nil {
		return *c.Sinks.Kafka.Key
	}
	return ""
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} with the environment variable NAME in every
// string of the config, except inputs' format (where ${var} is nginx's own
// syntax). An unset variable is an error naming the key.
func expandEnv(v reflect.Value, key string) error {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return expandEnv(v.Elem(), key)
	case reflect.Struct:
		var errs []error
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := strings.Split(f.Tag.Get("toml"), ",")[0]
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			k := name
			if key != "" {
				k = key + "." + name
			}
			if strings.HasPrefix(key, "inputs[") && name == "format" {
				continue
			}
			errs = append(errs, expandEnv(v.Field(i), k))
		}
		return errors.Join(errs...)
	case reflect.Slice:
		var errs []error
		for i := 0; i < v.Len(); i++ {
			errs = append(errs, expandEnv(v.Index(i), fmt.Sprintf("%s[%d]", key, i)))
		}
		return errors.Join(errs...)
	case reflect.Map:
		var errs []error
		for _, mk := range v.MapKeys() {
			ev := v.MapIndex(mk)
			if ev.Kind() == reflect.String {
				s, err := expandString(ev.String(), fmt.Sprintf("%s.%v", key, mk))
				errs = append(errs, err)
				v.SetMapIndex(mk, reflect.ValueOf(s).Convert(ev.Type()))
			}
		}
		return errors.Join(errs...)
	case reflect.String:
		if !v.CanSet() {
			return nil
		}
		s, err := expandString(v.String(), key)
		if err == nil {
			v.SetString(s)
		}
		return err
	}
	return nil
}

func expandString(s, key string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var missing []string
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		name := envRef.FindStringSubmatch(m)[1]
		val, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return val
	})
	if len(missing) > 0 {
		return s, fmt.Errorf("%s: environment variable %s is not set", key, strings.Join(missing, ", "))
	}
	return out, nil
}

// lineOfKey finds the line where the dotted key k is set (or its table
// opened) in the TOML text, for error messages; 0 when it cannot tell. It
// follows the table headers, so a key is found under its own table, not at
// another table's key of the same last name. A key set in an inline table
// is reported at the line of the inline table.
func lineOfKey(b []byte, k toml.Key) int {
	if len(k) == 0 {
		return 0
	}
	want := strings.Join(k, ".")
	var table []string
	prefix := 0   // the line of the longest key that is a prefix of k
	inMulti := "" // the delimiter of the multi-line string being skipped
	for i, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if inMulti != "" {
			if strings.Count(t, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		if t == "" || t[0] == '#' {
			continue
		}
		var full []string
		if t[0] == '[' {
			end := strings.LastIndexByte(t, ']')
			if end < 0 {
				continue
			}
			table = splitKey(strings.Trim(t[:end+1], "[] \t"))
			full = table
		} else {
			eq := strings.IndexByte(t, '=')
			if eq < 0 {
				continue
			}
			full = append(append([]string(nil), table...), splitKey(t[:eq])...)
			for _, d := range []string{`"""`, "'''"} {
				if strings.Count(t[eq:], d)%2 == 1 {
					inMulti = d
				}
			}
		}
		j := strings.Join(full, ".")
		if j == want {
			return i + 1
		}
		if prefix == 0 && t[0] != '[' && strings.HasPrefix(want, j+".") {
			prefix = i + 1
		}
	}
	return prefix
}

// splitKey splits a TOML dotted key into its parts, unquoted.
func splitKey(s string) []string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return parts
}

// validateRouting checks input i's topic and s3_prefix against the sinks
// they override.
func (c *Config) validateRouting(i int) error {
	in := &c.Inputs[i]
	var errs []error
	bad := func(key, f string, a ...any) {
		errs = append(errs, fmt.Errorf("inputs[%d].%s: %s", i, key, fmt.Sprintf(f, a...)))
	}
	if in.Topic != "" {
		switch {
		case !c.KafkaEnabled():
			bad("topic", "is set but [sinks.kafka] is not enabled")
		case kafka.CheckTopic(in.Topic) != nil:
			bad("topic", "%v", kafka.CheckTopic(in.Topic))
		case in.Topic == c.Sinks.Kafka.DeadLetterTopic:
			bad("topic", "must differ from sinks.kafka.dead_letter_topic, so bad lines never reach the consumers of parsed events")
		case in.Topic == c.Sinks.Kafka.RawTopic:
			bad("topic", "must differ from sinks.kafka.raw_topic")
		}
	}
	if in.S3Prefix != "" {
		switch {
		case !c.S3Enabled():
			bad("s3_prefix", "is set but [sinks.s3] is not enabled")
		case s3.CheckPrefix(in.S3Prefix) != nil:
			bad("s3_prefix", "%v", s3.CheckPrefix(in.S3Prefix))
		case in.S3Prefix == c.Sinks.S3.DeadLetterPrefix:
			bad("s3_prefix", "must differ from sinks.s3.dead_letter_prefix")
		}
	}
	return errors.Join(errs...)
}
