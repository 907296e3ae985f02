package agent

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRegistrySaveLoad(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	r, _, err := OpenRegistry(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	r.put(&entry{Path: "/var/log/nginx/access.log", Dev: 7, Ino: 42, FP: "ab", FPLen: 10, Offset: 1234})
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	r2, corrupt, err := OpenRegistry(dir, log)
	if err != nil || corrupt != "" {
		t.Fatalf("reopen: %v %q", err, corrupt)
	}
	e := r2.peek(fileKey{7, 42})
	if e == nil || e.Offset != 1234 || e.Path != "/var/log/nginx/access.log" || e.FP != "ab" {
		t.Fatalf("loaded entry %+v", e)
	}
	// No temp files left behind.
	ents, _ := os.ReadDir(dir)
	for _, de := range ents {
		if strings.Contains(de.Name(), ".tmp-") {
			t.Fatalf("temp file left: %s", de.Name())
		}
	}
}

func TestRegistryCorruptIsMovedAsideNotTrusted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checkpoints.json")
	if err := os.WriteFile(path, []byte(`{"version":1,"files":[{"path":"/a","offset":`), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r, aside, err := OpenRegistry(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if aside == "" || !strings.Contains(aside, "corrupt") {
		t.Fatalf("corrupt file not reported: %q", aside)
	}
	if _, err := os.Stat(aside); err != nil {
		t.Fatalf("corrupt file not kept aside: %v", err)
	}
	if len(r.all()) != 0 {
		t.Fatalf("entries loaded from a corrupt file: %v", r.all())
	}
	if !strings.Contains(logs.String(), "corrupt") {
		t.Fatalf("no log line about the corrupt file: %s", logs.String())
	}
}

func TestRegistryUnwritableDataDir(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores directory permissions; use a path under a file instead.
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o600)
		if _, _, err := OpenRegistry(filepath.Join(f, "sub"), slog.New(slog.DiscardHandler)); err == nil {
			t.Fatal("OpenRegistry under a regular file succeeded")
		}
		return
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if _, _, err := OpenRegistry(dir, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("OpenRegistry on a read-only data_dir succeeded")
	}
}

func TestEntryMatchesByInodeAndFingerprint(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	os.WriteFile(p, []byte("first line\nsecond line\n"), 0o600)
	f, _ := os.Open(p)
	defer f.Close()
	fi, _ := f.Stat()
	fp, n, err := fingerprint(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	e := &entry{Dev: keyOf(fi).Dev, Ino: keyOf(fi).Ino, FP: fp, FPLen: n}
	if !e.matches(keyOf(fi), f, fi.Size()) {
		t.Fatal("entry does not match its own file")
	}
	// Same inode, other content (inode reuse, or copytruncate + rewrite).
	os.WriteFile(p, []byte("other content here....\n"), 0o600)
	fi2, _ := os.Stat(p)
	if e.matches(keyOf(fi2), f, fi2.Size()) {
		t.Fatal("entry matches a file with other leading bytes")
	}
	b, _ := json.Marshal(e)
	if !bytes.Contains(b, []byte(`"fingerprint"`)) {
		t.Fatalf("entry JSON lacks fingerprint: %s", b)
	}
}

// The hand-written checkpoint encoding reads back as encoding/json would
// read its own: odd paths (quotes, control bytes, non-ASCII, invalid UTF-8)
// included.
func TestEncodeRegistryMatchesEncodingJSON(t *testing.T) {
	now := time.Date(2026, 12, 2, 3, 4, 5, 123456789, time.UTC)
	es := []entry{
		{Path: "/var/log/nginx/access.log", Dev: 2049, Ino: 1 << 40, FP: "00ff", FPLen: 1024, Offset: 1 << 33, Seen: now},
		{Path: "/l/\"q\"\\b\x01\t\n/é/\u2028/\xff\xfe.log", Dev: 0, Ino: 0, FP: "", FPLen: 0, Offset: 0, Seen: now.In(time.FixedZone("x", 3600))},
	}
	got := encodeRegistry(nil, now, es)
	var fromOurs, fromStd registryFile
	dec := json.NewDecoder(bytes.NewReader(got))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fromOurs); err != nil {
		t.Fatalf("%v:\n%s", err, got)
	}
	ptrs := []*entry{&es[0], &es[1]}
	std, _ := json.Marshal(registryFile{Version: 1, Written: now.Format(time.RFC3339Nano), Files: ptrs})
	if err := json.Unmarshal(std, &fromStd); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromOurs, fromStd) {
		t.Fatalf("ours:\n%s\nencoding/json:\n%s", got, std)
	}
}

