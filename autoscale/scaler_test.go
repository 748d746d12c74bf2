package autoscale

import (
	"testing"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/stats"
)

type fakeSource struct {
	smp *stats.Sample
	st  *poolfs.State
}

func (f *fakeSource) Latest() (*stats.Sample, *poolfs.State) { return f.smp, f.st }

type call struct {
	queues string
	n      int
	reason string
}

type fakeControl struct{ calls []call }

func (f *fakeControl) Scale(queues string, n int, _ []int, reason string) {
	f.calls = append(f.calls, call{queues, n, reason})
}

// A master slow to apply a change: the scaler does not decide again on a
// state that predates its own change (which would repeat the step), but
// does once the change shows or after pendingFor.
func TestScalerWaitsForItsChangeInState(t *testing.T) {
	now := time.Unix(1000, 0)
	group := poolfs.GroupState{Queues: "q:é/x", Desired: 1, Live: 1,
		Autoscale: &poolfs.AutoscaleState{Mode: poolfs.AutoscaleOn, Min: 1, Max: 16, TargetWait: 2, DownAfter: 5}}
	src := &fakeSource{
		smp: &stats.Sample{TS: now, Queues: []stats.QueueSample{{Name: "q:é/x", Depth: 3000,
			Timing: stats.Histogram{Count: 10, Sum: 0.2}}}},
		st: &poolfs.State{Groups: []poolfs.GroupState{group}},
	}
	ctl := &fakeControl{}
	s := NewScaler(src, ctl, time.Second)
	s.Step()
	if len(ctl.calls) != 1 || ctl.calls[0].n != 16 {
		t.Fatalf("first decision: %+v", ctl.calls)
	}
	s.Step() // same sample: nothing
	for i := 1; i <= 5; i++ {
		smp := *src.smp
		smp.TS = now.Add(time.Duration(i) * 200 * time.Millisecond)
		src.smp = &smp
		s.Step()
	}
	if len(ctl.calls) != 1 {
		t.Fatalf("decided again on a state without its change: %+v", ctl.calls)
	}
	smp := *src.smp
	smp.TS = now.Add(3 * time.Second)
	src.smp = &smp
	s.Step()
	if len(ctl.calls) != 2 {
		t.Fatalf("never decided again after the change stayed out of the state for %s: %+v", pendingFor, ctl.calls)
	}
}

// Redis stalls right after a step up: the samples carry the last figures
// (and say so in RedisError), so nothing seems to finish. The scaler must
// not judge the step on them ("no gain from 1→4 workers (…→ 0/s)") and
// take the group back to 1 with a backlog waiting; after the stall it
// decides on fresh figures again.
func TestScalerDoesNotDecideOnStaleFigures(t *testing.T) {
	now := time.Unix(1000, 0)
	auto := &poolfs.AutoscaleState{Mode: poolfs.AutoscaleOn, Min: 1, Max: 16, TargetWait: 2, DownAfter: 5}
	sample := func(i int, done int64, redisErr string) *stats.Sample {
		return &stats.Sample{TS: now.Add(time.Duration(i) * 200 * time.Millisecond), RedisError: redisErr,
			Queues: []stats.QueueSample{{Name: "work", Depth: 400, Processed: done, OutRate: 50,
				Timing: stats.Histogram{Count: 10, Sum: 0.2}}}}
	}
	src := &fakeSource{smp: sample(0, 0, ""),
		st: &poolfs.State{Groups: []poolfs.GroupState{{Queues: "work", Desired: 1, Live: 1, Autoscale: auto}}}}
	ctl := &fakeControl{}
	s := NewScaler(src, ctl, time.Second)
	s.Step()
	if len(ctl.calls) != 1 || ctl.calls[0].n != 4 {
		t.Fatalf("first decision: %+v", ctl.calls)
	}
	src.st = &poolfs.State{Groups: []poolfs.GroupState{{Queues: "work", Desired: 4, Live: 4, Autoscale: auto}}}
	var done int64
	for i := 1; i <= 40; i++ {
		stale := i > 3 && i <= 30 // Redis frozen from 0.8 s to 6 s
		if !stale {
			done += 40 // 200 jobs/s: four 20 ms workers
		}
		errMsg := ""
		if stale {
			errMsg = "cockpit cannot read Redis: i/o timeout"
		}
		src.smp = sample(i, done, errMsg)
		s.Step()
	}
	for _, c := range ctl.calls[1:] {
		if c.n < 4 {
			t.Fatalf("scaled down to %d on figures Redis could not refresh: %q", c.n, c.reason)
		}
	}
}

// Workers paused by the operator (USR2: `pause`, top's `p`) leave a
// backlog that nothing drains: the scaler must not answer it by starting
// workers, which are not paused and would run the jobs the operator held.
func TestScalerHoldsWhileWorkersArePaused(t *testing.T) {
	now := time.Unix(1000, 0)
	auto := &poolfs.AutoscaleState{Mode: poolfs.AutoscaleOn, Min: 1, Max: 16, TargetWait: 2, DownAfter: 5}
	src := &fakeSource{
		st: &poolfs.State{WorkersPausedAt: now.Add(-time.Second),
			Groups: []poolfs.GroupState{{Queues: "work", Desired: 1, Live: 1, Autoscale: auto}}},
	}
	ctl := &fakeControl{}
	s := NewScaler(src, ctl, time.Second)
	for i := 0; i < 20; i++ {
		src.smp = &stats.Sample{TS: now.Add(time.Duration(i) * 200 * time.Millisecond),
			Queues: []stats.QueueSample{{Name: "work", Depth: 3000, State: stats.QueueStalled, Timing: stats.Histogram{Count: 10, Sum: 0.2}}}}
		s.Step()
	}
	for _, c := range ctl.calls {
		if c.n != 1 {
			t.Fatalf("scaled to %d while the workers were paused: %q", c.n, c.reason)
		}
	}
	// Resumed: the backlog is answered at once.
	src.st = &poolfs.State{Groups: src.st.Groups}
	src.smp = &stats.Sample{TS: now.Add(5 * time.Second),
		Queues: []stats.QueueSample{{Name: "work", Depth: 3000, Timing: stats.Histogram{Count: 10, Sum: 0.2}}}}
	s.Step()
	if n := len(ctl.calls); n == 0 || ctl.calls[n-1].n != 16 {
		t.Fatalf("after resume: %+v", ctl.calls)
	}
}
