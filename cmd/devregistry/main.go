// Command devregistry runs a Confluent Schema Registry for development,
// the tests, CI and the demo: franz-go's in-memory srfake, checking Avro
// validity (422, error code 42201) and compatibility (409) as the real
// registry does (see sinks/kafka/devregistry).
//
//	devregistry -listen 127.0.0.1:8081 [-compat BACKWARD]
//
// It prints "ready http://ADDR" on stdout once it listens, and exits 0 on
// SIGTERM or SIGINT. State is in memory only.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/nginx-shipper/nginx-shipper/sinks/kafka/devregistry"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devregistry:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("devregistry", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8081", "127.0.0.1:PORT to listen on (port 0: any free port)")
	compat := fs.String("compat", "BACKWARD", "global compatibility level: NONE, BACKWARD, FORWARD, FULL (and _TRANSITIVE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || host != "127.0.0.1" {
		return fmt.Errorf("-listen %q: want 127.0.0.1:PORT", *listen)
	}
	var level sr.CompatibilityLevel
	if err := level.UnmarshalText([]byte(strings.ToUpper(*compat))); err != nil {
		return fmt.Errorf("-compat %q: %w", *compat, err)
	}
	reg := devregistry.New(srfake.WithGlobalCompat(level))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: reg.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Printf("ready http://%s\n", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return srv.Close()
}
