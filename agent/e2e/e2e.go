// Package e2e is test support for the end-to-end tests of nginx-shipper
// (cmd/nginx-shipper/e2e_*_test.go). It starts the real parts of the
// pipeline as processes or in-process servers on 127.0.0.1 — nginx, the
// nginx-shipper binary, kfake (Kafka), versitygw (S3, via sinks/s3/s3test),
// kcat — generates HTTP load whose every request carries a sequence number,
// and collects what arrived in each sink so that tests can count, per
// sequence number, what is missing and what is duplicated.
//
// Tests that need an external binary (nginx, versitygw, kcat) skip when it is
// absent, unless NGINX_SHIPPER_REQUIRE_E2E=1, in which case they fail.
//
// It is for tests only; nothing in the daemon imports it.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireE2E reports whether NGINX_SHIPPER_REQUIRE_E2E=1: absent tools fail
// the test instead of skipping it.
func RequireE2E() bool { return os.Getenv("NGINX_SHIPPER_REQUIRE_E2E") == "1" }

// Missing skips t (or fails it under NGINX_SHIPPER_REQUIRE_E2E=1) because
// what is needed is absent.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireE2E() {
		t.Fatalf("%s (NGINX_SHIPPER_REQUIRE_E2E=1: failing instead of skipping; `make deps` installs it)", msg)
	}
	t.Skipf("%s; skipping (`make deps` installs it)", msg)
}

// LookTool returns the path of an external program: $NAME (e.g. $NGINX,
// $KCAT) when set, else the first of the candidates that is an executable
// file, else name in $NGINX_SHIPPER_TOOLS or the repository's .tools, else
// name in PATH. It skips or fails t (see Missing) when there is none.
func LookTool(t testing.TB, name string, candidates ...string) string {
	t.Helper()
	env := strings.ToUpper(name)
	if p := os.Getenv(env); p != "" {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			Missing(t, "%s=%s: not an executable file", env, p)
		}
		return p
	}
	if p := findTool(name, candidates...); p != "" {
		return p
	}
	Missing(t, "%s not found", name)
	return ""
}

func findTool(name string, candidates ...string) string {
	if d := os.Getenv("NGINX_SHIPPER_TOOLS"); d != "" {
		candidates = append(candidates, filepath.Join(d, name))
	}
	if root, err := ModuleRoot(); err == nil {
		candidates = append(candidates, filepath.Join(root, ".tools", name))
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

// UseRepoVersitygw points $VERSITYGW (read by sinks/s3/s3test) at the
// repository's .tools/versitygw when it is not set and s3test's own search
// would not find one. Call it from TestMain, before tests run in parallel.
func UseRepoVersitygw() {
	if os.Getenv("VERSITYGW") != "" {
		return
	}
	if _, err := exec.LookPath("versitygw"); err == nil {
		return
	}
	if p := findTool("versitygw", "/tmp/gobin/versitygw"); p != "" {
		os.Setenv("VERSITYGW", p)
	}
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// ModuleRoot returns the directory of the go.mod of the module under test.
func ModuleRoot() (string, error) {
	rootOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			rootErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			rootErr = fmt.Errorf("not inside a Go module")
			return
		}
		rootDir = filepath.Dir(gomod)
	})
	return rootDir, rootErr
}

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// Shipper builds the nginx-shipper binary once per test binary (go build
// ./cmd/nginx-shipper; with -race when NGINX_SHIPPER_E2E_RACE=1) and returns
// its path. A build failure fails t: it is the daemon's failure, not a
// missing tool. Cleanup removes the binary.
func Shipper(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "nginx-shipper-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(buildDir, "nginx-shipper")
		args := []string{"build", "-o", buildBin}
		if os.Getenv("NGINX_SHIPPER_E2E_RACE") == "1" {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/nginx-shipper")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatalf("e2e: building nginx-shipper failed: %v", buildErr)
	}
	return buildBin
}

// Cleanup removes what Shipper built. Call it from TestMain after m.Run.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("e2e: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitFor polls cond every interval until it returns true or the timeout
// passes; then it fails t with the message of the last call (cond returns
// one describing what it still waits for).
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := 20 * time.Millisecond
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: timed out after %v waiting for %s: %s", timeout, what, msg)
		}
		time.Sleep(interval)
		if interval < 250*time.Millisecond {
			interval *= 2
		}
	}
}

// SyncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
