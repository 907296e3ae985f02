package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Request is what the load generator sent for one sequence number, so that
// a test can check every field of the event nginx's line became.
type Request struct {
	Seq       int
	Method    string
	URI       string // as sent, raw: nginx logs it as is (escaped)
	UserAgent string // raw bytes; "" means no User-Agent header
	Referer   string // raw bytes; "" means no Referer header
	// XForwardedFor is the X-Forwarded-For header; "" sends none.
	XForwardedFor string
	Body          int // bytes of request body (POST)
	Status        int // the status nginx answered
	BodyBytes     int // the response body's length
}

// NoHeader marks a UserAgent or Referer that is not sent at all.
const NoHeader = ""

// userAgents are the tricky User-Agent values the load cycles through: each
// exercises one escaping or decoding rule between nginx and the event.
var userAgents = []string{
	"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	`quote " inside, and a \ backslash`,
	`"`,
	`} {"json":"injection"} \"`,
	"ünïcødé 🚀 日本語",
	"tab\there",
	"invalid utf-8 \xff\xfe end",
	NoHeader,
	"-", // nginx writes "-", like an absent header: the field is left out
	"curl/8.5.0",
	strings.Repeat("long-agent-", 300),
	"   spaces around   ",
	"sqli' OR '1'='1' --",
	`C:\path\to\thing.exe`,
}

var referers = []string{
	NoHeader,
	"https://example.com/page?a=1&b=%22x%22",
	`http://evil.example/"quoted"`,
	"-",
}

// RequestFor returns the request the load sends for seq (a pure function of
// seq, so tests can recompute it).
func RequestFor(seq int) Request {
	r := Request{Seq: seq, Method: "GET", UserAgent: userAgents[seq%len(userAgents)], Referer: referers[(seq/3)%len(referers)]}
	switch seq % 10 {
	case 3:
		r.URI = fmt.Sprintf("/seq/%d/404", seq)
	case 5:
		r.URI = fmt.Sprintf("/seq/%d/proxy", seq)
	case 7:
		r.URI = fmt.Sprintf("/seq/%d?q=%%22quoted%%22&u=%%E2%%9C%%93&empty=", seq)
	case 8:
		r.Method = "POST"
		r.URI = fmt.Sprintf("/seq/%d", seq)
		r.Body = 100 + seq%50
	case 9:
		r.Method = "HEAD"
		r.URI = fmt.Sprintf("/seq/%d", seq)
	default:
		r.URI = fmt.Sprintf("/seq/%d", seq)
	}
	return r
}

// ParseSeq returns the sequence number of a request URI or request line
// ("/seq/12" or "GET /seq/12?x HTTP/1.1"), or -1.
func ParseSeq(s string) int {
	i := strings.Index(s, "/seq/")
	if i < 0 {
		return -1
	}
	s = s[i+len("/seq/"):]
	j := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(s[:j])
	if err != nil {
		return -1
	}
	return n
}

// Load sends requests to nginx, each with the next sequence number, from a
// few workers with keep-alive connections, at a bounded rate, until Stop.
type Load struct {
	t    testing.TB
	addr string

	next   atomic.Int64 // the next seq to send
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	done   map[int]Request // answered requests
	errs   []error
	paused atomic.Bool
}

// LoadOptions tune a Load.
type LoadOptions struct {
	Workers int // default 4
	Rate    int // requests per second over all workers; default 1500
}

