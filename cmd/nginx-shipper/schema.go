package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/nginx-shipper/nginx-shipper/agent"
	"github.com/nginx-shipper/nginx-shipper/parser"
	"github.com/nginx-shipper/nginx-shipper/sinks/kafka"
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
	b, p := "logs", "nginx/dt=%Y-%m-%d/hour=%H/"
	if configGiven {
		cfg, err := LoadConfig(path)
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
		}
	}
	if *bucket != "" {
		b = *bucket
	}
	if *prefix != "" {
		p = *prefix
	}
	ps, err := agent.CompileInputs(ins, "", os.ReadFile)
	if err != nil {
		printErrors(stderr, "nginx-shipper schema: ", err)
		return 2
	}
	for i, pr := range ps {
		s := pr.Schema()
		var out string
		switch *as {
		case "avro":
			var ind bytes.Buffer
			_ = json.Indent(&ind, []byte(s.Avro()), "", "  ")
			out = ind.String() + "\n"
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
			out, err = s.TableDDL(*as, name, b, p)
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
		if p != nil {
			out = append(out, kafka.InputSchema{Input: i, Avro: p.Schema().Avro(), Topic: c.Inputs[i].Topic})
		}
	}
	return out
}
