package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/nginx-shipper/nginx-shipper/agent"
)

// statusReport is what `nginx-shipper status --json` prints.
type statusReport struct {
	// Daemon is "running" (its metrics endpoint answered), or "not
	// running" / "unknown" with Why: then everything comes from data_dir.
	Daemon string `json:"daemon"`
	Why    string `json:"why,omitempty"`
	State  string `json:"state,omitempty"` // the daemon's: running, reloading, ...
	Ready  *bool  `json:"ready,omitempty"`
	// CheckpointAgeSeconds is how long ago checkpoints.json was written
	// (-1: never).
	CheckpointAgeSeconds float64      `json:"checkpoint_age_seconds"`
	DataDir              string       `json:"data_dir"`
	Files                []statusFile `json:"files"`
	Sinks                []statusSink `json:"sinks"`
	DeadLetter           *statusDLQ   `json:"dead_letter,omitempty"`
}

type statusFile struct {
	Path     string `json:"path"`
	Identity string `json:"identity"` // dev:inode of the checkpointed file
	// Now is what the path holds now: "same" file, "rotated" (another
	// file, or none: the checkpointed one was renamed or deleted).
	Now         string `json:"now"`
	Size        int64  `json:"size"`
	ReadOffset  *int64 `json:"read_offset,omitempty"` // from the daemon; unknown when it is down
	AckedOffset int64  `json:"acked_offset"`
	LagBytes    int64  `json:"lag_bytes"` // size - acked offset
	// LagSeconds: with the daemon up, how long its oldest unacknowledged
	// batch has waited; down, how long the bytes behind the checkpoint
	// have waited at least (since the checkpoint was written). 0 when
	// nothing is behind.
	LagSeconds   float64 `json:"lag_seconds"`
	UnackedBytes *int64  `json:"unacked_bytes,omitempty"`
	Blocked      string  `json:"blocked,omitempty"`
}

type statusSink struct {
	Sink    string   `json:"sink"`
	Enabled bool     `json:"enabled"`
	Ready   *bool    `json:"ready,omitempty"` // unknown when the daemon is down
	Reason  string   `json:"reason,omitempty"`
	Backlog *float64 `json:"backlog_records,omitempty"` // Kafka: records buffered, not acknowledged
	// SpoolBytes (S3) is read from the metrics, or measured in data_dir
	// when the daemon is down.
	SpoolBytes       *float64 `json:"spool_bytes,omitempty"`
	OldestBatchSecs  *float64 `json:"oldest_batch_seconds,omitempty"`
	SpoolBatches     *float64 `json:"spool_batches,omitempty"`
	AckedEvents      *float64 `json:"acked_events,omitempty"`
	FailedEvents     *float64 `json:"failed_events,omitempty"`
	DeadLetterEvents *float64 `json:"dead_lettered_events,omitempty"`
}

