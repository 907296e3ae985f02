package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// fingerprintLen is how many leading bytes of a file identify it together
// with its device and inode. A file shorter than that is identified by what
// it has so far; the fingerprint grows with the file.
const fingerprintLen = 1024

// fileKey is a file's device and inode.
type fileKey struct{ Dev, Ino uint64 }

func keyOf(fi os.FileInfo) fileKey {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}
	}
	return fileKey{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}
}

// fingerprint returns the hash of the first min(size, fingerprintLen) bytes
// of f and how many bytes it covers.
func fingerprint(f io.ReaderAt, size int64) (string, int, error) {
	n := int(min(size, fingerprintLen))
	buf := make([]byte, n)
	if n > 0 {
		m, err := f.ReadAt(buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return "", 0, err
		}
		buf, n = buf[:m], m
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16]), n, nil
}

// entry is one file's checkpoint: the identity of the file and the offset up
// to which every line was acknowledged by every sink.
type entry struct {
	Path   string    `json:"path"`
	Dev    uint64    `json:"dev"`
	Ino    uint64    `json:"inode"`
	FP     string    `json:"fingerprint"`
	FPLen  int       `json:"fingerprint_len"`
	Offset int64     `json:"offset"`
	Seen   time.Time `json:"last_seen"`

	gen uint64 // bumped on truncation: acks of an older generation are ignored
}

// matches reports whether the file f (with key k and size) is the file this
// entry describes.
func (e *entry) matches(k fileKey, f io.ReaderAt, size int64) bool {
	if e.Dev != k.Dev || e.Ino != k.Ino {
		return false
	}
	if size < int64(e.FPLen) {
		return false // shrunk below the fingerprint: truncated, another file
	}
	buf := make([]byte, e.FPLen)
	if e.FPLen > 0 {
		if n, err := f.ReadAt(buf, 0); n != e.FPLen && err != nil {
			return false
		}
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16]) == e.FP
}

// registryFile is the checkpoint file's format.
type registryFile struct {
	Version int      `json:"version"`
	Written string   `json:"written"`
	Files   []*entry `json:"files"`
}

// Registry is the set of checkpoints, persisted in data_dir/checkpoints.json
// (temp file, fsync, rename, fsync of the directory).
type Registry struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	entries map[fileKey]*entry
	// byFP indexes the entries with a full-length fingerprint by it, for
	// byFingerprint (a search of every entry for each new file was
	// quadratic: 12 % of the CPU of reading 10,000 new files). put, forget
	// and setFingerprint keep it exact.
	byFP  map[string][]*entry
	dirty bool
	saved time.Time
	// snapBuf and encBuf are reused by Save, one at a time (saveMu).
	saveMu  sync.Mutex
	snapBuf []entry
	encBuf  []byte
	// prevWritten is when the previous run last wrote the checkpoint file:
	// files changed after it were written while the agent was down.
	prevWritten time.Time
}

// ErrCorruptCheckpoint is logged (never returned) when the checkpoint file
// could not be read; the file is moved aside as checkpoints.json.corrupt-TIME.
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint file")

// OpenRegistry loads data_dir's checkpoints. A file that does not exist is an
// empty registry. A corrupt file is moved aside and reported in corrupt; the
// agent then treats every file as new (read_from decides) and says so loudly:
// it never trusts a corrupt checkpoint.
func OpenRegistry(dataDir string, log *slog.Logger) (r *Registry, corrupt string, err error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, "", fmt.Errorf("data_dir %s: %w", dataDir, err)
	}
	r = &Registry{
		path:    filepath.Join(dataDir, "checkpoints.json"),
		log:     log,
		entries: map[fileKey]*entry{},
		byFP:    map[string][]*entry{},
	}
	b, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return r, "", r.probeWritable()
	}
	if err != nil {
		return nil, "", fmt.Errorf("read checkpoints: %w", err)
	}
	var rf registryFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rf); err != nil || rf.Version != 1 {
		if err == nil {
			err = fmt.Errorf("version %d", rf.Version)
		}
		aside := fmt.Sprintf("%s.corrupt-%s", r.path, time.Now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(r.path, aside); rerr != nil {
			return nil, "", fmt.Errorf("%w %s (%v), and moving it aside failed: %v", ErrCorruptCheckpoint, r.path, err, rerr)
		}
		log.Error("checkpoint file is corrupt; moved aside, files will be treated as new", "path", r.path, "moved_to", aside, "err", err)
		return r, aside, r.probeWritable()
	}
	r.prevWritten, _ = time.Parse(time.RFC3339Nano, rf.Written)
	for _, e := range rf.Files {
		if e == nil || e.Offset < 0 {
			continue
		}
		k := fileKey{e.Dev, e.Ino}
		if old := r.entries[k]; old != nil {
			r.unindexLocked(old, old.FP)
		}
		r.entries[k] = e
		r.indexLocked(e)
	}
	return r, "", r.probeWritable()
}

