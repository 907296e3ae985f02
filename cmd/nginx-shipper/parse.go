package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent"
	"github.com/nginx-shipper/nginx-shipper/parser"
)

// cmdParse prints one JSON event per input line, exactly as the sinks
// receive it; lines that do not match go to stderr with their line number.
func cmdParse(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("parse", stderr, nil)
	format := fs.String("format", "combined", "built-in name, nginx.conf:PATH:NAME, or a log_format string")
	escape := fs.String("escape", "", "default | json | none (default: the format's own, else default)")
	host := fs.String("host", "", "the host field (default: this machine's hostname)")
	tz := fs.String("timezone", "Local", `zone of error.log times: "Local" or an IANA name`)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 1 {
		fmt.Fprintln(stderr, "nginx-shipper parse: at most one FILE")
		return 2
	}
	inCfg := agent.InputConfig{Format: *format, Escape: *escape, Timezone: *tz}
	if _, err := time.LoadLocation(*tz); err != nil && *tz != "Local" || *tz == "" {
		fmt.Fprintf(stderr, "nginx-shipper parse: --timezone %q is not \"Local\" or an IANA time zone name\n", *tz)
		return 2
	}
	ps, err := agent.CompileInputs([]agent.InputConfig{inCfg}, "", os.ReadFile)
	if err != nil {
		printErrors(stderr, "nginx-shipper parse: ", err)
		return 2
	}
	p := ps[0]
	in, name := stdin, "-"
	if len(pos) == 1 {
		f, err := os.Open(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "nginx-shipper parse: %v\n", err)
			return 2
		}
		defer f.Close()
		in, name = f, pos[0]
	}
	if *host == "" {
		*host, _ = os.Hostname()
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	r := bufio.NewReaderSize(in, 64<<10)
	var (
		res    parser.Result
		buf    []byte
		off    int64
		lineNo int
		failed bool
		// A format with continuation lines (error): an event's lines are
		// joined, as the agent joins them, and parsed when the next event
		// starts; it is reported under its first line's number and offset.
		ev             []byte
		evLine         int
		evOffset       int64
		multi, pending = p.Multiline(), false
	)
	emit := func(line []byte, no int, at int64) {
		var err error
		buf, err = p.Parse(buf[:0], line, parser.Meta{Host: *host, File: name, Offset: at}, &res)
		if err != nil {
			failed = true
			fmt.Fprintf(stderr, "line %d: %v\n", no, err)
		} else {
			buf = append(buf, '\n')
			out.Write(buf)
		}
	}
	for {
		line, rerr := r.ReadSlice('\n')
		if len(line) == 0 && rerr != nil {
			break
		}
		for rerr == bufio.ErrBufferFull { // a line longer than the buffer
			more, err := r.ReadSlice('\n')
			line = append(append([]byte(nil), line...), more...)
			rerr = err
		}
		lineNo++
		n := int64(len(line))
		if line[len(line)-1] == '\n' {
			line = line[:len(line)-1]
		}
		switch {
		case !multi:
			emit(line, lineNo, off)
		case pending && !p.StartsEvent(line):
			ev = append(append(ev, '\n'), line...)
		default:
			if pending {
				emit(ev, evLine, evOffset)
			}
			ev, evLine, evOffset, pending = append(ev[:0], line...), lineNo, off, true
		}
		off += n
		if rerr != nil {
			break
		}
	}
	if pending {
		emit(ev, evLine, evOffset)
	}
	if failed {
		return 1
	}
	return 0
}
