package main

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"
)

// TestLivenessNotFromASpinningLoop: the watchdog is deserved only while
// the agent's heartbeat is fresh, or within a reload/stop step's own bound;
// a stale heartbeat (a deadlocked main loop) or a step past its bound earns
// no ping, however often the watchdog goroutine asks.
func TestLivenessNotFromASpinningLoop(t *testing.T) {
	var l liveness
	now := time.Now()
	if ok, _ := l.alive(now); ok {
		t.Error("alive before anything started")
	}
	beat := now
	l.running(func() time.Time { return beat }, 10*time.Second)
	if ok, phase := l.alive(now.Add(time.Second)); !ok || phase != "running" {
		t.Errorf("fresh heartbeat: alive %v phase %q", ok, phase)
	}
	if ok, _ := l.alive(now.Add(11 * time.Second)); ok {
		t.Error("alive with a heartbeat 11s old (stale after 10s): a deadlocked loop would be pinged for")
	}
	l.running(func() time.Time { return time.Time{} }, 10*time.Second)
	if ok, _ := l.alive(now); ok {
		t.Error("alive before the agent's first heartbeat")
	}
	l.step("reloading", time.Minute)
	if ok, phase := l.alive(time.Now().Add(59 * time.Second)); !ok || phase != "reloading" {
		t.Errorf("within the step's bound: alive %v phase %q", ok, phase)
	}
	if ok, _ := l.alive(time.Now().Add(61 * time.Second)); ok {
		t.Error("alive past the step's bound: a stuck reload would be pinged for ever")
	}
}

// TestReadyzStartingIsJSON503: before the first pipeline runs, /readyz is
// 503 with a JSON body saying so.
func TestReadyzStartingIsJSON503(t *testing.T) {
	d := &daemon{}
	d.live.step("starting", time.Minute)
	rec := httptest.NewRecorder()
	d.readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
	var b readyBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	if rec.Code != 503 || b.Ready || b.State != "starting" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("starting: %d %+v %q", rec.Code, b, rec.Header().Get("Content-Type"))
	}
}
