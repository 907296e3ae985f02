package main

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

// TestE2EKcat: an outside consumer (kcat, librdkafka) reads what the agent
// produced (lz4-compressed): one JSON event per record, every line once,
// keyed by remote_addr.
func TestE2EKcat(t *testing.T) {
	skipShort(t)
	kcat := e2e.LookTool(t, "kcat", "/usr/bin/kcat")
	env := e2e.NewEnv(t, e2e.EnvOptions{NoS3: true, Compression: "lz4"})
	p := env.StartShipper()
	reqs := e2e.Send(t, env.Nginx.Addr, 0, 600)
	waitLogged(t, reqs, env.Nginx.AccessLog())
	waitLogged(t, reqs, env.Nginx.CustomLog())
	want := map[string]map[int]bool{"access": e2e.Seqs(reqs), "custom": e2e.Seqs(reqs)}
	env.WaitDelivered(60*time.Second, want)
	if code := p.Term(60 * time.Second); code != 0 {
		t.Errorf("nginx-shipper exited %d after SIGTERM, want 0", code)
	}

	broker := env.Kafka.Brokers[0]
	out := runKcat(t, kcat, "-C", "-b", broker, "-t", env.Topic, "-o", "beginning", "-e", "-q")
	var evs []e2e.Event
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		ev, err := e2e.DecodeEvent(sc.Bytes())
		if err != nil {
			t.Fatalf("kcat output: %v", err)
		}
		evs = append(evs, ev)
	}
	checkFinal(t, map[string]e2e.Tally{"kcat": e2e.TallyOf(evs)}, want, true)
	checkEvents(t, "kcat", evs, reqs, true)

	// The record key is the event's remote_addr.
	keys := runKcat(t, kcat, "-C", "-b", broker, "-t", env.Topic, "-o", "beginning", "-e", "-q", "-f", "%k\n")
	n := 0
	for _, k := range strings.Split(strings.TrimSuffix(string(keys), "\n"), "\n") {
		if k != "127.0.0.1" {
			t.Fatalf("record key %q, want 127.0.0.1", k)
		}
		n++
	}
	if n != len(evs) {
		t.Errorf("%d keys, %d values", n, len(evs))
	}
}

func runKcat(t *testing.T, kcat string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat %v: %v\n%s", args, err, stderr.String())
	}
	return out
}
