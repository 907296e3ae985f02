package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

// TestE2EErrorLogRoutedApart: the agent ships nginx's access log and an
// error log side by side; the error input's own topic and s3_prefix take
// its events (continuation lines joined into their event), the access
// events stay on the sinks' topic and prefix, and a line that is not an
// error.log line goes to the shared dead-letter topic.
func TestE2EErrorLogRoutedApart(t *testing.T) {
	skipShort(t)
	const topicErr, prefixErr = "nginx-error", "nginx-error/"
	var errLog string
	env := e2e.NewEnv(t, e2e.EnvOptions{
		Topics: []string{topicErr},
		Inputs: func(n *e2e.Nginx) []e2e.Input {
			errLog = n.Logs + "/app-error.log"
			return []e2e.Input{
				{Paths: []string{n.AccessLog()}, Format: "combined"},
				{Paths: []string{errLog}, Format: "error", Timezone: "UTC", Topic: topicErr, S3Prefix: prefixErr + "dt=%Y-%m-%d/"},
			}
		},
	})
	// Each event in one write, as nginx writes it; every third has a
	// PHP-FPM stack trace on continuation lines.
	f, err := os.Create(errLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const nErr = 300
	now := time.Now().UTC()
	for i := 0; i < nErr; i++ {
		ev := fmt.Sprintf("%s [error] 77#77: *%d FastCGI sent in stderr: \"PHP message: boom", now.Format("2006/01/02 15:04:05"), i+1)
		if i%3 == 0 {
			ev += "\nStack trace:\n#0 /srv/app/index.php(3): f()\n#1 {main}"
		}
		ev += fmt.Sprintf("\" while reading response header from upstream, client: 192.0.2.%d, server: app, request: \"GET /seq/%d HTTP/1.1\", upstream: \"fastcgi://unix:/run/php.sock:\", host: \"app\"\n", i%250, i)
		if _, err := f.WriteString(ev); err != nil {
			t.Fatal(err)
		}
		if i == nErr/2 {
			f.WriteString("PHP Warning: not an error.log line\n") // continues event nErr/2
		}
	}
	f.WriteString("2026/13/40 99:99:99 [error] bad\n") // a date that is none: dead letter
	reqs := e2e.Send(t, env.Nginx.Addr, 1_000_000, 1_000_200)
	env.StartShipper()
	errs := env.Kafka.Consume(t, topicErr)
	dlq := env.Kafka.Consume(t, env.DLT)
	waitLogged(t, reqs, env.Nginx.AccessLog())
	env.WaitDelivered(90*time.Second, map[string]map[int]bool{"access": e2e.Seqs(reqs)})
	e2e.WaitFor(t, 60*time.Second, "the error events in their topic", func() (bool, string) {
		return errs.Len() >= nErr, fmt.Sprintf("%d of %d", errs.Len(), nErr)
	})
	s3err := e2e.NewS3Reader(t, env.S3, prefixErr)
	e2e.WaitFor(t, 60*time.Second, "the error events under their prefix", func() (bool, string) {
		if err := s3err.Refresh(nil); err != nil {
			return false, err.Error()
		}
		return len(s3err.Events()) >= nErr, fmt.Sprintf("%d of %d", len(s3err.Events()), nErr)
	})
	e2e.WaitFor(t, 30*time.Second, "the bad line in the dead-letter topic", func() (bool, string) { return dlq.Len() >= 1, "" })

	for sink, evs := range map[string][]e2e.Event{"kafka": errs.Events(), "s3": s3err.Events()} {
		seen := map[int]int{}
		for _, e := range evs {
			if e.File != errLog {
				t.Errorf("%s: an event of %s under the error input's topic/prefix", sink, e.File)
				continue
			}
			seen[e.Seq]++
			msg, _ := e.Fields["message"].(string)
			wantLines := 0
			if e.Seq%3 == 0 {
				wantLines = 3
			}
			if e.Seq == nErr/2 {
				wantLines++
			}
			if strings.Count(msg, "\n") != wantLines || e.Fields["upstream"] != "fastcgi://unix:/run/php.sock:" || e.Fields["level"] != "error" {
				t.Errorf("%s: event %d: message %q, upstream %v", sink, e.Seq, msg, e.Fields["upstream"])
			}
		}
		for i := 0; i < nErr; i++ {
			if seen[i] != 1 {
				t.Errorf("%s: error event %d delivered %d times", sink, i, seen[i])
			}
		}
	}
	for _, sink := range env.Sinks() {
		for _, e := range env.Events(sink) {
			if e.File == errLog {
				t.Errorf("%s: error event %d on the sink's own topic/prefix", sink, e.Seq)
			}
		}
	}
	dlq.WaitEnd(30 * time.Second)
	if vs := dlq.Values(); len(vs) != 1 || !strings.Contains(string(vs[0]), "2026/13/40") {
		t.Errorf("dead-letter records: %q", vs)
	}
	if code := env.Shipper.Term(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	cps, err := e2e.Checkpoints(env.Cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(errLog); cps[errLog] != fi.Size() {
		t.Errorf("checkpoint of the error log %d, want its size %d", cps[errLog], fi.Size())
	}
}
