package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/nginx-shipper/nginx-shipper/agent"
	"github.com/nginx-shipper/nginx-shipper/agent/enrich"
	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks/kafka"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3"
)

// cmdSchema prints the event schema derived from a log_format (Avro or
// JSON Schema), or the Athena / Hive table over the S3 objects.
func cmdSchema(args []string, stdout, stderr io.Writer) int {
	var path string
	fs := newFlagSet("schema", stderr, &path)
	format := fs.String("format", "", "built-in name, nginx.conf:PATH:NAME, or a log_format string (instead of -c)")
	escape := fs.String("escape", "", "default | json | none (with --format)")
	as := fs.String("as", "avro", "avro | json-schema | athena | hive")
	table := fs.String("table", "", "table name for athena/hive (default nginx_access, nginx_access_N with several inputs)")
	bucket := fs.String("bucket", "", "S3 bucket for athena/hive (default: sinks.s3.bucket with -c, else logs)")
	prefix := fs.String("prefix", "", "S3 prefix for athena/hive (default: sinks.s3.prefix with -c, else nginx/dt=%Y-%m-%d/hour=%H/)")
	s3Format := fs.String("s3-format", "", "json | parquet: the S3 objects the athena/hive table reads (default: sinks.s3.format with -c, else json)")
	if pos, err := parseFlags(fs, args); err != nil {
		return 2
	} else if len(pos) > 0 {
		fmt.Fprintf(stderr, "nginx-shipper schema: unexpected argument %q\n", pos[0])
		return 2
	}
	switch *as {
	case "avro", "json-schema", parser.DialectAthena, parser.DialectHive:
	default:
		fmt.Fprintf(stderr, "nginx-shipper schema: --as %q: want avro, json-schema, athena or hive\n", *as)
		return 2
	}
	configGiven := false
	fs.Visit(func(f *flag.Flag) { configGiven = configGiven || f.Name == "c" || f.Name == "config" })
	if configGiven == (*format != "") {
		fmt.Fprintln(stderr, "nginx-shipper schema: give either -c FILE (every input) or --format FMT")
		return 2
	}

	ins := []agent.InputConfig{{Format: *format, Escape: *escape}}
	b, p, objFormat := "logs", "nginx/dt=%Y-%m-%d/hour=%H/", s3.FormatJSON
	var cfg *Config
	if configGiven {
		var err error
		cfg, err = LoadConfig(path)
		if err != nil {
			printErrors(stderr, "nginx-shipper schema: ", err)
			return exitConfig
		}
		ins = cfg.Inputs
		if cfg.Sinks.S3 != nil {
			if cfg.Sinks.S3.Bucket != "" {
				b = cfg.Sinks.S3.Bucket
			}
			if cfg.Sinks.S3.Prefix != "" {
				p = cfg.Sinks.S3.Prefix
			}
			if cfg.Sinks.S3.Format != "" {
				objFormat = cfg.Sinks.S3.Format
			}
		}
	}
	if *bucket != "" {
		b = *bucket
	}
	if *prefix != "" {
		p = *prefix
	}
	if *s3Format != "" {
		objFormat = *s3Format
	}
	if objFormat != s3.FormatJSON && objFormat != s3.FormatParquet {
		fmt.Fprintf(stderr, "nginx-shipper schema: --s3-format %q: want json or parquet\n", objFormat)
		return 2
	}
	ps, err := agent.CompileInputs(ins, "", os.ReadFile)
	if err != nil {
		printErrors(stderr, "nginx-shipper schema: ", err)
		return 2
	}
	for i, pr := range ps {
		s := pr.Schema()
		if cfg != nil && (*as == parser.DialectAthena || *as == parser.DialectHive) {
			s = cfg.s3Schema(i, s) // the table over the objects: container and enriched fields too
		}
		var out string
		switch *as {
		case "avro":
			var ind bytes.Buffer
			_ = json.Indent(&ind, []byte(s.Avro()), "", "  ")
			out = ind.String() + "\n"
			if cfg != nil && cfg.Enrich != nil {
				// [enrich]: the enriched events' schema next (the original's
				// fields, then client_ip, geo and ua): topic's without
				// enriched_topic, else enriched_topic's.
				ind.Reset()
				_ = json.Indent(&ind, []byte(enrich.Schema(s).Avro()), "", "  ")
				out += ind.String() + "\n"
			}
		case "json-schema":
			out = s.JSONSchema()
		default:
			name := *table
			if name == "" {
				name = "nginx_access"
				if len(ps) > 1 {
					name = fmt.Sprintf("nginx_access_%d", i)
				}
			}
			if objFormat == s3.FormatParquet {
				out, err = s.ParquetTableDDL(*as, name, b, p)
			} else {
				out, err = s.TableDDL(*as, name, b, p)
			}
			if err != nil {
				fmt.Fprintf(stderr, "nginx-shipper schema: %v\n", err)
				return 2
			}
			if len(ps) > 1 {
				out = fmt.Sprintf("-- inputs[%d]: format %q\n%s", i, ins[i].Format, out)
			}
		}
		fmt.Fprint(stdout, out)
	}
	return 0
}

