package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/stats"
)

// qs is a queue of a sample.
func qs(name string, depth, inFlight, processed, failed int64, state string) stats.QueueSample {
	return stats.QueueSample{Name: name, Depth: depth, InFlight: inFlight, Processed: processed, Failed: failed, State: state}
}

// hist is a run-time histogram with n jobs in the bucket of d.
func hist(n int64, d time.Duration) stats.Histogram {
	h := stats.Histogram{Count: n, Sum: float64(n) * d.Seconds(), Counts: make([]int64, queue.NumBuckets)}
	h.Counts[queue.Bucket(d)] = n
	return h
}

func sample(ts time.Time, qs ...stats.QueueSample) *stats.Sample {
	return &stats.Sample{TS: ts, Pool: "unit", Interval: 0.02, Queues: qs}
}

func eta(s float64) *float64 { return &s }

func TestBatchFigures(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := qs("a:b/ü", 100, 4, 1000, 10, stats.QueueDraining)
	a.Timing = hist(1000, 3*time.Millisecond) // all-time: before the batch
	b, err := newBatch(sample(t0, a, qs("other", 5, 0, 0, 0, stats.QueueBusy)), []string{"a:b/ü", "a:b/ü"})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.queues) != 1 || b.queues[0].total != 104 {
		t.Fatalf("marked %+v", b.queues)
	}
	// 60 done (2 failed), 10 more enqueued: 100+4-60+10 = 54 left.
	a = qs("a:b/ü", 50, 4, 1060, 12, stats.QueueDraining)
	a.OutRate, a.ETASeconds = 30, eta(1.7)
	a.Timing = hist(1000, 3*time.Millisecond)
	a.Timing.Add(hist(60, 40*time.Millisecond))
	b.update(sample(t0.Add(2*time.Second), a))
	q := b.queues[0]
	if q.done != 60 || q.failed != 2 || q.total != 114 || q.total-q.total0 != 10 {
		t.Fatalf("after 2s: done %d failed %d total %d enqueued %d", q.done, q.failed, q.total, q.total-q.total0)
	}
	if got, want := b.line(), "progress 2.0s: a:b/ü 60/114 52% 30/s ETA 1.7s, 2 failed (+10 enqueued during the batch)"; got != want {
		t.Errorf("line = %q\nwant   %q", got, want)
	}
	// A Redis error carries the last figures: it cannot end the batch.
	b.update(&stats.Sample{TS: t0.Add(3 * time.Second), RedisError: "dial tcp: refused", Queues: []stats.QueueSample{qs("a:b/ü", 0, 0, 1060, 12, stats.QueueEmpty)}})
	if b.done() || !strings.Contains(b.line(), "Redis: dial tcp: refused") {
		t.Fatalf("a sample without Redis ended the batch: %s", b.line())
	}
	// Redis restarted empty: its counters start from 0 and add to the
	// batch instead of undoing it.
	a = qs("a:b/ü", 0, 0, 54, 0, stats.QueueEmpty)
	a.Timing = hist(54, 40*time.Millisecond)
	b.observe(&poolfs.State{Workers: []poolfs.WorkerState{{State: poolfs.WorkerRunning}, {State: poolfs.WorkerRunning}, {State: poolfs.WorkerStopping}}})
	b.observe(&poolfs.State{Workers: []poolfs.WorkerState{{State: poolfs.WorkerRunning}}})
	b.update(sample(t0.Add(4*time.Second), a))
	if !b.done() || q.done != 114 || q.failed != 2 {
		t.Fatalf("after the reset: done() %v, done %d, failed %d", b.done(), q.done, q.failed)
	}
	sum := b.summary()
	if sum.Total != 114 || sum.Done != 114 || sum.Failed != 2 || sum.Enqueued != 10 || !sum.Drained ||
		sum.DurationSeconds != 4 || sum.Throughput != 28.5 || sum.PeakWorkers != 2 {
		t.Errorf("summary %+v", sum)
	}
	// The batch's own job times: 40 ms, not the 3 ms of the jobs before it.
	if p := sum.JobSeconds.P50; p == nil || *p < 0.02 || *p > 0.05 {
		t.Errorf("p50 = %v, want within the 40ms bucket", p)
	}
	if !strings.HasPrefix(sum.Text(), "batch drained in 4.0s: 114 of 114 jobs done (10 enqueued during the batch), 2 failed, 28.5 jobs/s\njob time: p50 ") {
		t.Errorf("text:\n%s", sum.Text())
	}
}

