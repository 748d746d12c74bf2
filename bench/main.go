// Command bench is poolctl's end-to-end benchmark harness: it drives the
// real binary (bin/poolctl) against a private redis-server, runs every
// scenario of issue 5 several times, prints one table (median, spread,
// target, pass/miss) and writes bench/results.json.
//
//	go run ./bench [-bin bin/poolctl] [-out bench/results.json] [-only REGEXP] [-smoke]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// row is one line of the table.
type row struct {
	key    string
	label  string // %d is replaced by the scenario size where it has one
	unit   string
	target string
	limit  float64
	higher bool // higher is better
	info   bool // reported, no target
	zeroOK bool // 0 is a legitimate value (CPU over a short window)
}

func rows(z sizes) []row {
	n, half := z.Workers, max(z.Workers/10, 1)
	rs := []row{
		{key: "spawn_builtin", label: fmt.Sprintf("0 → %d built-in workers running + registered (from master exec)", n), unit: "s", target: "≤ 0.8 s", limit: 0.8},
		{key: "spawn_sleep", label: fmt.Sprintf("0 → %d `sleep` workers (HUP; state + /proc)", n), unit: "s", target: "≤ 0.3 s", limit: 0.3},
		{key: "scale_down", label: fmt.Sprintf("scale %d → %d idle built-in workers (HUP)", n, half), unit: "s", target: "≤ 0.1 s, same pids", limit: 0.1},
		{key: "hup_grow", label: fmt.Sprintf("HUP foo %d → %d, bar/baz running: new workers registered", z.GrowFrom, 2*z.GrowFrom), unit: "s", target: "≤ 0.1 s", limit: 0.1},
		{key: "hup_grow_spawned", label: "  … new workers spawned (in state file)", unit: "s", info: true},
		{key: "hup_restarts", label: "  … restarts of unchanged workers", unit: "count", target: "0", limit: 0, zeroOK: true},
		{key: "drain_1", label: fmt.Sprintf("drain %d Noop jobs, 1 worker", z.DrainJobs), unit: "jobs/s", info: true},
		{key: "drain_2", label: "  … 2 workers", unit: "jobs/s", info: true},
		{key: "drain_4", label: "  … 4 workers", unit: "jobs/s", info: true},
		{key: "drain_8", label: "  … 8 workers", unit: "jobs/s", info: true},
		{key: "drain_best", label: "  … best of the above (medians)", unit: "jobs/s", target: "≥ 20,000 jobs/s", limit: 20000, higher: true},
		{key: "ceiling", label: "ceiling: same command mix (batches of 16), 1 pipelined client", unit: "jobs/s", info: true},
		{key: "ceiling_single", label: "  … the mix of one job per round trip (before batches)", unit: "jobs/s", info: true},
		{key: "drain_vs_ceiling", label: "  … best drain as % of the ceiling", unit: "%", target: "≥ 50 %", limit: 50, higher: true},
		{key: "latency_p50", label: "pick-up latency p50 (RPUSH → ack; handler starts before)", unit: "ms", target: "≤ 2 ms", limit: 2},
		{key: "latency_p99", label: "pick-up latency p99 (RPUSH → ack)", unit: "ms", target: "≤ 20 ms", limit: 20},
		{key: "latency_record_p50", label: "  … p50 RPUSH → worker holds the job (SET record)", unit: "ms", info: true},
		{key: "latency_record_p99", label: "  … p99 RPUSH → worker holds the job", unit: "ms", info: true},
		{key: "master_idle_cpu", label: fmt.Sprintf("master, %d idle workers, %s: CPU", n, z.MasterIdle), unit: "%", target: "≤ 0.1 %", limit: 0.1, zeroOK: true},
		{key: "master_idle_rss", label: "  … master RSS", unit: "MiB", target: "≤ 15 MB", limit: 15},
		{key: "master_idle_anon", label: "  … of which anonymous (RssAnon)", unit: "MiB", info: true},
		{key: "cockpit_cpu", label: fmt.Sprintf("master sampling every 1 s, nobody watching: %d idle workers, 50 queues: CPU", n), unit: "%", target: "≤ 0.5 %", limit: 0.5, zeroOK: true},
		{key: "cockpit_cpu_watched", label: "  … with a shell reading sample.json every second (published)", unit: "%", target: "≤ 0.75 %", limit: 0.75, zeroOK: true},
		{key: "cockpit_cpu_off", label: "  … same pool, sample_interval: 1h (baseline)", unit: "%", info: true, zeroOK: true},
		{key: "cockpit_sample_kb", label: "  … sample.json written each second", unit: "KiB", info: true},
		{key: "worker_idle_rss", label: "built-in worker idle: RSS (median)", unit: "MiB", target: "≤ 10 MB", limit: 10},
		{key: "worker_idle_anon", label: "  … of which anonymous (RssAnon; the rest is shared binary pages)", unit: "MiB", info: true},
		{key: "worker_idle_cpu", label: fmt.Sprintf("  … CPU (mean over %d workers, %s)", n, z.WorkerIdle), unit: "%", target: "~0 (≤ 0.05 %)", limit: 0.05, zeroOK: true},
		{key: "cpu_per_spawn", label: fmt.Sprintf("master CPU per worker spawned (0 → %d sleep)", n), unit: "ms", target: "≤ 1.5 ms", limit: 1.5, zeroOK: true},
		{key: "status_shell", label: fmt.Sprintf("`status --json`, %d workers, in a running shell", z.Status), unit: "ms", target: "≤ 50 ms", limit: 50},
		{key: "status_json", label: "  … one-shot: printf 'status --json' | poolctl attach (process start + attach)", unit: "ms", info: true},
		{key: "status_blocks", label: "  … building blocks in process (state + pstree + Summarize)", unit: "ms", info: true},
		{key: "quit", label: fmt.Sprintf("QUIT, %d idle workers, until every process is gone", n), unit: "s", target: "≤ 0.2 s", limit: 0.2},
		{key: "enqueue", label: fmt.Sprintf("`poolctl enqueue -n %d`", z.Enqueue), unit: "s", target: "≤ 2 s", limit: 2},
	}
	rs = append(rs, idleRows(z)...)
	return append(rs, scaleRows(z)...)
}

