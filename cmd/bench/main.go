// Command bench measures the whole agent (issue 8): it generates N lines in
// a 15-variable log_format, starts a Kafka broker (cmd/devkafka, a separate
// process so that the agent's CPU is measured alone) and an S3 server
// (versitygw when installed, else cmd/devs3), runs bin/nginx-shipper from
// the beginning with fresh state, waits until every line is in Kafka (and in
// S3), and reports per case lines/s, the agent's CPU seconds, lines per
// CPU-second and peak RSS, as medians of -runs runs, next to two ceilings:
// a bare franz-go producer of the raw lines into the same broker, and the
// case's own fair ceiling (issue 18, ceiling.go): a bare franz-go producer
// of the very records the agent sent in that case, preloaded, with the
// sink's producer options (and with S3 a bare uploader of the same events
// as gzip objects, at the same time). Every run checks that each line
// arrived exactly once in each sink.
//
//	make bench BENCH_ARGS='-lines 200000 -runs 1'
//
// Cases: kafka, kafka-avro (value_format avro, cmd/devregistry), kafka-lz4,
// kafka-zstd, kafka-enrich ([enrich] with databases the bench writes;
// Kafka only, no compression), s3 (S3 only), both (Kafka lz4 + S3), paced (both sinks; a writer appends -paced-rate lines/s
// for -paced-for while the agent runs; reports the agent's CPU as % of one
// core) and paced-kafka (the same with Kafka only, no compression).
//
// Many files (issue 17; not in the default list, see files.go): files-backlog
// (-files files holding the -lines backlog), files-live (-files files
// written round-robin at -paced-rate lines/s in all for -paced-for; each
// file's lag), files-10k (10,000 files holding the backlog) and files-scale
// (-scale-files counts of -scale-lines lines a file; CPU, RSS, checkpoint
// size and metric samples while idle for -idle-for), all Kafka only, no
// compression, on the glob DIR/*.log with the agent's defaults.
//
//	go run ./cmd/bench -cases kafka,files-backlog -lines 200000 -runs 1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	benchTopic = "bench"
	dlqTopic   = "nginx-access-invalid"
)

type options struct {
	bin        string
	lines      int
	cases      []string
	runs       int
	keep       bool
	partitions int
	s3Mode     string
	timeout    time.Duration
	pacedRate  int
	pacedFor   time.Duration
	profileDir string
	skipCeil   bool
	agentTOML  string
	enrichTOML string // non-empty: an [enrich] table with these keys
	kafkaTOML  string
	s3TOML     string
	files      int
	scaleFiles []int
	scaleLines int
	idleFor    time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "produce" {
		if err := produceMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench produce:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	var cases string
	flag.StringVar(&o.bin, "bin", "bin/nginx-shipper", "the agent binary (make build)")
	flag.IntVar(&o.lines, "lines", 2_000_000, "lines in the backlog")
	flag.StringVar(&cases, "cases", "kafka,kafka-avro,kafka-lz4,kafka-zstd,kafka-enrich,s3,both,paced", "cases to run (also: kafka-zstd-enrich, paced-kafka, files-backlog, files-live, files-10k, files-scale)")
	flag.IntVar(&o.runs, "runs", 3, "runs per case; the medians are reported")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (data, configs, logs)")
	flag.IntVar(&o.partitions, "partitions", 6, "partitions of the Kafka topic")
	flag.StringVar(&o.s3Mode, "s3", "auto", "S3 server: auto (versitygw if found, else gofakes3), versitygw, gofakes3")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "per run: give up when the lines have not all arrived by then")
	flag.IntVar(&o.pacedRate, "paced-rate", 10_000, "paced case: lines per second")
	flag.DurationVar(&o.pacedFor, "paced-for", 30*time.Second, "paced case: how long the writer writes")
	flag.StringVar(&o.profileDir, "profile", "", "also make one profiled run per case and write its CPU profile (agent pprof_listen) to DIR/CASE.pprof, and the broker's (until the last line is in) to DIR/CASE.broker.pprof")
	flag.BoolVar(&o.skipCeil, "no-ceiling", false, "do not measure the ceilings (raw and each case's own)")
	flag.StringVar(&o.agentTOML, "agent-toml", "", "extra keys for the agent's [agent] table, ';'-separated, e.g. 'max_in_flight_bytes = 67108864'")
	flag.StringVar(&o.kafkaTOML, "kafka-toml", "", "extra keys for [sinks.kafka], ';'-separated, e.g. 'linger = \"20ms\"'")
	flag.StringVar(&o.s3TOML, "s3-toml", "", "extra keys for [sinks.s3], ';'-separated, e.g. 'compression_level = 1'")
	flag.StringVar(&o.enrichTOML, "enrich-toml", "", "turns [enrich] on with these keys, ';'-separated, e.g. 'user_agent = true; geoip_database = \"/path/City.mmdb\"'")
	flag.BoolVar(&legacyClients, "legacy-clients", false, "the generator's clients before issue 14's measurement (10 % new 2001:db8:: addresses, 508 documentation IPv4 addresses, 10 user agents) instead of the site model (gen.go)")
	flag.IntVar(&o.files, "files", 1000, "files-backlog and files-live: the number of files")
	scaleFiles := flag.String("scale-files", "1,10,100,1000,10000", "files-scale: the file counts")
	flag.IntVar(&o.scaleLines, "scale-lines", 100, "files-scale: lines in each file")
	flag.DurationVar(&o.idleFor, "idle-for", 10*time.Second, "files-scale: how long the idle agent's CPU is measured")
	flag.Parse()
	o.cases = strings.Split(cases, ",")
	for _, f := range strings.Split(*scaleFiles, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: -scale-files: %q is not a positive number\n", f)
			os.Exit(2)
		}
		o.scaleFiles = append(o.scaleFiles, n)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nbench FAILED: %v\n", err)
		os.Exit(1)
	}
}

