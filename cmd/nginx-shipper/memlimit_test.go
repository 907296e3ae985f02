package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/nginx-shipper/nginx-shipper/agent"
)

// TestMemoryLimit: agent.memory_limit becomes the runtime's soft limit, -1
// lifts it, and GOMEMLIMIT, when set, wins.
func TestMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	d := &daemon{log: slog.New(slog.DiscardHandler)}

	t.Setenv("GOMEMLIMIT", "")
	var c agent.Config
	c.Defaults()
	d.setMemoryLimit(c)
	if got, want := debug.SetMemoryLimit(-1), agent.DefaultMemoryLimit(c.MaxInFlightBytes); got != want {
		t.Errorf("default: limit %d, want %d", got, want)
	}
	c.MemoryLimit = -1
	d.setMemoryLimit(c)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory_limit = -1: limit %d, want none", got)
	}

	t.Setenv("GOMEMLIMIT", "100MiB")
	debug.SetMemoryLimit(100 << 20) // what the runtime read at start
	c.MemoryLimit = 20 << 20
	d.setMemoryLimit(c)
	if got := debug.SetMemoryLimit(-1); got != 100<<20 {
		t.Errorf("with GOMEMLIMIT set: limit %d, want GOMEMLIMIT's %d", got, 100<<20)
	}
}
