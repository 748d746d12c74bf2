package shell

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/spec"
	"github.com/poolctl/poolctl/stats"
	"github.com/poolctl/poolctl/tune"
	"github.com/redis/go-redis/v9"
)

// Timeouts of tune; variables so tests can shorten them.
var (
	// tuneSettleTimeout bounds the wait for a count's workers to run.
	tuneSettleTimeout = 60 * time.Second
	// tuneSampleTimeout is how long the master may publish no new sample.
	tuneSampleTimeout = 10 * time.Second
	// tuneCleanupTimeout bounds putting things back after the sweep.
	tuneCleanupTimeout = 60 * time.Second
	// tuneSettleAfter bounds the wait for the workers a clean-up stops.
	tuneSettleAfter = 15 * time.Second
)

// tuneRun is one tune command: what it changed, so that it can put it
// back whatever happens.
type tuneRun struct {
	s    *Session
	opts tuneOptions
	list string // QUEUE's queue list

	// What to restore: the list's configured count, whether the shell's
	// overrides held the list and with which count, and the autoscale
	// pins (when the list was autoscaled: config pins it).
	origCount    int
	origOverride *spec.Entry
	pinned       bool
	origPins     map[string]bool

	qc      *queue.Client
	payload []byte // the synthetic job, "" without --load
	feed    *feeder
	changed bool // the count was changed
}

func cmdTune(ctx context.Context, s *Session, args []string) error {
	o, err := parseTuneArgs(args)
	if err != nil {
		return err
	}
	pid, err := s.requireMaster()
	if err != nil {
		return err
	}
	// A master that has just started may not have written its state.
	st, err := poolfs.ReadState(s.paths.State)
	for deadline := time.Now().Add(3 * time.Second); (err != nil || st.PID != pid) && time.Now().Before(deadline) && ctx.Err() == nil; {
		sleepCtx(ctx, pollInterval)
		st, err = poolfs.ReadState(s.paths.State)
	}
	if err != nil {
		return fmt.Errorf("tune: pool %s: %w", s.paths.Name, err)
	}
	if st.PID != pid {
		return fmt.Errorf("tune: pool %s: the master (pid %d) has not published its state yet; try again", s.paths.Name, pid)
	}
	s.refreshConfig()
	if s.foreignConfig() {
		return fmt.Errorf("tune: the master reads %s, a config file poolctl did not write, so the shell does not change its counts (see config)", s.configPath)
	}
	g, others, err := tuneGroup(st, o.queue)
	if err != nil {
		return err
	}
	for _, other := range others {
		fmt.Fprintf(s.errw, "tune: warning: queue %s is also served by queue list %s (%d workers): they add to its throughput\n", o.queue, other.Queues, other.Desired)
	}
	lim := tune.Limits{}
	if st.Limits != nil {
		lim = tune.Limits{MaxWorkers: st.Limits.MaxWorkers, MaxCPU: st.Limits.MaxCPU, MinFreeMemory: st.Limits.MinFreeMemory}
	}
	for _, og := range st.Groups {
		if og.Queues != g.Queues {
			lim.OtherWorkers += og.Desired
		}
	}
	if a := g.Autoscale; a != nil {
		// config refuses a count outside an autoscaled list's bounds.
		switch {
		case o.minSet && o.min < a.Min:
			return fmt.Errorf("tune: --min %d is below queue list %s's autoscale min %d (config refuses a count outside its bounds)", o.min, g.Queues, a.Min)
		case o.maxSet && o.max > a.Max:
			return fmt.Errorf("tune: --max %d is above queue list %s's autoscale max %d (config refuses a count outside its bounds)", o.max, g.Queues, a.Max)
		case !o.minSet:
			o.min = max(o.min, a.Min)
		}
	}
	if !o.maxSet {
		o.max = max(o.min, 4*runtime.NumCPU())
		if lim.MaxWorkers > 0 {
			o.max = max(o.min, min(o.max, lim.MaxWorkers-lim.OtherWorkers))
		}
		if g.Autoscale != nil {
			o.max = max(o.min, min(o.max, g.Autoscale.Max))
		}
		fmt.Fprintf(s.errw, "tune: sweeping %d–%d workers (give --max for more)\n", o.min, o.max)
	}
	if o.max < o.min {
		return fmt.Errorf("tune: --max %d is below --min %d", o.max, o.min)
	}
	if lim.MaxWorkers > 0 && o.max+lim.OtherWorkers > lim.MaxWorkers {
		return fmt.Errorf("tune: --max %d would take the pool to %d workers, past its max_workers %d (limits:)", o.max, o.max+lim.OtherWorkers, lim.MaxWorkers)
	}
	qc, _, err := s.queueClient()
	if err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	t := &tuneRun{s: s, opts: o, list: g.Queues, qc: qc, origCount: s.cfg.Workers.Count(g.Queues)}
	if t.origCount == 0 {
		t.origCount = g.Desired
	}
	for _, e := range s.overrides {
		if e.Queues == g.Queues {
			e := e
			t.origOverride = &e
		}
	}
	if len(o.load) > 0 {
		if t.payload, err = tunePayload(o.load, newRunID()); err != nil {
			return err
		}
	} else if err := t.checkBacklog(ctx); err != nil {
		return err
	}

	res, runErr := t.run(ctx, g, lim)
	// Put everything back, also after Ctrl-C (ctx is done then) or a
	// failure: under a context of its own, bounded.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tuneCleanupTimeout)
	defer cancel()
	cleanErr := t.cleanup(cctx, res)
	if runErr != nil {
		if cleanErr != nil {
			fmt.Fprintf(s.errw, "tune: %v\n", cleanErr)
		}
		return runErr
	}
	if cleanErr != nil {
		return cleanErr
	}
	if o.json {
		b, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("tune: %w", err)
		}
		fmt.Fprintln(s.out, string(b))
		return nil
	}
	res.WriteText(s.out)
	return nil
}