// byFingerprint finds the entry of another inode with the same full-length
// fingerprint (a copytruncate copy's original) through its index, which put,
// forget and setFingerprint keep exact, and at load.
func TestRegistryByFingerprintIndex(t *testing.T) {
	dir := t.TempDir()
	r, _, err := OpenRegistry(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	orig := &entry{Path: "/l/a.log", Dev: 1, Ino: 10, FP: "full", FPLen: fingerprintLen, Offset: 500}
	r.put(orig)
	r.put(&entry{Path: "/l/b.log", Dev: 1, Ino: 11, FP: "other", FPLen: fingerprintLen})
	short := &entry{Path: "/l/c.log", Dev: 1, Ino: 12, FP: "growing", FPLen: 100}
	r.put(short)
	if got := r.byFingerprint("full", fingerprintLen, fileKey{1, 99}); got != orig {
		t.Fatalf("copy of a.log: got %+v", got)
	}
	if got := r.byFingerprint("full", fingerprintLen, fileKey{1, 10}); got != nil {
		t.Fatalf("the file itself is not its own original: got %+v", got)
	}
	if got := r.byFingerprint("growing", 100, fileKey{1, 99}); got != nil {
		t.Fatalf("a short fingerprint cannot tell: got %+v", got)
	}
	r.setFingerprint(short, "grown", fingerprintLen)
	if got := r.byFingerprint("grown", fingerprintLen, fileKey{1, 99}); got != short {
		t.Fatalf("after the fingerprint grew: got %+v", got)
	}
	// The inode reused by a new file: the old entry is no longer found.
	r.put(&entry{Path: "/l/a.log", Dev: 1, Ino: 10, FP: "new", FPLen: fingerprintLen})
	if got := r.byFingerprint("full", fingerprintLen, fileKey{1, 99}); got != nil {
		t.Fatalf("replaced entry still found: %+v", got)
	}
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	r2, _, err := OpenRegistry(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, fp := range []string{"new", "other", "grown"} {
		if got := r2.byFingerprint(fp, fingerprintLen, fileKey{1, 99}); got == nil {
			t.Errorf("after a reload: %s not found", fp)
		}
	}
	r2.forget(r2.peek(fileKey{1, 11}))
	if got := r2.byFingerprint("other", fingerprintLen, fileKey{1, 99}); got != nil {
		t.Fatalf("forgotten entry found: %+v", got)
	}
	if len(r2.byFP) != 2 || len(r.byFP) != 3 {
		t.Fatalf("index holds %d and %d fingerprints, want 2 and 3 (nothing stale)", len(r2.byFP), len(r.byFP))
	}
}

// Save writes the checkpoint file in pieces: the bytes are encodeRegistry's.
func TestWriteRegistryInPiecesIsTheEncoding(t *testing.T) {
	es := make([]entry, 10_000)
	for i := range es {
		es[i] = entry{Path: "/var/log/nginx/f-" + strconv.Itoa(i) + ".log", Dev: 1, Ino: uint64(i), FP: "0123456789abcdef0123456789abcdef", FPLen: 1024, Offset: int64(i) * 1000, Seen: time.Unix(int64(i), 5)}
	}
	written := time.Unix(1e9, 7).UTC()
	var w countingWriter
	buf, err := writeRegistry(&w, nil, written, es)
	if err != nil {
		t.Fatal(err)
	}
	want := encodeRegistry(nil, written, es)
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("pieces differ from the encoding (%d against %d bytes)", w.Len(), len(want))
	}
	if w.writes < len(want)/saveChunk || cap(buf) > 2*saveChunk {
		t.Fatalf("%d writes, buffer of %d bytes for a %d-byte file: not in pieces", w.writes, cap(buf), len(want))
	}
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(b []byte) (int, error) { w.writes++; return w.Buffer.Write(b) }

// TestHeadTruncatedBetweenReads: the fingerprint covered bytes the file no
// longer holds when the reader loads its head (truncated between the two
// reads). The head must not compare equal with whatever the file holds
// later: that would let the reader go on at its old offset in new content.
func TestHeadTruncatedBetweenReads(t *testing.T) {
	dir := t.TempDir()
	r, _, err := OpenRegistry(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "access.log")
	if err := os.WriteFile(path, bytes.Repeat([]byte("a line\n"), 300), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fp, n, err := fingerprint(f, 2100)
	if err != nil || n != fingerprintLen {
		t.Fatalf("fingerprint: %d %v", n, err)
	}
	e := &entry{Path: path, FP: fp, FPLen: n}
	r.put(e)
	h := &harvester{a: &Agent{reg: r}, e: e, f: f, fd: -1}

	h.loadHead()
	if !h.headSame() {
		t.Fatal("head of an unchanged file compares different")
	}

	if err := os.Truncate(path, 100); err != nil { // between fingerprint and head
		t.Fatal(err)
	}
	h.loadHead()
	if err := os.WriteFile(path, bytes.Repeat([]byte("new content\n"), 300), 0o644); err != nil {
		t.Fatal(err) // grown again, past the fingerprint
	}
	if h.headSame() {
		t.Fatal("head loaded from a truncated file compares equal with new content")
	}
}
