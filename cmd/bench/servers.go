package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	s3Access = "AKBENCHBENCHBENCH"
	s3Secret = "benchbenchbenchbenchbench"
	s3Region = "us-east-1"
	s3Bucket = "logs"
)

// proc is a server process the benchmark started; stop ends it by PID.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// started reports whether p is a process that was started.
func (p *proc) started() bool { return p != nil && p.cmd != nil && p.cmd.Process != nil }

func (p *proc) stop() {
	if !p.started() {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// cpu is the process's CPU time so far (0 for no process).
func (p *proc) cpu() time.Duration {
	if !p.started() {
		return 0
	}
	d, _ := procCPU(p.cmd.Process.Pid)
	return d
}

// stopProfile makes devkafka stop its CPU profile (SIGUSR1).
func (p *proc) stopProfile() {
	if p.started() {
		_ = p.cmd.Process.Signal(syscall.SIGUSR1)
	}
}

// startReady starts a process that prints "ready ADDR" on stdout, and
// returns it with ADDR.
func startReady(name string, logPath string, args ...string) (*proc, string, error) {
	cmd := exec.Command(args[0], args[1:]...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				select {
				case ready <- a:
				default:
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); logf.Close(); close(p.exited) }()
	select {
	case a := <-ready:
		return p, a, nil
	case <-p.exited:
		return nil, "", fmt.Errorf("%s exited before it was ready (see %s)", name, logPath)
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, "", fmt.Errorf("%s not ready after 30s", name)
	}
}

// tools are the helper binaries, built once.
type tools struct {
	devkafka, devs3, devregistry, versitygw string
}

func buildTools(dir, s3Mode string) (*tools, error) {
	t := &tools{devkafka: filepath.Join(dir, "devkafka"), devs3: filepath.Join(dir, "devs3"), devregistry: filepath.Join(dir, "devregistry")}
	for _, c := range [][2]string{{t.devkafka, "./cmd/devkafka"}, {t.devs3, "./cmd/devs3"}, {t.devregistry, "./cmd/devregistry"}} {
		out, err := exec.Command("go", "build", "-o", c[0], c[1]).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go build %s (run from the repository root): %v\n%s", c[1], err, out)
		}
	}
	switch s3Mode {
	case "gofakes3":
	case "auto", "versitygw":
		t.versitygw = findVersitygw()
		if t.versitygw == "" && s3Mode == "versitygw" {
			return nil, errors.New("versitygw not found (PATH, .tools/versitygw, /tmp/gobin/versitygw)")
		}
	default:
		return nil, fmt.Errorf("-s3 %q: want auto, versitygw or gofakes3", s3Mode)
	}
	return t, nil
}

func findVersitygw() string {
	if p := os.Getenv("VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	for _, c := range []string{".tools/versitygw", "/tmp/gobin/versitygw"} {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			p, _ := filepath.Abs(c)
			return p
		}
	}
	return ""
}

// startKafka starts the broker; with profile set it writes a CPU profile
// there until stopProfile.
func startKafka(t *tools, dir string, partitions int, profile string) (*proc, string, error) {
	args := []string{t.devkafka,
		"-listen", "127.0.0.1:0", "-topics", fmt.Sprintf("%s:%d,%s:1", benchTopic, partitions, dlqTopic),
		"-data-dir", filepath.Join(dir, "kafka")}
	if profile != "" {
		args = append(args, "-cpuprofile", profile)
	}
	return startReady("devkafka", filepath.Join(dir, "devkafka.log"), args...)
}

// startRegistry starts cmd/devregistry; it returns its URL.
func startRegistry(t *tools, dir string) (*proc, string, error) {
	return startReady("devregistry", filepath.Join(dir, "devregistry.log"), t.devregistry, "-listen", "127.0.0.1:0")
}

// startS3 starts versitygw (posix backend in dir) when available, else
// devs3, and creates the bucket. It returns the endpoint URL.
func startS3(t *tools, dir string) (*proc, string, error) {
	if t.versitygw == "" {
		return startReady("devs3", filepath.Join(dir, "devs3.log"), t.devs3, "-listen", "127.0.0.1:0", "-buckets", s3Bucket)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	root := filepath.Join(dir, "s3")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, "", err
	}
	logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(t.versitygw, "--access", s3Access, "--secret", s3Secret, "--port", addr,
		"--region", s3Region, "--quiet", "posix", root)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, "", fmt.Errorf("start versitygw: %w", err)
	}
	p := &proc{name: "versitygw", cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.exited) }()
	endpoint := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, "", fmt.Errorf("versitygw not listening on %s after 30s", addr)
		}
		select {
		case <-p.exited:
			return nil, "", fmt.Errorf("versitygw exited (see %s)", logf.Name())
		case <-time.After(50 * time.Millisecond):
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s3Client(endpoint).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s3Bucket)}); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("create bucket: %w", err)
	}
	return p, endpoint, nil
}

func s3Client(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Region:       s3Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s3Access, s3Secret, ""),
	})
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