// tuneGroup finds the queue list that serves q: the one that names it,
// else the one whose pattern matches it. others are the other lists that
// serve it too.
func tuneGroup(st *poolfs.State, q string) (g poolfs.GroupState, others []poolfs.GroupState, err error) {
	var exact, pattern []poolfs.GroupState
	for _, gs := range st.Groups {
		names := strings.Split(gs.Queues, ",")
		named := false
		var pats []string
		for _, n := range names {
			if n == q {
				named = true
			}
			if queue.IsPattern(n) {
				pats = append(pats, n)
			}
		}
		switch {
		case named:
			exact = append(exact, gs)
		case len(queue.ExpandNames(pats, []string{q})) > 0:
			pattern = append(pattern, gs)
		}
	}
	var lists []string
	for _, gs := range st.Groups {
		lists = append(lists, gs.Queues)
	}
	switch {
	case len(exact) == 1:
		return exact[0], pattern, nil
	case len(exact) > 1:
		var names []string
		for _, gs := range exact {
			names = append(names, gs.Queues)
		}
		return g, nil, fmt.Errorf("tune: queue %s is in several queue lists (%s): tune needs the one list whose workers serve it", q, strings.Join(names, "; "))
	case len(pattern) == 1:
		return pattern[0], nil, nil
	case len(pattern) > 1:
		var names []string
		for _, gs := range pattern {
			names = append(names, gs.Queues)
		}
		return g, nil, fmt.Errorf("tune: queue %s matches several queue lists (%s): tune needs the one list whose workers serve it", q, strings.Join(names, "; "))
	}
	return g, nil, fmt.Errorf("tune: queue %s is not served by pool %s (its queue lists: %s); add it with config %s=1 first", q, st.Name, orNone(strings.Join(lists, "; ")), q)
}

