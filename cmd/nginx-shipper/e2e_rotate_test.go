package main

import (
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

// TestE2ERotateRenameUSR1: under load, the test rotates the log twice the
// way logrotate does (access.log.1 → access.log.2, access.log →
// access.log.1, kill -USR1 nginx). Every line of every file is delivered
// exactly once, whether the rotated names match the input's glob (the
// agent must know access.log.1 is the file it already read) or not (it must
// read the renamed file to its end through its descriptor).
func TestE2ERotateRenameUSR1(t *testing.T) {
	skipShort(t)
	for _, tc := range []struct {
		name string
		glob string // the input's path pattern, relative to the log dir
	}{
		{"rotated name matches the glob", "access.log*"},
		{"rotated name outside the glob", "access.log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := e2e.NewEnv(t, e2e.EnvOptions{Inputs: func(n *e2e.Nginx) []e2e.Input {
				return []e2e.Input{{Paths: []string{n.Logs + "/" + tc.glob}, Format: "combined"}}
			}})
			p := env.StartShipper()
			load := e2e.StartLoad(t, env.Nginx.Addr, e2e.LoadOptions{Rate: 1500})
			kc := env.KafkaConsumer()
			e2e.WaitFor(t, 60*time.Second, "500 events in Kafka", func() (bool, string) { return kc.Len() >= 500, "" })

			log := env.Nginx.AccessLog()
			for i := 0; i < 2; i++ {
				if i > 0 {
					mustRename(t, log+".1", log+".2")
				}
				mustRename(t, log, log+".1")
				load.WaitAnswered(300) // nginx still writes to the renamed file
				env.Nginx.Reopen()
				e2e.WaitFor(t, 30*time.Second, "nginx to reopen access.log", func() (bool, string) {
					return len(e2e.LogSeqs(t, log)) > 0, "no line in the new access.log yet"
				})
				load.WaitAnswered(700)
			}

			reqs := load.Stop()
			files := []string{log, log + ".1", log + ".2"}
			logged := waitLogged(t, reqs, files...)
			for s, c := range logged {
				if c != 1 {
					t.Fatalf("nginx logged seq %d %d times", s, c)
				}
			}
			want := map[string]map[int]bool{"access": e2e.Seqs(reqs)}
			env.WaitDelivered(90*time.Second, want)
			if code := p.Term(60 * time.Second); code != 0 {
				t.Errorf("nginx-shipper exited %d after SIGTERM, want 0", code)
			}
			checkFinal(t, env.Final(), want, true)
			for _, sink := range env.Sinks() {
				checkEvents(t, sink, env.Events(sink), reqs, false)
			}
		})
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// TestE2ECopytruncate: under load, the test copies access.log to
// access.log.1 and truncates access.log, as logrotate's copytruncate does;
// nginx keeps writing with O_APPEND from offset 0. Lines written between the
// copy and the truncate are in neither file: that window is unavoidable and
// only reported. Every line that was in the file before the copy started,
// and every line written after the truncate, must be delivered.
func TestE2ECopytruncate(t *testing.T) {
	skipShort(t)
	for _, tc := range []struct {
		name   string
		glob   string
		noDups bool
		// When the copy is not read, lines the agent had not read when the
		// file was truncated are gone too, whatever the agent does: the
		// test then lets it catch up before the copy (and reports its lag).
		// When the copy matches the glob, the agent must recover them.
		catchUp bool
	}{
		{"copy outside the glob", "access.log", true, true},
		// The agent may or may not recognise the copy as the file it read;
		// duplicates are reported, not failed.
		{"copy matches the glob", "access.log*", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := e2e.NewEnv(t, e2e.EnvOptions{Inputs: func(n *e2e.Nginx) []e2e.Input {
				return []e2e.Input{{Paths: []string{n.Logs + "/" + tc.glob}, Format: "combined"}}
			}})
			p := env.StartShipper()
			load := e2e.StartLoad(t, env.Nginx.Addr, e2e.LoadOptions{Rate: 1000})
			kc := env.KafkaConsumer()
			e2e.WaitFor(t, 60*time.Second, "500 events in Kafka", func() (bool, string) { return kc.Len() >= 500, "" })

			log := env.Nginx.AccessLog()
			beforeCopy := e2e.LogSeqs(t, log) // every line here is in the copy
			if tc.catchUp {
				read, _ := p.Metric("nginx_shipper_lines_read_total", `path="`+log+`"`)
				t.Logf("before the copy: %d lines in access.log, the agent had read %v", len(beforeCopy), read)
				e2e.WaitFor(t, 30*time.Second, "the agent to read the lines before the copy", func() (bool, string) {
					read, err := p.Metric("nginx_shipper_lines_read_total", `path="`+log+`"`)
					return err == nil && int(read) >= len(beforeCopy), fmt.Sprintf("read %v of %d (%v)", read, len(beforeCopy), err)
				})
			}
			copyFile(t, log, log+".1")
			// A slow rotation: nginx logs a few hundred lines after the copy
			// ended and before the truncate (the window), which the agent
			// may read from access.log before they are gone.
			load.WaitAnswered(200)
			if err := os.Truncate(log, 0); err != nil {
				t.Fatal(err)
			}
			afterTruncate := load.Sent() // seqs from here on were sent after the truncate
			load.WaitAnswered(1500)
			reqs := load.Stop()

			late := map[int]e2e.Request{}
			for s, r := range reqs {
				if s >= afterTruncate {
					late[s] = r
				}
			}
			waitLogged(t, late, log)
			inCopy := e2e.LogSeqs(t, log+".1")
			inLog := e2e.LogSeqs(t, log)
			must := map[int]bool{}
			for s := range beforeCopy {
				must[s] = true
			}
			for s := range inLog {
				must[s] = true
			}
			var window []int
			for s := range reqs {
				if inCopy[s] == 0 && inLog[s] == 0 {
					window = append(window, s)
				}
			}
			want := map[string]map[int]bool{"access": must}
			env.WaitDelivered(90*time.Second, want)
			if code := p.Term(60 * time.Second); code != 0 {
				t.Errorf("nginx-shipper exited %d after SIGTERM, want 0", code)
			}
			final := env.Final()
			// Lines of the copy written during the copy may be lost too.
			dups := checkFinal(t, final, want, tc.noDups, e2e.SeqSet(inCopy), e2e.Seqs(reqs))
			for sink, tl := range final {
				got := 0
				for _, s := range window {
					if tl["access"][s] > 0 {
						got++
					}
				}
				t.Logf("%s: copytruncate window (written between copy and truncate): %d lines, %d of them delivered anyway; duplicates %d", sink, len(window), got, dups[sink])
			}
			for _, sink := range env.Sinks() {
				checkEvents(t, sink, env.Events(sink), reqs, false)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(fmt.Errorf("copy %s: %w", to, err))
	}
}