// StartLoad starts sending requests to the nginx at addr. Stop is
// registered with t.Cleanup.
func StartLoad(t testing.TB, addr string, o LoadOptions) *Load {
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.Rate == 0 {
		o.Rate = 1500
	}
	l := &Load{t: t, addr: addr, stop: make(chan struct{}), done: map[int]Request{}}
	per := time.Duration(float64(time.Second) * float64(o.Workers) / float64(o.Rate))
	for i := 0; i < o.Workers; i++ {
		l.wg.Add(1)
		go l.worker(per)
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

func (l *Load) worker(per time.Duration) {
	defer l.wg.Done()
	var c *conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	tick := time.NewTicker(per)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		if l.paused.Load() {
			continue
		}
		seq := int(l.next.Add(1) - 1)
		r := RequestFor(seq)
		// One attempt: a request that failed after it was written may have
		// been logged, and sending its seq again would log it twice.
		var err error
		if c == nil {
			c, err = dial(l.addr)
		}
		if err == nil {
			if err = c.Do(&r); err != nil {
				c.Close()
				c = nil
			}
		}
		l.mu.Lock()
		if err != nil {
			// Logged or not: the test cannot tell, so it fails (Stop).
			l.errs = append(l.errs, fmt.Errorf("seq %d: %w", seq, err))
		} else {
			l.done[seq] = r
		}
		l.mu.Unlock()
	}
}

// Sent returns how many sequence numbers were taken so far.
func (l *Load) Sent() int { return int(l.next.Load()) }

// Answered returns how many requests got a response.
func (l *Load) Answered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.done)
}

// WaitAnswered waits until at least n more requests than now got a
// response (a way to let time pass in units of log lines).
func (l *Load) WaitAnswered(n int) {
	l.t.Helper()
	target := l.Answered() + n
	WaitFor(l.t, 60*time.Second, fmt.Sprintf("%d more answered requests", n), func() (bool, string) {
		a := l.Answered()
		return a >= target, fmt.Sprintf("%d of %d answered", a, target)
	})
}

// Stop stops the workers and waits for them; it returns the answered
// requests by seq. It fails the test if any request failed. Safe to call
// twice.
func (l *Load) Stop() map[int]Request {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		l.t.Errorf("e2e: %d requests failed, first: %v", len(l.errs), l.errs[0])
		l.errs = nil
	}
	out := make(map[int]Request, len(l.done))
	for k, v := range l.done {
		out[k] = v
	}
	return out
}

// Send sends the requests for seqs [from, to) on one connection, now, and
// returns them. It does not use or move the Load's sequence (use it
// without a Load, or with sequence numbers the Load will not reach).
func Send(t testing.TB, addr string, from, to int) map[int]Request {
	t.Helper()
	return SendEach(t, addr, from, to, nil)
}

// SendEach is Send with each request changed by edit (when not nil)
// before it is sent.
func SendEach(t testing.TB, addr string, from, to int, edit func(*Request)) map[int]Request {
	t.Helper()
	c, err := dial(addr)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	defer c.Close()
	out := make(map[int]Request, to-from)
	for seq := from; seq < to; seq++ {
		r := RequestFor(seq)
		if edit != nil {
			edit(&r)
		}
		if err := c.Do(&r); err != nil {
			t.Fatalf("e2e: seq %d: %v", seq, err)
		}
		out[seq] = r
	}
	return out
}

// conn is a keep-alive HTTP/1.1 connection that writes requests byte for
// byte, so headers can carry what Go's http client refuses (bytes >= 0x80,
// invalid UTF-8).
type conn struct {
	c  net.Conn
	br *bufio.Reader
}

func dial(addr string) (*conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, br: bufio.NewReader(c)}, nil
}

func (c *conn) Close() { c.c.Close() }

// Do sends r and reads the answer into r.Status and r.BodyBytes.
func (c *conn) Do(r *Request) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: e2e.test\r\n", r.Method, r.URI)
	if r.UserAgent != NoHeader {
		fmt.Fprintf(&b, "User-Agent: %s\r\n", r.UserAgent)
	}
	if r.Referer != NoHeader {
		fmt.Fprintf(&b, "Referer: %s\r\n", r.Referer)
	}
	if r.XForwardedFor != "" {
		fmt.Fprintf(&b, "X-Forwarded-For: %s\r\n", r.XForwardedFor)
	}
	if r.Body > 0 {
		fmt.Fprintf(&b, "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", r.Body, strings.Repeat("b", r.Body))
	} else {
		b.WriteString("\r\n")
	}
	_ = c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, b.String()); err != nil {
		return err
	}
	req := &http.Request{Method: r.Method}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	r.Status = resp.StatusCode
	r.BodyBytes = int(n) // 0 for HEAD, as nginx logs it
	return nil
}
