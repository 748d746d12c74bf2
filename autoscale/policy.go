// Package autoscale decides how many workers an autoscaled queue list
// should run: a pure policy (Decide) over the master's samples, with table
// tests, and a thin loop (Scaler) that feeds it samples and applies its
// decisions through the master, as `config` would.
//
// The policy is Little's law: desired = ceil(λ·S + B·S/T), with λ the
// arrival rate, S the mean job time, B the backlog and T the target wait,
// clamped to the group's bounds and to the machine's limits. It scales up
// at once by the whole shortfall, and down one idle worker at a time after
// a sustained surplus. A step up that did not pay (throughput rose by
// less than half of what the added workers should have added: CPU-bound
// jobs on a saturated host) is undone to the count the throughput
// supports, and the group holds there.
package autoscale

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/poolctl/poolctl/spec"
)

// Input is what one decision looks at: a group's settings and the latest
// figures of its queues, its workers and the host.
type Input struct {
	Now      time.Time
	Settings spec.Autoscale
	Limits   spec.Limits
	// Current is the group's desired count in force; Live its running
	// workers and Idle how many of them run no job.
	Current, Live, Idle int
	// PoolWorkers is every live worker of the pool.
	PoolWorkers int
	// Backlog is the jobs queued in the group's queues; InRate their
	// sustained arrival rate (jobs/s); OutRate their finish rate; Done
	// the all-time count of finished jobs (for measuring a step).
	Backlog int64
	InRate  float64
	OutRate float64
	Done    int64
	// JobSeconds is the mean run time of the group's jobs, 0 when unknown.
	JobSeconds float64
	// Host figures: CPU busy % of all CPUs, available memory.
	CPUPercent   float64
	MemFreeBytes uint64
	// WorkerCPU is the mean CPU % (of one CPU) of the group's workers;
	// WorkerRSS their mean resident size; CPUs the host's CPU count.
	WorkerCPU float64
	WorkerRSS uint64
	CPUs      int
}

// Memory is what the policy remembers between decisions of one group.
type Memory struct {
	surplusSince time.Time // when desired first fell below current, zero when it did not
	// step is the last step up being measured.
	step *step
	// ceiling caps the count after a step that did not pay, until it
	// lifts (the queue empties, or ceilingFor passes).
	ceiling      int
	ceilingUntil time.Time
	lastKind     string
}

type step struct {
	from, to int
	at       time.Time
	// perWorker is what one more worker should add (jobs/s): 1/S, a
	// worker running jobs of the mean time back to back, when S is known,
	// else the measured rate per worker.
	perWorker    float64
	before       float64 // throughput at `from`
	doneAt       int64   // Done when the new workers were running
	measureStart time.Time
}

// Decision is the policy's answer for one group.
type Decision struct {
	Desired int
	// Reason explains the decision with its inputs, e.g. "backlog 5400,
	// in 310/s, job 28ms, target wait 5s (cpu 61% < 90%)".
	Reason string
	// Changed is Desired != Input.Current; Hold is a wish the limits or
	// the gain rule held back.
	Changed, Hold bool
	// Kind names the reason without its figures ("up", "no gain",
	// "limit", "busy", ...); NewReason is true when it differs from the
	// last decision's, so holds are logged once per change of reason.
	Kind      string
	NewReason bool
}

// Pacing of the policy.
const (
	// measureFor is how long the throughput after a step up is measured
	// before it is judged.
	measureFor = 3 * time.Second
	// settleFor is how long new workers get to start before measuring.
	settleFor = 500 * time.Millisecond
	// minGain is the share of the expected added throughput a step must
	// deliver. Half, not less: on a busy 2-core host one CPU-bound worker
	// runs at a third of its speed, so 1 → 16 still nearly triples the
	// rate, a tenth of what 15 more workers should add, while 13 of them
	// only wait for a core.
	minGain = 0.5
	// ceilingFor is how long a "no gain" ceiling lasts while work remains.
	ceilingFor = 2 * time.Minute
)

