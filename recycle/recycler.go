// Package recycle is the master's recycler: on every cockpit sample it
// looks at each worker's process-tree RSS and age against its queue
// list's max_rss and max_lifetime, and asks the master to replace the
// workers past them. (max_jobs needs no watching: workers get it in their
// environment and exit after that many jobs.)
package recycle

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/spec"
	"github.com/poolctl/poolctl/stats"
)

// OverSamples is how many consecutive samples a worker must be over
// max_rss before it is recycled: one spike is not a leak.
const OverSamples = 2

// LifetimeGrace is how far past max_lifetime a busy built-in worker may
// run, waiting for a sample that shows it idle, before it is recycled
// anyway (its job is then finished by QUIT).
const LifetimeGrace = 0.10

// Source gives the latest sample and the master state it was taken with
// (stats.Sampler is one).
type Source interface {
	Latest() (*stats.Sample, *poolfs.State)
}

// Control replaces a worker (pool.Master is one).
type Control interface {
	Recycle(pid int, identity, reason string)
}

// Recycler decides once per new sample, on a goroutine of its own.
type Recycler struct {
	src   Source
	ctl   Control
	every time.Duration

	mu   sync.Mutex
	last time.Time
	// over counts each worker's consecutive samples over max_rss, and
	// asked the workers already handed to the master, by pid+identity.
	over  map[string]int
	asked map[string]bool

	stop, done chan struct{}
}

// New returns a recycler that looks for a new sample every poll.
func New(src Source, ctl Control, poll time.Duration) *Recycler {
	return &Recycler{src: src, ctl: ctl, every: max(poll, 10*time.Millisecond),
		over: map[string]int{}, asked: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Start starts the recycler's loop.
func (r *Recycler) Start() { go r.loop() }

// Stop stops it and waits for the loop to end.
func (r *Recycler) Stop() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

func (r *Recycler) loop() {
	defer close(r.done)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.Step()
		}
	}
}

// Step decides once on the latest sample, if it is new.
func (r *Recycler) Step() {
	smp, st := r.src.Latest()
	if smp == nil || st == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !smp.TS.After(r.last) {
		return
	}
	r.last = smp.TS
	limits := map[string]*poolfs.RecycleSettings{}
	for _, g := range st.Groups {
		if g.Recycle != nil {
			limits[g.Queues] = g.Recycle
		}
	}
	byPID := map[int]*poolfs.WorkerState{}
	for i := range st.Workers {
		byPID[st.Workers[i].PID] = &st.Workers[i]
	}
	seen := map[string]bool{}
	for _, ws := range smp.Workers {
		w := byPID[ws.PID]
		if w == nil {
			continue
		}
		key := fmt.Sprintf("%d/%s/%d", w.PID, w.Identity, w.StartedAt.UnixNano())
		seen[key] = true
		lim := limits[w.Queues]
		if lim == nil || w.State == poolfs.WorkerStopping || r.asked[key] {
			continue
		}
		reason := Decide(ws, *w, *lim, smp.TS, r.over, key)
		if reason != "" {
			r.asked[key] = true
			r.ctl.Recycle(w.PID, w.Identity, reason)
		}
	}
	for key := range r.asked {
		if !seen[key] {
			delete(r.asked, key)
		}
	}
	for key := range r.over {
		if !seen[key] {
			delete(r.over, key)
		}
	}
}

// Decide says why the worker w (whose figures in the sample taken at now
// are ws) must be recycled under lim, "" when it need not be. over
// counts consecutive samples over max_rss by key.
func Decide(ws stats.WorkerSample, w poolfs.WorkerState, lim poolfs.RecycleSettings, now time.Time, over map[string]int, key string) string {
	if lim.MaxRSS > 0 {
		if ws.RSSBytes > lim.MaxRSS {
			over[key]++
			if over[key] >= OverSamples {
				return fmt.Sprintf("rss %s > max_rss %s", megabytes(ws.RSSBytes), spec.FormatBytes(lim.MaxRSS))
			}
		} else {
			delete(over, key)
		}
	}
	if lim.MaxLifetime > 0 && !w.StartedAt.IsZero() {
		limit := time.Duration(lim.MaxLifetime * float64(time.Second))
		age := now.Sub(w.StartedAt)
		idle := !w.Builtin || ws.Job == ""
		if age > limit && (idle || age > limit+time.Duration(float64(limit)*LifetimeGrace)) {
			return fmt.Sprintf("lifetime %s > max_lifetime %s", duration(age), limitString(limit))
		}
	}
	return ""
}

// megabytes formats b as whole megabytes ("612MB"), or kilobytes below one.
func megabytes(b uint64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%dKB", b>>10)
	}
	return fmt.Sprintf("%dMB", b>>20)
}

// duration formats an age d as "6h0m", "2m5s", "2.1s": to the minute
// past an hour, else rounded up to the second past a minute and to the
// tenth of a second below, so that an age just past a limit never reads
// as the limit itself.
func duration(d time.Duration) string {
	ceil := func(unit time.Duration) time.Duration { return (d + unit - 1) / unit * unit }
	switch {
	case d >= time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	case d >= time.Minute:
		return ceil(time.Second).String()
	}
	return ceil(100 * time.Millisecond).String()
}

// limitString formats a configured duration without its zero tail:
// "6h", "90m" → "1h30m", "2s".
func limitString(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