// kafkaAvro reports whether the Kafka sink is on with value_format avro.
func (c *Config) kafkaAvro() bool {
	return c.KafkaEnabled() && c.Sinks.Kafka.ValueFormat == kafka.ValueAvro
}

// inputSchemas are the Avro schemas of every input, for the Kafka sink
// (nil unless value_format is avro). The formats compiled when the config
// was validated.
func (c *Config) inputSchemas() []kafka.InputSchema {
	if !c.kafkaAvro() {
		return nil
	}
	ps, _ := agent.CompileInputs(c.Inputs, c.KeyField(), os.ReadFile)
	var out []kafka.InputSchema
	for i, p := range ps {
		if p == nil {
			continue
		}
		is := kafka.InputSchema{Input: i, Avro: p.Schema().Avro(), Topic: c.Inputs[i].Topic}
		if c.Enrich != nil {
			// [enrich]: enriched_topic's subject gets the enriched schema;
			// without enriched_topic, topic carries the enriched events.
			if c.Sinks.Kafka.EnrichedTopic != "" {
				is.EnrichedAvro = enrich.Schema(p.Schema()).Avro()
			} else {
				is.Avro = enrich.Schema(p.Schema()).Avro()
			}
		}
		out = append(out, is)
	}
	return out
}

// s3Schemas are the event schemas of every input, for the S3 sink (nil
// unless sinks.s3.format is parquet). The formats compiled when the config
// was validated.
func (c *Config) s3Schemas() []s3.InputSchema {
	if !c.S3Enabled() || c.Sinks.S3.Format != s3.FormatParquet {
		return nil
	}
	ps, _ := agent.CompileInputs(c.Inputs, c.KeyField(), os.ReadFile)
	var out []s3.InputSchema
	for i, p := range ps {
		if p != nil {
			out = append(out, s3.InputSchema{Input: i, Schema: c.s3Schema(i, p.Schema())})
		}
	}
	return out
}

// s3ContainerFields are what a container input adds to every event
// (agent/container): container_time is a string, RFC 3339 with
// nanoseconds, which a millisecond timestamp would not hold.
var s3ContainerFields = []parser.Field{
	{Name: "stream", Type: parser.TypeString, Doc: "container inputs: stdout or stderr"},
	{Name: "container_time", Type: parser.TypeString, Doc: "container inputs: the runtime's time of the line, RFC 3339 UTC with nanoseconds"},
	{Name: "kubernetes", Type: parser.TypeRecord, Doc: "container inputs: the pod, from the log file's path", Fields: []parser.Field{
		{Name: "namespace", Type: parser.TypeString}, {Name: "pod", Type: parser.TypeString},
		{Name: "pod_uid", Type: parser.TypeString}, {Name: "container", Type: parser.TypeString},
		{Name: "restart_count", Type: parser.TypeLong}, {Name: "node", Type: parser.TypeString},
	}},
}

// mergeFields appends to fs the fields of more whose name fs lacks (a
// container input's stderr_format events share its objects).
func mergeFields(fs, more []parser.Field) []parser.Field {
	fs = slices.Clip(fs)
	for _, f := range more {
		if !slices.ContainsFunc(fs, func(g parser.Field) bool { return g.Name == f.Name }) {
			fs = append(fs, f)
		}
	}
	return fs
}

// s3Enriched reports whether the S3 objects hold enriched events.
func (c *Config) s3Enriched() bool {
	return c.Enrich != nil && c.S3Enabled() && (c.Sinks.S3.Enriched == nil || *c.Sinks.S3.Enriched)
}

// s3Schema is the schema of input i's events (s, its format's) as the S3
// objects hold them: for a container input, the fields of its
// stderr_format's events too and the container fields; with [enrich] (and
// sinks.s3.enriched), the fields agent/enrich appends.
func (c *Config) s3Schema(i int, s parser.Schema) parser.Schema {
	if i < len(c.Inputs) && c.Inputs[i].Container != "" {
		if ps, _ := agent.CompileStderrInputs(c.Inputs[i:i+1], c.KeyField(), os.ReadFile); len(ps) == 1 && ps[0] != nil {
			s.Fields = mergeFields(s.Fields, ps[0].Schema().Fields)
		}
		s.Fields = mergeFields(s.Fields, s3ContainerFields)
	}
	if c.s3Enriched() {
		s.Fields = mergeFields(s.Fields, enrichedFields)
	}
	return s
}

// enrichedFields are the members agent/enrich adds to an event (its
// doc.go); each is left out when it cannot be known.
var enrichedFields = enrich.Fields
