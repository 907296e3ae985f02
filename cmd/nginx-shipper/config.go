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
	c.Agent.Defaults()
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

// lineOfKey finds the line of a dotted key's last part in the TOML text, for
// error messages; 0 when it cannot tell.
func lineOfKey(b []byte, k toml.Key) int {
	if len(k) == 0 {
		return 0
	}
	last := k[len(k)-1]
	re, err := regexp.Compile(`^\s*"?` + regexp.QuoteMeta(last) + `"?\s*=`)
	if err != nil {
		return 0
	}
	tbl := regexp.MustCompile(`^\s*\[\[?\s*` + regexp.QuoteMeta(k.String()) + `\s*\]`)
	for i, line := range strings.Split(string(b), "\n") {
		if re.MatchString(line) || tbl.MatchString(line) {
			return i + 1
		}
	}
	return 0
}
