package agent

import (
	"bytes"
	"time"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

// Continuation lines.
//
// In a format with continuation lines (parser.Parser.Multiline: the error
// log), a line that does not start an event (parser.Parser.StartsEvent:
// no date) continues the previous event's message: a PHP-FPM stack trace,
// an OpenSSL dump. The reader joins them without copying: an event's lines
// stay where they are in the read buffer, and the event is the bytes from
// its first line's start to its last line's end, newlines included, handed
// to Parse as one line. Its log_offset is its first line's.
//
// An event is complete when the line after it starts an event. Until that
// line has come, its lines stay in the buffer unconsumed: the batch's End,
// and so the checkpoint, covers them only once the event is in a batch,
// and the checkpoint passes them only when the sinks acknowledged it. A
// restart reads them again. Two bounds keep an event from waiting or
// growing without end:
//   - time: the last event of a file whose next line has not come for
//     multiline_timeout is handed on as it is (nginx writes an event in
//     one write, so its lines come together; the wait is for the line
//     after it);
//   - bytes: a continuation line that would take the event past
//     multiline_max_bytes is not joined; it starts an event of its own,
//     which does not parse (no date) and goes to the dead-letter path with
//     the lines that follow it, so nothing is lost silently.
//
// The harvester's hook is one call in consume (extent) and one at the end
// of the file (due); the joiner only keeps when it first saw the pending
// event incomplete. No allocation.

// probeLen is how much of a line still being written is enough to tell
// whether it starts an event ("2026/12/02 03:01:02 ").
const probeLen = 20

// joiner decides where the events of a multiline format end.
type joiner struct {
	p        *parser.Parser
	maxBytes int
	timeout  time.Duration

	waitAt    int64     // offset of the event waiting for its next line; -1 none
	waitSince time.Time // when it was first seen waiting
	force     bool      // hand on what is complete without waiting (the file is let go)
}

// newJoiner returns the joiner of input in, nil when its format has no
// continuation lines.
func newJoiner(in *input) *joiner {
	if in.parser == nil || !in.parser.Multiline() {
		return nil
	}
	j := &joiner{p: in.parser, maxBytes: in.cfg.MultilineMaxBytes, timeout: in.cfg.MultilineTimeout.Duration, waitAt: -1}
	if j.maxBytes <= 0 {
		j.maxBytes = 64 << 10
	}
	if j.timeout <= 0 {
		j.timeout = time.Second
	}
	return j
}

// extent returns the end of the event whose first line is data[pos:nl]
// (data[nl] is its newline): the index of its last line's newline, and the
// number of lines it spans. ok is false when the event may still go on (the
// line after it has not come yet, and multiline_timeout has not passed):
// the caller keeps data[pos:] for the next call. at is the offset of
// data[pos].
func (j *joiner) extent(data []byte, pos, nl int, at int64) (end, lines int, ok bool) {
	end, lines = nl, 1
	for {
		ns := end + 1 // the next line's start
		k := bytes.IndexByte(data[ns:], '\n')
		if k < 0 {
			// The next line has not come, or is still being written.
			next := data[ns:]
			if len(next) >= probeLen && j.p.StartsEvent(next) || ns+len(next)-pos > j.maxBytes {
				j.waitAt = -1
				return end, lines, true
			}
			return end, lines, j.waited(at)
		}
		if j.p.StartsEvent(data[ns:ns+k]) || ns+k-pos > j.maxBytes {
			// The next event, or a continuation past the bound, which then
			// starts an event of its own.
			j.waitAt = -1
			return end, lines, true
		}
		end, lines = ns+k, lines+1
	}
}

// waited notes that the event at offset at waits for its next line and
// reports whether it has waited long enough (or must not wait).
func (j *joiner) waited(at int64) bool {
	if j.force {
		j.waitAt = -1
		return true
	}
	now := time.Now()
	if j.waitAt != at {
		j.waitAt, j.waitSince = at, now
		return false
	}
	if now.Sub(j.waitSince) >= j.timeout {
		j.waitAt = -1
		return true
	}
	return false
}

// due reports whether an event waits and has waited multiline_timeout: the
// reader, at the end of the file, then consumes its buffer again.
func (j *joiner) due() bool {
	return j != nil && j.waitAt >= 0 && time.Since(j.waitSince) >= j.timeout
}

// waiting reports whether an event waits for its next line: the reader
// keeps its slot until it is handed on (at most multiline_timeout), or a
// parked file whose last event waits would hold it until the file grows.
func (j *joiner) waiting() bool { return j != nil && j.waitAt >= 0 }

// reset forgets the waiting event (the buffer was dropped: truncation).
func (j *joiner) reset() {
	if j != nil {
		j.waitAt, j.force = -1, false
	}
}