type benchCase struct {
	name        string
	kafka       bool
	compression string
	s3          bool
	paced       bool
	avro        bool // value_format = "avro" with a schema registry (cmd/devregistry)
	enrich      bool // [enrich] with the generator's databases (enrichdb.go)
}

var allCases = map[string]benchCase{
	"kafka":        {name: "kafka", kafka: true, compression: "none"},
	"kafka-avro":   {name: "kafka-avro", kafka: true, compression: "none", avro: true},
	"kafka-lz4":    {name: "kafka-lz4", kafka: true, compression: "lz4"},
	"kafka-zstd":   {name: "kafka-zstd", kafka: true, compression: "zstd"},
	"kafka-enrich": {name: "kafka-enrich", kafka: true, compression: "none", enrich: true},
	// kafka-zstd-enrich: the pair at the sink's default compression.
	"kafka-zstd-enrich": {name: "kafka-zstd-enrich", kafka: true, compression: "zstd", enrich: true},
	"s3":                {name: "s3", s3: true},
	"both":              {name: "both", kafka: true, compression: "lz4", s3: true},
	"paced":             {name: "paced", kafka: true, compression: "lz4", s3: true, paced: true},
	"paced-kafka":       {name: "paced-kafka", kafka: true, compression: "none", paced: true},
}

func (c benchCase) describe() string {
	var parts []string
	if c.kafka {
		k := "kafka "
		if c.avro {
			k = "kafka avro "
		}
		if c.enrich {
			k = "kafka enriched "
		}
		parts = append(parts, k+c.compression)
	}
	if c.s3 {
		parts = append(parts, "s3 gzip")
	}
	return strings.Join(parts, " + ")
}

// result is one run of one case.
type result struct {
	lines  int
	dur    time.Duration // agent start to the last line in every sink
	cpu    time.Duration // user + system of the whole process life
	rssKiB int64         // VmHWM
	cpuPct float64       // paced: CPU % of one core while the writer writes
	check  error         // exactly-once verification
	// brokerCPU is the Kafka broker's CPU (user + system) from the start
	// of the agent (or producer) until the last line arrived.
	brokerCPU time.Duration
	// machineBusy is the whole machine's busy CPU over the same span, in
	// cores (of runtime.NumCPU).
	machineBusy float64
	// same says whether the records in the topic are the captured ones
	// (ceiling.go): 1 yes, -1 no, 0 not compared (the capturing run, or no
	// Kafka).
	same int8
	// first is how long after its start the agent's first record was in
	// Kafka (start-up, first scan and read, the first produce).
	first time.Duration
}

func (r result) rate() float64       { return float64(r.lines) / r.dur.Seconds() }
func (r result) perCPU() float64     { return float64(r.lines) / r.cpu.Seconds() }
func (r result) rssMiB() float64     { return float64(r.rssKiB) / 1024 }
func (r result) cpuSeconds() float64 { return r.cpu.Seconds() }

