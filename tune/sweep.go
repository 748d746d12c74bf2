package tune

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/poolctl/poolctl/stats"
)

// Point is one measured worker count.
type Point struct {
	Workers    int     `json:"workers"`
	Throughput float64 `json:"throughput"` // jobs of the queue finished per second
	// P95 is the 95th percentile of the queue's job time over the
	// measurement, nil when no job finished.
	P95        *float64 `json:"p95_seconds"`
	CPUPercent float64  `json:"cpu_percent"` // host CPU busy %, mean over the measurement
	Load1      float64  `json:"load1"`       // host load average at its end
	// MemFreeBytes is the host's available memory, the lowest seen.
	MemFreeBytes uint64 `json:"mem_free_bytes"`
	// WorkerRSSBytes is the mean resident memory of one worker of the
	// queue list (its job processes included).
	WorkerRSSBytes uint64  `json:"worker_rss_bytes"`
	Jobs           int64   `json:"jobs"`    // jobs finished during the measurement
	Failed         int64   `json:"failed"`  // of which failed
	Seconds        float64 `json:"seconds"` // how long it was measured
	// WarmupSeconds is how long the count ran before the measurement;
	// Steady is false when throughput had not settled by MaxWarmup.
	WarmupSeconds float64 `json:"warmup_seconds"`
	Steady        bool    `json:"steady"`
	Phase         string  `json:"phase"` // PhaseSweep or PhaseRefine
}

// Phases of a point.
const (
	PhaseSweep  = "sweep"  // the doubling sweep
	PhaseRefine = "refine" // between the best step's neighbours, or for the model
)

// Driver is what a sweep needs from a pool. The shell implements it over
// the runtime directory; tests fake it.
type Driver interface {
	// SetWorkers sets the queue list's worker count and returns once that
	// many workers run.
	SetWorkers(ctx context.Context, n int) error
	// Next returns the first sample the master publishes after after,
	// waiting for it.
	Next(ctx context.Context, after time.Time) (*stats.Sample, error)
}

// Config is one sweep.
type Config struct {
	Queue string // the queue whose throughput is measured
	List  string // its queue list, whose workers are counted
	Min   int
	Max   int
	// Step is how long each count is measured once steady.
	Step time.Duration
	// MaxWarmup bounds the wait for steady throughput (default the
	// larger of 3 s and Step); past it the count is measured anyway and
	// its point says it was not steady.
	MaxWarmup time.Duration
	// Refine is how many counts are added between the best step's
	// neighbours (default 3).
	Refine int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Progress gets one line per event, without a newline (nil: none).
	Progress func(format string, args ...any)
}

// ErrRanDry is wrapped by the error of a sweep whose queue emptied while
// a count was measured: its throughput would be the arrival rate, not
// what the workers can do.
var ErrRanDry = errors.New("the queue ran dry")

// ErrJobsFail is wrapped by the error of a sweep whose jobs mostly fail:
// a failing job is fast, and its throughput says nothing.
var ErrJobsFail = errors.New("the jobs fail")

// errQueueMissing is the condition of a sample without the queue.
var errQueueMissing = errors.New("is not in the master's sample")

// Doubling is the sweep's plan: min, 2·min, 4·min, … below max, then max.
func Doubling(min, max int) []int {
	var out []int
	for n := min; n < max; n *= 2 {
		out = append(out, n)
	}
	return append(out, max)
}

// RefineCounts returns up to k unmeasured counts strictly between the
// neighbours of the best measured count (the best itself when it is at
// an end), spread evenly over that range, in ascending order.
func RefineCounts(points []Point, k int) []int {
	if len(points) == 0 || k <= 0 {
		return nil
	}
	ps := sortedByWorkers(points)
	bi := 0
	for i, p := range ps {
		if p.Throughput > ps[bi].Throughput {
			bi = i
		}
	}
	lo, hi := ps[bi].Workers, ps[bi].Workers
	if bi > 0 {
		lo = ps[bi-1].Workers
	}
	if bi < len(ps)-1 {
		hi = ps[bi+1].Workers
	}
	measured := map[int]bool{}
	for _, p := range ps {
		measured[p.Workers] = true
	}
	var cand []int
	for n := lo + 1; n < hi; n++ {
		if !measured[n] {
			cand = append(cand, n)
		}
	}
	if len(cand) <= k {
		return cand
	}
	// The candidates nearest to k evenly spaced values of (lo, hi).
	taken := map[int]bool{}
	for i := 1; i <= k; i++ {
		target := float64(lo) + float64(hi-lo)*float64(i)/float64(k+1)
		pick := -1
		for _, c := range cand {
			if taken[c] {
				continue
			}
			if pick < 0 || math.Abs(float64(c)-target) <= math.Abs(float64(pick)-target) {
				pick = c
			}
		}
		taken[pick] = true
	}
	out := make([]int, 0, k)
	for _, c := range cand {
		if taken[c] {
			out = append(out, c)
		}
	}
	return out
}

