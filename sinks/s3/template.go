package s3

import (
	"fmt"

	"github.com/nginx-shipper/nginx-shipper/agent/container"
	"strconv"
	"strings"
	"time"
)

// keyTemplate is a compiled prefix: literal text, strftime conversions of the
// event time (UTC) and the {hostname}, {input}, {namespace} and {pod}
// placeholders (the last two from a container log's path, see
// agent/container: "_" for a file that is none).
type keyTemplate struct {
	segs []segment
	pods bool // uses {namespace} or {pod}
	// resolution is the finest time unit the output depends on: times equal
	// when truncated to it render the same.
	resolution time.Duration
}

type segment struct {
	lit  string
	verb byte // 0 for a literal; 'h' hostname; 'i' input; else strftime
}

// CheckPrefix reports why s is not a valid key prefix template (the
// agent's per-input s3_prefix is checked with it).
func CheckPrefix(s string) error {
	if strings.HasPrefix(s, "/") {
		return fmt.Errorf("must not start with /")
	}
	return checkTemplate(s)
}

// checkTemplate reports why s is not a valid key template.
func checkTemplate(s string) error {
	_, err := compileTemplate(s)
	return err
}

func compileTemplate(s string) (*keyTemplate, error) {
	t := &keyTemplate{resolution: 24 * time.Hour}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.segs = append(t.segs, segment{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("%q ends with a lone %%", s)
			}
			i++
			v := s[i]
			switch v {
			case '%':
				lit.WriteByte('%')
				continue
			case 'Y', 'y', 'm', 'd', 'j', 'F':
			case 'H':
				t.resolution = min(t.resolution, time.Hour)
			case 'M':
				t.resolution = min(t.resolution, time.Minute)
			case 'S', 'T', 's':
				t.resolution = min(t.resolution, time.Second)
			default:
				return nil, fmt.Errorf("unsupported conversion %%%c in %q (supported: %%Y %%y %%m %%d %%j %%F %%H %%M %%S %%T %%s %%%%)", v, s)
			}
			flush()
			t.segs = append(t.segs, segment{verb: v})
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed { in %q", s)
			}
			name := s[i+1 : i+end]
			switch name {
			case "hostname":
				flush()
				t.segs = append(t.segs, segment{verb: 'h'})
			case "input":
				flush()
				t.segs = append(t.segs, segment{verb: 'i'})
			case "namespace", "pod":
				flush()
				t.segs = append(t.segs, segment{verb: name[0]})
				t.pods = true
			default:
				return nil, fmt.Errorf("unknown placeholder {%s} in %q (supported: {hostname} {input} {namespace} {pod})", name, s)
			}
			i += end
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

// render appends the template for event time tm, host and input to dst.
func (t *keyTemplate) render(dst []byte, tm time.Time, host string, input int) []byte {
	return t.renderPod(dst, tm, host, input, podOf{})
}

// podOf is the namespace and pod of a container log file.
type podOf struct{ ns, pod string }

// podOfPath reads them from a kubelet log path; "_" for each when the path
// is none.
func podOfPath(path string) podOf {
	if m, ok := container.ParsePath(path); ok {
		return podOf{m.Namespace, m.Pod}
	}
	return podOf{"_", "_"}
}

// renderPod is render with {namespace} and {pod}.
func (t *keyTemplate) renderPod(dst []byte, tm time.Time, host string, input int, pod podOf) []byte {
	tm = tm.UTC()
	for _, sg := range t.segs {
		switch sg.verb {
		case 0:
			dst = append(dst, sg.lit...)
		case 'n':
			dst = append(dst, pod.ns...)
		case 'p':
			dst = append(dst, pod.pod...)
		case 'h':
			dst = append(dst, host...)
		case 'i':
			dst = strconv.AppendInt(dst, int64(input), 10)
		case 'Y':
			dst = appendInt(dst, tm.Year(), 4)
		case 'y':
			dst = appendInt(dst, tm.Year()%100, 2)
		case 'm':
			dst = appendInt(dst, int(tm.Month()), 2)
		case 'd':
			dst = appendInt(dst, tm.Day(), 2)
		case 'j':
			dst = appendInt(dst, tm.YearDay(), 3)
		case 'F':
			dst = appendInt(dst, tm.Year(), 4)
			dst = append(dst, '-')
			dst = appendInt(dst, int(tm.Month()), 2)
			dst = append(dst, '-')
			dst = appendInt(dst, tm.Day(), 2)
		case 'H':
			dst = appendInt(dst, tm.Hour(), 2)
		case 'M':
			dst = appendInt(dst, tm.Minute(), 2)
		case 'S':
			dst = appendInt(dst, tm.Second(), 2)
		case 'T':
			dst = appendInt(dst, tm.Hour(), 2)
			dst = append(dst, ':')
			dst = appendInt(dst, tm.Minute(), 2)
			dst = append(dst, ':')
			dst = appendInt(dst, tm.Second(), 2)
		case 's':
			dst = strconv.AppendInt(dst, tm.Unix(), 10)
		}
	}
	return dst
}

func appendInt(dst []byte, v, width int) []byte {
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}
