package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/container"
	"github.com/nginx-shipper/nginx-shipper/parser"
)

// Duration is a time.Duration written in TOML as a Go duration string ("5m").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (want e.g. \"250ms\", \"5m\"): %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the [agent] table.
type Config struct {
	Hostname      string  `toml:"hostname"`       // default: os.Hostname()
	DataDir       string  `toml:"data_dir"`       // checkpoints and the S3 spool
	MetricsListen *string `toml:"metrics_listen"` // "" turns it off
	PprofListen   string  `toml:"pprof_listen"`   // "" (default) turns it off
	LogLevel      string  `toml:"log_level"`      // debug | info | warn | error
	LogFormat     string  `toml:"log_format"`     // text | json

	// ScanInterval is how often the input globs are matched again to find
	// new and rotated files.
	ScanInterval Duration `toml:"scan_interval"`
	// PollInterval is the longest a reader at the end of a file waits before
	// it looks for new data again (it starts at a few milliseconds).
	PollInterval Duration `toml:"poll_interval"`
	// Linger is how long a partly filled batch waits, at the end of a file,
	// for more lines before it is handed to the sinks: fewer, larger
	// batches at low rates (each costs a produce request, compression
	// frames and a spool commit) for at most this much added latency.
	Linger Duration `toml:"linger"`
	// CheckpointInterval is how often acknowledged offsets are written.
	CheckpointInterval Duration `toml:"checkpoint_interval"`
	// ShutdownTimeout bounds the flush of both sinks on SIGTERM.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// RotateWait is how long a renamed or deleted file is kept open, read to
	// its end, after its last growth (nginx writes to the old file until it
	// reopens its logs on USR1).
	RotateWait Duration `toml:"rotate_wait"`
	// CloseInactive closes a file read to its end that has not grown for
	// this long; the next scan opens it again when it grows.
	CloseInactive Duration `toml:"close_inactive"`
	// MaxLineBytes: longer lines go to the dead-letter path, truncated.
	MaxLineBytes int `toml:"max_line_bytes"`
	// MaxInFlightBytes bounds the bytes of events read but not yet
	// acknowledged by every sink: reading waits beyond it.
	MaxInFlightBytes int `toml:"max_in_flight_bytes"`
	// MaxOpenFiles bounds the files read at once (live and rotated).
	MaxOpenFiles int `toml:"max_open_files"`
	// MemoryLimit is the Go runtime's soft memory limit, in bytes (as
	// GOMEMLIMIT, which wins when set): the garbage collector works
	// harder as the process nears it instead of letting the heap grow to
	// twice what is live. -1 turns it off.
	MemoryLimit int64 `toml:"memory_limit"`
}

// DefaultMetricsListen is the default of metrics_listen.
const DefaultMetricsListen = "127.0.0.1:9145"

// Defaults fills zero values with defaults.
func (c *Config) Defaults() {
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.DataDir == "" {
		c.DataDir = "/var/lib/nginx-shipper"
	}
	if c.MetricsListen == nil {
		s := DefaultMetricsListen
		c.MetricsListen = &s
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	def := func(d *Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	def(&c.ScanInterval, time.Second)
	def(&c.PollInterval, 250*time.Millisecond)
	def(&c.Linger, 500*time.Millisecond)
	def(&c.CheckpointInterval, time.Second)
	def(&c.ShutdownTimeout, 20*time.Second)
	def(&c.RotateWait, 30*time.Second)
	def(&c.CloseInactive, 5*time.Minute)
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = 1 << 20
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = 8 << 20
	}
	if c.MaxOpenFiles == 0 {
		c.MaxOpenFiles = 256
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = DefaultMemoryLimit(c.MaxInFlightBytes)
	}
}

// DefaultMemoryLimit is memory_limit's default, 48 MiB with the default
// max_in_flight_bytes: what the agent holds with both sinks (about 25 MB
// live at full speed, half of it the events in flight) with room for the
// garbage of a collection cycle.
func DefaultMemoryLimit(maxInFlight int) int64 {
	return 32<<20 + 2*int64(maxInFlight)
}

// Validate reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, f string, a ...any) { errs = append(errs, fmt.Errorf("agent."+key+": "+f, a...)) }
	if c.Hostname == "" {
		bad("hostname", "must not be empty (and the machine's hostname is unknown)")
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	} else if !filepath.IsAbs(c.DataDir) {
		bad("data_dir", "must be an absolute path, got %q", c.DataDir)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log_format", "must be text or json, got %q", c.LogFormat)
	}
	pos := func(key string, d Duration) {
		if d.Duration <= 0 {
			bad(key, "must be positive, got %s", d.Duration)
		}
	}
	pos("scan_interval", c.ScanInterval)
	pos("poll_interval", c.PollInterval)
	pos("linger", c.Linger)
	pos("checkpoint_interval", c.CheckpointInterval)
	pos("shutdown_timeout", c.ShutdownTimeout)
	pos("rotate_wait", c.RotateWait)
	pos("close_inactive", c.CloseInactive)
	if c.MaxLineBytes < 256 {
		bad("max_line_bytes", "must be at least 256, got %d", c.MaxLineBytes)
	}
	if c.MaxInFlightBytes < 1<<16 {
		bad("max_in_flight_bytes", "must be at least 65536, got %d", c.MaxInFlightBytes)
	}
	if c.MemoryLimit < 16<<20 && c.MemoryLimit != -1 {
		bad("memory_limit", "must be at least 16 MiB (16777216), or -1 for none, got %d", c.MemoryLimit)
	}
	if c.MaxOpenFiles < 1 {
		bad("max_open_files", "must be at least 1, got %d", c.MaxOpenFiles)
	}
	return errors.Join(errs...)
}

