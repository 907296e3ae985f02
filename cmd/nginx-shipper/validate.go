package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nginx-shipper/nginx-shipper/agent"
	"github.com/nginx-shipper/nginx-shipper/sinks/kafka"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3"
)

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	var path string
	fs := newFlagSet("validate", stderr, &path)
	connect := fs.Bool("connect", false, "also connect to the enabled sinks: brokers and topic, bucket")
	if _, err := parseFlags(fs, args); err != nil {
		return 2
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		printErrors(stderr, "nginx-shipper: ", err)
		fmt.Fprintf(stderr, "nginx-shipper: configuration file %s test failed\n", path)
		return 1
	}
	parsers, _ := agent.CompileInputs(cfg.Inputs, cfg.KeyField(), os.ReadFile)
	for i, in := range cfg.Inputs {
		fmt.Fprintf(stdout, "input %d: paths %v, format %q, read_from %s\n", i, in.Paths, in.Format, in.ReadFrom)
		if in.Topic != "" || in.S3Prefix != "" {
			fmt.Fprintf(stdout, "  routed to: topic %q, s3_prefix %q (\"\": the sink's)\n", in.Topic, in.S3Prefix)
		}
		if p := parsers[i]; p != nil {
			fmt.Fprintf(stdout, "  log_format escape=%s '%s'\n  fields: %s\n", p.Escape(), p.Format(), strings.Join(p.Fields(), " "))
		}
	}
	fmt.Fprintf(stdout, "sinks: kafka %s, s3 %s\n", onOff(cfg.KafkaEnabled()), onOff(cfg.S3Enabled()))
	if !cfg.KafkaEnabled() && !cfg.S3Enabled() {
		fmt.Fprintf(stdout, "warning: no sink is enabled; `run` will refuse to start until [sinks.kafka] or [sinks.s3] is enabled\n")
	}
	if *connect {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		log := slog.New(slog.DiscardHandler)
		failed := false
		if cfg.KafkaEnabled() {
			if err := checkKafka(ctx, *cfg.Sinks.Kafka, log); err != nil {
				printErrors(stderr, "nginx-shipper: sinks.kafka: ", err)
				failed = true
			} else {
				fmt.Fprintf(stdout, "kafka: brokers reachable, topic %q exists\n", cfg.Sinks.Kafka.Topic)
			}
			if cfg.kafkaAvro() {
				// Compatibility only (POST /compatibility/...): nothing is registered.
				if err := kafka.CheckSchemas(ctx, *cfg.Sinks.Kafka, cfg.inputSchemas()); err != nil {
					printErrors(stderr, "nginx-shipper: ", err)
					failed = true
				} else {
					fmt.Fprintf(stdout, "kafka: the schema registry accepts the schema of every input\n")
				}
			}
		}
		if cfg.KafkaEnabled() {
			// Each input's own topic exists too.
			for i, in := range cfg.Inputs {
				if in.Topic == "" || in.Topic == cfg.Sinks.Kafka.Topic {
					continue
				}
				kc := *cfg.Sinks.Kafka
				kc.Topic, kc.DeadLetterTopic, kc.RawTopic = in.Topic, "", ""
				if err := checkKafka(ctx, kc, log); err != nil {
					printErrors(stderr, fmt.Sprintf("nginx-shipper: inputs[%d].topic: ", i), err)
					failed = true
				} else {
					fmt.Fprintf(stdout, "kafka: topic %q of input %d exists\n", in.Topic, i)
				}
			}
		}
		if cfg.S3Enabled() {
			if err := checkS3(ctx, *cfg.Sinks.S3, log); err != nil {
				printErrors(stderr, "nginx-shipper: sinks.s3: ", err)
				failed = true
			} else {
				fmt.Fprintf(stdout, "s3: bucket %q reachable\n", cfg.Sinks.S3.Bucket)
			}
		}
		if failed {
			fmt.Fprintf(stderr, "nginx-shipper: configuration file %s test failed\n", path)
			return 1
		}
	}
	fmt.Fprintf(stdout, "nginx-shipper: the configuration file %s syntax is ok\n", path)
	fmt.Fprintf(stdout, "nginx-shipper: configuration file %s test is successful\n", path)
	return 0
}

func checkKafka(ctx context.Context, c kafka.Config, log *slog.Logger) error {
	k, err := kafka.New(c, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer k.Close(ctx)
	return k.Check(ctx)
}

// checkS3 reaches the bucket with a sink on a throwaway spool, so that
// validate never touches the daemon's spool.
func checkS3(ctx context.Context, c s3.Config, log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "nginx-shipper-validate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c.SpoolDir = dir
	s, err := s3.New(c, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	return s.Check(ctx)
}

func onOff(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}
