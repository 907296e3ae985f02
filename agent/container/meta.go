package container

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Meta is what a container log file's path tells about its container.
type Meta struct {
	Namespace    string
	Pod          string
	PodUID       string // "" when unknown (a /var/log/containers name not resolved)
	Container    string
	ContainerID  string // from a /var/log/containers name; not on the event
	RestartCount int    // -1 when unknown
	Node         string // NODE_NAME; "" leaves it out
}

// ParsePath reads the metadata from a kubelet log path:
//
//	/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log
//	/var/log/containers/<pod>_<namespace>_<container>-<id>.log
//
// (also the rotated <n>.log.<timestamp> of the first). Only the last
// components are read, so the tree may be mounted elsewhere. false when the
// path is neither.
func ParsePath(path string) (Meta, bool) {
	dir, base := filepath.Split(path)
	dir = strings.TrimSuffix(dir, "/")
	if n, ok := restartOf(base); ok {
		cdir, container := filepath.Split(dir)
		pdir := filepath.Base(strings.TrimSuffix(cdir, "/"))
		parts := strings.Split(pdir, "_")
		if container != "" && len(parts) == 3 && parts[0] != "" && parts[1] != "" && parts[2] != "" {
			return Meta{Namespace: parts[0], Pod: parts[1], PodUID: parts[2], Container: container, RestartCount: n}, true
		}
	}
	if name, ok := strings.CutSuffix(base, ".log"); ok {
		parts := strings.Split(name, "_")
		if len(parts) == 3 && parts[0] != "" && parts[1] != "" {
			dash := strings.LastIndexByte(parts[2], '-')
			if dash > 0 && isHex(parts[2][dash+1:]) {
				return Meta{Namespace: parts[1], Pod: parts[0], Container: parts[2][:dash], ContainerID: parts[2][dash+1:], RestartCount: -1}, true
			}
		}
	}
	return Meta{}, false
}

