package container

import "time"

// Line is one line as the containerised program wrote it: the content of a
// full record, or of the partial records joined.
type Line struct {
	// Log is the content, valid until the next call on the Decoder. It
	// aliases the record (a full record with nothing pending) or the
	// Decoder's buffers.
	Log []byte
	// Start is the byte offset of the line's first record in the file.
	Start int64
	// Time is the wrapper's time of the first record.
	Time   time.Time
	Stream Stream
	// Truncated: the joined content was longer than the Decoder's maximum
	// and only its first max bytes are in Log; or the line's last partial
	// never got its continuation (Flush).
	Truncated bool
	// Err is set when the record is not a valid wrapper (a *RecordError);
	// Log then holds the raw record.
	Err error
}

// pending is a stream's line being joined from partial records.
type pending struct {
	active    bool
	truncated bool
	start     int64
	time      time.Time
	buf       []byte
}

// Decoder unwraps the records of one file and joins their partials. It
// is used by one goroutine (the file's harvester); its buffers are reused
// record after record.
type Decoder struct {
	rt      Runtime
	max     int
	pend    [2]pending // by Stream
	scratch []byte     // docker's unescaped strings
	out     []byte     // a joined line handed out
}

// NewDecoder returns a Decoder for records of runtime rt (CRI, Docker or
// Auto); joined lines are kept up to maxLine bytes.
func NewDecoder(rt Runtime, maxLine int) *Decoder {
	return &Decoder{rt: rt, max: maxLine}
}

// Add decodes the record rec (one physical line, without its newline) that
// starts at byte offset off. It returns the completed line and true, or
// false when the record was a partial that is now pending.
func (d *Decoder) Add(rec []byte, off int64) (Line, bool) {
	var r Record
	var err error
	docker := d.rt == Docker || (d.rt == Auto && len(rec) > 0 && rec[0] == '{')
	if docker {
		err = decodeDocker(rec, &r, &d.scratch)
	} else {
		err = DecodeCRI(rec, &r)
	}
	if err != nil {
		return Line{Log: rec, Start: off, Err: err}, true
	}
	p := &d.pend[r.Stream]
	if !p.active {
		if !r.Partial {
			// The common case: a full record, nothing pending.
			l := Line{Log: r.Log, Start: off, Time: r.Time, Stream: r.Stream}
			if len(l.Log) > d.max {
				l.Log, l.Truncated = l.Log[:d.max], true
			}
			return l, true
		}
		p.active, p.truncated, p.start, p.time = true, false, off, r.Time
		p.buf = p.buf[:0]
	}
	if room := d.max - len(p.buf); len(r.Log) > room {
		p.buf = append(p.buf, r.Log[:max(room, 0)]...)
		p.truncated = true
	} else {
		p.buf = append(p.buf, r.Log...)
	}
	if r.Partial {
		return Line{}, false
	}
	return d.take(r.Stream, false), true
}

// take hands out the pending line of stream s.
func (d *Decoder) take(s Stream, cut bool) Line {
	p := &d.pend[s]
	// Swap buffers: the line handed out stays valid while the stream
	// starts its next pending line.
	d.out, p.buf = p.buf, d.out[:0]
	l := Line{Log: d.out, Start: p.start, Time: p.time, Stream: s, Truncated: p.truncated || cut}
	p.active = false
	return l
}

// Hold returns the smallest offset at which a pending partial line starts,
// or -1 when none is pending. The checkpoint must not pass it.
func (d *Decoder) Hold() int64 {
	h := int64(-1)
	for i := range d.pend {
		if p := &d.pend[i]; p.active && (h < 0 || p.start < h) {
			h = p.start
		}
	}
	return h
}

// Flush hands out the first line still pending (Truncated: its last
// partial never got its continuation), false when none is. Call it until
// false at the end of a file that will not grow again.
func (d *Decoder) Flush() (Line, bool) {
	first := -1
	for i := range d.pend {
		if p := &d.pend[i]; p.active && (first < 0 || p.start < d.pend[first].start) {
			first = i
		}
	}
	if first < 0 {
		return Line{}, false
	}
	return d.take(Stream(first), true), true
}

// Reset forgets what is pending (the file was truncated and is read again
// from its start).
func (d *Decoder) Reset() {
	for i := range d.pend {
		d.pend[i].active = false
	}
}