// brokerPct is the broker's CPU in % of one core while the lines went in.
func (r result) brokerPct() float64 { return 100 * r.brokerCPU.Seconds() / r.dur.Seconds() }

func run(ctx context.Context, o options) error {
	var cases []benchCase
	var fcases []filesCase
	for _, n := range o.cases {
		if c, ok := allFilesCases[strings.TrimSpace(n)]; ok {
			fcases = append(fcases, c)
			continue
		}
		c, ok := allCases[strings.TrimSpace(n)]
		if !ok {
			return fmt.Errorf("-cases: unknown case %q", n)
		}
		cases = append(cases, c)
	}
	if o.runs < 1 || o.lines < 1 || o.files < 1 || o.scaleLines < 1 {
		return errors.New("-runs, -lines, -files and -scale-lines must be positive")
	}
	if len(cases) == 0 {
		o.skipCeil = true // only many-files cases: no one-file data, no ceiling
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("the agent is not built (%w): run `make build` or `make bench`", err)
	}
	o.bin = bin
	if o.profileDir != "" {
		if o.profileDir, err = filepath.Abs(o.profileDir); err != nil {
			return err
		}
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}

	dir, err := os.MkdirTemp("", "nginx-shipper-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Printf("kept %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	tl, err := buildTools(dir, o.s3Mode)
	if err != nil {
		return err
	}
	s3Name := "devs3 (gofakes3, memory)"
	if tl.versitygw != "" {
		s3Name = "versitygw (posix) " + tl.versitygw
	}

	// The one-file data; with only many-files cases just enough lines to
	// check the format (they generate their own files).
	data := filepath.Join(dir, "access.log")
	genLines := o.lines
	if len(cases) == 0 {
		genLines = min(o.lines, 10_000)
	}
	t0 := time.Now()
	size, err := generate(data, genLines)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	avgEvent, err := checkFormat(data)
	if err != nil {
		return err
	}
	fmt.Printf("nginx-shipper bench: %d lines, %.0f B average (%.0f B as JSON events), %.0f MiB (generated in %.1fs), %d CPUs, %s\n",
		o.lines, float64(size)/float64(genLines), avgEvent, float64(size)/float64(genLines)*float64(o.lines)/(1<<20), time.Since(t0).Seconds(), runtime.NumCPU(), runtime.GOARCH)
	fmt.Printf("  broker: devkafka (kfake) process, topic %s with %d partitions; S3: %s; medians of %d runs\n\n",
		benchTopic, o.partitions, s3Name, o.runs)

	b := &bencher{o: o, tl: tl, dir: dir, data: data, records: map[string]*recordSet{}}
	for _, c := range cases {
		if c.enrich && o.enrichTOML == "" && b.cityDB == "" {
			if b.cityDB, b.asnDB, err = writeGeneratorDBs(dir); err != nil {
				return fmt.Errorf("writing the enrichment databases: %w", err)
			}
		}
	}
	var ceiling []result
	results := make(map[string][]result)
	ceilings := make(map[string][]result) // each case's own ceiling
	fresults := make(map[string][]filesResult)
	for r := 1; r <= o.runs; r++ {
		if !o.skipCeil {
			res, err := b.ceiling(ctx, r)
			if err != nil {
				return fmt.Errorf("ceiling run %d: %w", r, err)
			}
			fmt.Printf("run %d %-12s %s\n", r, "ceiling", res.line())
			ceiling = append(ceiling, res)
		}
		for _, c := range cases {
			res, err := b.agent(ctx, c, r, "")
			if err != nil {
				return fmt.Errorf("%s run %d: %w", c.name, r, err)
			}
			fmt.Printf("run %d %-12s %s\n", r, c.name, res.line())
			results[c.name] = append(results[c.name], res)
			if o.skipCeil || !c.hasCeiling() {
				continue
			}
			res, err = b.caseCeiling(ctx, c, r)
			if err != nil {
				return fmt.Errorf("%s ceiling run %d: %w", c.name, r, err)
			}
			fmt.Printf("run %d %-12s %s\n", r, "  ceiling", res.line())
			ceilings[c.name] = append(ceilings[c.name], res)
		}
		for _, c := range fcases {
			rs, err := b.filesRuns(ctx, c, r)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", c.name, r, err)
			}
			if c.scale {
				for _, res := range rs {
					k := fmt.Sprintf("%s/%d", c.name, res.files)
					fresults[k] = append(fresults[k], res)
				}
				continue
			}
			fmt.Printf("run %d %-12s %s\n", r, c.name, rs[0].line(c))
			fresults[c.name] = append(fresults[c.name], rs[0])
		}
	}
	if o.profileDir != "" {
		for _, c := range cases {
			secs := int(median(results[c.name], func(r result) float64 { return r.dur.Seconds() })) + 1
			if c.paced {
				secs = int(o.pacedFor.Seconds())
			}
			path := filepath.Join(o.profileDir, c.name+".pprof")
			if _, err := b.agent(ctx, c, 0, fmt.Sprintf("%s?seconds=%d", path, secs)); err != nil {
				return fmt.Errorf("%s profiled run: %w", c.name, err)
			}
			fmt.Printf("profile %-10s %s (go tool pprof -top %s %s)\n", c.name, path, o.bin, path)
		}
	}
	if len(cases) > 0 {
		printTable(o, cases, ceiling, ceilings, results)
	}
	if len(fcases) > 0 {
		printFilesTable(o, fcases, fresults, median(results["kafka"], func(r result) float64 { return r.rate() }))
	}
	return nil
}

