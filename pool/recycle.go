package pool

import (
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
)

// Kinds of recycle: the first word of a recycle's reason, and the keys
// of a group's recycled counts (a bounded metrics label).
const (
	RecycleRSS      = "rss"
	RecycleJobs     = "jobs"
	RecycleLifetime = "lifetime"
)

// recycleSettings are a group's recycling limits (0 = none).
type recycleSettings struct {
	maxRSS      uint64
	maxJobs     int
	maxLifetime time.Duration
}

// published is the state file's view, nil when the group has no limit.
func (r recycleSettings) published() *poolfs.RecycleSettings {
	if r == (recycleSettings{}) {
		return nil
	}
	return &poolfs.RecycleSettings{MaxRSS: r.maxRSS, MaxJobs: r.maxJobs, MaxLifetime: r.maxLifetime.Seconds()}
}

// RecycleKind is the kind of a recycle reason: its first word when that
// is rss, jobs or lifetime, else "other".
func RecycleKind(reason string) string {
	word, _, _ := strings.Cut(reason, " ")
	switch word {
	case RecycleRSS, RecycleJobs, RecycleLifetime:
		return word
	}
	return "other"
}

func (m *Master) countRecycle(g *group, kind string) {
	if g.recycled == nil {
		g.recycled = map[string]int{}
	}
	g.recycled[kind]++
	m.dirty = true
}

// Recycle implements Control: it replaces worker pid, when it is still
// the process identity names ("" skips the check) and is not already
// stopping. The worker gets QUIT, TERM after term_timeout and KILL after
// term_timeout more; a replacement starts at once, since a stopping worker
// is not live.
func (m *Master) Recycle(pid int, identity, reason string) {
	m.post(func() {
		w := m.workers[pid]
		if w == nil || (identity != "" && w.identity != identity) || w.state == workerStopping || m.stopping != notStopping {
			return
		}
		g := m.groups[w.queues]
		if g == nil || g.fingerprint != w.fingerprint {
			return // being replaced anyway
		}
		m.log.Printf("recycling worker[%d] (%s): %s", pid, w.queues, reason)
		m.countRecycle(g, RecycleKind(reason))
		m.retire(w)
	})
}

// retire stops w with the ladder recycling and rolling restarts use:
// QUIT, TERM after term_timeout, KILL after term_timeout more.
func (m *Master) retire(w *worker) {
	m.stopWorker(w, syscall.SIGQUIT, m.cfg.TermTimeout, false)
	w.stopTimer.Stop()
	pid, bound := w.pid, m.cfg.TermTimeout
	w.stopTimer = time.AfterFunc(bound, func() {
		m.post(func() {
			if m.workers[pid] != w || m.stopping != notStopping {
				return // gone, or a master stop owns it now
			}
			m.log.Printf("worker[%d] still running %s after QUIT: sending TERM", pid, bound)
			m.stopWorker(w, syscall.SIGTERM, bound, true)
		})
	})
}