// probeWritable fails early when data_dir cannot take a checkpoint.
func (r *Registry) probeWritable() error {
	f, err := os.CreateTemp(filepath.Dir(r.path), ".probe-*")
	if err != nil {
		return fmt.Errorf("data_dir is not writable: %w", err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// lookup returns the entry for a file with key k if its fingerprint matches.
func (r *Registry) lookup(k fileKey, f io.ReaderAt, size int64) *entry {
	r.mu.Lock()
	e := r.entries[k]
	r.mu.Unlock()
	if e != nil && e.matches(k, f, size) {
		return e
	}
	return nil
}

// snap is an entry and a copy of its fields taken under the lock.
type snap struct {
	e *entry
	entry
}

// all snapshots the entries, for finding rotated files at start (harvesters
// update them meanwhile).
func (r *Registry) all() []snap {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]snap, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, snap{e: e, entry: *e})
	}
	return out
}

// put installs e as the entry for its key, replacing an older file with the
// same inode.
func (r *Registry) put(e *entry) {
	r.mu.Lock()
	k := fileKey{e.Dev, e.Ino}
	if old := r.entries[k]; old != nil && old != e {
		r.unindexLocked(old, old.FP)
	}
	r.entries[k] = e
	r.indexLocked(e)
	r.dirty = true
	r.mu.Unlock()
}

// setFingerprint gives e a longer fingerprint as its file grows.
func (r *Registry) setFingerprint(e *entry, fp string, n int) {
	r.mu.Lock()
	if e.FPLen >= fingerprintLen {
		r.unindexLocked(e, e.FP)
	}
	e.FP, e.FPLen = fp, n
	r.indexLocked(e)
	r.dirty = true
	r.mu.Unlock()
}

// indexLocked adds e to byFP once its fingerprint is full-length.
func (r *Registry) indexLocked(e *entry) {
	if e.FPLen < fingerprintLen {
		return
	}
	l := r.byFP[e.FP]
	for _, o := range l {
		if o == e {
			return
		}
	}
	r.byFP[e.FP] = append(l, e)
}

// unindexLocked removes e from byFP under fp.
func (r *Registry) unindexLocked(e *entry, fp string) {
	l := r.byFP[fp]
	for i, o := range l {
		if o == e {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(r.byFP, fp)
	} else {
		r.byFP[fp] = l
	}
}

// update runs fn under the registry's lock and marks it dirty.
func (r *Registry) update(fn func()) {
	r.mu.Lock()
	fn()
	r.dirty = true
	r.mu.Unlock()
}

// forget drops e if it is still the entry for its key.
func (r *Registry) forget(e *entry) {
	r.mu.Lock()
	k := fileKey{e.Dev, e.Ino}
	if r.entries[k] == e {
		delete(r.entries, k)
		r.unindexLocked(e, e.FP)
		r.dirty = true
	}
	r.mu.Unlock()
}

// offsetOf returns e's checkpointed offset.
func (r *Registry) offsetOf(e *entry) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return e.Offset
}

