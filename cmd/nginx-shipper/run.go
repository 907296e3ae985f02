package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nginx-shipper/nginx-shipper/agent"
	"github.com/nginx-shipper/nginx-shipper/agent/enrich"
	"github.com/nginx-shipper/nginx-shipper/sinks"
	"github.com/nginx-shipper/nginx-shipper/sinks/kafka"
	"github.com/nginx-shipper/nginx-shipper/sinks/s3"
	"github.com/nginx-shipper/nginx-shipper/systemd/sdnotify"
)

// exitConfig is run's exit status for a configuration that cannot run
// (sysexits' EX_CONFIG); the systemd unit does not restart on it.
const exitConfig = 78

func cmdRun(args []string, stderr io.Writer) int {
	var path string
	fs := newFlagSet("run", stderr, &path)
	if _, err := parseFlags(fs, args); err != nil {
		return 2
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		printErrors(stderr, "nginx-shipper: ", err)
		return exitConfig
	}
	if !cfg.KafkaEnabled() && !cfg.S3Enabled() {
		fmt.Fprintf(stderr, "nginx-shipper: no sink enabled in %s: set enabled = true in [sinks.kafka] or [sinks.s3] (after setting brokers/bucket)\n", path)
		return exitConfig
	}
	log := newLogger(stderr, cfg.Agent)
	log.Info("starting", "version", version, "config", path)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d := &daemon{path: path, log: log}
	if err := d.serve(ctx, cfg, hup); err != nil {
		log.Error("exiting", "err", err)
		return 1
	}
	log.Info("stopped cleanly")
	return 0
}

func newLogger(w io.Writer, c agent.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	o := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// daemon runs one pipeline (sinks + agent) at a time; a reload stops the
// running one cleanly (flush, final checkpoint) and starts the next, so no
// line is lost or sent twice across a reload.
type daemon struct {
	path  string
	log   *slog.Logger
	live  liveness // what the systemd watchdog is fed from (sd.go)
	ready atomic.Bool
	mu    sync.Mutex
	reg   *prometheus.Registry
	pipe  *pipeline
}

func (d *daemon) registry() *prometheus.Registry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reg
}

// readyz answers 200 when the pipeline runs, every sink says it is ready
// and no file's checkpoint is blocked; 503 otherwise. The body is JSON
// either way (see readyBody), naming each sink's state and reason.
func (d *daemon) readyz(w http.ResponseWriter, r *http.Request) {
	body := d.readiness()
	w.Header().Set("Content-Type", "application/json")
	if !body.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body)
}

// readyBody is /readyz's JSON.
type readyBody struct {
	Ready bool `json:"ready"`
	// State is the daemon's: starting, running, reloading or stopping.
	State string      `json:"state"`
	Sinks []sinkState `json:"sinks"`
	// Files lists the files whose checkpoint is blocked or whose oldest
	// unacknowledged batch waited longer than 30s; blocked, or waiting
	// longer than 2 minutes, makes the daemon not ready.
	Files []agent.FileState `json:"files"`
}

type sinkState struct {
	Sink   string `json:"sink"`
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

// readyWaitReport is how long a file's batch must wait before /readyz
// lists the file; past readyWaitFail the daemon is not ready even if every
// sink says it is (a checkpoint that cannot advance is never "fine").
const (
	readyWaitReport = 30 * time.Second
	readyWaitFail   = 2 * time.Minute
)

func (d *daemon) readiness() readyBody {
	d.mu.Lock()
	p := d.pipe
	d.mu.Unlock()
	_, phase := d.live.alive(time.Now())
	b := readyBody{State: phase, Sinks: []sinkState{}, Files: []agent.FileState{}}
	if b.State == "" {
		b.State = "starting"
	}
	if !d.ready.Load() || p == nil {
		return b
	}
	b.Ready = true
	for _, s := range p.sinks {
		st := sinkState{Sink: s.Name(), Ready: true}
		if rs, ok := s.(interface{ Ready() error }); ok {
			if err := rs.Ready(); err != nil {
				st.Ready, st.Reason = false, err.Error()
				b.Ready = false
			}
		}
		b.Sinks = append(b.Sinks, st)
	}
	for _, f := range p.agent.Files() {
		if f.Blocked != "" || f.WaitSeconds > readyWaitFail.Seconds() {
			b.Ready = false
		}
		if f.Blocked != "" || f.WaitSeconds > readyWaitReport.Seconds() {
			b.Files = append(b.Files, f)
		}
	}
	return b
}

// pipeline is one generation of the running agent and its sinks.
type pipeline struct {
	agent *agent.Agent
	sinks []sinks.Sink
	cfg   *Config
	// [enrich]: the enricher and the stop of its database reload loop.
	enricher   *enrich.Enricher
	stopEnrich context.CancelFunc
}

func (d *daemon) serve(ctx context.Context, cfg *Config, hup <-chan os.Signal) error {
	srvs, err := d.startHTTP(*cfg.Agent.MetricsListen, cfg.Agent.PprofListen)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range srvs {
			s.Close()
		}
	}()
	wdCtx, wdStop := context.WithCancel(context.Background())
	defer wdStop()
	d.live.step("starting", startBound)
	go d.live.watchdog(wdCtx)
	var prev *Config
	for {
		p, err := d.start(ctx, cfg)
		if err != nil && prev != nil {
			d.log.Error("reload failed: the new configuration could not start; going back to the previous one", "err", err)
			cfg, prev = prev, nil
			p, err = d.start(ctx, cfg)
		}
		if err != nil {
			return err
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.agent.Run(runCtx) }()
		d.ready.Store(true)
		d.live.running(p.agent.Heartbeat, heartbeatStale(cfg))
		_ = sdnotify.Ready()

		var next *Config
	wait:
		for {
			select {
			case <-ctx.Done():
				break wait
			case <-hup:
				_ = sdnotify.Reloading()
				nc, err := LoadConfig(d.path)
				if err != nil {
					d.log.Error("reload rejected: the new configuration is invalid; keeping the running one", "err", err)
					_ = sdnotify.Ready()
					continue
				}
				d.log.Info("reloading configuration")
				next = nc
				break wait
			}
		}
		if next == nil {
			_ = sdnotify.Stopping()
			d.live.step("stopping", stopBound(cfg))
		} else {
			d.live.step("reloading", stopBound(cfg)+startBound)
		}
		d.ready.Store(false)
		cancel()
		<-done
		err = d.stop(p, cfg)
		if next == nil {
			return err
		}
		d.live.step("reloading", startBound)
		prev, cfg = cfg, next
	}
}

