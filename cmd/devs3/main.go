// Command devs3 runs an in-memory S3 server (gofakes3 with its memory
// backend) on 127.0.0.1 for development and the benchmark when versitygw is
// not installed. It accepts any credentials.
//
//	devs3 -listen 127.0.0.1:7070 -buckets logs
//
// It prints "ready http://ADDR" on stdout once it listens, and exits 0 on
// SIGTERM or SIGINT. Objects are kept in memory only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devs3:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("devs3", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "127.0.0.1:PORT (port 0: any free port)")
	buckets := fs.String("buckets", "logs", "comma-separated buckets to create")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	backend := s3mem.New()
	for _, b := range strings.Split(*buckets, ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		if err := backend.CreateBucket(b); err != nil {
			return fmt.Errorf("create bucket %q: %w", b, err)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:  gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server(),
		ErrorLog: log.New(os.Stderr, "devs3: ", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("ready http://%s\n", ln.Addr())
	select {
	case <-sig:
	case err := <-errc:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