// Workers that keep no per-queue counters (a command: worker) still move
// the bar, by the queue's depth; the summary says their jobs went
// uncounted.
func TestBatchUncountedWorkers(t *testing.T) {
	t0 := time.Now()
	b, err := newBatch(sample(t0, qs("php", 40, 0, 0, 0, stats.QueueBusy)), nil)
	if err != nil {
		t.Fatal(err)
	}
	b.update(sample(t0.Add(time.Second), qs("php", 30, 0, 0, 0, stats.QueueStalled)))
	if !strings.Contains(b.line(), "php 10/40 25%") {
		t.Errorf("line %q", b.line())
	}
	b.update(sample(t0.Add(2*time.Second), qs("php", 0, 0, 0, 0, stats.QueueEmpty)))
	sum := b.summary()
	if !sum.Drained || sum.Total != 40 || sum.Done != 0 || sum.Uncounted != 40 || !strings.Contains(sum.Text(), "40 jobs left the queues without being counted as done") {
		t.Errorf("summary %+v\n%s", sum, sum.Text())
	}
}

func TestBatchUnknownQueueAndStates(t *testing.T) {
	s := sample(time.Now(), qs("foo", 1, 0, 0, 0, stats.QueueStalled), qs("bar", 9, 0, 0, 0, stats.QueueGrowing))
	_, err := newBatch(s, []string{"foo", "nope", "x:y/ü"})
	if err == nil || err.Error() != `queues "nope", "x:y/ü" are not among the pool's queues (it serves: foo, bar)` {
		t.Errorf("unknown queues: %v", err)
	}
	if _, err := newBatch(sample(time.Now()), nil); err == nil || !strings.Contains(err.Error(), "serves no queues") {
		t.Errorf("no queues: %v", err)
	}
	b, err := newBatch(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No ETA unless draining: the state says why.
	for _, want := range []string{"foo 0/1 0% 0/s stalled: nothing finished lately", "bar 0/9 0% 0/s growing: will not drain at this rate"} {
		if !strings.Contains(b.line(), want) {
			t.Errorf("line %q lacks %q", b.line(), want)
		}
	}
	// A queue the pool stops serving is not drained: it is not sampled.
	b.update(sample(s.TS.Add(time.Second), qs("bar", 0, 0, 9, 0, stats.QueueEmpty)))
	if b.done() || !strings.Contains(b.line(), "foo 0/1 0% 0/s not sampled") || !strings.Contains(b.line(), "bar 9/9 100% 0/s drained") {
		t.Errorf("line %q", b.line())
	}
}

// Bars fit the terminal's width whatever the names, and a name holding
// escape sequences is shown quoted, never sent to the terminal raw.
func TestBatchBars(t *testing.T) {
	long := strings.Repeat("very-long-queue-name-", 5)
	s := sample(time.Now(), qs(long, 10, 2, 0, 0, stats.QueueBusy), qs("evil\x1b[2J", 1, 0, 0, 0, stats.QueueBusy), qs("ü", 0, 0, 0, 0, stats.QueueEmpty))
	b, err := newBatch(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, width := range []int{20, 40, 79, 200} {
		for _, l := range b.bars(width, 24, 5*time.Second) {
			if n := len([]rune(l)); n > width {
				t.Errorf("width %d: line of %d columns: %q", width, n, l)
			}
			if strings.Contains(l, "\x1b") {
				t.Errorf("raw escape in %q", l)
			}
		}
	}
	lines := b.bars(120, 24, 0)
	if !strings.Contains(lines[1], `"evil\x1b[2J"`) || !strings.Contains(lines[0], "[") || !strings.Contains(lines[2], "ü") {
		t.Errorf("bars:\n%s", strings.Join(lines, "\n"))
	}
}

// More queues than the terminal has rows: the busy ones are shown, the
// rest summed up in a line, and the block fits.
func TestBatchBarsHeight(t *testing.T) {
	var queues []stats.QueueSample
	for i := range 30 {
		depth := int64(0)
		if i%3 == 0 {
			depth = int64(i + 1)
		}
		queues = append(queues, qs(fmt.Sprintf("q%02d", i), depth, 0, 0, 0, stats.QueueBusy))
	}
	b, err := newBatch(sample(time.Now(), queues...), nil)
	if err != nil {
		t.Fatal(err)
	}
	lines := b.bars(80, 8, 0)
	if len(lines) != 8 || !strings.HasPrefix(lines[0], "q00 ") || !strings.HasPrefix(lines[1], "q03 ") ||
		lines[6] != "… and 24 more queues, 94 jobs left in them" {
		t.Errorf("bars:\n%s", strings.Join(lines, "\n"))
	}
	if got := b.bars(80, 40, 0); len(got) != 31 {
		t.Errorf("%d lines on 40 rows, want every queue and the footer", len(got))
	}
}

func TestParseProgressArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want ProgressArgs
		err  string
	}{
		{nil, ProgressArgs{}, ""},
		{[]string{"a", "--json", "b:c", "--timeout", "1m"}, ProgressArgs{Queues: []string{"a", "b:c"}, JSON: true, Timeout: time.Minute}, ""},
		{[]string{"--timeout=2.5", "--", "--json", "-x"}, ProgressArgs{Queues: []string{"--json", "-x"}, Timeout: 2500 * time.Millisecond}, ""},
		{[]string{"--timeout"}, ProgressArgs{}, "--timeout needs a duration"},
		{[]string{"--timeout", "soon"}, ProgressArgs{}, `--timeout: invalid timeout "soon"`},
		{[]string{"-x"}, ProgressArgs{}, `unknown flag "-x" (a queue named so goes after --)`},
	} {
		got, err := ParseProgressArgs(tc.args)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got.Queues, "|") != strings.Join(tc.want.Queues, "|") || got.JSON != tc.want.JSON || got.Timeout != tc.want.Timeout {
			t.Errorf("%q: %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

// fakePool is a pool whose samples the test publishes.
type fakePool struct {
	mu     sync.Mutex
	sample *stats.Sample
	state  *poolfs.State
	dead   bool
	reads  int
}

func (f *fakePool) Sample() (*stats.Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.sample, nil
}

func (f *fakePool) State() *poolfs.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *fakePool) Alive() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.dead
}

// started waits until progress has looked for samples: what is published
// from then on is fresh.
func (f *fakePool) started(t *testing.T) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, "progress to look for samples", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.reads > 0
	})
}

