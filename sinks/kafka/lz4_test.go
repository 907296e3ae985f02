package kafka

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lz4Inputs are batch-like inputs: empty, tiny, exactly one block, JSON
// text across several blocks, incompressible bytes, and a mix.
func lz4Inputs(t testing.TB) map[string][]byte {
	var js strings.Builder
	for i := 0; js.Len() < 300<<10; i++ {
		fmt.Fprintf(&js, `{"remote_addr":"10.0.%d.%d","status":%d,"request_uri":"/api/v1/items/%d?page=%d","request_headers":{"user_agent":"Mozilla/5.0"}}`,
			i%256, i%13, 200+i%5, i*7919, i%50)
	}
	random := make([]byte, 200<<10)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"empty":       {},
		"one byte":    {'x'},
		"short":       []byte(`{"a":1}`),
		"json":        []byte(js.String()),
		"one block":   []byte(js.String()[:lz4BlockSize]),
		"random":      random,
		"json+random": append([]byte(js.String()[:100<<10]), random[:100<<10]...),
	}
}

// TestLZ4Frame: our frames decode, byte for byte, with pierrec/lz4's reader
// (the one franz-go's consumers use), including stored (incompressible)
// blocks; and the constant header checksum is the one pierrec computes.
func TestLZ4Frame(t *testing.T) {
	c := newLZ4Compressor()
	for name, in := range lz4Inputs(t) {
		t.Run(name, func(t *testing.T) {
			var dst bytes.Buffer
			out, codec := c.Compress(&dst, in)
			if codec != kgo.CodecLz4 {
				t.Fatalf("codec %v", codec)
			}
			got, err := io.ReadAll(lz4.NewReader(bytes.NewReader(out)))
			if err != nil {
				t.Fatalf("decoding our frame: %v", err)
			}
			if !bytes.Equal(got, in) {
				t.Fatalf("round trip: got %d bytes, want %d", len(got), len(in))
			}
		})
	}

	// The descriptor checksum: pierrec writes the same FLG/BD for
	// independent 256 KiB blocks without checksums; its HC byte must equal
	// ours.
	var ref bytes.Buffer
	w := lz4.NewWriter(&ref)
	if err := w.Apply(lz4.BlockSizeOption(lz4.Block256Kb), lz4.ChecksumOption(false)); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("hello"))
	w.Close()
	h := ref.Bytes()
	if h[4] != lz4FLG || h[5] != lz4BD {
		t.Fatalf("pierrec writes FLG %#x BD %#x; ours are %#x %#x", h[4], h[5], lz4FLG, lz4BD)
	}
	if h[6] != lz4HC {
		t.Fatalf("descriptor checksum: pierrec computes %#x, ours is %#x", h[6], lz4HC)
	}
}

// TestLZ4ThroughKafka: records produced with our lz4 frames, in batches
// of several blocks, come back whole through franz-go's consumer from a
// real-protocol broker.
func TestLZ4ThroughKafka(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs())
	cfg.Compression = "lz4"
	cfg.Linger = Duration{50 * time.Millisecond} // several blocks per record batch
	e := newEnv(t, c, cfg)
	ls := keyedLines("k", 2000, 1) // one key: one partition, in order
	for i := range ls {
		ls[i].value += strings.Repeat(" pad", i%97)
	}
	b := e.batch(testSource, ls...)
	e.mustSend(b)
	e.mustDone(b)
	recs := consume(t, c.ListenAddrs(), topicMain, len(ls))
	for i, r := range recs {
		if got := r.Attrs.CompressionType(); got != 3 {
			t.Fatalf("record %d: compression type %d, want 3 (lz4)", i, got)
		}
		if string(r.Value) != ls[i].value {
			t.Fatalf("record %d: got %q, want %q", i, r.Value, ls[i].value)
		}
	}
}

// BenchmarkLZ4 compares our frame writer with franz-go's default lz4 codec
// on a 1 MB batch of JSON events.
func BenchmarkLZ4(b *testing.B) {
	in := lz4Inputs(b)["json"]
	in = append(in, in...)
	in = append(in, in...)[:1_000_000]
	def, err := kgo.DefaultCompressor(kgo.Lz4Compression())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		c    kgo.Compressor
	}{{"ours", newLZ4Compressor()}, {"franz-go", def}} {
		b.Run(c.name, func(b *testing.B) {
			var dst bytes.Buffer
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			var out []byte
			for b.Loop() {
				dst.Reset() // as franz-go does before every call
				out, _ = c.c.Compress(&dst, in)
			}
			b.ReportMetric(float64(len(in))/float64(len(out)), "ratio")
		})
	}
}