// Result is one row of results.json.
type Result struct {
	Key      string    `json:"key"`
	Scenario string    `json:"scenario"`
	Unit     string    `json:"unit"`
	Runs     []float64 `json:"runs"`
	Median   float64   `json:"median"`
	Min      float64   `json:"min"`
	Max      float64   `json:"max"`
	Target   string    `json:"target,omitempty"`
	Pass     *bool     `json:"pass,omitempty"` // absent for rows without a target
	Notes    []string  `json:"notes,omitempty"`
}

// Report is results.json.
type Report struct {
	Date    string            `json:"date"`
	Commit  string            `json:"commit"`
	Smoke   bool              `json:"smoke,omitempty"`
	Machine map[string]string `json:"machine"`
	Results []Result          `json:"results"`
	Errors  []string          `json:"errors,omitempty"`
}

func main() {
	bin := flag.String("bin", "bin/poolctl", "poolctl `binary` to measure")
	out := flag.String("out", "bench/results.json", "write the results as JSON to `FILE` (\"\" = don't)")
	only := flag.String("only", "", "run only the scenarios whose name matches `REGEXP` (lifecycle, spawn-sleep, scale-down, hup-grow, drain-N, ceiling, latency, status, enqueue, cockpit, idle, scale)")
	smoke := flag.Bool("smoke", false, "run every scenario once at tiny scale")
	flag.Parse()
	z := fullSizes
	if *smoke {
		z = smokeSizes
	}
	var filter *regexp.Regexp
	if *only != "" {
		filter = regexp.MustCompile(*only)
	}
	rep, err := runAll(*bin, z, filter, os.Stdout, *smoke)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if *out != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Printf("\nwrote %s\n", *out)
	}
}

