package pool

import (
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/spec"
)

// Control is what a cockpit component may ask of the master. Its methods
// are safe from any goroutine: they post to the event loop.
type Control interface {
	// Scale sets an autoscaled queue list's count (clamped to its
	// bounds), preferring the pids in prefer (idle workers) when it
	// shrinks, and records the decision's reason. It does nothing for a
	// queue list that is not autoscaled, or pinned, or while the master
	// stops. Every call is logged (a hold too), so callers report a hold
	// only when its reason changes.
	Scale(queues string, n int, prefer []int, reason string)
	// Recycle replaces worker pid (when identity, its state file
	// identity, still names it) for reason, whose first word is its kind:
	// rss, jobs or lifetime. The master logs and counts it, QUITs the
	// worker (TERM after term_timeout, KILL after as long again) and
	// starts a replacement at once.
	Recycle(pid int, identity, reason string)
	// Remote is the executor of fleet control messages.
	Remote() *Remote
}

// autoscaleState is a group's autoscaling, nil settings when it has none.
type autoscaleState struct {
	settings   *spec.Autoscale
	off        bool // pinned to the configured count by a shell
	configured int  // the count the config gives
	count      int  // the autoscaler's count, -1 before its first decision
	reason     string
	at         time.Time
	prefer     map[int]bool
}

// on reports whether the autoscaler sets the group's count.
func (a *autoscaleState) on() bool { return a.settings != nil && !a.off }

// published is the state file's view, nil when not autoscaled.
func (a *autoscaleState) published() *poolfs.AutoscaleState {
	if a.settings == nil {
		return nil
	}
	mode := poolfs.AutoscaleOn
	if a.off {
		mode = poolfs.AutoscaleOff
	}
	return &poolfs.AutoscaleState{Mode: mode, Min: a.settings.Min, Max: a.settings.Max,
		TargetWait: a.settings.TargetWait.Seconds(), DownAfter: a.settings.DownAfter.Seconds(),
		Configured: a.configured, Reason: a.reason, At: a.at}
}

// applyAutoscale sets g's autoscaling from its settings at a load: an
// autoscaled group keeps the autoscaler's count across reloads (clamped
// to new bounds); a pinned or plain one runs the configured count.
func (m *Master) applyAutoscale(g *group, settings *spec.Autoscale, configured int) {
	a := &g.autoscale
	a.settings, a.configured = settings, configured
	a.off = settings != nil && m.autoscaleOff[g.queues]
	if !a.on() {
		a.count, a.prefer = -1, nil
		return
	}
	if a.count >= 0 {
		g.desired = min(max(a.count, settings.Min), settings.Max)
	}
}

// readAutoscaleOff reads the pinned queue lists; a file that cannot be
// read keeps the previous set (and says so).
func (m *Master) readAutoscaleOff() {
	off, err := poolfs.ReadAutoscaleOff(m.opts.Paths.AutoscaleOff)
	if err != nil {
		m.log.Printf("warning: %v (autoscale pins unchanged)", err)
		return
	}
	m.autoscaleOff = off
}

// Scale implements Control.
func (m *Master) Scale(queues string, n int, prefer []int, reason string) {
	m.post(func() {
		g := m.groups[queues]
		if g == nil || !g.autoscale.on() || m.stopping != notStopping {
			return
		}
		a := &g.autoscale
		n = min(max(n, a.settings.Min), a.settings.Max)
		old := g.desired
		a.count, a.reason, a.at = n, reason, time.Now()
		a.prefer = map[int]bool{}
		for _, pid := range prefer {
			a.prefer[pid] = true
		}
		g.desired = n
		if n != old {
			m.log.Printf("autoscale %s %d→%d: %s", queues, old, n, reason)
		} else {
			m.log.Printf("autoscale %s holds at %d: %s", queues, n, reason)
		}
		m.dirty = true
	})
}

// publishedLimits is the state file's view of limits, nil when none is set.
func publishedLimits(l spec.Limits) *poolfs.Limits {
	if l == (spec.Limits{}) {
		return nil
	}
	return &poolfs.Limits{MaxWorkers: l.MaxWorkers, MaxCPU: l.MaxCPU, MinFreeMemory: l.MinFreeMemory, MaxWorkerRSS: l.MaxWorkerRSS}
}