// Want is the count Little's law asks for, clamped to the group's bounds,
// and the computation that gave it.
func Want(in Input) (int, string) {
	a := in.Settings
	var want float64
	var how string
	switch {
	case in.Backlog == 0 && in.InRate == 0:
		want, how = 0, "no backlog, nothing arriving"
	case in.JobSeconds <= 0:
		// No job finished yet: double until the job time is known.
		want = float64(max(2*in.Current, 1))
		how = fmt.Sprintf("backlog %d, job time not known yet: doubling", in.Backlog)
	default:
		s := in.JobSeconds
		want = math.Ceil(in.InRate*s + float64(in.Backlog)*s/a.TargetWait.Seconds())
		how = fmt.Sprintf("backlog %d, in %.0f/s, job %s, target wait %s: λ·S + B·S/T = %.1f",
			in.Backlog, in.InRate, FormatJobTime(s), a.TargetWait, in.InRate*s+float64(in.Backlog)*s/a.TargetWait.Seconds())
	}
	n := int(math.Min(want, float64(a.Max)))
	return max(n, a.Min), how
}

// Decide returns the group's count for this sample, and updates mem.
func Decide(in Input, mem *Memory) Decision {
	want, how := Want(in)
	d := Decision{Desired: in.Current}

	// A step up under measurement: judge it once it had time to show.
	if st := mem.step; st != nil {
		if in.Current != st.to {
			mem.step = nil // something else changed the count
		} else if in.Live >= st.to && st.measureStart.IsZero() && in.Now.Sub(st.at) >= settleFor {
			st.measureStart, st.doneAt = in.Now, in.Done
		} else if !st.measureStart.IsZero() && in.Now.Sub(st.measureStart) >= measureFor {
			after := float64(in.Done-st.doneAt) / in.Now.Sub(st.measureStart).Seconds()
			mem.step = nil
			perWorker := st.perWorker
			expected := perWorker * float64(st.to-st.from)
			if perWorker > 0 && after-st.before < minGain*expected {
				keep := int(math.Ceil(after / perWorker))
				keep = min(max(keep, st.from, in.Settings.Min), st.to)
				mem.ceiling, mem.ceilingUntil = keep, in.Now.Add(ceilingFor)
				d.Desired, d.Hold = keep, true
				d.Reason = fmt.Sprintf("no gain from %d→%d workers (%.0f/s → %.0f/s, expected +%.0f/s): holding at %d", st.from, st.to, st.before, after, expected, keep)
				return mem.finish(d, in, "no gain")
			}
		}
	}
	if mem.ceiling > 0 && (in.Now.After(mem.ceilingUntil) || in.Backlog == 0) {
		mem.ceiling = 0
	}

	switch {
	case want > in.Current:
		mem.surplusSince = time.Time{}
		if mem.step != nil {
			d.Hold, d.Reason = true, fmt.Sprintf("measuring the step %d→%d before another", mem.step.from, mem.step.to)
			return mem.finish(d, in, "measuring")
		}
		if in.JobSeconds <= 0 && in.Live < in.Current {
			// Doubling blind: wait for the last doubling's workers.
			d.Hold, d.Reason = true, fmt.Sprintf("%s; waiting for %d workers to start", how, in.Current-in.Live)
			return mem.finish(d, in, "starting")
		}
		target, limit := want, ""
		if mem.ceiling > 0 && target > mem.ceiling {
			target, limit = mem.ceiling, fmt.Sprintf("no gain above %d workers lately", mem.ceiling)
		}
		if n, why := machineRoom(in); in.Current+n < target {
			target, limit = in.Current+n, why
		}
		if target <= in.Current {
			d.Hold, d.Reason = true, fmt.Sprintf("%s; wants %d, held at %d: %s", how, want, in.Current, limit)
			return mem.finish(d, in, "held: "+limitKind(limit))
		}
		d.Desired = target
		d.Reason = how + hostNote(in)
		if limit != "" {
			d.Reason += fmt.Sprintf("; wants %d, limited: %s", want, limit)
		}
		// Measure the step: it must deliver half of what the added
		// workers should. The baseline is what `from` workers do at the
		// job time seen so far (the measured rate lags a step up).
		if in.Current > 0 {
			st := &step{from: in.Current, to: target, at: in.Now, before: in.OutRate}
			if in.JobSeconds > 0 {
				st.perWorker = 1 / in.JobSeconds
				st.before = max(st.before, float64(in.Current)*st.perWorker)
			} else if in.OutRate > 0 {
				st.perWorker = in.OutRate / float64(in.Current)
			}
			if st.perWorker > 0 { // else nothing to judge it by: a blind doubling
				mem.step = st
			}
		}
		return mem.finish(d, in, "up")
	case want < in.Current:
		if mem.surplusSince.IsZero() {
			mem.surplusSince = in.Now
		}
		waited := in.Now.Sub(mem.surplusSince)
		switch {
		case waited < in.Settings.DownAfter:
			d.Reason = fmt.Sprintf("%s; surplus for %s of %s before scaling down", how, waited.Round(time.Second), in.Settings.DownAfter)
			return mem.finish(d, in, "surplus")
		case in.Idle == 0:
			d.Hold, d.Reason = true, fmt.Sprintf("%s; every worker is busy: none stopped", how)
			return mem.finish(d, in, "busy")
		default:
			// One per sample: the next decision sees this one applied.
			d.Desired, d.Reason = in.Current-1, how+"; one idle worker stopped"
			return mem.finish(d, in, "down")
		}
	}
	mem.surplusSince = time.Time{}
	d.Reason = how + ": steady"
	return mem.finish(d, in, "steady")
}