// runAll starts a private redis-server, runs the scenarios and prints the
// table to w.
func runAll(bin string, z sizes, filter *regexp.Regexp, w io.Writer, smoke bool) (*Report, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make build` first)", bin, err)
	}
	tmp, err := os.MkdirTemp("", "poolctl-bench-")
	if err != nil {
		return nil, err
	}
	if os.Getenv("BENCH_KEEP") == "" {
		defer os.RemoveAll(tmp)
	} else {
		fmt.Fprintf(w, "keeping %s (BENCH_KEEP)\n", tmp)
	}
	srv, err := redistest.Launch(tmp, false)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 4})
	defer rdb.Close()
	e := &env{bin: bin, srv: srv, rdb: rdb, tmp: tmp, logf: func(f string, a ...any) { fmt.Fprintf(w, "  ! "+f+"\n", a...) }}

	// Ctrl-C: stop the Redis we started (its masters die with us: Pdeathsig).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			srv.Stop()
			os.RemoveAll(tmp)
			os.Exit(130)
		}
	}()

	rep := &Report{Date: time.Now().UTC().Format(time.RFC3339), Commit: gitCommit(), Smoke: smoke, Machine: machine(rdb)}
	values := map[string][]float64{}
	notes := map[string][]string{}
	start := time.Now()
	for _, s := range scenarios() {
		if filter != nil && !filter.MatchString(s.name) {
			continue
		}
		n := s.runs(z)
		fmt.Fprintf(w, "%-12s", s.name)
		for i := 0; i < n; i++ {
			if err := e.flush(); err != nil {
				return nil, err
			}
			ms, err := s.run(e, z, i)
			if err != nil {
				msg := fmt.Sprintf("%s run %d: %v", s.name, i+1, err)
				rep.Errors = append(rep.Errors, msg)
				fmt.Fprintf(w, " error\n  ! %s\n%-12s", msg, "")
				continue
			}
			for _, m := range ms {
				values[m.key] = append(values[m.key], m.value)
				if m.note != "" {
					notes[m.key] = append(notes[m.key], m.note)
				}
			}
			fmt.Fprint(w, ".")
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "scenarios took %s\n\n", time.Since(start).Round(time.Second))

	// Derived rows.
	best := 0.0
	for _, k := range []string{"drain_1", "drain_2", "drain_4", "drain_8"} {
		if v := values[k]; len(v) > 0 {
			best = max(best, median(v))
		}
	}
	if best > 0 {
		values["drain_best"] = []float64{best}
		if c := values["ceiling"]; len(c) > 0 {
			values["drain_vs_ceiling"] = []float64{best / median(c) * 100}
		}
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmedian\tmin – max\truns\ttarget\tresult")
	for _, r := range rows(z) {
		v := values[r.key]
		if len(v) == 0 {
			continue
		}
		res := Result{Key: r.key, Scenario: strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.label), "…")), Unit: r.unit, Runs: v,
			Median: median(v), Min: minOf(v), Max: maxOf(v), Notes: notes[r.key]}
		if strings.HasPrefix(strings.TrimSpace(r.label), "…") {
			res.Scenario = r.label
		}
		verdict := ""
		if !r.info {
			pass := res.Median <= r.limit
			if r.higher {
				pass = res.Median >= r.limit
			}
			if len(res.Notes) > 0 && r.key != "drain_1" {
				pass = false
			}
			res.Target, res.Pass = r.target, &pass
			verdict = "miss"
			if pass {
				verdict = "pass"
			}
		}
		if len(res.Notes) > 0 {
			verdict += " (" + res.Notes[0] + ")"
		}
		rep.Results = append(rep.Results, res)
		fmt.Fprintf(tw, "%s\t%s %s\t%s – %s\t%d\t%s\t%s\n", r.label, format(res.Median, r.unit), r.unit,
			format(res.Min, r.unit), format(res.Max, r.unit), len(v), r.target, verdict)
	}
	tw.Flush()
	for _, e := range rep.Errors {
		fmt.Fprintln(w, "error:", e)
	}
	fmt.Fprintf(w, "\n%s · %s cores · Linux %s · %s · redis %s · %s · %s\n", rep.Machine["cpu"], rep.Machine["cores"],
		rep.Machine["kernel"], rep.Machine["go"], rep.Machine["redis"], rep.Date, rep.Commit)
	return rep, nil
}

func format(v float64, unit string) string {
	switch {
	case unit == "jobs/s" || unit == "count":
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func minOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func machine(rdb *redis.Client) map[string]string {
	m := map[string]string{
		"cores": fmt.Sprint(runtime.NumCPU()),
		"go":    runtime.Version(),
		"os":    runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, _ := strings.Cut(string(b), "\n"); line != "" {
			m["memory"] = strings.Join(strings.Fields(line)[1:], " ")
		}
	}
	if info, err := rdb.Info(bg, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				m["redis"] = v
			}
		}
	}
	return m
}

// gitCommit is HEAD, with "-dirty" when the tree has changes (read-only
// git commands).
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "-dirty"
	}
	return c
}
