package container

import (
	"strings"
	"testing"
)

// A real ingress-nginx access line (its default upstreaminfo format), as
// containerd wraps it.
const ingressLine = `192.168.49.1 - - [02/Dec/2026:01:02:03 +0000] "GET /api/v1/items?page=2 HTTP/1.1" 200 1543 "https://shop.example.com/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" 512 0.004 [shop-api-80] [] 10.244.0.12:8080 1543 0.004 200 4f1e6c0d2b9a8e7f6a5b4c3d2e1f0a9b`

func BenchmarkDecodeCRI(b *testing.B) {
	rec := []byte("2026-12-02T01:02:03.123456789Z stdout F " + ingressLine)
	d := NewDecoder(CRI, 1<<20)
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if l, ok := d.Add(rec, 0); !ok || l.Err != nil {
			b.Fatal(l.Err)
		}
	}
}

// BenchmarkDecodeCRIPartial joins a 40 KiB line from three 16 KiB partials.
func BenchmarkDecodeCRIPartial(b *testing.B) {
	long := strings.Repeat("x", 40<<10)
	recs := [][]byte{
		[]byte("2026-12-02T01:02:03.123456789Z stdout P " + long[:16<<10]),
		[]byte("2026-12-02T01:02:03.123456789Z stdout P " + long[16<<10:32<<10]),
		[]byte("2026-12-02T01:02:03.123456789Z stdout F " + long[32<<10:]),
	}
	d := NewDecoder(CRI, 1<<20)
	b.SetBytes(int64(len(recs[0]) + len(recs[1]) + len(recs[2])))
	b.ReportAllocs()
	for b.Loop() {
		d.Add(recs[0], 0)
		d.Add(recs[1], 1)
		if l, ok := d.Add(recs[2], 2); !ok || len(l.Log) != len(long) {
			b.Fatal("not joined")
		}
	}
}

func BenchmarkDecodeDocker(b *testing.B) {
	rec := []byte(`{"log":"` + strings.ReplaceAll(ingressLine, `"`, `\"`) + `\n","stream":"stdout","time":"2026-12-02T01:02:03.123456789Z"}`)
	d := NewDecoder(Docker, 1<<20)
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if l, ok := d.Add(rec, 0); !ok || l.Err != nil {
			b.Fatal(l.Err)
		}
	}
}

// BenchmarkAppendFields is the per-line cost of the container fields on the
// event.
func BenchmarkAppendFields(b *testing.B) {
	meta := AppendMeta(nil, Meta{Namespace: "ingress-nginx", Pod: "ingress-nginx-controller-7d9f8b6c5-x2x7q", PodUID: "0b5c9a3e-8f2d-4a51-9c3e-1f2e3d4c5b6a", Container: "controller", RestartCount: 0, Node: "node-1"})
	d := NewDecoder(CRI, 1<<20)
	l, _ := d.Add([]byte("2026-12-02T01:02:03.123456789Z stdout F x"), 0)
	ev := make([]byte, 0, 2048)
	body := []byte(`{"remote_addr":"192.168.49.1","status":200,"host":"n","log_file":"/var/log/pods/x/0.log","log_offset":0}`)
	b.ReportAllocs()
	for b.Loop() {
		ev = AppendFields(append(ev[:0], body...), &l, meta)
	}
}
