package kafka

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lz4Compressor writes each produce batch as one lz4 frame of independent
// 256 KiB blocks, straight from the batch into franz-go's pooled buffer,
// with no block or content checksum (Kafka's record batch has its own CRC),
// like the frames of Kafka's Java producer (which uses 64 KiB blocks; 256 KiB
// compress our events about 8% better).
//
// franz-go's default lz4 codec goes through pierrec/lz4's Writer with its
// default 4 MiB blocks: every pooled writer holds 4 MiB block buffers (about
// 12 MB of the agent's live heap with the both-sinks load) and copies the
// batch into them before compressing. This keeps only the block compressor's
// hash table per concurrent compression. The compressor is the reference
// implementation's fast one (CCompat): on our JSON events about 35% faster
// than pierrec's default for 3% less compression.
type lz4Compressor struct {
	pool sync.Pool // *lz4.CompressorCCompat
}

const (
	lz4BlockSize = 256 << 10
	lz4Magic     = 0x184D2204
	// lz4FLG: version 01, independent blocks; no block checksum, content
	// size, content checksum or dictionary.
	lz4FLG = 0x60
	// lz4BD: maximum block size 256 KiB.
	lz4BD = 0x50
	// lz4HC is the frame descriptor's checksum: the second byte of
	// xxHash32 (seed 0) of FLG and BD, as the frame format defines it.
	// TestLZ4Frame checks it against pierrec/lz4's own frames.
	lz4HC = 0xfb
	// lz4Uncompressed marks a block stored as it is.
	lz4Uncompressed = 1 << 31
)

func newLZ4Compressor() *lz4Compressor {
	return &lz4Compressor{pool: sync.Pool{New: func() any { return new(lz4.CompressorCCompat) }}}
}

// Compress implements kgo.Compressor.
func (c *lz4Compressor) Compress(dst *bytes.Buffer, src []byte, _ ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	comp := c.pool.Get().(*lz4.CompressorCCompat)
	defer c.pool.Put(comp)
	blocks := (len(src) + lz4BlockSize - 1) / lz4BlockSize
	// Worst case: every block stored as it is, plus the block headers, the
	// frame header and the end mark.
	need := 7 + len(src) + 4*blocks + 4
	dst.Reset()
	dst.Grow(need)
	out := dst.Bytes()[:need]

	binary.LittleEndian.PutUint32(out, lz4Magic)
	out[4], out[5], out[6] = lz4FLG, lz4BD, lz4HC
	n := 7
	for len(src) > 0 {
		blk := src[:min(len(src), lz4BlockSize)]
		src = src[len(blk):]
		body := out[n+4 : n+4+len(blk)]
		// A block that does not shrink is stored: CompressBlock reports
		// 0 (or an error) when its output would not fit in len(blk).
		k, err := comp.CompressBlock(blk, body)
		if err != nil || k == 0 || k >= len(blk) {
			copy(body, blk)
			binary.LittleEndian.PutUint32(out[n:], uint32(len(blk))|lz4Uncompressed)
			n += 4 + len(blk)
			continue
		}
		binary.LittleEndian.PutUint32(out[n:], uint32(k))
		n += 4 + k
	}
	binary.LittleEndian.PutUint32(out[n:], 0) // end mark
	n += 4
	return out[:n], kgo.CodecLz4
}