// InputConfig is one [[inputs]] entry.
type InputConfig struct {
	Paths    []string `toml:"paths"`     // glob patterns
	Exclude  []string `toml:"exclude"`   // glob patterns of paths to skip (e.g. "*.gz")
	Format   string   `toml:"format"`    // built-in name, "nginx.conf:PATH:NAME", or a log_format string
	Escape   string   `toml:"escape"`    // default | json | none
	ReadFrom string   `toml:"read_from"` // beginning | end

	// Timezone is the zone of error.log times, which carry none: "Local"
	// (default) or an IANA name ("Europe/Berlin", "UTC").
	Timezone string `toml:"timezone"`
	// Topic and S3Prefix override sinks.kafka.topic and sinks.s3.prefix for
	// this input's events ("": the sink's). Dead-letter records keep the
	// shared dead_letter_topic and dead_letter_prefix.
	Topic    string `toml:"topic"`
	S3Prefix string `toml:"s3_prefix"`
	// MultilineMaxBytes and MultilineTimeout bound an event of a format
	// with continuation lines (error): its lines are joined up to this
	// many bytes, and a last event whose next line has not come is handed
	// on after this long.
	MultilineMaxBytes int      `toml:"multiline_max_bytes"`
	MultilineTimeout  Duration `toml:"multiline_timeout"`
	// Container: "" (a plain file), cri, docker or auto: the files are
	// container logs whose records are unwrapped first (agent/container).
	Container string `toml:"container"`
	// StderrFormat is the format of a container input's stderr lines
	// (stdout uses Format). Default "error", nginx's error log.
	StderrFormat string `toml:"stderr_format"`
}

// Location returns the input's timezone; call after Validate.
func (c *InputConfig) Location() *time.Location {
	if c.Timezone == "" || c.Timezone == "Local" {
		return time.Local
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.Local
	}
	return loc
}

// Defaults fills zero values with defaults.
func (c *InputConfig) Defaults() {
	if c.Format == "" {
		c.Format = "combined"
	}
	if c.ReadFrom == "" {
		c.ReadFrom = "beginning"
	}
	if c.Timezone == "" {
		c.Timezone = "Local"
	}
	if c.MultilineMaxBytes == 0 {
		c.MultilineMaxBytes = 64 << 10
	}
	if c.MultilineTimeout.Duration == 0 {
		c.MultilineTimeout.Duration = time.Second
	}
	if c.Container != "" && c.StderrFormat == "" {
		c.StderrFormat = "error"
	}
}

// Validate reports every problem; i is the input's index, used in key names.
func (c *InputConfig) Validate(i int) error {
	var errs []error
	bad := func(key, f string, a ...any) {
		errs = append(errs, fmt.Errorf("inputs[%d].%s: %s", i, key, fmt.Sprintf(f, a...)))
	}
	if len(c.Paths) == 0 {
		bad("paths", "must list at least one glob pattern")
	}
	for _, p := range c.Paths {
		if !filepath.IsAbs(p) {
			bad("paths", "%q must be an absolute path", p)
		}
		if _, err := filepath.Match(p, ""); err != nil {
			bad("paths", "%q is not a valid glob: %v", p, err)
		}
	}
	for _, p := range c.Exclude {
		if _, err := filepath.Match(p, ""); err != nil {
			bad("exclude", "%q is not a valid glob: %v", p, err)
		}
	}
	if _, err := parser.ParseEscape(c.Escape); err != nil {
		bad("escape", "%v", err)
	}
	switch c.ReadFrom {
	case "beginning", "end":
	default:
		bad("read_from", "must be beginning or end, got %q", c.ReadFrom)
	}
	if c.Timezone != "Local" {
		if _, err := time.LoadLocation(c.Timezone); err != nil || c.Timezone == "" {
			bad("timezone", "%q is not \"Local\" or an IANA time zone name (e.g. \"Europe/Berlin\", \"UTC\")", c.Timezone)
		}
	}
	if c.MultilineMaxBytes < 256 {
		bad("multiline_max_bytes", "must be at least 256, got %d", c.MultilineMaxBytes)
	}
	if c.MultilineTimeout.Duration <= 0 {
		bad("multiline_timeout", "must be positive, got %s", c.MultilineTimeout.Duration)
	}
	if rt, err := container.ParseRuntime(c.Container); err != nil {
		bad("container", "%v", err)
	} else if rt == container.None && c.StderrFormat != "" {
		bad("stderr_format", "is only for container inputs (set container = \"cri\", \"docker\" or \"auto\")")
	}
	return errors.Join(errs...)
}
