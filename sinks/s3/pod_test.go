package s3

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3/s3test"
)

// {namespace} and {pod} come from a container log file's path: each pod's
// events land under its own prefix; a plain file's under "_".
func TestPodPrefix(t *testing.T) {
	k, err := compileTemplate("k8s/{namespace}/{pod}/%H/")
	if err != nil {
		t.Fatal(err)
	}
	tm := time.Date(2026, 12, 2, 1, 2, 3, 0, time.UTC)
	if got := string(k.renderPod(nil, tm, "h", 0, podOfPath("/var/log/pods/shop_web-1_uid/nginx/0.log"))); got != "k8s/shop/web-1/01/" {
		t.Errorf("pods path: %q", got)
	}
	if got := string(k.renderPod(nil, tm, "h", 0, podOfPath("/var/log/containers/web-1_shop_nginx-0123456789abcdef.log"))); got != "k8s/shop/web-1/01/" {
		t.Errorf("containers link: %q", got)
	}
	if got := string(k.renderPod(nil, tm, "h", 0, podOfPath("/var/log/nginx/access.log"))); got != "k8s/_/_/01/" {
		t.Errorf("plain file: %q", got)
	}

	srv := s3test.Start(t)
	cfg := testConfig(t, srv)
	cfg.Prefix = "nginx/{namespace}/{pod}/dt=%Y-%m-%d/"
	h := newHarness(t, cfg, srv.Client())
	var a acks
	var evsA, evsB []ev
	for i := range 50 {
		evsA = append(evsA, ev{value: jsonEvent(i, tm), t: tm})
		evsB = append(evsB, ev{value: jsonEvent(1000+i, tm), t: tm})
	}
	sendAll(t, h.s, &sinks.Source{Path: "/var/log/pods/shop_web-1_u1/nginx/0.log"}, evsA, 10, &a)
	sendAll(t, h.s, &sinks.Source{Path: "/var/log/pods/blog_web-2_u2/nginx/3.log"}, evsB, 10, &a)
	waitFor(t, 10*time.Second, "all events acknowledged", func() bool { return a.count() == 100 })
	if err := h.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := lakeLines(t, srv, "nginx/")
	n := map[string]int{}
	for key, lines := range got {
		switch {
		case strings.HasPrefix(key, "nginx/shop/web-1/dt=2026-12-02/"):
			n["shop"] += len(lines)
		case strings.HasPrefix(key, "nginx/blog/web-2/dt=2026-12-02/"):
			n["blog"] += len(lines)
		default:
			t.Errorf("unexpected key %s", key)
		}
	}
	if n["shop"] != 50 || n["blog"] != 50 {
		t.Errorf("lines by pod: %v", n)
	}
}