// Save writes the checkpoint file if anything changed: to a temp file,
// fsync, rename over the old one, fsync the directory.
func (r *Registry) Save() error {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return nil
	}
	written := time.Now().UTC()
	r.snapBuf = r.snapBuf[:0]
	for _, e := range r.entries {
		r.snapBuf = append(r.snapBuf, *e)
	}
	r.dirty = false
	r.mu.Unlock()

	err := writeFileAtomic(r.path, func(w io.Writer) (err error) {
		r.encBuf, err = writeRegistry(w, r.encBuf, written, r.snapBuf)
		return err
	})
	r.mu.Lock()
	if err != nil {
		r.dirty = true // try again next time
	} else {
		r.saved = time.Now()
	}
	r.mu.Unlock()
	return err
}

// lastSaved returns when the checkpoint file was last written.
func (r *Registry) lastSaved() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.saved
}

func writeFileAtomic(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	tmp := f.Name()
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("write checkpoint: fsync %s: %w", dir, err)
		}
	}
	return nil
}

// peek returns the entry for k without checking the fingerprint.
func (r *Registry) peek(k fileKey) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entries[k]
}

// byFingerprint returns an entry of another inode whose full-length
// fingerprint is fp: the file that a copytruncate copy was copied from.
func (r *Registry) byFingerprint(fp string, n int, not fileKey) *entry {
	if n < fingerprintLen {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.byFP[fp] {
		if k := (fileKey{e.Dev, e.Ino}); k != not && r.entries[k] == e && e.FPLen == n && e.FP == fp {
			return e
		}
	}
	return nil
}

// encodeRegistry appends the checkpoint file (registryFile as JSON, one
// entry a line) to dst. It is written by hand rather than by encoding/json:
// with 10,000 files, all growing, the file is written every
// checkpoint_interval, and reflection was most of its cost
// (BenchmarkCheckpointSave).
func encodeRegistry(dst []byte, written time.Time, es []entry) []byte {
	dst = appendRegistryHead(dst, written)
	for i := range es {
		dst = appendRegistryEntry(dst, i, &es[i])
	}
	return append(dst, registryTail...)
}

const registryTail = "\n]}\n"

func appendRegistryHead(dst []byte, written time.Time) []byte {
	dst = append(dst, `{"version":1,"written":"`...)
	dst = written.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `","files":[`...)
}

// appendRegistryEntry appends e, the i-th entry.
func appendRegistryEntry(dst []byte, i int, e *entry) []byte {
	if i > 0 {
		dst = append(dst, ',')
	}
	dst = append(dst, "\n{\"path\":"...)
	dst = appendJSONString(dst, e.Path)
	dst = append(dst, `,"dev":`...)
	dst = strconv.AppendUint(dst, e.Dev, 10)
	dst = append(dst, `,"inode":`...)
	dst = strconv.AppendUint(dst, e.Ino, 10)
	dst = append(dst, `,"fingerprint":`...)
	dst = appendJSONString(dst, e.FP)
	dst = append(dst, `,"fingerprint_len":`...)
	dst = strconv.AppendInt(dst, int64(e.FPLen), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, e.Offset, 10)
	dst = append(dst, `,"last_seen":"`...)
	dst = e.Seen.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `"}`...)
	return dst
}

// writeRegistry writes the checkpoint file to w in pieces of about
// saveChunk through buf (the file of 10,000 entries is 2.4 MB; a buffer
// that held all of it stayed on the heap between writes).
func writeRegistry(w io.Writer, buf []byte, written time.Time, es []entry) ([]byte, error) {
	buf = appendRegistryHead(buf[:0], written)
	for i := range es {
		buf = appendRegistryEntry(buf, i, &es[i])
		if len(buf) >= saveChunk {
			if _, err := w.Write(buf); err != nil {
				return buf, err
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, registryTail...)
	_, err := w.Write(buf)
	return buf, err
}

const saveChunk = 64 << 10

// appendJSONString appends s as a JSON string, as encoding/json writes it
// (invalid UTF-8 as U+FFFD), except that <, > and & are not escaped.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\\ufffd"...)
		} else if r == '\u2028' || r == '\u2029' {
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}