// run pins an autoscaled list, starts the feeder, sweeps and analyses.
// It returns the result without the clean-up's figures.
func (t *tuneRun) run(ctx context.Context, g poolfs.GroupState, lim tune.Limits) (*tune.Result, error) {
	s := t.s
	if g.Autoscale != nil && g.Autoscale.Mode == poolfs.AutoscaleOn {
		// config pins the list at the first count it sets; the pins are
		// put back as they are now at the end.
		pins, err := s.pinsOf()
		if err != nil {
			return nil, fmt.Errorf("tune: %w", err)
		}
		t.origPins, t.pinned = pins, true
		fmt.Fprintf(s.errw, "tune: autoscale off for %s during the sweep\n", t.list)
	}
	sweepCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if t.payload != nil {
		t.feed = &feeder{qc: t.qc, queue: t.opts.queue, payload: t.payload, fail: stop}
		if err := t.feed.fill(sweepCtx); err != nil {
			return nil, err
		}
		t.feed.start(sweepCtx)
	}
	cfg := tune.Config{
		Queue: t.opts.queue, List: t.list, Min: t.opts.min, Max: t.opts.max, Step: t.opts.step,
		Progress: func(format string, args ...any) {
			fmt.Fprintf(s.errw, "tune: %s: %s\n", t.opts.queue, fmt.Sprintf(format, args...))
		},
	}
	d := &tuneDriver{t: t}
	points, err := tune.Run(sweepCtx, d, cfg)
	if err != nil {
		if cause := context.Cause(sweepCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause // the feeder failed
		}
		if errors.Is(err, tune.ErrRanDry) && t.payload == nil {
			err = fmt.Errorf("%w: the live backlog ran out; feed the queue with --load 'CLASS ARG...'", err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("tune: %s: %w", t.opts.queue, err)
	}
	model, note, rec := tune.Analyze(points, lim)
	res := &tune.Result{
		Pool: s.paths.Name, Queue: t.opts.queue, QueueList: t.list, Load: t.opts.loadText,
		StepSeconds: t.opts.step.Seconds(), Points: points, USL: model, ModelNote: note, Reason: rec.Reason,
	}
	if rec.Workers > 0 {
		n := rec.Workers
		res.Recommended = &n
	}
	return res, nil
}

// cleanup stops the feeder, takes the synthetic jobs still queued back,
// applies the recommendation (--apply) or puts the count back, hands an
// autoscaled list back, and takes back the synthetic jobs that stopping
// workers may have pushed back. It does all it can and returns the first
// error.
func (t *tuneRun) cleanup(ctx context.Context, res *tune.Result) error {
	s := t.s
	var errs []error
	if t.feed != nil {
		t.feed.stop()
	}
	removed, err := t.removeSynthetic(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	apply := res != nil && t.opts.apply && res.Recommended != nil
	if t.opts.apply && res != nil && res.Recommended == nil {
		errs = append(errs, errors.New("tune: --apply: nothing to apply (no recommendation); the count was put back"))
	}
	switch {
	case apply:
		if err := t.setCount(ctx, *res.Recommended); err != nil {
			errs = append(errs, fmt.Errorf("tune: apply %s=%d: %w", t.list, *res.Recommended, err))
		} else {
			res.Applied = true
			fmt.Fprintf(s.errw, "tune: applied %s=%d\n", t.list, *res.Recommended)
			if t.pinned {
				fmt.Fprintf(s.errw, "tune: autoscale stays off for %s (pinned at %d)\n", t.list, *res.Recommended)
			}
		}
	case t.changed:
		if err := t.restore(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tune: put %s back to %d workers: %w", t.list, t.origCount, err))
		} else {
			fmt.Fprintf(s.errw, "tune: %s back to %d workers\n", t.list, t.origCount)
		}
	}
	if res != nil && !res.Applied {
		res.Restored = t.origCount
	}
	if t.payload != nil {
		// Workers stopped by the change may have pushed their job back.
		t.awaitSettled(ctx)
		more, err := t.removeSynthetic(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		removed += more
		var added int64
		if t.feed != nil {
			added = t.feed.added.Load()
		}
		fmt.Fprintf(s.errw, "tune: removed %d synthetic jobs still queued (of %d added)\n", removed, added)
		if res != nil {
			res.SyntheticAdded, res.SyntheticRemoved = added, removed
		}
	}
	return errors.Join(errs...)
}

// removeSynthetic takes every queued job carrying this run's marker off
// the queue (LREM of the exact payload).
func (t *tuneRun) removeSynthetic(ctx context.Context) (int64, error) {
	if t.payload == nil {
		return 0, nil
	}
	n, err := t.qc.Redis().LRem(ctx, t.qc.Keys().Queue(t.opts.queue), 0, t.payload).Result()
	if err != nil {
		return n, fmt.Errorf("tune: remove the synthetic jobs from %s: %w", t.opts.queue, err)
	}
	return n, nil
}

// setCount sets the list's count through config's own path (its chatter
// silenced: tune reports its steps itself).
func (t *tuneRun) setCount(ctx context.Context, n int) error {
	s := t.s
	t.changed = true
	info := s.info
	s.info = io.Discard
	defer func() { s.info = info }()
	return cmdConfig(ctx, s, []string{fmt.Sprintf("%s=%d", t.list, n)})
}

// restore puts the list's count back as it was: the configuration with
// the list's entry of the shell's overrides as it was (absent when it
// was), and the autoscale pins as they were, in one reload, config's.
func (t *tuneRun) restore(ctx context.Context) error {
	s := t.s
	if t.pinned {
		if err := s.writePins(t.origPins); err != nil {
			return err
		}
	}
	s.refreshConfig()
	prevCfg, prevOverrides := s.cfg, s.overrides
	next := *s.cfg
	next.Workers = s.cfg.Workers.Merge(spec.Spec{{Queues: t.list, Count: t.origCount}})
	s.cfg = &next
	if s.userFile != "" {
		var ov spec.Spec
		for _, e := range s.overrides {
			if e.Queues != t.list {
				ov = append(ov, e)
			}
		}
		if t.origOverride != nil {
			ov = spec.MergeOverrides(ov, spec.Spec{*t.origOverride})
		}
		s.overrides = ov
	}
	pid, err := s.reload()
	if err != nil {
		s.cfg, s.overrides = prevCfg, prevOverrides
		return err
	}
	info := s.info
	s.info = io.Discard
	defer func() { s.info = info }()
	return s.awaitApplied(ctx, pid)
}

// awaitSettled waits, within ctx and at most tuneSettleAfter, until the
// list's workers match its count and none is stopping.
func (t *tuneRun) awaitSettled(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, tuneSettleAfter)
	defer cancel()
	for ctx.Err() == nil {
		st, err := poolfs.ReadState(t.s.paths.State)
		if err != nil || tuneSettled(st, t.list, -1) {
			return
		}
		sleepCtx(ctx, pollInterval)
	}
}

// tuneSettled reports whether list runs n workers (any count when n < 0),
// every one started, none stopping.
func tuneSettled(st *poolfs.State, list string, n int) bool {
	for _, g := range st.Groups {
		if g.Queues != list {
			continue
		}
		if (n >= 0 && g.Desired != n) || g.Live != g.Desired {
			return false
		}
		for _, w := range st.Workers {
			if w.Queues == list && w.State != poolfs.WorkerRunning {
				return false
			}
		}
		return true
	}
	return n <= 0
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// checkBacklog refuses a sweep the queue's backlog would not last:
// every planned count at the pace one of its workers keeps now (measured
// over a second: an upper bound, as if scaling were linear), for the
// longest warm-up and the step, less what arrives meanwhile.
func (t *tuneRun) checkBacklog(ctx context.Context) error {
	first, err := t.freshSample(ctx)
	if err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	var qs *stats.QueueSample
	for i := range first.Queues {
		if first.Queues[i].Name == t.opts.queue {
			qs = &first.Queues[i]
		}
	}
	if qs == nil {
		return fmt.Errorf("tune: queue %s is not in the master's sample yet; try again in a second", t.opts.queue)
	}
	if qs.Depth == 0 {
		return fmt.Errorf("tune: queue %s is empty: there is nothing to measure; feed it with --load 'CLASS ARG...' (e.g. --load 'Poolctl::Sleep 50')", t.opts.queue)
	}
	d := &tuneDriver{t: t}
	last := first
	for last.TS.Sub(first.TS) < time.Second {
		if last, err = d.Next(ctx, last.TS); err != nil {
			return fmt.Errorf("tune: %w", err)
		}
	}
	pace, live, err := tune.Pace(first, last, t.opts.queue, t.list)
	if err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	if pace <= 0 || live == 0 {
		return fmt.Errorf("tune: no job of %s finished in the last %.1fs, so there is no telling whether its %d queued jobs last the sweep; feed it with --load 'CLASS ARG...'",
			t.opts.queue, last.TS.Sub(first.TS).Seconds(), qs.Depth)
	}
	perWorker := pace / float64(live)
	var depth int64
	var in float64
	for _, q := range last.Queues {
		if q.Name == t.opts.queue {
			depth, in = q.Depth, q.InRate
		}
	}
	plan := tune.Doubling(t.opts.min, t.opts.max)
	extra := max(3, tune.MinFitPoints-len(plan))
	for i := 0; i < extra; i++ {
		plan = append(plan, t.opts.max)
	}
	stepSecs := (max(3*time.Second, t.opts.step) + t.opts.step).Seconds()
	var need float64
	for _, n := range plan {
		need += max(0, float64(n)*perWorker-in) * stepSecs
	}
	if float64(depth) < need {
		return fmt.Errorf("tune: queue %s holds %d jobs, and the sweep (%d counts, up to %.0fs) may take up to %.0f at %.2f jobs/s per worker: it would run dry; enqueue more, lower --max or --step-seconds, or feed it with --load 'CLASS ARG...'",
			t.opts.queue, depth, len(plan), stepSecs*float64(len(plan)), need, perWorker)
	}
	return nil
}

// freshSample returns a sample the master published after now (it may
// not have been publishing before this read asked it to).
func (t *tuneRun) freshSample(ctx context.Context) (*stats.Sample, error) {
	d := &tuneDriver{t: t}
	return d.Next(ctx, time.Now())
}

// tuneDriver is tune.Driver over the session's pool.
type tuneDriver struct{ t *tuneRun }

// SetWorkers sets the count as config does and waits until the workers
// run.
func (d *tuneDriver) SetWorkers(ctx context.Context, n int) error {
	t := d.t
	if err := t.setCount(ctx, n); err != nil {
		return err
	}
	deadline := time.Now().Add(tuneSettleTimeout)
	for {
		pid, ok := t.s.pool().MasterPID()
		if !ok {
			return fmt.Errorf("pool %s: %w", t.s.paths.Name, errNotRunning)
		}
		if st, err := poolfs.ReadState(t.s.paths.State); err == nil && st.PID == pid {
			for _, g := range st.Groups {
				if g.Queues == t.list && g.State == poolfs.GroupFatal {
					return fmt.Errorf("queue list %s is FATAL: %s", t.list, g.Reason)
				}
			}
			if tuneSettled(st, t.list, n) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d workers of %s are not all running after %v", n, t.list, tuneSettleTimeout)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sleepCtx(ctx, pollInterval)
	}
}

// Next polls the master's sample file for a sample newer than after.
func (d *tuneDriver) Next(ctx context.Context, after time.Time) (*stats.Sample, error) {
	s := d.t.s
	deadline := time.Now().Add(tuneSampleTimeout)
	for {
		smp, err := stats.ReadFile(s.paths.Sample)
		if err == nil && smp.TS.After(after) {
			return smp, nil
		}
		if _, ok := s.pool().MasterPID(); !ok {
			return nil, fmt.Errorf("pool %s: %w", s.paths.Name, errNotRunning)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the master published no new sample for %v (%s)", tuneSampleTimeout, s.paths.Sample)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		wait := pollInterval
		if err == nil && smp.Interval > 0 {
			wait = min(wait, time.Duration(smp.Interval*float64(time.Second))/4)
		}
		sleepCtx(ctx, wait)
	}
}

// newRunID names one tune run in its synthetic jobs' marker.
func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// tunePayload is the synthetic job of --load: the class, its arguments
// (JSON where they parse, else strings, as enqueue takes them) and the
// run's marker. Every job of the run is this exact payload, so LREM
// takes back exactly those.
func tunePayload(load []string, runID string) ([]byte, error) {
	args := make([]any, 0, len(load)-1)
	for _, a := range load[1:] {
		var v any
		if json.Unmarshal([]byte(a), &v) == nil {
			args = append(args, json.RawMessage(a))
		} else {
			args = append(args, a)
		}
	}
	b, err := json.Marshal(struct {
		Class  string `json:"class"`
		Args   []any  `json:"args"`
		Marker string `json:"poolctl_tune"`
	}{load[0], args, runID})
	if err != nil {
		return nil, fmt.Errorf("tune: --load: %w", err)
	}
	return b, nil
}

// feeder keeps a queue's backlog at a few seconds of its pace with
// copies of one payload.
type feeder struct {
	qc      *queue.Client
	queue   string
	payload []byte
	fail    context.CancelCauseFunc // ends the sweep when feeding fails
	added   atomic.Int64

	cancel context.CancelFunc
	done   chan struct{}
	// failed is the failure counter at the last window (its goroutine's).
	failed     int64
	failedSeen bool
}

// Feeding pace: the backlog is kept at feedAhead of the highest recent
// consumption rate, and never below feedMin jobs.
const (
	feedMin   = 500
	feedAhead = 3 * time.Second
	feedTick  = 50 * time.Millisecond
)

// fill pushes the first feedMin jobs.
func (f *feeder) fill(ctx context.Context) error {
	depth, err := f.qc.Redis().LLen(ctx, f.qc.Keys().Queue(f.queue)).Result()
	if err != nil {
		return fmt.Errorf("tune: feed %s: %w", f.queue, err)
	}
	return f.push(ctx, feedMin-depth)
}

func (f *feeder) push(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	ps := make([][]byte, n)
	for i := range ps {
		ps[i] = f.payload
	}
	if err := f.qc.Enqueue(ctx, f.queue, ps...); err != nil {
		return fmt.Errorf("tune: feed %s: %w", f.queue, err)
	}
	f.added.Add(n)
	return nil
}

// start feeds in the background until stop.
func (f *feeder) start(ctx context.Context) {
	ctx, f.cancel = context.WithCancel(ctx)
	f.done = make(chan struct{})
	go func() {
		defer close(f.done)
		key := f.qc.Keys().Queue(f.queue)
		// The pace is judged over windows of a second at least: over one
		// tick, a late tick or a burst of finishing jobs would read as
		// a pace many times the real one.
		var rate float64 // jobs/s, the highest recent
		var last int64 = -1
		var pushed, winJobs int64
		winStart := time.Now()
		failures := 0
		tick := time.NewTicker(feedTick)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			depth, err := f.qc.Redis().LLen(ctx, key).Result()
			if err == nil {
				if last >= 0 {
					winJobs += last + pushed - depth
				}
				if dt := time.Since(winStart); dt >= time.Second {
					rate = max(rate*0.8, float64(winJobs)/dt.Seconds())
					if err := f.checkFailures(ctx, winJobs, dt); err != nil {
						f.fail(err)
						return
					}
					winJobs, winStart = 0, time.Now()
				}
				target := max(int64(feedMin), int64(rate*feedAhead.Seconds()))
				pushed = 0
				if depth < target {
					err = f.push(ctx, target-depth)
					if err == nil {
						pushed = target - depth
					}
				}
				last = depth
			}
			if err != nil && ctx.Err() == nil {
				if failures++; failures >= 20 {
					f.fail(fmt.Errorf("feeding %s failed: %w", f.queue, err))
					return
				}
				continue
			}
			failures = 0
		}
	}()
}

// checkFailures reads the pool's failure counter (Resque's
// stat:failed) once a window: when more than half the jobs taken from
// the queue in the window failed, the synthetic jobs fail (a class the
// workers do not run, bad arguments), and their pace means nothing.
func (f *feeder) checkFailures(ctx context.Context, taken int64, dt time.Duration) error {
	failed, err := f.qc.Redis().Get(ctx, f.qc.Keys().Failed()).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil // a missed reading; the next window tells
	}
	prev := f.failed
	f.failed = failed
	if f.failedSeen && taken > 0 && (failed-prev)*2 > taken {
		return fmt.Errorf("%w: %d jobs failed while %d were taken from %s in the last %.1fs (see the failed list): is the --load class one the workers run?",
			tune.ErrJobsFail, failed-prev, taken, f.queue, dt.Seconds())
	}
	f.failedSeen = true
	return nil
}

// stop ends the feeding and waits for it.
func (f *feeder) stop() {
	if f.cancel != nil {
		f.cancel()
		<-f.done
	}
}
