package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CustomFormat is the log_format "custom" of the nginx that StartNginx runs,
// written to logs/custom.log next to the combined logs/access.log. It has a
// request id, an upstream timing list and a response header, which
// combined has not.
const CustomFormat = `$remote_addr - [$time_iso8601] "$request" $status $body_bytes_sent ` +
	`rid=$request_id rt=$request_time urt=$upstream_response_time ` +
	`ct="$sent_http_content_type" ua="$http_user_agent"`

// XFFFormat is the log_format "xff" of the nginx that StartNginx runs,
// written to logs/xff.log: combined with the X-Forwarded-For header
// (for [enrich]'s client_ip_header).
const XFFFormat = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for"`

// Nginx is one nginx master process (daemon off) serving 127.0.0.1:PORT from
// its own prefix directory, with access logs in Dir/logs.
//
// Its locations: /seq/N answers 200 "ok"; /seq/N/404 answers 404;
// /seq/N/proxy is proxied to /backend/ on the same server (so that
// $upstream_response_time is set) and answers 200 with a JSON body.
type Nginx struct {
	Dir  string // the -p prefix; nginx.conf is in it
	Addr string // 127.0.0.1:PORT
	Logs string // Dir/logs

	t      testing.TB
	bin    string
	cmd    *exec.Cmd
	exited chan struct{}
	out    *SyncBuffer
}

// AccessLog is the path of the combined access log.
func (n *Nginx) AccessLog() string { return filepath.Join(n.Logs, "access.log") }

// XFFLog is the path of the log in XFFFormat.
func (n *Nginx) XFFLog() string { return filepath.Join(n.Logs, "xff.log") }

// CustomLog is the path of the log in CustomFormat.
func (n *Nginx) CustomLog() string { return filepath.Join(n.Logs, "custom.log") }

// StartNginx writes a config and starts nginx (/usr/sbin/nginx or nginx in
// PATH); it skips t when nginx is absent (see Missing). Stop is registered
// with t.Cleanup.
func StartNginx(t testing.TB) *Nginx {
	t.Helper()
	bin := LookTool(t, "nginx", "/usr/sbin/nginx")
	dir := t.TempDir()
	n := &Nginx{Dir: dir, Addr: FreeAddr(t), Logs: filepath.Join(dir, "logs"), t: t, bin: bin}
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	user := ""
	if os.Geteuid() == 0 {
		// Workers would otherwise run as nobody, who cannot enter the
		// test's private temp directory.
		user = "user root;"
	}
	conf := fmt.Sprintf(`# written by agent/e2e for one test
%[1]s
worker_processes 2;
error_log %[2]s/logs/error.log warn;
pid %[2]s/nginx.pid;
events { worker_connections 512; }
http {
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    keepalive_requests 100000;
    log_format custom '%[4]s';
    log_format xff '%[5]s';
    server {
        listen %[3]s;
        access_log %[2]s/logs/access.log combined;
        access_log %[2]s/logs/custom.log custom;
        access_log %[2]s/logs/xff.log xff;
        location /backend/ {
            access_log off;
            default_type application/json;
            return 200 '{"backend":true}\n';
        }
        location ~ ^/seq/[0-9]+/404$ {
            return 404;
        }
        location ~ ^/seq/[0-9]+/proxy$ {
            rewrite ^ /backend/ break;
            proxy_pass http://%[3]s;
        }
        location / {
            default_type text/plain;
            return 200 'ok\n';
        }
    }
}
`, user, dir, n.Addr, CustomFormat, XFFFormat)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.out = &SyncBuffer{}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"),
		"-e", filepath.Join(dir, "logs", "error.log"), "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = n.out, n.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: start nginx: %v", err)
	}
	n.cmd = cmd
	n.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(n.exited) }()
	t.Cleanup(n.Stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", n.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-n.exited:
			errLog, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
			t.Fatalf("e2e: nginx exited: %s\n%s", n.out.String(), errLog)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: nginx does not listen on %s: %s", n.Addr, n.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// PID is the nginx master's process id.
func (n *Nginx) PID() int { return n.cmd.Process.Pid }

// Reopen sends USR1 to the master (kill -USR1 <pid>), as logrotate's
// postrotate does: nginx reopens its log files by name. It returns at once;
// nginx reopens asynchronously.
func (n *Nginx) Reopen() {
	n.t.Helper()
	if err := syscall.Kill(n.PID(), syscall.SIGUSR1); err != nil {
		n.t.Fatalf("e2e: kill -USR1 %d: %v", n.PID(), err)
	}
}

// ErrorLog returns nginx's error log, for failure messages.
func (n *Nginx) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Logs, "error.log"))
	return string(b)
}

// Stop stops nginx (SIGQUIT, graceful: workers finish and write their log
// lines; SIGKILL after 10s) and waits for it. Safe to call twice.
func (n *Nginx) Stop() {
	if n.cmd == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
	if s := n.ErrorLog(); strings.Contains(s, "[emerg]") || strings.Contains(s, "[alert]") {
		n.t.Logf("nginx error log:\n%s", tail(s, 20))
	}
}
