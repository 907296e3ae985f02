// Command nginx-shipper tails nginx access logs, parses every line into a
// typed JSON event and ships it to Kafka and S3, at least once.
//
// Usage:
//
//	nginx-shipper run [-c FILE]
//	nginx-shipper validate [-c FILE] [--connect]
//	nginx-shipper parse --format FMT [--escape default|json|none] [FILE]
//	nginx-shipper version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// Set by the Makefile with -ldflags -X.
var (
	version = "dev"
	commit  = ""
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage:
  nginx-shipper run [-c FILE]                    run the daemon (default config ` + DefaultConfigPath + `)
  nginx-shipper validate [-c FILE] [--connect]   check a config file; --connect also reaches the sinks
  nginx-shipper parse --format FMT [--escape E] [FILE]
                                                 print the JSON events of log lines (stdin without FILE)
  nginx-shipper status [-c FILE] [--json]        files, sinks, checkpoint age: from the data dir and the
                                                 daemon's metrics endpoint (works with the daemon down)
  nginx-shipper schema (-c FILE | --format FMT [--escape E]) --as avro|json-schema|athena|hive [--s3-format json|parquet]
                                                 the event schema of a log_format, or the S3 table DDL
  nginx-shipper version                          version, commit, Go version
`

// realMain runs a command and returns the exit status: 0 ok, 1 failure, 2
// usage or configuration error.
func realMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(rest, stderr)
	case "validate":
		return cmdValidate(rest, stdout, stderr)
	case "parse":
		return cmdParse(rest, stdin, stdout, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "schema":
		return cmdSchema(rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "nginx-shipper: unknown command %q\n%s", cmd, usage)
	return 2
}

func versionString() string {
	c := commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("nginx-shipper %s (commit %s, %s, %s/%s)", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newFlagSet returns a flag set whose -c and --config are the same flag.
func newFlagSet(name string, stderr io.Writer, cfg *string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if cfg != nil {
		fs.StringVar(cfg, "c", DefaultConfigPath, "config file")
		fs.StringVar(cfg, "config", DefaultConfigPath, "config file (same as -c)")
	}
	return fs
}

// parseFlags parses flags that may come before or after positional args.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func printErrors(w io.Writer, prefix string, err error) {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		for _, e := range j.Unwrap() {
			printErrors(w, prefix, e)
		}
		return
	}
	fmt.Fprintf(w, "%s%v\n", prefix, err)
}