func (r result) line() string {
	if r.cpuPct > 0 {
		return fmt.Sprintf("%d lines, CPU %.2fs, %.2f%% of one core while paced, peak RSS %.1f MiB, %s",
			r.lines, r.cpuSeconds(), r.cpuPct, r.rssMiB(), checkText(r.check))
	}
	broker := ""
	if r.brokerCPU > 0 {
		broker = fmt.Sprintf(", broker %3.0f%% of a core", r.brokerPct())
	}
	if r.machineBusy > 0 {
		broker += fmt.Sprintf(", machine %3.0f%% of %d cores busy", 100*r.machineBusy/float64(runtime.NumCPU()), runtime.NumCPU())
	}
	if r.first > 0 {
		broker += fmt.Sprintf(", first record after %.2fs", r.first.Seconds())
	}
	switch r.same {
	case 1:
		broker += ", same records"
	case -1:
		broker += ", RECORDS DIFFER from the captured ones"
	}
	return fmt.Sprintf("%6.2fs %9.0f lines/s, CPU %6.2fs %9.0f lines/CPU-s, peak RSS %6.1f MiB%s, %s",
		r.dur.Seconds(), r.rate(), r.cpuSeconds(), r.perCPU(), r.rssMiB(), broker, checkText(r.check))
}

func checkText(err error) string {
	if err != nil {
		return "CHECK FAILED: " + err.Error()
	}
	return "exactly once: ok"
}

func median(rs []result, f func(result) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return medianOf(v)
}

