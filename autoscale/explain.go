package autoscale

import (
	"math"
	"time"

	"github.com/poolctl/poolctl/spec"
)

// Explanation is the policy's computation for one group and one sample,
// step by step, for `autoscale explain`: Little's law, the clamp to the
// group's bounds, the room each machine limit leaves, and what the policy
// would decide.
type Explanation struct {
	// The inputs of Little's law: λ the arrival rate (jobs/s), S the mean
	// job time (s, 0 when unknown), B the backlog, T the target wait (s).
	Lambda float64 `json:"lambda"`
	S      float64 `json:"job_seconds"`
	B      int64   `json:"backlog"`
	T      float64 `json:"target_wait_seconds"`
	// Law is λ·S + B·S/T, nil when it does not apply (nothing to do, or
	// the job time is not known yet: the policy then doubles).
	Law *float64 `json:"law"`
	// How is the policy's own account of the computation (Want's).
	How string `json:"how"`
	// Want is the count Little's law asks for, clamped to Min..Max;
	// Clamp says how the bounds changed it ("" when they did not).
	Want     int    `json:"want"`
	Min      int    `json:"min"`
	Max      int    `json:"max"`
	Clamp    string `json:"clamp,omitempty"`
	Current  int    `json:"current"`
	Live     int    `json:"live"`
	Idle     int    `json:"idle"`
	Limits   []Room `json:"limits"`
	RoomLeft *int   `json:"room"` // the smallest room, nil when no limit bounds the count
	// Decision is what the policy would decide on this sample, from a
	// fresh memory: for a surplus, once it has lasted down_after; it knows
	// nothing of an earlier step's "no gain" ceiling, which the master's
	// last decision shows.
	Decision Decision `json:"-"`
	// Desired and Reason are Decision's.
	Desired int    `json:"desired"`
	Reason  string `json:"reason"`
}

// Room is how many more workers one machine limit allows.
type Room struct {
	Limit string `json:"limit"` // max_workers, max_cpu, min_free_memory
	// Room is nil when the limit does not bound the count yet (the
	// workers' CPU or memory is not measured yet).
	Room *int `json:"room"`
	// Why gives the figures, e.g. "cpu 61% of max_cpu 90%".
	Why string `json:"why"`
}

// Explain computes the policy's decision for in step by step.
func Explain(in Input) Explanation {
	a := in.Settings
	e := Explanation{
		Lambda: in.InRate, S: in.JobSeconds, B: in.Backlog, T: a.TargetWait.Seconds(),
		Min: a.Min, Max: a.Max, Current: in.Current, Live: in.Live, Idle: in.Idle,
		Limits: []Room{},
	}
	e.Want, e.How = Want(in)
	// The count before the clamp, as Want computes it.
	var raw float64
	switch {
	case in.Backlog == 0 && in.InRate == 0:
		raw = 0
	case in.JobSeconds <= 0:
		raw = float64(max(2*in.Current, 1))
	default:
		law := in.InRate*in.JobSeconds + float64(in.Backlog)*in.JobSeconds/e.T
		if !math.IsInf(law, 0) && !math.IsNaN(law) { // a zero target wait
			e.Law = &law
		}
		raw = math.Ceil(law)
	}
	switch {
	case raw > float64(a.Max):
		e.Clamp = "lowered to max"
	case raw < float64(a.Min):
		e.Clamp = "raised to min"
	}
	l := in.Limits
	for _, one := range []struct {
		name   string
		limits spec.Limits
	}{
		{"max_workers", spec.Limits{MaxWorkers: l.MaxWorkers}},
		{"max_cpu", spec.Limits{MaxCPU: l.MaxCPU}},
		{"min_free_memory", spec.Limits{MinFreeMemory: l.MinFreeMemory, MaxWorkerRSS: l.MaxWorkerRSS}},
	} {
		if one.limits == (spec.Limits{MaxWorkerRSS: one.limits.MaxWorkerRSS}) {
			continue // not set
		}
		x := in
		x.Limits = one.limits
		n, why := machineRoom(x)
		r := Room{Limit: one.name, Why: why}
		if n < math.MaxInt32 {
			r.Room = &n
			if e.RoomLeft == nil || n < *e.RoomLeft {
				e.RoomLeft = &n
			}
		}
		e.Limits = append(e.Limits, r)
	}
	mem := &Memory{}
	if e.Want < in.Current {
		// What a sustained surplus leads to.
		mem.surplusSince = in.Now.Add(-a.DownAfter - time.Nanosecond)
	}
	e.Decision = Decide(in, mem)
	e.Desired, e.Reason = e.Decision.Desired, e.Decision.Reason
	return e
}
