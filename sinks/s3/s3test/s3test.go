// Package s3test runs a real S3 server (versitygw with its posix backend) on
// 127.0.0.1 for tests. It is for tests only.
//
// The versitygw binary is looked up in $VERSITYGW, $NGINX_SHIPPER_TOOLS, the
// repository's .tools, /tmp/gobin, $(go env GOPATH)/bin and PATH. When it is absent the test is skipped, unless
// NGINX_SHIPPER_REQUIRE_E2E=1 is set, in which case it fails.
package s3test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Server is one versitygw process serving one bucket from a directory. Stop
// and Start may be called to simulate an outage; the data survives.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string
	Dir       string // the posix backend's root; the bucket is a folder in it

	t    testing.TB
	bin  string
	addr string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *syncBuffer
}

// syncBuffer collects the server's output; written by exec's copier.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Binary returns the path of the versitygw binary, or "" when none is found.
func Binary() string {
	if p := os.Getenv("VERSITYGW"); p != "" {
		return p
	}
	var cands []string
	if d := os.Getenv("NGINX_SHIPPER_TOOLS"); d != "" {
		cands = append(cands, filepath.Join(d, "versitygw"))
	}
	// The repository's .tools (where .ci/deps installs it), from the test's
	// working directory up to the module root.
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				cands = append(cands, filepath.Join(dir, ".tools", "versitygw"))
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	cands = append(cands, "/tmp/gobin/versitygw")
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		cands = append(cands, filepath.Join(string(bytes.TrimSpace(out)), "bin", "versitygw"))
	}
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	return ""
}

// Start starts versitygw on a free port of 127.0.0.1 with a fresh directory,
// creates the bucket "test-bucket" and registers Stop with t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv("NGINX_SHIPPER_REQUIRE_E2E") == "1" {
			t.Fatal("versitygw not found (install: GOBIN=/tmp/gobin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
		}
		t.Skip("versitygw not found; skipping (install: GOBIN=/tmp/gobin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	s := &Server{
		Bucket:    "test-bucket",
		AccessKey: "AKTESTTESTTEST",
		SecretKey: "SECRETSECRETSECRETSECRET",
		Region:    "us-east-1",
		Dir:       t.TempDir(),
		t:         t,
		bin:       bin,
		addr:      freeAddr(t),
	}
	s.Endpoint = "http://" + s.addr
	t.Cleanup(s.Stop)
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		t.Fatalf("s3test: create bucket: %v", err)
	}
	return s
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start (re)starts the server on the same address and directory and waits
// until it accepts connections. It is a no-op when the server runs.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	s.out = &syncBuffer{}
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey,
		"--port", s.addr, "--region", s.Region, "--quiet", "posix", s.Dir)
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("s3test: start versitygw: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			s.cmd = nil
			s.t.Fatalf("s3test: versitygw exited: %s", s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("s3test: versitygw did not listen on %s: %s", s.addr, s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Wait is already running; keep it for Stop.
	s.cmd = cmd
	s.exited = exited
}

// Stop kills the server (by its PID) and waits for it to exit. The directory
// is kept, so Start brings the same bucket back.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
	// The port may linger briefly; wait until nothing accepts on it.
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// Client returns an S3 client for the server (path style, static keys).
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// Object is one stored object, as listed and downloaded.
type Object struct {
	Key             string
	Body            []byte // as stored (gzip for the sink's objects)
	ContentType     string
	ContentEncoding string
}

// Objects lists every object under prefix and downloads it.
func (s *Server) Objects(ctx context.Context, prefix string) ([]Object, error) {
	c := s.Client()
	var objs []Object
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3test: list: %w", err)
		}
		for _, o := range page.Contents {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: o.Key})
			if err != nil {
				return nil, fmt.Errorf("s3test: get %s: %w", aws.ToString(o.Key), err)
			}
			body, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("s3test: read %s: %w", aws.ToString(o.Key), err)
			}
			objs = append(objs, Object{Key: aws.ToString(o.Key), Body: body,
				ContentType: aws.ToString(out.ContentType), ContentEncoding: aws.ToString(out.ContentEncoding)})
		}
	}
	return objs, nil
}

// Gunzip decompresses a (possibly multi-member) gzip body.
func Gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	if err := zr.Close(); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return out, nil
}