// FillCounts returns the counts to add, within [min, max], so that there
// are at least want measured points for the model: each splits the
// widest gap left between measured counts. Ascending order.
func FillCounts(points []Point, min, max, want int) []int {
	have := map[int]bool{}
	for _, p := range points {
		have[p.Workers] = true
	}
	var out []int
	for len(have) < want {
		ns := make([]int, 0, len(have))
		for n := range have {
			ns = append(ns, n)
		}
		sort.Ints(ns)
		// Counts below the first measured one and above the last are
		// gaps too, against the bounds.
		bestLo, bestHi := 0, 0
		gap := func(lo, hi int) {
			if hi-lo > bestHi-bestLo {
				bestLo, bestHi = lo, hi
			}
		}
		if len(ns) == 0 {
			gap(min-1, max+1)
		} else {
			gap(min-1, ns[0])
			for i := 1; i < len(ns); i++ {
				gap(ns[i-1], ns[i])
			}
			gap(ns[len(ns)-1], max+1)
		}
		if bestHi-bestLo < 2 {
			break // every count of [min, max] is measured
		}
		n := (bestLo + bestHi) / 2
		have[n] = true
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

func sortedByWorkers(points []Point) []Point {
	ps := append([]Point(nil), points...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Workers < ps[j].Workers })
	return ps
}

// Run sweeps d: the doubling plan, then the refinement around the best
// step, then, when fewer than MinFitPoints were measured, the counts the
// model needs. It returns the points measured, also when it fails or ctx
// ends part way.
func Run(ctx context.Context, d Driver, cfg Config) ([]Point, error) {
	if cfg.Min < 1 || cfg.Max < cfg.Min {
		return nil, fmt.Errorf("tune: bad range %d–%d", cfg.Min, cfg.Max)
	}
	if cfg.Step <= 0 {
		return nil, fmt.Errorf("tune: bad step %v", cfg.Step)
	}
	if cfg.MaxWarmup <= 0 {
		cfg.MaxWarmup = max(3*time.Second, cfg.Step)
	}
	if cfg.Refine == 0 {
		cfg.Refine = 3
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, ...any) {}
	}
	var points []Point
	run := func(counts []int, phase string) error {
		for _, n := range counts {
			p, err := measure(ctx, d, cfg, n)
			if err != nil {
				return err
			}
			p.Phase = phase
			points = append(points, p)
		}
		return nil
	}
	if err := run(Doubling(cfg.Min, cfg.Max), PhaseSweep); err != nil {
		return points, err
	}
	if err := run(RefineCounts(points, cfg.Refine), PhaseRefine); err != nil {
		return points, err
	}
	if err := run(FillCounts(points, cfg.Min, cfg.Max, MinFitPoints), PhaseRefine); err != nil {
		return points, err
	}
	return points, nil
}

// reading is what a sample says of the queue and its list.
type reading struct {
	at        time.Time
	interval  time.Duration
	depth     int64
	processed int64
	failed    int64
	timing    stats.Histogram
	host      stats.HostSample
	rss       uint64 // mean per worker of the list
	workers   int
	// done is each of the list's workers' job count (pid → jobs since
	// it started), for pools whose workers keep no per-queue stats.
	done map[int]int64
}

func read(smp *stats.Sample, cfg Config) (reading, error) {
	r := reading{at: smp.TS, interval: time.Duration(smp.Interval * float64(time.Second)), host: smp.Host}
	if smp.RedisError != "" {
		return r, fmt.Errorf("the master cannot read Redis: %s", smp.RedisError)
	}
	found := false
	for _, q := range smp.Queues {
		if q.Name == cfg.Queue {
			r.depth, r.processed, r.failed, r.timing, found = q.Depth, q.Processed, q.Failed, q.Timing, true
			break
		}
	}
	if !found {
		return r, fmt.Errorf("queue %s %w", cfg.Queue, errQueueMissing)
	}
	var rss uint64
	r.done = map[int]int64{}
	for _, w := range smp.Workers {
		if w.Queues == cfg.List {
			r.workers++
			rss += w.RSSBytes
			r.done[w.PID] = w.JobsDone
		}
	}
	if r.workers > 0 {
		r.rss = rss / uint64(r.workers)
	}
	return r, nil
}

// jobs is how many jobs finished between two readings: the queue's own
// count (every host's workers, failures included) when it moves, else,
// for workers that keep no per-queue stats, the job counts of the list's
// workers (a worker new in b counts from its start).
func jobs(a, b reading) int64 {
	if n := b.processed - a.processed; n > 0 {
		return n
	}
	var n int64
	for pid, d := range b.done {
		if d0, ok := a.done[pid]; ok && d >= d0 {
			n += d - d0
		} else if !ok {
			n += d
		}
	}
	return n
}

// rate is the throughput between two readings.
func rate(a, b reading) float64 {
	dt := b.at.Sub(a.at).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(jobs(a, b)) / dt
}