func (f *fakePool) publish(qs ...stats.QueueSample) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := time.Now()
	if f.sample != nil && !ts.After(f.sample.TS) {
		ts = f.sample.TS.Add(time.Nanosecond)
	}
	f.sample = sample(ts, qs...)
}

type followResult struct {
	sum *BatchSummary
	err error
}

// follow runs followBatch on f in the background.
func follow(ctx context.Context, f *fakePool, o ProgressOptions) <-chan followResult {
	ch := make(chan followResult, 1)
	go func() {
		sum, err := followBatch(ctx, f, o)
		ch <- followResult{sum, err}
	}()
	return ch
}

func statusOf(err error) int {
	var pe *ProgressError
	if errors.As(err, &pe) {
		return pe.Status
	}
	if err != nil {
		return -1
	}
	return 0
}

// The mark is a sample taken after progress started: one published
// before (which still shows the queue empty) must not end the batch at
// once.
func TestFollowBatchMarksAFreshSample(t *testing.T) {
	f := &fakePool{}
	f.publish(qs("foo", 0, 0, 7, 1, stats.QueueEmpty)) // before the jobs came
	var out, ui testutil.Buffer
	res := follow(context.Background(), f, ProgressOptions{Out: &out, UI: &ui, JSON: true})
	f.started(t)
	f.publish(qs("foo", 10, 0, 7, 1, stats.QueueBusy)) // the mark
	testutil.Eventually(t, 15*time.Second, "the mark's line", func() bool { return strings.Contains(ui.String(), "foo 0/10 0%") })
	f.publish(qs("foo", 3, 2, 12, 1, stats.QueueDraining))
	f.mu.Lock()
	f.state = &poolfs.State{Workers: make([]poolfs.WorkerState, 3)}
	f.mu.Unlock()
	testutil.Eventually(t, 15*time.Second, "a line per sample", func() bool { return strings.Contains(ui.String(), "foo 5/10 50%") })
	f.publish(qs("foo", 0, 0, 17, 1, stats.QueueEmpty))
	r := <-res
	if r.err != nil {
		t.Fatalf("progress: %v\n%s", r.err, ui.String())
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(out.String()), &sum); err != nil || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("summary is not one JSON line: %v\n%s", err, out.String())
	}
	for k, want := range map[string]any{"total": 10.0, "done": 10.0, "failed": 0.0, "peak_workers": 3.0, "drained": true} {
		if sum[k] != want {
			t.Errorf("summary %s = %v, want %v", k, sum[k], want)
		}
	}
	for _, k := range []string{"queues", "duration_seconds", "throughput", "job_seconds"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary lacks %s: %s", k, out.String())
		}
	}
	if js := sum["job_seconds"].(map[string]any); len(js) != 3 || js["p99"] != nil {
		t.Errorf("job_seconds %v: p50, p95, p99, null when no timing", js)
	}
	if lines := strings.Count(ui.String(), "\n"); lines < 3 || strings.Contains(ui.String(), "\x1b") {
		t.Errorf("pipe display:\n%q", ui.String())
	}
}

