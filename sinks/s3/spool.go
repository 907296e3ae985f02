package s3

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

// Spool files, all in Config.SpoolDir, named by batch id:
//
//	<id>.meta   JSON batchMeta; written (tmp + fsync + rename) before the data file
//	<id>.open   the open batch: concatenated gzip members, appended and fsynced
//	<id>.ready  a closed batch waiting for upload (renamed from .open after fsync)
//	<id>.tmp    scratch (meta being written, or a compaction); deleted at start
//	<id>.parquet.tmp  the Parquet object converted for upload; deleted at start
//
// A batch is deleted (data file first, then meta) only after S3 confirmed it.
const (
	extMeta  = ".meta"
	extOpen  = ".open"
	extReady = ".ready"
	extTmp   = ".tmp"
	// extParquet is the Parquet object converted from a closed batch for
	// its upload; a .tmp like the others, so a start deletes it.
	extParquet = ".parquet" + extTmp
)

// kind tells data-lake batches from dead-letter batches.
type kind byte

const (
	kindEvents     kind = 'e'
	kindDeadLetter kind = 'd'
)

func (k kind) String() string {
	if k == kindDeadLetter {
		return "dead_letter"
	}
	return "events"
}

// batchMeta is what a batch needs to be uploaded after a restart.
type batchMeta struct {
	Key     string    `json:"key"`     // the object key
	Kind    string    `json:"kind"`    // "events" or "dead_letter"
	Created time.Time `json:"created"` // when the batch was opened
	// Format "parquet": the batch (gzip NDJSON like any other) is
	// converted with Schema at upload. "" is gzip NDJSON.
	Format string         `json:"format,omitempty"`
	Schema *parser.Schema `json:"schema,omitempty"`
}

// batchFile is one spooled batch, open or closed.
type batchFile struct {
	id   string
	part string // partition (kind + rendered prefix); "" once closed
	meta batchMeta

	f      *os.File // the open data file; nil once closed
	dirty  bool     // written since the last fsync
	size   int64    // compressed bytes on disk
	raw    int64    // uncompressed bytes (0 when unknown, after a restart)
	events int
	// members is the number of gzip members (group commits); 0 when unknown.
	members int
	// pq is the converted Parquet object (format parquet), kept across
	// upload attempts; nil until converted.
	pq *pqResult
}

func (bf *batchFile) path(dir, ext string) string { return filepath.Join(dir, bf.id+ext) }

// newID returns a sortable, unique batch id: creation time and a random UUID.
func newID(now time.Time) (id, uuid string) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	uuid = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	return fmt.Sprintf("%020d-%s", now.UnixNano(), uuid), uuid
}

// writeFileSync writes data to path atomically and durably: tmp file, fsync,
// rename, fsync of the directory.
func writeFileSync(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, strings.TrimSuffix(name, filepath.Ext(name))+extTmp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// countingWriter counts the bytes written to w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// scanMembers reads the gzip members of r one by one, verifying each (CRC-32
// and length), and returns the offset just past the last complete member,
// the uncompressed bytes and the members up to there. A torn tail (a member
// cut short, or garbage) ends the scan; it is not an error.
func scanMembers(r io.Reader) (end, raw int64, members int, err error) {
	cr := &countingReader{r: r}
	br := bufio.NewReaderSize(cr, 1<<20)
	var zr gzip.Reader
	for {
		if err := zr.Reset(br); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrHeader) {
				return end, raw, members, nil
			}
			return end, raw, members, err
		}
		zr.Multistream(false)
		n, err := io.Copy(io.Discard, &zr)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return end, raw, members, err // an I/O error, not a torn tail
			}
			return end, raw, members, nil
		}
		end = cr.n - int64(br.Buffered())
		raw += n
		members++
	}
}

// compactFile rewrites the gzip file at path as a single member at level,
// atomically (tmp, fsync, rename, fsync dir). It returns the new size.
func compactFile(dir, path, tmp string, level int) (int64, error) {
	in, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(in, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: out}
	bw := bufio.NewWriterSize(cw, 1<<20)
	zw, _ := gzip.NewWriterLevel(bw, level)
	_, err = io.Copy(zw, zr)
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return cw.n, syncDir(dir)
}

// readMeta reads <id>.meta.
func readMeta(path string) (batchMeta, error) {
	var m batchMeta
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	if m.Key == "" {
		return m, fmt.Errorf("%s: no key", path)
	}
	return m, nil
}

// lockSpool takes an exclusive lock on dir/LOCK so that two processes never
// share a spool. The lock goes with the process (or the returned file).
func lockSpool(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("in use by another process (%s/LOCK): %w", dir, err)
	}
	return f, nil
}