// medianOf sorts v and returns its median.
func medianOf(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// printTable prints the medians: each case with its own ceiling (the row
// under it) and the ratio to it, and the raw-line ceiling at the top.
func printTable(o options, cases []benchCase, ceiling []result, ceilings, results map[string][]result) {
	rate := func(r result) float64 { return r.rate() }
	per := func(r result) float64 { return r.perCPU() }
	cpuPerM := func(r result) float64 { return r.cpuSeconds() * 1e6 / float64(r.lines) }
	rss := func(r result) float64 { return r.rssMiB() }
	rawRate := median(ceiling, rate)
	ratio := func(v, c float64) string {
		if c == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v/c)
	}
	brk := func(rs []result) string {
		b := median(rs, func(r result) float64 { return r.brokerPct() })
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", b)
	}
	busy := func(rs []result) string {
		m := median(rs, func(r result) float64 { return r.machineBusy })
		if m == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*m)
	}
	same := func(rs []result) string {
		s := "-"
		for _, r := range rs {
			switch {
			case r.same < 0:
				return "DIFFER"
			case r.same > 0:
				s = "same"
			}
		}
		return s
	}
	fmt.Printf("\nmedians of %d runs, %d lines; x own: the median of each run's lines/s over its own ceiling's (the row under it: a bare franz-go producer\n", o.runs, o.lines)
	fmt.Printf("of the agent's own records, preloaded, with the sink's producer options; with S3 also a bare gzip uploader of the same\n")
	fmt.Printf("events); x raw: over the bare producer of the raw lines. Ceilings' RSS holds the preloaded records.\n")
	const rowf = "%-14s %-22s %10s %6s %6s %9s %11s %8s %6s %7s  %-5s %s\n"
	fmt.Printf(rowf, "case", "sinks", "lines/s", "x own", "x raw", "CPU s/1M", "lines/CPU-s", "RSS MiB", "broker", "machine", "check", "records")
	row := func(name, desc string, rs []result, own string, raw float64) {
		fmt.Printf(rowf, name, desc, fmt.Sprintf("%.0f", median(rs, rate)), own, ratio(median(rs, rate), raw),
			fmt.Sprintf("%.2f", median(rs, cpuPerM)), fmt.Sprintf("%.0f", median(rs, per)), fmt.Sprintf("%.1f", median(rs, rss)),
			brk(rs), busy(rs), okText(rs), same(rs))
	}
	if len(ceiling) > 0 {
		row("raw ceiling", "bare franz-go, raw", ceiling, "-", rawRate)
	}
	for _, c := range cases {
		rs := results[c.name]
		if c.paced {
			fmt.Printf("%-14s %-22s %s\n", c.name, c.describe(), fmt.Sprintf("%d lines/s for %s: agent CPU %.2f%% of one core, RSS %.1f MiB, %s",
				o.pacedRate, o.pacedFor, median(rs, func(r result) float64 { return r.cpuPct }), median(rs, rss), okText(rs)))
			continue
		}
		cs := ceilings[c.name]
		own := "-"
		if x, ok := ownRatio(rs, cs); ok {
			own = fmt.Sprintf("%.2f", x)
		}
		row(c.name, c.describe(), rs, own, rawRate)
		if len(cs) > 0 {
			row("  ceiling", "bare, same records", cs, "-", rawRate)
		}
	}
	var notes []string
	target := func(name string, ok bool, got string) {
		mark := "MISS"
		if ok {
			mark = "ok  "
		}
		notes = append(notes, fmt.Sprintf("  %s %s: %s", mark, name, got))
	}
	var maxRSS float64
	for _, c := range cases {
		rs := results[c.name]
		if m := median(rs, rss); m > maxRSS {
			maxRSS = m
		}
		switch c.name {
		case "kafka":
			if x, ok := ownRatio(rs, ceilings[c.name]); ok {
				target("kafka, no compression >= 0.8 x its own ceiling (issue 18)", x >= 0.8, fmt.Sprintf("%.2f", x))
			}
			target("kafka, no compression >= 370,000 lines/CPU-s (issue 18)", median(rs, per) >= 370_000, fmt.Sprintf("%.0f", median(rs, per)))
			target("kafka, no compression >= 430,000 lines/s (issue 8)", median(rs, rate) >= 430_000, fmt.Sprintf("%.0f", median(rs, rate)))
		case "both":
			target("both sinks >= 250,000 lines/s (issue 8)", median(rs, rate) >= 250_000, fmt.Sprintf("%.0f", median(rs, rate)))
		case "paced":
			p := median(rs, func(r result) float64 { return r.cpuPct })
			target(c.name+fmt.Sprintf(" at %d lines/s <= 4%% of one core (issue 18)", o.pacedRate), p <= 4, fmt.Sprintf("%.2f%%", p))
		case "paced-kafka":
			p := median(rs, func(r result) float64 { return r.cpuPct })
			target(c.name+fmt.Sprintf(" at %d lines/s < 5%% of one core (issue 8)", o.pacedRate), p < 5, fmt.Sprintf("%.2f%%", p))
		}
	}
	target("peak RSS <= 64 MiB in every case", maxRSS <= 64, fmt.Sprintf("max %.1f MiB", maxRSS))
	fmt.Println("\ntargets (2 cores):")
	fmt.Println(strings.Join(notes, "\n"))
}

// ownRatio is the median over the runs of each run's lines/s over its own
// ceiling's, measured right after it: the machine is shared, and a
// ratio of two medians would pair runs made under different loads.
func ownRatio(rs, cs []result) (float64, bool) {
	if len(cs) == 0 || len(cs) != len(rs) {
		return 0, false
	}
	x := make([]float64, len(rs))
	for i := range rs {
		x[i] = rs[i].rate() / cs[i].rate()
	}
	return medianOf(x), true
}

func okText(rs []result) string {
	for _, r := range rs {
		if r.check != nil {
			return "FAILED"
		}
	}
	return "ok"
}
