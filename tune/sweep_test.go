package tune

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/stats"
)

func TestDoubling(t *testing.T) {
	cases := []struct {
		min, max int
		want     []int
	}{
		{1, 8, []int{1, 2, 4, 8}},
		{1, 16, []int{1, 2, 4, 8, 16}},
		{1, 12, []int{1, 2, 4, 8, 12}},
		{3, 20, []int{3, 6, 12, 20}},
		{5, 5, []int{5}},
		{1, 1, []int{1}},
		{2, 3, []int{2, 3}},
	}
	for _, c := range cases {
		if got := Doubling(c.min, c.max); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Doubling(%d, %d) = %v, want %v", c.min, c.max, got, c.want)
		}
	}
}

func pts(pairs ...float64) []Point {
	var out []Point
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, Point{Workers: int(pairs[i]), Throughput: pairs[i+1]})
	}
	return out
}

func TestRefineCounts(t *testing.T) {
	cases := []struct {
		name string
		pts  []Point
		k    int
		want []int
	}{
		{"best in the middle", pts(1, 100, 2, 190, 4, 300, 8, 250), 3, []int{3, 5, 7}},
		{"best at the top: between it and its lower neighbour", pts(1, 20, 2, 40, 4, 80, 8, 160, 16, 320), 3, []int{10, 12, 14}},
		{"best at the bottom", pts(1, 100, 2, 90, 4, 60), 3, nil},
		{"only one count between", pts(1, 100, 2, 190, 4, 180), 3, []int{3}},
		{"some already measured", pts(1, 100, 2, 190, 3, 250, 4, 300, 8, 250), 3, []int{5, 6, 7}},
		{"k = 1: the middle", pts(4, 100, 8, 200, 16, 150), 1, []int{10}},
	}
	for _, c := range cases {
		if got := RefineCounts(c.pts, c.k); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: RefineCounts = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestFillCounts(t *testing.T) {
	if got := FillCounts(pts(1, 1, 2, 1, 3, 1, 4, 1, 8, 1), 1, 8, 6); !reflect.DeepEqual(got, []int{6}) {
		t.Errorf("one short: %v, want [6]", got)
	}
	if got := FillCounts(pts(1, 1, 2, 1, 3, 1), 1, 3, 6); got != nil {
		t.Errorf("every count of 1–3 measured: %v, want none", got)
	}
	if got := FillCounts(pts(1, 1, 2, 1, 4, 1, 8, 1, 16, 1, 12, 1), 1, 16, 6); got != nil {
		t.Errorf("already 6: %v", got)
	}
	if got := FillCounts(pts(4, 1, 5, 1), 4, 20, 6); !reflect.DeepEqual(got, []int{7, 9, 13, 17}) {
		t.Errorf("wide range: %v", got)
	}
}

// fakePool is a pool whose queue list serves throughput x(n) jobs/s at n
// workers, sampled every interval on a fake clock; a count runs at half
// speed for warm after it is set.
type fakePool struct {
	now      time.Time
	interval time.Duration
	warm     time.Duration
	x        func(n int) float64
	wobble   func(k int) float64 // relative noise of the k-th sample's rate

	n         int
	since     time.Time
	processed float64
	failed    float64
	failShare float64
	depth     int64
	rss       uint64
	k         int
	sets      []int
	onSet     func(n int)
	// workerCounts: the queue keeps no stats (workers before per-queue
	// stats); only each worker's own job count moves.
	workerCounts bool
	perWorker    map[int]float64 // pid → jobs done
	hideQueue    int             // samples left that lack the queue
}

func newFakePool(x func(int) float64) *fakePool {
	return &fakePool{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), interval: 200 * time.Millisecond, warm: 400 * time.Millisecond, x: x, depth: 1000, rss: 20 << 20}
}

func (f *fakePool) SetWorkers(ctx context.Context, n int) error {
	f.sets = append(f.sets, n)
	if f.onSet != nil {
		f.onSet(n)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.n, f.since = n, f.now
	f.now = f.now.Add(50 * time.Millisecond) // workers start
	return nil
}

func (f *fakePool) Next(ctx context.Context, after time.Time) (*stats.Sample, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for {
		f.now = f.now.Add(f.interval)
		r := f.x(f.n)
		if f.now.Sub(f.since) <= f.warm {
			r /= 2
		}
		if f.wobble != nil {
			r *= 1 + f.wobble(f.k)
		}
		f.k++
		done := r * f.interval.Seconds()
		f.processed += done
		f.failed += done * f.failShare
		if f.perWorker == nil {
			f.perWorker = map[int]float64{}
		}
		for i := 0; i < f.n; i++ {
			f.perWorker[100+i] += done / float64(f.n)
		}
		if f.now.After(after) {
			break
		}
	}
	jobs := int64(f.processed)
	counts := make([]int64, queue.NumBuckets)
	counts[2] = jobs // every job 2–5 ms
	ws := make([]stats.WorkerSample, f.n)
	for i := range ws {
		ws[i] = stats.WorkerSample{PID: 100 + i, Queues: "cpu,other", RSSBytes: f.rss, JobsDone: int64(f.perWorker[100+i])}
	}
	qs := stats.QueueSample{Name: "cpu", Depth: f.depth, Processed: jobs, Failed: int64(f.failed), Timing: stats.Histogram{Count: jobs, Counts: counts}}
	if f.workerCounts {
		qs = stats.QueueSample{Name: "cpu", Depth: f.depth}
	}
	queues := []stats.QueueSample{{Name: "other", Depth: 0}, qs}
	if f.hideQueue > 0 {
		f.hideQueue--
		queues = queues[:1]
	}
	ws = append(ws, stats.WorkerSample{PID: 99, Queues: "elsewhere", RSSBytes: 1 << 30})
	return &stats.Sample{
		TS: f.now, Interval: f.interval.Seconds(),
		Host:    stats.HostSample{CPUPercent: math.Min(100, 25*float64(f.n)), Load1: float64(f.n), MemFreeBytes: 4 << 30},
		Queues:  queues,
		Workers: ws,
	}, nil
}

func sweepConfig() Config {
	return Config{Queue: "cpu", List: "cpu,other", Min: 1, Max: 8, Step: time.Second}
}

// A pool that peaks at 4 workers: the doubling sweep, then three counts
// between 2 and 8; each point's throughput is the pool's, measured after
// the warm-up; the model fitted to the points finds the curve; the
// recommendation is the smallest count within 5% of the best.
func TestRunSweepsRefinesAndMeasures(t *testing.T) {
	truth := USL{Sigma: 0.05, Kappa: 0.06, Lambda: 100}
	f := newFakePool(func(n int) float64 { return truth.Throughput(float64(n)) })
	cfg := sweepConfig()
	cfg.Now = func() time.Time { return f.now }
	var progress []string
	cfg.Progress = func(format string, args ...any) { progress = append(progress, fmt.Sprintf(format, args...)) }
	points, err := Run(context.Background(), f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 2, 4, 8, 3, 5, 7}; !reflect.DeepEqual(f.sets, want) {
		t.Fatalf("counts set %v, want %v", f.sets, want)
	}
	var obs []Observation
	for _, p := range points {
		want := truth.Throughput(float64(p.Workers))
		if !within(p.Throughput, want, 0.03) {
			t.Errorf("%d workers: %.1f jobs/s, want %.1f (warm-up counted?)", p.Workers, p.Throughput, want)
		}
		if p.Seconds < 1 || p.Seconds > 1.5 {
			t.Errorf("%d workers measured %.2fs, want the 1s step", p.Workers, p.Seconds)
		}
		if !p.Steady || p.WarmupSeconds < 0.4 {
			t.Errorf("%d workers: steady %v after %.2fs, want steady after the 0.4s warm-up", p.Workers, p.Steady, p.WarmupSeconds)
		}
		if p.P95 == nil || *p.P95 <= 0.002 || *p.P95 > 0.005 {
			t.Errorf("%d workers: p95 %v, want within the 2–5ms bucket", p.Workers, p.P95)
		}
		if p.WorkerRSSBytes != 20<<20 || p.CPUPercent != math.Min(100, 25*float64(p.Workers)) || p.Load1 != float64(p.Workers) || p.MemFreeBytes != 4<<30 {
			t.Errorf("%d workers: rss %d cpu %.0f load %.0f mem %d: not the list's figures", p.Workers, p.WorkerRSSBytes, p.CPUPercent, p.Load1, p.MemFreeBytes)
		}
		wantPhase := PhaseSweep
		if p.Workers == 3 || p.Workers == 5 || p.Workers == 7 {
			wantPhase = PhaseRefine
		}
		if p.Phase != wantPhase {
			t.Errorf("%d workers: phase %s, want %s", p.Workers, p.Phase, wantPhase)
		}
		obs = append(obs, Observation{N: float64(p.Workers), X: p.Throughput})
	}
	u, err := Fit(obs)
	if err != nil {
		t.Fatal(err)
	}
	if !within(u.Peak(), truth.Peak(), 0.1) {
		t.Errorf("model peak %.2f, want %.2f", u.Peak(), truth.Peak())
	}
	if rec := Recommend(points, Limits{}); rec.Workers != 3 {
		t.Errorf("recommended %d (%s), want 3 (%.0f jobs/s, within 5%% of %.0f at 4)", rec.Workers, rec.Reason, truth.Throughput(3), truth.Throughput(4))
	}
	if !strings.Contains(strings.Join(progress, "\n"), "4 workers: ") {
		t.Errorf("no progress for 4 workers: %q", progress)
	}
}

// Workers that keep no per-queue stats: throughput from the list's
// workers' own job counts (the other list's worker does not count), and
// no p95.
func TestRunFromWorkerJobCounts(t *testing.T) {
	f := newFakePool(func(n int) float64 { return 40 * float64(n) })
	f.workerCounts = true
	cfg := sweepConfig()
	cfg.Max = 4
	cfg.Now = func() time.Time { return f.now }
	points, err := Run(context.Background(), f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range points {
		if !within(p.Throughput, 40*float64(p.Workers), 0.05) || p.P95 != nil {
			t.Errorf("%d workers: %.1f jobs/s p95 %v, want %d and none", p.Workers, p.Throughput, p.P95, 40*p.Workers)
		}
	}
}

// Throughput that keeps swinging 40% is measured anyway after MaxWarmup,
// and the point says it was not steady.
func TestRunUnsteadyThroughput(t *testing.T) {
	f := newFakePool(func(n int) float64 { return 100 * float64(n) })
	f.wobble = func(k int) float64 { return 0.4 * float64(1-2*((k/3)%2)) }
	cfg := sweepConfig()
	cfg.Max, cfg.MaxWarmup = 1, 2*time.Second
	cfg.Now = func() time.Time { return f.now }
	points, err := Run(context.Background(), f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != 1 || points[0].Steady || points[0].WarmupSeconds < 2 {
		t.Fatalf("points %+v, want one unsteady point after the 2s warm-up", points)
	}
}

func TestRunRanDry(t *testing.T) {
	f := newFakePool(func(n int) float64 { return 50 * float64(n) })
	f.depth = 0
	cfg := sweepConfig()
	cfg.Now = func() time.Time { return f.now }
	_, err := Run(context.Background(), f, cfg)
	if !errors.Is(err, ErrRanDry) || !strings.Contains(err.Error(), "at 1 workers") {
		t.Fatalf("empty queue: %v, want ErrRanDry at 1 workers", err)
	}
}

func TestRunFailingJobs(t *testing.T) {
	f := newFakePool(func(n int) float64 { return 500 * float64(n) })
	f.failShare = 1
	cfg := sweepConfig()
	cfg.Now = func() time.Time { return f.now }
	_, err := Run(context.Background(), f, cfg)
	if !errors.Is(err, ErrJobsFail) {
		t.Fatalf("failing jobs: %v, want ErrJobsFail", err)
	}
}

func TestRunNothingFinishes(t *testing.T) {
	f := newFakePool(func(int) float64 { return 0 })
	cfg := sweepConfig()
	cfg.Now = func() time.Time { return f.now }
	_, err := Run(context.Background(), f, cfg)
	if err == nil || !strings.Contains(err.Error(), "no job of cpu finished") {
		t.Fatalf("no throughput: %v", err)
	}
}

// Cancelling stops the sweep where it is and returns what was measured.
func TestRunCancelled(t *testing.T) {
	f := newFakePool(func(n int) float64 { return 50 * float64(n) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.onSet = func(n int) {
		if n == 4 {
			cancel()
		}
	}
	cfg := sweepConfig()
	cfg.Now = func() time.Time { return f.now }
	points, err := Run(ctx, f, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sweep: %v", err)
	}
	if len(points) != 2 || points[0].Workers != 1 || points[1].Workers != 2 {
		t.Fatalf("points %+v, want 1 and 2", points)
	}
}

func TestRunQueueMissingFromSample(t *testing.T) {
	// A new queue of a glob's list shows a sample or two late.
	f := newFakePool(func(n int) float64 { return 50 * float64(n) })
	f.hideQueue = 2
	cfg := sweepConfig()
	cfg.Max = 1
	cfg.Now = func() time.Time { return f.now }
	if points, err := Run(context.Background(), f, cfg); err != nil || len(points) != 1 {
		t.Fatalf("queue shown two samples late: %v, %v", points, err)
	}
	f = newFakePool(func(n int) float64 { return 50 * float64(n) })
	cfg = sweepConfig()
	cfg.Queue = "nope"
	cfg.Now = func() time.Time { return f.now }
	if _, err := Run(context.Background(), f, cfg); err == nil || !strings.Contains(err.Error(), "queue nope is not in the master's sample") {
		t.Fatalf("missing queue: %v", err)
	}
}
