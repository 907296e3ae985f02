package agent

import (
	"context"
	"sync/atomic"
)

// readersMax bounds the harvesters that read at once. Each holds a read
// buffer (256 KiB, more for long lines) and builds a batch (a flight, about
// 1.4 MiB with its arena); with hundreds of files open, one buffer and one
// batch each would be hundreds of MiB. Two cores are kept busy by a few
// readers; the rest of the open files wait their turn for a buffer, in
// order (a channel's receivers are served first come, first served).
const readersMax = 4

// readers hands out read buffers: holding one is the right to read and to
// build a batch.
type readers struct {
	ch      chan *readBuf
	waiting atomic.Int32
}

type readBuf struct{ b []byte }

func newReaders(n int) *readers {
	r := &readers{ch: make(chan *readBuf, n)}
	for range n {
		r.ch <- &readBuf{b: make([]byte, 0, readChunk)}
	}
	return r
}

// acquire waits for a buffer; nil when ctx ended first.
func (r *readers) acquire(ctx context.Context) *readBuf {
	select {
	case rb := <-r.ch:
		return rb
	default:
	}
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	select {
	case rb := <-r.ch:
		return rb
	case <-ctx.Done():
		return nil
	}
}

// release gives a buffer back. One grown far beyond a chunk (a huge line)
// is replaced by a fresh one so that it does not stay allocated.
func (r *readers) release(rb *readBuf) {
	if cap(rb.b) > 4*readChunk+(1<<20) {
		rb.b = make([]byte, 0, readChunk)
	}
	rb.b = rb.b[:0]
	r.ch <- rb
}

// wanted reports whether a harvester waits for a buffer.
func (r *readers) wanted() bool { return r.waiting.Load() > 0 }