// limitKind is the name of the limit in a hold's reason.
func limitKind(limit string) string {
	for _, k := range []string{"max_workers", "max_cpu", "min_free_memory", "no gain"} {
		if strings.Contains(limit, k) {
			return k
		}
	}
	return limit
}

// finish fills the decision's flags and remembers its kind.
func (mem *Memory) finish(d Decision, in Input, kind string) Decision {
	d.Changed = d.Desired != in.Current
	d.Kind = kind
	d.NewReason = kind != mem.lastKind
	mem.lastKind = kind
	return d
}

// machineRoom is how many more workers the machine limits allow, and
// which limit binds ("" when none does).
func machineRoom(in Input) (int, string) {
	room, why := math.MaxInt32, ""
	l := in.Limits
	if l.MaxWorkers > 0 {
		if n := l.MaxWorkers - in.PoolWorkers; n < room {
			room, why = n, fmt.Sprintf("pool at %d of max_workers %d", in.PoolWorkers, l.MaxWorkers)
		}
	}
	if l.MaxCPU > 0 {
		// Each worker of this group adds its share of the host's CPUs.
		share := in.WorkerCPU / float64(max(in.CPUs, 1))
		n := math.MaxInt32
		switch {
		case in.CPUPercent >= l.MaxCPU:
			n = 0
		case share > 0:
			n = int((l.MaxCPU - in.CPUPercent) / share)
		}
		if n < room {
			room, why = n, fmt.Sprintf("cpu %.0f%% of max_cpu %.0f%%", in.CPUPercent, l.MaxCPU)
		}
	}
	if l.MinFreeMemory > 0 {
		size := max(l.MaxWorkerRSS, in.WorkerRSS)
		n := 0
		if in.MemFreeBytes > l.MinFreeMemory {
			n = math.MaxInt32
			if size > 0 {
				n = int(min((in.MemFreeBytes-l.MinFreeMemory)/size, math.MaxInt32))
			}
		}
		if n < room {
			room, why = n, fmt.Sprintf("free memory %s, min_free_memory %s, %s per worker", spec.FormatBytes(in.MemFreeBytes&^0xfffff), spec.FormatBytes(l.MinFreeMemory), spec.FormatBytes(size&^0xfffff))
		}
	}
	return max(room, 0), why
}

// hostNote is the host's side of a scale-up reason: " (cpu 61% < 90%)".
func hostNote(in Input) string {
	if in.Limits.MaxCPU > 0 {
		return fmt.Sprintf(" (cpu %.0f%% < %.0f%%)", in.CPUPercent, in.Limits.MaxCPU)
	}
	return fmt.Sprintf(" (cpu %.0f%%)", in.CPUPercent)
}

// FormatJobTime renders a job time in seconds: "28ms", "1.5s", "450µs".
func FormatJobTime(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
