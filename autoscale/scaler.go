package autoscale

import (
	"strings"
	"sync"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/spec"
	"github.com/poolctl/poolctl/stats"
)

// Source gives the latest sample and the master state it was taken with
// (stats.Sampler is one).
type Source interface {
	Latest() (*stats.Sample, *poolfs.State)
}

// Control applies a decision (pool.Master is one).
type Control interface {
	Scale(queues string, n int, prefer []int, reason string)
}

// Scaler runs the policy for every autoscaled queue list once per new
// sample, on a goroutine of its own, and hands changes (and holds, once
// per change of reason) to the master.
type Scaler struct {
	src   Source
	ctl   Control
	every time.Duration

	mu   sync.Mutex
	mem  map[string]*Memory
	last time.Time // the TS of the last sample decided on
	// pending holds each group's last change until the master's state
	// shows it: deciding again on a state that predates it would repeat
	// the step.
	pending map[string]pendingChange

	stop, done chan struct{}
}

// NewScaler returns a scaler that looks for a new sample every poll.
func NewScaler(src Source, ctl Control, poll time.Duration) *Scaler {
	return &Scaler{src: src, ctl: ctl, every: max(poll, 10*time.Millisecond), mem: map[string]*Memory{}, pending: map[string]pendingChange{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Start starts the scaler's loop.
func (s *Scaler) Start() { go s.loop() }

// Stop stops it and waits for the loop to end.
func (s *Scaler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *Scaler) loop() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Step()
		}
	}
}

// Step decides once on the latest sample, if it is new.
func (s *Scaler) Step() {
	smp, st := s.src.Latest()
	if smp == nil || st == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !smp.TS.After(s.last) {
		return
	}
	s.last = smp.TS
	if smp.RedisError != "" {
		// The sample repeats the last figures Redis gave: nothing seems
		// to finish, so no decision is taken on it, and a step measured
		// across the gap is not judged.
		for _, mem := range s.mem {
			mem.step = nil
		}
		return
	}
	seen := map[string]bool{}
	for _, g := range st.Groups {
		if g.Autoscale == nil || g.Autoscale.Mode != poolfs.AutoscaleOn {
			continue
		}
		seen[g.Queues] = true
		if p, ok := s.pending[g.Queues]; ok {
			if g.Desired != p.n && smp.TS.Sub(p.at) < pendingFor {
				continue
			}
			delete(s.pending, g.Queues)
		}
		mem := s.mem[g.Queues]
		if mem == nil {
			mem = &Memory{}
			s.mem[g.Queues] = mem
		}
		if !st.WorkersPausedAt.IsZero() {
			// Paused by the operator (USR2): a backlog is expected, and
			// new workers would not be paused. Hold, said once.
			mem.step, mem.surplusSince = nil, time.Time{}
			if mem.lastKind != kindPaused {
				mem.lastKind = kindPaused
				s.ctl.Scale(g.Queues, g.Desired, nil, "workers are paused (USR2): holding until they resume")
			}
			continue
		}
		in, idle := InputFor(smp, st, g)
		d := Decide(in, mem)
		if d.Changed || (d.Hold && d.NewReason) {
			s.ctl.Scale(g.Queues, d.Desired, idle, d.Reason)
		}
		if d.Changed {
			s.pending[g.Queues] = pendingChange{n: d.Desired, at: smp.TS}
		}
	}
	for q := range s.mem {
		if !seen[q] {
			delete(s.mem, q) // off, pinned or removed: start afresh when back
			delete(s.pending, q)
		}
	}
}

// kindPaused is the kind of the hold while the workers are paused.
const kindPaused = "paused"

// pendingChange is a count handed to the master and not yet in its state.
type pendingChange struct {
	n  int
	at time.Time
}

// pendingFor is how long a change may stay out of the master's state
// before the scaler decides on the state as it is.
const pendingFor = 2 * time.Second

// InputFor assembles the policy's input for group g from a sample and
// the state, and lists g's idle workers (the ones to stop first).
func InputFor(smp *stats.Sample, st *poolfs.State, g poolfs.GroupState) (Input, []int) {
	a := g.Autoscale
	in := Input{
		Now: smp.TS,
		Settings: spec.Autoscale{Min: a.Min, Max: a.Max,
			TargetWait: time.Duration(a.TargetWait * float64(time.Second)), DownAfter: time.Duration(a.DownAfter * float64(time.Second))},
		Current: g.Desired, Live: g.Live,
		PoolWorkers:  len(st.Workers),
		CPUPercent:   smp.Host.CPUPercent,
		MemFreeBytes: smp.Host.MemFreeBytes,
		CPUs:         smp.Host.CPUs,
	}
	if l := st.Limits; l != nil {
		in.Limits = spec.Limits{MaxWorkers: l.MaxWorkers, MaxCPU: l.MaxCPU, MinFreeMemory: l.MinFreeMemory, MaxWorkerRSS: l.MaxWorkerRSS}
	}
	names := make([]string, 0, len(smp.Queues))
	for _, q := range smp.Queues {
		names = append(names, q.Name)
	}
	mine := map[string]bool{}
	for _, q := range queue.ExpandNames(strings.Split(g.Queues, ","), names) {
		mine[q] = true
	}
	var timing stats.Histogram
	for _, q := range smp.Queues {
		if !mine[q.Name] {
			continue
		}
		in.Backlog += q.Depth
		in.InRate += q.InRateSustained
		in.OutRate += q.OutRate
		in.Done += q.Processed
		timing.Add(q.Timing)
	}
	in.JobSeconds = timing.Mean()
	var idle []int
	var n int
	for _, w := range smp.Workers {
		if w.Queues != g.Queues {
			continue
		}
		n++
		in.WorkerCPU += w.CPUPercent
		in.WorkerRSS += w.RSSBytes
		if w.Job == "" && w.State == poolfs.WorkerRunning {
			idle = append(idle, w.PID)
		}
	}
	if n > 0 {
		in.WorkerCPU /= float64(n)
		in.WorkerRSS /= uint64(n)
	}
	in.Idle = len(idle)
	return in, idle
}