// Bounds of the steps of a reload or a shutdown, for the watchdog and
// EXTEND_TIMEOUT_USEC (see liveness).
const (
	// startBound: building the sinks and the agent (no network wait).
	startBound = 30 * time.Second
	// agentSendGrace is the agent's grace for sends blocked at a stop.
	agentSendGrace = 5 * time.Second
	// kafkaCloseWait is how long the Kafka sink waits, after closing its
	// client, for the failed records to complete.
	kafkaCloseWait = 10 * time.Second
)

// stopBound is the longest a clean stop of a pipeline takes: the agent's
// send grace, the sinks' flush (shutdown_timeout), the Kafka client's close
// and the final checkpoint.
func stopBound(cfg *Config) time.Duration {
	return agentSendGrace + cfg.Agent.ShutdownTimeout.Duration + kafkaCloseWait + 5*time.Second
}

// heartbeatStale is how old the agent's heartbeat may be while it is alive:
// its loop goes round every scan_interval and checkpoint_interval; a scan
// of many files or a slow fsync may take a few seconds more.
func heartbeatStale(cfg *Config) time.Duration {
	return max(3*max(cfg.Agent.ScanInterval.Duration, cfg.Agent.CheckpointInterval.Duration), 10*time.Second, sdnotify.WatchdogInterval()/2)
}

// setMemoryLimit applies agent.memory_limit unless GOMEMLIMIT is set.
func (d *daemon) setMemoryLimit(c agent.Config) {
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		d.log.Info("GOMEMLIMIT is set; agent.memory_limit is not applied", "GOMEMLIMIT", env)
		return
	}
	limit := c.MemoryLimit
	if limit < 0 {
		limit = math.MaxInt64 // none: the runtime's own default
	}
	debug.SetMemoryLimit(limit)
}

