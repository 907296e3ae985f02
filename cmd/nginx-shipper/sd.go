package main

import (
	"context"
	"sync"
	"time"

	"github.com/nginx-shipper/nginx-shipper/systemd/sdnotify"
)

// liveness is what the systemd watchdog is fed from. WATCHDOG=1 is sent
// only while the daemon is demonstrably alive:
//
//   - running: the agent's main loop went round recently (its heartbeat,
//     which a deadlocked loop stops). Readers blocked on a sink that is down
//     do not stop it: a restart cannot fix an outage, so it must not cause
//     one.
//   - in a step of a reload or shutdown (flush, close the sinks, start the
//     next pipeline): until the step's own bound. A step stuck past its
//     bound stops the pings and systemd kills the daemon, as it should.
//     Each step also asks systemd for that much more time
//     (EXTEND_TIMEOUT_USEC) for the reload or stop job.
//
// Never from a loop that would go on pinging if the pipeline were stuck.
type liveness struct {
	mu       sync.Mutex
	phase    string
	deadline time.Time        // of the current step; zero while running
	beat     func() time.Time // the running agent's heartbeat
	stale    time.Duration    // a heartbeat older than this is not alive
}

// running: alive while beat is fresher than stale.
func (l *liveness) running(beat func() time.Time, stale time.Duration) {
	l.mu.Lock()
	l.phase, l.deadline, l.beat, l.stale = "running", time.Time{}, beat, stale
	l.mu.Unlock()
}

// step: alive for bound from now, doing name. It tells systemd the job may
// take that much longer.
func (l *liveness) step(name string, bound time.Duration) {
	l.mu.Lock()
	l.phase, l.deadline, l.beat = name, time.Now().Add(bound), nil
	l.mu.Unlock()
	_ = sdnotify.ExtendTimeout(bound)
}

// alive reports whether a watchdog ping is deserved now, and the phase.
func (l *liveness) alive(now time.Time) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.beat != nil:
		return now.Sub(l.beat()) < l.stale, l.phase
	case !l.deadline.IsZero():
		return now.Before(l.deadline), l.phase
	}
	return false, l.phase
}

// watchdog feeds systemd's watchdog every WatchdogInterval/3 while l is
// alive, until ctx is done. Outside systemd (no WATCHDOG_USEC) it returns
// at once.
func (l *liveness) watchdog(ctx context.Context) {
	iv := sdnotify.WatchdogInterval()
	if iv <= 0 {
		return
	}
	t := time.NewTicker(iv / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if ok, _ := l.alive(now); ok {
				_ = sdnotify.Watchdog()
			}
		}
	}
}
