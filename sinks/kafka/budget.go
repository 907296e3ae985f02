package kafka

import (
	"context"
	"sync"
	"time"
)

// budget bounds what the sink holds unacknowledged: records and key+value
// bytes. Send acquires a whole batch's share before producing anything, so
// it can give up (ctx) having taken nothing; the batch's last
// acknowledgement releases it. A batch larger than the whole budget is
// granted the whole budget, once nothing else is held.
type budget struct {
	mu                sync.Mutex
	recs, bytes       int64
	batches           int
	waiters           int // acquire calls waiting
	maxRecs, maxBytes int64
	wake              chan struct{} // closed and cleared by release; nil when nobody waits
	// progress is when a batch last completed, or when the first batch was
	// taken while none was held: what is held has waited since then with
	// no batch completing (see waitingSince).
	progress time.Time
}

func (b *budget) init(maxRecs, maxBytes int64) { b.maxRecs, b.maxBytes = maxRecs, maxBytes }

// acquire waits until recs and bytes fit, or ctx is done. It returns what it
// granted (recs and bytes capped at the maximum), to pass to release.
func (b *budget) acquire(ctx context.Context, recs, bytes int64) (int64, int64, error) {
	recs, bytes = min(recs, b.maxRecs), min(bytes, b.maxBytes)
	b.mu.Lock()
	for b.recs+recs > b.maxRecs || b.bytes+bytes > b.maxBytes {
		w := b.waitCh()
		b.waiters++
		b.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			b.mu.Lock()
			b.waiters--
			b.mu.Unlock()
			return 0, 0, ctx.Err()
		}
		b.mu.Lock()
		b.waiters--
	}
	if b.batches == 0 {
		b.progress = time.Now()
	}
	b.recs += recs
	b.bytes += bytes
	b.batches++
	b.mu.Unlock()
	return recs, bytes, nil
}

// release returns a batch's grant.
func (b *budget) release(recs, bytes int64) {
	b.mu.Lock()
	b.recs -= recs
	b.bytes -= bytes
	b.batches--
	b.progress = time.Now()
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	b.mu.Unlock()
}

// waitIdle waits until no batch holds a grant, or ctx is done.
func (b *budget) waitIdle(ctx context.Context) error {
	b.mu.Lock()
	for b.batches > 0 {
		w := b.waitCh()
		b.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.mu.Lock()
	}
	b.mu.Unlock()
	return nil
}

// waiting returns how many acquire calls are waiting.
func (b *budget) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters
}

func (b *budget) usedBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}

// waitCh returns the channel release closes; b.mu is held.
func (b *budget) waitCh() chan struct{} {
	if b.wake == nil {
		b.wake = make(chan struct{})
	}
	return b.wake
}

// waitingSince reports how many batches are held and, when some are, since
// when no batch completed: the age of the sink's wait for an
// acknowledgement.
func (b *budget) waitingSince() (batches int, since time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.batches, b.progress
}