// start builds the sinks and the agent for cfg.
func (d *daemon) start(ctx context.Context, cfg *Config) (*pipeline, error) {
	d.setMemoryLimit(cfg.Agent)
	reg := prometheus.NewRegistry()
	var ss []sinks.Sink
	closeAll := func() {
		c, cancel := context.WithTimeout(context.Background(), cfg.Agent.ShutdownTimeout.Duration)
		defer cancel()
		for _, s := range ss {
			s.Close(c)
		}
	}
	if cfg.KafkaEnabled() {
		k, err := kafka.New(*cfg.Sinks.Kafka, d.log, reg)
		if err != nil {
			return nil, fmt.Errorf("sinks.kafka: %w", err)
		}
		ss = append(ss, k)
		// value_format avro: register every input's schema (in the
		// background; Send waits for it).
		if err := k.UseSchemas(cfg.inputSchemas()); err != nil {
			closeAll()
			return nil, err
		}
	}
	if cfg.S3Enabled() {
		s, err := s3.New(*cfg.Sinks.S3, d.log, reg)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("sinks.s3: %w", err)
		}
		ss = append(ss, s)
		// format parquet: each input's schema gives its objects' columns.
		s.UseSchemas(cfg.s3Schemas())
	}
	var en *enrich.Enricher
	if cfg.Enrich != nil {
		var err error
		if en, err = enrich.New(*cfg.Enrich, d.log.With("component", "enrich")); err != nil {
			closeAll()
			return nil, err
		}
	}
	a, err := agent.New(cfg.Agent, cfg.Inputs, ss, agent.Options{
		Log: d.log.With("component", "agent"), Registerer: reg, KeyField: cfg.KeyField(),
		KeepRaw: cfg.KafkaEnabled() && cfg.Sinks.Kafka.RawTopic != "",
		Avro:    cfg.kafkaAvro(),
		// Kafka in Avro is the only sink: the JSON is not needed.
		AvroOnly:     cfg.kafkaAvro() && !cfg.S3Enabled(),
		Enricher:     en,
		EnrichedOnly: !cfg.wantsOriginals(),
	})
	if err != nil {
		closeAll()
		if en != nil {
			en.Close()
		}
		return nil, err
	}
	stopEnrich := func() {}
	if en != nil {
		ectx, cancel := context.WithCancel(ctx)
		stopEnrich = cancel
		go en.Run(ectx)
		for _, c := range []struct {
			cache, result string
			v             func(enrich.CacheStats) uint64
		}{
			{"ua", "hit", func(s enrich.CacheStats) uint64 { return s.UAHits }},
			{"ua", "miss", func(s enrich.CacheStats) uint64 { return s.UAMisses }},
			{"geo", "hit", func(s enrich.CacheStats) uint64 { return s.GeoHits }},
			{"geo", "miss", func(s enrich.CacheStats) uint64 { return s.GeoMisses }},
		} {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "nginx_shipper_enrich_cache_lookups_total", ConstLabels: prometheus.Labels{"cache": c.cache, "result": c.result},
				Help: "[enrich] cache lookups: user agents (ua) and geo records (geo, since the databases were last loaded), by hit or miss.",
			}, func() float64 { return float64(c.v(en.Stats())) }))
		}
	}
	// Start-up checks: a sink that cannot be reached is logged loudly, not
	// fatal: the sinks wait and retry, and nothing is read faster than they
	// take it.
	for _, s := range ss {
		if c, ok := s.(interface{ Check(context.Context) error }); ok {
			go func() {
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				defer cancel()
				if err := c.Check(cctx); err != nil && ctx.Err() == nil {
					d.log.Error("start-up check failed; the sink will keep retrying", "sink", s.Name(), "err", err)
				} else if err == nil {
					d.log.Info("start-up check passed", "sink", s.Name())
				}
			}()
		}
	}
	for _, s := range ss {
		if rs, ok := s.(interface{ Ready() error }); ok {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "nginx_shipper_sink_up", ConstLabels: prometheus.Labels{"sink": s.Name()},
				Help: "1 when the sink is ready, else 0: the same readiness as /readyz, whose body gives the reason (Kafka: a broker answers, metadata and produce requests succeed, records are acknowledged within min(2 x request_timeout, 30s); S3: uploads succeed and the spool has room).",
			}, func() float64 {
				if rs.Ready() != nil {
					return 0
				}
				return 1
			}))
		}
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p := &pipeline{agent: a, sinks: ss, cfg: cfg, enricher: en, stopEnrich: stopEnrich}
	d.mu.Lock()
	d.reg, d.pipe = reg, p
	d.mu.Unlock()
	return p, nil
}

// stop closes the sinks (flushing what is in flight) within the shutdown
// deadline and writes the final checkpoint.
func (d *daemon) stop(p *pipeline, cfg *Config) error {
	c, cancel := context.WithTimeout(context.Background(), cfg.Agent.ShutdownTimeout.Duration)
	defer cancel()
	var errs []error
	for _, s := range p.sinks {
		if err := s.Close(c); err != nil {
			errs = append(errs, fmt.Errorf("closing %s: %w", s.Name(), err))
		}
	}
	if err := p.agent.Close(); err != nil {
		errs = append(errs, err)
	}
	if p.enricher != nil {
		p.stopEnrich()
		p.enricher.Close()
	}
	if len(errs) > 0 {
		d.log.Warn("shutdown incomplete; what was not delivered is read again at the next start", "err", errors.Join(errs...))
	}
	return nil
}

// startHTTP serves /metrics, /healthz and /readyz on addr and pprof on
// pprofAddr (the same server when they are equal); "" turns either off.
func (d *daemon) startHTTP(addr, pprofAddr string) ([]*http.Server, error) {
	var srvs []*http.Server
	serve := func(key, addr string, mux *http.ServeMux) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("agent.%s: %w", key, err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		srvs = append(srvs, srv)
		d.log.Info("serving HTTP", "key", key, "addr", ln.Addr().String())
		return nil
	}
	if addr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reg := d.registry()
			if reg == nil {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
			promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
		}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "ok")
		})
		mux.HandleFunc("/readyz", d.readyz)
		if pprofAddr == addr {
			mountPprof(mux)
		}
		if err := serve("metrics_listen", addr, mux); err != nil {
			return srvs, err
		}
	}
	if pprofAddr != "" && pprofAddr != addr {
		mux := http.NewServeMux()
		mountPprof(mux)
		if err := serve("pprof_listen", pprofAddr, mux); err != nil {
			return srvs, err
		}
	}
	return srvs, nil
}

func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