// measure sets n workers, waits until their throughput is steady, and
// measures it for cfg.Step.
func measure(ctx context.Context, d Driver, cfg Config, n int) (Point, error) {
	cfg.Progress("%d workers: starting", n)
	if err := d.SetWorkers(ctx, n); err != nil {
		return Point{}, fmt.Errorf("set %d workers: %w", n, err)
	}
	live := cfg.Now()
	// A queue new to Redis shows in the samples of a glob's list one
	// sample late: a few samples without it are waited out.
	next := func(after time.Time) (reading, error) {
		for missing := 0; ; missing++ {
			smp, err := d.Next(ctx, after)
			if err != nil {
				return reading{}, err
			}
			r, err := read(smp, cfg)
			if errors.Is(err, errQueueMissing) && missing < 5 {
				after = smp.TS
				continue
			}
			return r, err
		}
	}
	// Warm-up: throughput over the last window against the window
	// before it, each at least two sample intervals and half a second.
	first, err := next(live)
	if err != nil {
		return Point{}, err
	}
	hist := []reading{first}
	window := max(2*first.interval, 500*time.Millisecond)
	steady := false
	for {
		last := hist[len(hist)-1]
		if last.at.Sub(first.at) >= 2*window {
			mid := at(hist, last.at.Add(-window))
			early := at(hist, mid.at.Add(-window))
			r1, r2 := rate(early, mid), rate(mid, last)
			// Within 15%, or within two jobs over the window (a slow
			// queue's counts are small integers).
			if math.Abs(r2-r1) <= 0.15*math.Max(r1, r2) || math.Abs(r2-r1)*window.Seconds() <= 2 {
				steady = r2 > 0 || r1 > 0
			}
			if steady || last.at.Sub(first.at) >= cfg.MaxWarmup {
				break
			}
		}
		r, err := next(last.at)
		if err != nil {
			return Point{}, err
		}
		if r.depth == 0 {
			return Point{}, fmt.Errorf("%w at %d workers (no job left to take while warming up)", ErrRanDry, n)
		}
		hist = append(hist, r)
	}
	start := hist[len(hist)-1]
	cfg.Progress("%d workers: steady after %.1fs, measuring %v", n, start.at.Sub(live).Seconds(), cfg.Step)
	p := Point{Workers: n, Steady: steady, WarmupSeconds: math.Max(0, start.at.Sub(live).Seconds()), MemFreeBytes: start.host.MemFreeBytes}
	var cpu float64
	var samples int
	var rss uint64
	end := start
	for end.at.Sub(start.at) < cfg.Step {
		r, err := next(end.at)
		if err != nil {
			return Point{}, err
		}
		if r.depth == 0 {
			return Point{}, fmt.Errorf("%w at %d workers (the measurement needs a backlog for the whole step)", ErrRanDry, n)
		}
		cpu += r.host.CPUPercent
		rss += r.rss
		samples++
		if r.host.MemFreeBytes > 0 && (p.MemFreeBytes == 0 || r.host.MemFreeBytes < p.MemFreeBytes) {
			p.MemFreeBytes = r.host.MemFreeBytes
		}
		end = r
	}
	p.Seconds = end.at.Sub(start.at).Seconds()
	p.Jobs = jobs(start, end)
	p.Failed = end.failed - start.failed
	p.Throughput = rate(start, end)
	p.CPUPercent = cpu / float64(samples)
	p.WorkerRSSBytes = rss / uint64(samples)
	p.Load1 = end.host.Load1
	if q, ok := end.timing.Sub(start.timing).Quantile(0.95); ok {
		p.P95 = &q
	}
	if p.Jobs <= 0 {
		return p, fmt.Errorf("no job of %s finished in %.1fs at %d workers (are the workers paused, or the jobs longer than the step?)", cfg.Queue, p.Seconds, n)
	}
	if p.Failed*2 > p.Jobs {
		return p, fmt.Errorf("%w: %d of the %d jobs that finished at %d workers failed (see the failed list); their throughput means nothing", ErrJobsFail, p.Failed, p.Jobs, n)
	}
	cfg.Progress("%d workers: %s jobs/s, p95 %s, CPU %.0f%%", n, formatRate(p.Throughput), formatSeconds(p.P95), p.CPUPercent)
	return p, nil
}

// Pace is the throughput of queue between two samples (as the sweep
// measures it: the queue's count, else the list's workers' job counts)
// and how many workers of list the later one shows.
func Pace(a, b *stats.Sample, queue, list string) (jobsPerSecond float64, workers int, err error) {
	cfg := Config{Queue: queue, List: list}
	ra, err := read(a, cfg)
	if err != nil {
		return 0, 0, err
	}
	rb, err := read(b, cfg)
	if err != nil {
		return 0, 0, err
	}
	return rate(ra, rb), rb.workers, nil
}

// at returns the latest reading of hist taken at or before t (the first
// one when none is).
func at(hist []reading, t time.Time) reading {
	out := hist[0]
	for _, r := range hist {
		if r.at.After(t) {
			break
		}
		out = r
	}
	return out
}

// formatSeconds prints a job time, "-" for none.
func formatSeconds(s *float64) string {
	if s == nil {
		return "-"
	}
	d := time.Duration(*s * float64(time.Second))
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fms", *s*1000)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", *s*1000)
	default:
		return fmt.Sprintf("%.2fs", *s)
	}
}