func TestFollowBatchEndings(t *testing.T) {
	defer func(w time.Duration) { progressFirstWait, progressGoneGrace = w, 3*time.Second }(progressFirstWait)
	progressFirstWait, progressGoneGrace = 300*time.Millisecond, 200*time.Millisecond

	t.Run("failed jobs", func(t *testing.T) {
		f := &fakePool{}
		var out, ui testutil.Buffer
		res := follow(context.Background(), f, ProgressOptions{Out: &out, UI: &ui})
		f.started(t)
		f.publish(qs("foo", 3, 0, 0, 0, stats.QueueBusy))
		testutil.Eventually(t, 15*time.Second, "the mark", func() bool { return strings.Contains(ui.String(), "foo 0/3") })
		f.publish(qs("foo", 0, 0, 3, 2, stats.QueueEmpty))
		r := <-res
		if statusOf(r.err) != ProgressFailedJobs || !strings.Contains(r.err.Error(), "progress: 2 of the batch's 3 jobs failed") {
			t.Errorf("err %v (status %d)", r.err, statusOf(r.err))
		}
		if !strings.HasPrefix(out.String(), "batch drained in ") || !strings.Contains(out.String(), "3 of 3 jobs done, 2 failed") {
			t.Errorf("summary:\n%s", out.String())
		}
	})
	t.Run("timeout", func(t *testing.T) {
		f := &fakePool{}
		var out, ui testutil.Buffer
		f.publish(qs("foo", 3, 0, 0, 0, stats.QueueBusy))
		res := follow(context.Background(), f, ProgressOptions{Out: &out, UI: &ui, JSON: true, Timeout: 500 * time.Millisecond})
		f.started(t)
		f.publish(qs("foo", 3, 0, 0, 0, stats.QueueStalled))
		r := <-res
		if statusOf(r.err) != ProgressTimedOut || !strings.Contains(r.err.Error(), "progress: timed out after 500ms: foo 3 queued, 0 in flight (stalled") {
			t.Errorf("err %v", r.err)
		}
		if !strings.Contains(out.String(), `"drained":false`) {
			t.Errorf("summary so far: %s", out.String())
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		f := &fakePool{}
		var out, ui testutil.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		res := follow(ctx, f, ProgressOptions{Out: &out, UI: &ui})
		f.started(t)
		f.publish(qs("foo", 3, 0, 0, 0, stats.QueueBusy))
		testutil.Eventually(t, 15*time.Second, "the mark", func() bool { return strings.Contains(ui.String(), "foo 0/3") })
		cancel()
		r := <-res
		if statusOf(r.err) != ProgressInterrupted || !errors.Is(r.err, context.Canceled) || out.String() != "" ||
			!strings.Contains(ui.String(), "stopped watching at 0 of 3 jobs; the batch runs on in the pool") {
			t.Errorf("err %v; out %q; ui %q", r.err, out.String(), ui.String())
		}
	})
	t.Run("master gone", func(t *testing.T) {
		f := &fakePool{}
		var out, ui testutil.Buffer
		res := follow(context.Background(), f, ProgressOptions{Out: &out, UI: &ui, Pool: poolfs.At(t.TempDir(), "gone")})
		f.started(t)
		f.publish(qs("foo", 3, 0, 0, 0, stats.QueueBusy))
		testutil.Eventually(t, 15*time.Second, "the mark", func() bool { return strings.Contains(ui.String(), "foo 0/3") })
		f.mu.Lock()
		f.dead = true
		f.mu.Unlock()
		r := <-res
		if statusOf(r.err) != ProgressFailedJobs || !strings.Contains(r.err.Error(), "pool gone: the master is gone; the batch is not drained: foo 3 queued") {
			t.Errorf("err %v", r.err)
		}
	})
	t.Run("no samples", func(t *testing.T) {
		f := &fakePool{}
		var out, ui testutil.Buffer
		r := <-follow(context.Background(), f, ProgressOptions{Out: &out, UI: &ui, Pool: poolfs.At(t.TempDir(), "old")})
		if statusOf(r.err) != ProgressFailedJobs || !strings.Contains(r.err.Error(), "pool old publishes no samples") {
			t.Errorf("err %v", r.err)
		}
	})
	t.Run("unknown queue", func(t *testing.T) {
		f := &fakePool{}
		var out, ui testutil.Buffer
		res := follow(context.Background(), f, ProgressOptions{Out: &out, UI: &ui, Queues: []string{"nope"}})
		f.started(t)
		f.publish(qs("foo", 3, 0, 0, 0, stats.QueueBusy))
		r := <-res
		if statusOf(r.err) != ProgressUsage || r.err.Error() != `progress: queue "nope" is not among the pool's queues (it serves: foo)` {
			t.Errorf("err %v", r.err)
		}
	})
	t.Run("already empty", func(t *testing.T) {
		f := &fakePool{}
		var out, ui testutil.Buffer
		res := follow(context.Background(), f, ProgressOptions{Out: &out, UI: &ui, JSON: true})
		f.started(t)
		f.publish(qs("foo", 0, 0, 9, 9, stats.QueueEmpty))
		r := <-res
		if r.err != nil || r.sum.Done != 0 || r.sum.Total != 0 || r.sum.Throughput != 0 || !r.sum.Drained {
			t.Errorf("err %v, summary %+v", r.err, r.sum)
		}
	})
}

// At a terminal the block is redrawn in place: each redraw moves the
// cursor back over the lines drawn before.
func TestFollowBatchTerminal(t *testing.T) {
	f := &fakePool{}
	var out, ui testutil.Buffer
	res := follow(context.Background(), f, ProgressOptions{Out: &out, UI: &ui, Terminal: true, Size: func() (int, int) { return 60, 24 }})
	f.started(t)
	f.publish(qs("foo", 4, 0, 0, 0, stats.QueueBusy), qs("bar", 2, 0, 0, 0, stats.QueueBusy))
	testutil.Eventually(t, 15*time.Second, "the first block", func() bool { return strings.Contains(ui.String(), "foo") })
	f.publish(qs("foo", 0, 0, 4, 0, stats.QueueEmpty), qs("bar", 0, 0, 2, 0, stats.QueueEmpty))
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if n := strings.Count(ui.String(), "\x1b[3A"); n != 1 {
		t.Errorf("%d redraws over the 3-line block, want 1:\n%q", n, ui.String())
	}
	for _, l := range regexp.MustCompile(`\x1b\[2K([^\n]*)\n`).FindAllStringSubmatch(ui.String(), -1) {
		if n := len([]rune(l[1])); n >= 60 {
			t.Errorf("line of %d columns on a 60-column terminal: %q", n, l[1])
		}
	}
	if !strings.Contains(ui.String(), "foo [") || !strings.HasPrefix(out.String(), "batch drained in") {
		t.Errorf("ui %q\nout %q", ui.String(), out.String())
	}
}

// The shell's progress row: a usage error for a bad flag, the pool must
// run, and batch is its alias.
func TestProgressCommand(t *testing.T) {
	s, _ := newTestSession(t)
	var ue *UsageError
	if err := s.Exec(context.Background(), "progress --bogus"); !errors.As(err, &ue) || !strings.Contains(err.Error(), `unknown flag "--bogus"`) {
		t.Errorf("bad flag: %v", err)
	}
	if err := s.Exec(context.Background(), "batch foo"); err == nil || err.Error() != "pool unit: the master is not running (use start)" {
		t.Errorf("no master: %v", err)
	}
	var b bytes.Buffer
	b.WriteString(HelpText(Lookup("batch")))
	if !strings.Contains(b.String(), "aliases: batch") || !strings.Contains(b.String(), "3 timeout") {
		t.Errorf("help:\n%s", b.String())
	}
}

// progress reads the runtime directory's files, each again only when it
// was replaced, and keeps asking the master to publish samples (it does
// only while someone reads them).
func TestPoolFilesSamples(t *testing.T) {
	p := poolfs.At(t.TempDir(), "files")
	if err := p.Paths.Ensure(); err != nil {
		t.Fatal(err)
	}
	f := &poolFiles{pool: p}
	if s, err := f.Sample(); s != nil || err != nil {
		t.Fatalf("no sample file: %v, %v", s, err)
	}
	if _, err := os.Stat(p.Paths.Sample + ".wanted"); err != nil {
		t.Fatalf("the master was not asked for samples: %v", err)
	}
	t0 := time.Now().UTC()
	for i := range 3 {
		if err := stats.WriteFile(p.Paths.Sample, sample(t0.Add(time.Duration(i)*time.Second), qs("foo", int64(i), 0, 0, 0, stats.QueueBusy))); err != nil {
			t.Fatal(err)
		}
		s, err := f.Sample()
		if err != nil || s == nil || s.Queues[0].Depth != int64(i) {
			t.Fatalf("sample %d: %+v, %v", i, s, err)
		}
	}
	if err := os.WriteFile(p.Paths.Sample, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Sample(); err == nil || !strings.Contains(err.Error(), "decode sample") {
		t.Errorf("a corrupt sample: %v", err)
	}
	if st := f.State(); st != nil {
		t.Errorf("state without a state file: %+v", st)
	}
	if err := poolfs.WriteState(p.Paths.State, &poolfs.State{PID: 42}); err != nil {
		t.Fatal(err)
	}
	if st := f.State(); st == nil || st.PID != 42 {
		t.Errorf("state %+v", st)
	}
}
