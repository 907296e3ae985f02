// Command devkafka runs a small in-memory Kafka cluster (franz-go's kfake)
// on 127.0.0.1 for development, the demo and the benchmark. It speaks the
// real protocol, including idempotent producers (InitProducerID, sequence
// numbers) and acks=all, so the agent runs against it unchanged.
//
//	devkafka -listen 127.0.0.1:9092 -topics nginx-access:3,nginx-access-invalid:1
//
// It prints "ready ADDR[,ADDR...]" on stdout once every broker listens, and
// exits 0 on SIGTERM or SIGINT. With -cpuprofile it profiles itself until
// SIGUSR1 (the benchmark sends it when the last line is in). Data is kept in memory, or with -data-dir
// in files there (much faster for millions of records: kfake's in-memory
// segments grow by copying).
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devkafka:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("devkafka", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "comma-separated 127.0.0.1:PORT, one per broker (port 0: any free port)")
	topics := fs.String("topics", "", "comma-separated topics to create, name[:partitions] (default 1 partition)")
	dataDir := fs.String("data-dir", "", "keep the log segments in files in this directory (faster for large volumes than the default, memory); it is reloaded at start")
	verbose := fs.Bool("v", false, "log broker activity to stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the broker to this file, from the start until SIGUSR1 or exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts, err := options(*listen, *topics)
	if err != nil {
		return err
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *verbose {
		opts = append(opts, kfake.WithLogger(kfake.BasicLogger(os.Stderr, kfake.LogLevelInfo)))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() { <-usr1; pprof.StopCPUProfile() }()
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	fmt.Printf("ready %s\n", strings.Join(c.ListenAddrs(), ","))
	<-sig
	c.Close()
	return nil
}

// options turns the flags into kfake options.
func options(listen, topics string) ([]kfake.Opt, error) {
	var errs []error
	var ports []int
	for _, a := range strings.Split(listen, ",") {
		host, port, err := net.SplitHostPort(strings.TrimSpace(a))
		if err != nil {
			errs = append(errs, fmt.Errorf("-listen %q: %w", a, err))
			continue
		}
		if host != "127.0.0.1" {
			errs = append(errs, fmt.Errorf("-listen %q: kfake listens on 127.0.0.1 only", a))
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("-listen %q: bad port", a))
			continue
		}
		ports = append(ports, p)
	}
	opts := []kfake.Opt{kfake.NumBrokers(len(ports)), kfake.Ports(ports...)}
	if topics != "" {
		for _, t := range strings.Split(topics, ",") {
			name, parts, hasParts := strings.Cut(strings.TrimSpace(t), ":")
			n := 1
			if hasParts {
				v, err := strconv.Atoi(parts)
				if err != nil || v < 1 {
					errs = append(errs, fmt.Errorf("-topics %q: partitions must be a positive integer", t))
					continue
				}
				n = v
			}
			if name == "" {
				errs = append(errs, fmt.Errorf("-topics %q: empty topic name", t))
				continue
			}
			opts = append(opts, kfake.SeedTopics(int32(n), name))
		}
	}
	return opts, errors.Join(errs...)
}