type statusDLQ struct {
	Dir   string `json:"dir"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	var path string
	fs := newFlagSet("status", stderr, &path)
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the daemon's metrics endpoint")
	if _, err := parseFlags(fs, args); err != nil {
		return 2
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		printErrors(stderr, "nginx-shipper: ", err)
		return 2
	}
	rep, err := gatherStatus(cfg, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "nginx-shipper: status: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printStatus(stdout, rep)
	}
	return 0
}

func gatherStatus(cfg *Config, timeout time.Duration) (*statusReport, error) {
	now := time.Now()
	rep := &statusReport{DataDir: cfg.Agent.DataDir, Files: []statusFile{}, Sinks: []statusSink{}}
	cps, written, err := agent.ReadCheckpoints(cfg.Agent.DataDir)
	if err != nil {
		return nil, err
	}
	rep.CheckpointAgeSeconds = -1
	if !written.IsZero() {
		rep.CheckpointAgeSeconds = now.Sub(written).Seconds()
	}

	// The daemon, through its metrics endpoint.
	var fams map[string]*dto.MetricFamily
	var ready *readyBody
	addr := ""
	if cfg.Agent.MetricsListen != nil {
		addr = *cfg.Agent.MetricsListen
	}
	switch {
	case addr == "":
		rep.Daemon, rep.Why = "unknown", "agent.metrics_listen is off: showing the data dir only"
	default:
		host := addr
		if strings.HasPrefix(host, ":") || strings.HasPrefix(host, "0.0.0.0:") || strings.HasPrefix(host, "[::]:") {
			host = "127.0.0.1" + host[strings.LastIndexByte(host, ':'):]
		}
		cl := &http.Client{Timeout: timeout}
		fams, err = scrapeFamilies(cl, "http://"+host+"/metrics")
		if err != nil {
			rep.Daemon, rep.Why = "not running", fmt.Sprintf("no answer from %s (%v): showing the data dir only", addr, err)
			break
		}
		rep.Daemon = "running"
		if resp, err := cl.Get("http://" + host + "/readyz"); err == nil {
			var rb readyBody
			if json.NewDecoder(resp.Body).Decode(&rb) == nil {
				ready = &rb
				rep.State, rep.Ready = rb.State, &rb.Ready
			}
			resp.Body.Close()
		}
	}

	// Files: the checkpoints, the file system and the daemon's view.
	live := map[string]agent.FileState{}
	if ready != nil {
		for _, f := range ready.Files {
			live[f.Path] = f
		}
	}
	for _, cp := range cps {
		sf := statusFile{Path: cp.Path, Identity: fmt.Sprintf("%d:%d", cp.Dev, cp.Inode), AckedOffset: cp.Offset, Now: "same"}
		if fi, err := os.Stat(cp.Path); err != nil {
			sf.Now = "rotated (path gone)"
		} else if dev, ino := fileIdentity(fi); dev != cp.Dev || ino != cp.Inode {
			sf.Now = fmt.Sprintf("rotated (path is now %d:%d)", dev, ino)
		} else {
			sf.Size = fi.Size()
			sf.LagBytes = max(fi.Size()-cp.Offset, 0)
		}
		if fams != nil {
			unacked := int64(metricValue(fams, "nginx_shipper_file_unacked_bytes", "path", cp.Path))
			sf.UnackedBytes = &unacked
			read := cp.Offset + unacked
			if sf.Now == "same" {
				if lag, ok := metricLookup(fams, "nginx_shipper_file_lag_bytes", "path", cp.Path); ok {
					read = max(read, sf.Size-int64(lag))
				}
			}
			sf.ReadOffset = &read
			sf.LagSeconds = metricValue(fams, "nginx_shipper_file_ack_wait_seconds", "path", cp.Path)
			if f, ok := live[cp.Path]; ok {
				sf.Blocked = f.Blocked
			}
		} else if sf.LagBytes > 0 && !written.IsZero() {
			sf.LagSeconds = now.Sub(written).Seconds()
		}
		rep.Files = append(rep.Files, sf)
	}

	// Sinks.
	sinkReady := map[string]sinkState{}
	if ready != nil {
		for _, s := range ready.Sinks {
			sinkReady[s.Sink] = s
		}
	}
	for _, name := range []string{"kafka", "s3"} {
		on := (name == "kafka" && cfg.KafkaEnabled()) || (name == "s3" && cfg.S3Enabled())
		ss := statusSink{Sink: name, Enabled: on}
		if !on {
			rep.Sinks = append(rep.Sinks, ss)
			continue
		}
		if st, ok := sinkReady[name]; ok {
			r := st.Ready
			ss.Ready, ss.Reason = &r, st.Reason
		}
		get := func(metric string, labels ...string) *float64 {
			if fams == nil {
				return nil
			}
			v, ok := metricLookup(fams, metric, labels...)
			if !ok {
				return nil
			}
			return &v
		}
		ss.AckedEvents = get("nginx_shipper_events_acked_total", "sink", name)
		ss.FailedEvents = get("nginx_shipper_sink_errors_total", "sink", name)
		ss.DeadLetterEvents = get("nginx_shipper_dead_lettered_events_total", "sink", name)
		switch name {
		case "kafka":
			ss.Backlog = get("nginx_shipper_kafka_buffered_records")
		case "s3":
			ss.SpoolBytes = get("nginx_shipper_s3_spool_bytes")
			ss.SpoolBatches = get("nginx_shipper_s3_spool_batches")
			ss.OldestBatchSecs = get("nginx_shipper_s3_spool_oldest_batch_age_seconds")
			if ss.SpoolBytes == nil {
				n, files, oldest := dirUsage(cfg.Sinks.S3.SpoolDir, now)
				b, f := float64(n), float64(files)
				ss.SpoolBytes, ss.SpoolBatches = &b, &f
				if files > 0 {
					ss.OldestBatchSecs = &oldest
				}
			}
		}
		rep.Sinks = append(rep.Sinks, ss)
	}
	dlDir := filepath.Join(cfg.Agent.DataDir, "dead-letter")
	if n, files, _ := dirUsage(dlDir, now); files > 0 {
		rep.DeadLetter = &statusDLQ{Dir: dlDir, Files: files, Bytes: n}
	}
	return rep, nil
}

// dirUsage sums the sizes of the regular files under dir, and the age of
// the oldest.
func dirUsage(dir string, now time.Time) (bytes int64, files int, oldestSecs float64) {
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		bytes += fi.Size()
		files++
		oldestSecs = max(oldestSecs, now.Sub(fi.ModTime()).Seconds())
		return nil
	})
	return bytes, files, oldestSecs
}

func scrapeFamilies(cl *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	resp, err := cl.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// metricLookup sums the samples of name whose labels include the pairs
// given (k1, v1, k2, v2...); ok is false when there are none.
func metricLookup(fams map[string]*dto.MetricFamily, name string, kv ...string) (float64, bool) {
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
	sum, found := 0.0, false
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(kv); i += 2 {
			ok := false
			for _, lp := range m.Label {
				if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
					ok = true
				}
			}
			if !ok {
				continue next
			}
		}
		found = true
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
	}
	return sum, found
}

func metricValue(fams map[string]*dto.MetricFamily, name string, kv ...string) float64 {
	v, _ := metricLookup(fams, name, kv...)
	return v
}

func printStatus(w io.Writer, rep *statusReport) {
	fmt.Fprintf(w, "daemon: %s", rep.Daemon)
	if rep.State != "" {
		fmt.Fprintf(w, " (%s", rep.State)
		if rep.Ready != nil {
			fmt.Fprintf(w, ", %s", map[bool]string{true: "ready", false: "NOT READY"}[*rep.Ready])
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprintln(w)
	if rep.Why != "" {
		fmt.Fprintf(w, "  %s\n", rep.Why)
	}
	fmt.Fprintf(w, "data dir: %s\n", rep.DataDir)
	if rep.CheckpointAgeSeconds < 0 {
		fmt.Fprintln(w, "checkpoint: never written")
	} else {
		fmt.Fprintf(w, "checkpoint: written %s ago\n", secs(rep.CheckpointAgeSeconds))
	}
	fmt.Fprintln(w, "\nfiles:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PATH\tIDENTITY\tNOW\tSIZE\tREAD\tACKED\tLAG BYTES\tLAG\t")
	for _, f := range rep.Files {
		read := "?"
		if f.ReadOffset != nil {
			read = fmt.Sprint(*f.ReadOffset)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\t\n", f.Path, f.Identity, f.Now, f.Size, read, f.AckedOffset, f.LagBytes, secs(f.LagSeconds))
		if f.Blocked != "" {
			fmt.Fprintf(tw, "    BLOCKED: %s\t\t\t\t\t\t\t\t\n", f.Blocked)
		}
	}
	if len(rep.Files) == 0 {
		fmt.Fprintln(tw, "  (no checkpoints yet)\t\t\t\t\t\t\t\t")
	}
	tw.Flush()
	fmt.Fprintln(w, "\nsinks:")
	for _, s := range rep.Sinks {
		if !s.Enabled {
			fmt.Fprintf(w, "  %s: off\n", s.Sink)
			continue
		}
		state := "unknown (daemon not reachable)"
		if s.Ready != nil && *s.Ready {
			state = "ready"
		} else if s.Ready != nil {
			state = "NOT READY: " + s.Reason
		}
		fmt.Fprintf(w, "  %s: %s\n", s.Sink, state)
		if s.Backlog != nil {
			fmt.Fprintf(w, "    backlog: %.0f records\n", *s.Backlog)
		}
		if s.SpoolBytes != nil {
			fmt.Fprintf(w, "    spool: %.0f bytes", *s.SpoolBytes)
			if s.SpoolBatches != nil {
				fmt.Fprintf(w, " in %.0f files", *s.SpoolBatches)
			}
			if s.OldestBatchSecs != nil {
				fmt.Fprintf(w, ", oldest batch %s", secs(*s.OldestBatchSecs))
			}
			fmt.Fprintln(w)
		}
		if s.AckedEvents != nil {
			fmt.Fprintf(w, "    events: %.0f acknowledged", *s.AckedEvents)
			if s.FailedEvents != nil {
				fmt.Fprintf(w, ", %.0f failed", *s.FailedEvents)
			}
			if s.DeadLetterEvents != nil && *s.DeadLetterEvents > 0 {
				fmt.Fprintf(w, ", %.0f dead-lettered", *s.DeadLetterEvents)
			}
			fmt.Fprintln(w)
		}
	}
	if rep.DeadLetter != nil {
		fmt.Fprintf(w, "\ndead-letter: %d files, %d bytes in %s\n", rep.DeadLetter.Files, rep.DeadLetter.Bytes, rep.DeadLetter.Dir)
	}
}

// fileIdentity is the device and inode of fi, as the checkpoints keep them.
func fileIdentity(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}

func secs(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}
