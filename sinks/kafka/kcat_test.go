package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestKcatReadsWhatTheSinkProduced checks the records with an outside
// consumer (kcat, librdkafka). It skips without kcat, unless
// NGINX_SHIPPER_REQUIRE_E2E=1.
func TestKcatReadsWhatTheSinkProduced(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("NGINX_SHIPPER_REQUIRE_E2E") == "1" {
			t.Fatal("kcat not found and NGINX_SHIPPER_REQUIRE_E2E=1 (apt-get install kcat)")
		}
		t.Skip("kcat not found (apt-get install kcat); skipping the outside-consumer test")
	}
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.Compression = "zstd"
	e := newEnv(t, c, cfg)
	ls := keyedLines("kcat", 20, 4)
	b := e.batch(testSource, ls...)
	e.mustSend(b)
	e.mustDone(b)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", strings.Join(c.ListenAddrs(), ","), "-t", topicMain,
		"-o", "beginning", "-c", "20", "-e", "-J", "-q")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, stderr.String())
	}
	got := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m struct {
			Key     string   `json:"key"`
			Payload string   `json:"payload"`
			Headers []string `json:"headers"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("kcat line %q: %v", l, err)
		}
		if !strings.Contains(m.Payload, fmt.Sprintf("%q", m.Key)) {
			t.Errorf("record key %q does not match its value %s", m.Key, m.Payload)
		}
		if len(m.Headers) < 2 || m.Headers[0] != HeaderHost || m.Headers[1] != "web-1" {
			t.Errorf("headers %v", m.Headers)
		}
		got[m.Payload] = true
	}
	for _, l := range ls {
		if !got[l.value] {
			t.Errorf("kcat did not see %s", l.value)
		}
	}
}