// restartOf reads n from "<n>.log" or "<n>.log.<anything>".
func restartOf(base string) (int, bool) {
	num, rest, ok := strings.Cut(base, ".log")
	if !ok || num == "" || (rest != "" && rest[0] != '.') {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || num[0] == '+' {
		return 0, false
	}
	return n, true
}

func isHex(s string) bool {
	if len(s) < 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ErrNotContainerPath: the path is no kubelet log path.
var ErrNotContainerPath = errors.New("not a kubelet container log path (/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log or /var/log/containers/<pod>_<ns>_<container>-<id>.log)")

// ResolvePath is ParsePath that, for a /var/log/containers link, follows
// it once to the /var/log/pods file it names, for the pod's uid and the
// restart count (evalSymlinks is filepath.EvalSymlinks outside tests).
func ResolvePath(path string, evalSymlinks func(string) (string, error)) (Meta, error) {
	m, ok := ParsePath(path)
	if !ok {
		return Meta{}, ErrNotContainerPath
	}
	if m.RestartCount >= 0 {
		return m, nil
	}
	target, err := evalSymlinks(path)
	if err != nil {
		return m, nil // the name's metadata is still right
	}
	if t, ok := ParsePath(target); ok && t.RestartCount >= 0 && t.Namespace == m.Namespace && t.Pod == m.Pod {
		t.ContainerID = m.ContainerID
		return t, nil
	}
	return m, nil
}

// AppendMeta appends m as the JSON member `"kubernetes":{...}` (no comma
// before it). Unknown values (uid, restart count, node) are left out.
func AppendMeta(dst []byte, m Meta) []byte {
	dst = append(dst, `"kubernetes":{"namespace":`...)
	dst = appendJSONString(dst, m.Namespace)
	dst = append(dst, `,"pod":`...)
	dst = appendJSONString(dst, m.Pod)
	if m.PodUID != "" {
		dst = append(dst, `,"pod_uid":`...)
		dst = appendJSONString(dst, m.PodUID)
	}
	dst = append(dst, `,"container":`...)
	dst = appendJSONString(dst, m.Container)
	if m.RestartCount >= 0 {
		dst = append(dst, `,"restart_count":`...)
		dst = strconv.AppendInt(dst, int64(m.RestartCount), 10)
	}
	if m.Node != "" {
		dst = append(dst, `,"node":`...)
		dst = appendJSONString(dst, m.Node)
	}
	return append(dst, '}')
}

// AppendFields adds the container fields to the event JSON object in ev
// (which must end in '}'): `"stream"`, `"container_time"` (UTC, RFC 3339
// with nanoseconds) and meta, a member rendered once per file by AppendMeta
// (nil: none). It does not allocate when ev has room.
func AppendFields(ev []byte, l *Line, meta []byte) []byte {
	n := len(ev)
	if n == 0 || ev[n-1] != '}' {
		return ev
	}
	ev = ev[:n-1]
	if n > 2 { // not "{}"
		ev = append(ev, ',')
	}
	if l.Stream == Stderr {
		ev = append(ev, `"stream":"stderr"`...)
	} else {
		ev = append(ev, `"stream":"stdout"`...)
	}
	if !l.Time.IsZero() {
		ev = append(ev, `,"container_time":"`...)
		ev = appendTime(ev, l.Time)
		ev = append(ev, '"')
	}
	if len(meta) > 0 {
		ev = append(ev, ',')
		ev = append(ev, meta...)
	}
	return append(ev, '}')
}

// appendTime appends t in UTC as 2006-01-02T15:04:05.000000000Z (what
// time.AppendFormat writes, at a third of its cost).
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	if y < 0 || y > 9999 {
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000000000Z07:00")
	}
	var b [30]byte
	put := func(i, v, n int) {
		for j := i + n - 1; j >= i; j-- {
			b[j] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, y, 4)
	b[4] = '-'
	put(5, int(mo), 2)
	b[7] = '-'
	put(8, d, 2)
	b[10] = 'T'
	put(11, h, 2)
	b[13] = ':'
	put(14, mi, 2)
	b[16] = ':'
	put(17, s, 2)
	b[19] = '.'
	put(20, t.Nanosecond(), 9)
	b[29] = 'Z'
	return append(dst, b[:]...)
}

func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
			i++
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			i++
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return append(dst, '"')
}

// IsKlog reports whether line looks like a klog line, as the ingress-nginx
// controller writes them to stderr: "I1202 01:02:03.123456      7 main.go:123] ...".
func IsKlog(line []byte) bool {
	// Lmmdd hh:mm:ss.uuuuuu
	const head = len("I1202 01:02:03.123456")
	if len(line) < head+2 {
		return false
	}
	switch line[0] {
	case 'I', 'W', 'E', 'F':
	default:
		return false
	}
	for i, c := range line[1:head] {
		want := byte('0')
		switch i + 1 {
		case 5:
			want = ' '
		case 8, 11:
			want = ':'
		case 14:
			want = '.'
		}
		if want == '0' {
			if c < '0' || c > '9' {
				return false
			}
		} else if c != want {
			return false
		}
	}
	// spaces, the thread id, a space, then "file:line] "
	i := head
	for i < len(line) && line[i] == ' ' {
		i++
	}
	j := i
	for j < len(line) && line[j] >= '0' && line[j] <= '9' {
		j++
	}
	if i == head || j == i || j >= len(line) || line[j] != ' ' {
		return false
	}
	for k := j + 1; k+1 < len(line); k++ {
		if line[k] == ']' && line[k+1] == ' ' {
			return true
		}
		if line[k] == ' ' {
			return false
		}
	}
	return false
}

// ErrKlog is the dead-letter reason of a stderr line that is a klog line of
// the ingress-nginx controller, not an nginx log line.
var ErrKlog = errors.New("klog line (the ingress-nginx controller's own log), not an nginx log line")
