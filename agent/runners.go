package agent

import "time"

// runnerIdle is how long a reader goroutine with nothing to run waits for
// the next file before it exits.
const runnerIdle = 30 * time.Second

// runners runs harvesters on goroutines that are kept and reused: with more
// files than slots a slot changes hands many times a second, and a new
// goroutine for each turn grew its stack again (from 8 KiB to what parsing
// needs) every time: a tenth of the agent's CPU with 1,000 live files over
// 256 slots (runtime.newstack and copystack in the profile).
type runners struct {
	ch chan func() // unbuffered: a send succeeds only when a runner waits
}

func newRunners() *runners { return &runners{ch: make(chan func())} }

// run runs f on an idle runner, or on a new one.
func (r *runners) run(f func()) {
	select {
	case r.ch <- f:
	default:
		go r.loop(f)
	}
}

func (r *runners) loop(f func()) {
	t := time.NewTimer(runnerIdle)
	defer t.Stop()
	for {
		f()
		f = nil
		t.Reset(runnerIdle)
		select {
		case f = <-r.ch:
		case <-t.C:
			return
		}
	}
}
