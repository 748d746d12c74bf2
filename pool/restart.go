package pool

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/internal/workerenv"
	"github.com/poolctl/poolctl/pool/poolfs"
)

// Rolling restarts (issue 15 §2). A roll replaces the workers of some
// queue lists without a dip: it starts a replacement, waits until it is
// ready (a built-in worker registered in Redis, a command alive past
// start_secs), then QUITs an old worker, batch replacements at a time.
// plan cooperates through the workers' roll roles: an old worker is
// counted as live until it is told to stop (and is not stopped for a
// changed command), a replacement is neither counted nor stopped until it
// is ready. A roll starts on a shell's request (restart.request + SIGPWR)
// or on a HUP that changed a queue list's launch settings.

// rollRole is a worker's part in a rolling restart.
type rollRole int

const (
	rollNone rollRole = iota
	// rollOld: to be replaced. It serves on and counts as live; a HUP
	// that changed its command does not stop it. After a roll that failed
	// such a worker stays rollOld ("held"), so it keeps serving.
	rollOld
	// rollNew: a replacement that is not ready yet; the roll owns it.
	rollNew
)

// String is the word the state file carries.
func (r rollRole) String() string {
	switch r {
	case rollOld:
		return "old"
	case rollNew:
		return "new"
	}
	return ""
}

// Reasons of a roll, as logged and published.
const (
	restartReason    = "restart"
	restartNowReason = "restart!"
	changedReason    = "command changed"
)

// minReadyTimeout is the least time a replacement gets to become ready
// before the roll gives up (10 × start_secs when that is longer).
const minReadyTimeout = 30 * time.Second

// A roll is a rolling restart, running or finished.
type roll struct {
	pub      poolfs.RestartState
	inflight map[int]*worker // replacements started and not yet ready
}

func (r *roll) running() bool { return r != nil && r.pub.State == poolfs.RestartRunning }

func (r *roll) covers(queues string) bool { return slices.Contains(r.pub.Queues, queues) }

func readyTimeout(g *group) time.Duration { return max(minReadyTimeout, 10*g.startAfter) }

// awaitReady follows built-in worker w's readiness pipe
// (workerenv.ReadyFD) on its own goroutine and tells the event loop: first
// that w obeys signals (a pause pending for it is sent then), then that
// it is registered. EOF means the worker ended first.
func (m *Master) awaitReady(w *worker, r *os.File) {
	defer r.Close()
	lines := bufio.NewScanner(r)
	for lines.Scan() {
		switch lines.Text() {
		case workerenv.ReadySignals:
			m.post(func() {
				if m.workers[w.pid] != w {
					return
				}
				w.obeysSignals = true
				if g := m.groups[w.queues]; g != nil && g.paused && w.state != workerStopping {
					m.pauseWorker(w)
				}
			})
		case workerenv.ReadyRegistered:
			m.post(func() {
				if m.workers[w.pid] == w && !w.ready {
					w.obeysSignals, w.ready = true, true
					m.dirty = true
				}
			})
			return
		}
	}
}

// takeRestartRequest reads the shell's restart request (on SIGPWR) and
// starts the roll, or publishes why not.
func (m *Master) takeRestartRequest() {
	req, err := poolfs.TakeRestartRequest(m.opts.Paths.RestartRequest)
	if errors.Is(err, os.ErrNotExist) {
		m.log.Printf("PWR: no restart request in %s; nothing to do", m.opts.Paths.RestartRequest)
		return
	}
	if err == nil {
		err = m.startRestart(req)
	}
	if err != nil {
		m.restartRefused = &poolfs.RestartRefusal{ID: req.ID, Error: err.Error(), At: time.Now()}
		m.log.Printf("restart refused: %v", err)
		m.dirty = true
	}
}

// startRestart begins the roll req asks for, or says why it cannot.
func (m *Master) startRestart(req poolfs.RestartRequest) error {
	switch {
	case m.stopping != notStopping:
		return errors.New("the pool is stopping")
	case m.paused:
		return errors.New("the workers are stopped (WINCH); reload first")
	case m.roll.running():
		return fmt.Errorf("a restart is already running (%d of %d replaced); wait for it to end", m.roll.pub.Replaced, m.roll.pub.Total)
	}
	queues := slices.Clone(m.order)
	if len(req.Queues) > 0 {
		queues = nil
		for _, q := range req.Queues {
			if m.groups[q] == nil {
				return fmt.Errorf("no queue list %q in the pool (it has: %s)", q, strings.Join(m.order, " "))
			}
			if !slices.Contains(queues, q) {
				queues = append(queues, q)
			}
		}
	}
	reason := restartReason
	if req.Now {
		reason = restartNowReason
	}
	r := &roll{pub: poolfs.RestartState{ID: req.ID, Reason: reason, Queues: queues, Batch: req.Batch,
		State: poolfs.RestartRunning, StartedAt: time.Now()}, inflight: map[int]*worker{}}
	m.roll, m.dirty = r, true
	old := 0
	for _, w := range m.workers {
		if w.state != workerStopping && w.roll != rollNew && r.covers(w.queues) {
			w.roll = rollOld
			old++
		}
	}
	if req.Now {
		// All at once: every old worker gets QUIT now, and plan starts
		// their replacements in the same pass (a dip, as asked).
		m.log.Printf("restart!: stopping %s of queues %s; replacements start now", countOf(old, "worker"), strings.Join(queues, " "))
		for _, w := range m.workers {
			if w.roll == rollOld && r.covers(w.queues) {
				w.roll = rollNone
				m.retire(w)
				r.pub.Replaced++
			}
		}
		r.pub.Total = r.pub.Replaced
		m.endRoll(nil)
		return nil
	}
	m.log.Printf("restart: replacing %s of queues %s, %d at a time", countOf(old, "worker"), strings.Join(queues, " "), r.pub.Batch)
	return nil
}

// rollChanged is called after a HUP applied a new configuration: the
// live workers whose launch settings changed (their group's fingerprint)
// are rolled instead of stopped first.
func (m *Master) rollChanged() {
	if !m.roll.running() {
		// Workers kept by a failed roll that now match again are plain.
		for _, w := range m.workers {
			if g := m.groups[w.queues]; w.roll == rollOld && g != nil && g.fingerprint == w.fingerprint {
				w.roll = rollNone
			}
		}
	}
	if m.roll.running() {
		// Replacements of a queue list the HUP removed are no longer the
		// roll's: plan stops them with the list's other workers.
		for pid, w := range m.roll.inflight {
			if m.groups[w.queues] == nil {
				delete(m.roll.inflight, pid)
				w.roll = rollNone
			}
		}
	}
	var changed []string
	n := 0
	for _, q := range m.order {
		g := m.groups[q]
		for _, w := range m.workers {
			if w.queues != q || w.state == workerStopping || w.fingerprint == g.fingerprint {
				continue
			}
			switch w.roll {
			case rollNew:
				// A replacement that is outdated before it was ready.
				m.log.Printf("HUP: stopping replacement worker[%d] (queues %s): its command changed", w.pid, q)
				if m.roll != nil {
					delete(m.roll.inflight, w.pid)
				}
				w.roll = rollNone
				m.stopWorker(w, syscall.SIGQUIT, m.cfg.TermTimeout, false)
				continue
			case rollNone:
				w.roll = rollOld
			}
			n++
			if !slices.Contains(changed, q) {
				changed = append(changed, q)
			}
		}
	}
	if len(changed) == 0 {
		return
	}
	if m.roll.running() {
		for _, q := range changed {
			if !m.roll.covers(q) {
				m.roll.pub.Queues = append(m.roll.pub.Queues, q)
			}
		}
		m.log.Printf("HUP: the launch settings of queues %s changed: their workers join the rolling restart under way", strings.Join(changed, " "))
		m.dirty = true
		return
	}
	m.roll = &roll{pub: poolfs.RestartState{Reason: changedReason, Queues: changed, Batch: 1,
		State: poolfs.RestartRunning, StartedAt: time.Now()}, inflight: map[int]*worker{}}
	m.dirty = true
	m.log.Printf("HUP: the launch settings of queues %s changed: rolling %s, one at a time", strings.Join(changed, " "), countOf(n, "worker"))
}

// advanceRoll moves the running roll on; the event loop calls it before
// every reconcile decision.
func (m *Master) advanceRoll() {
	r := m.roll
	if !r.running() {
		return
	}
	switch {
	case m.stopping != notStopping:
		m.endRoll(errors.New("the pool is stopping"))
		return
	case m.paused:
		m.endRoll(errors.New("the workers were stopped (WINCH)"))
		return
	}
	for _, pid := range sortedPids(r.inflight) {
		w := r.inflight[pid]
		if m.workers[pid] != w {
			status := "status unknown"
			if g := m.groups[w.queues]; g != nil && g.lastExit != "" {
				status = g.lastExit
			}
			m.endRoll(fmt.Errorf("replacement worker[%d] for queues %s exited before it was ready (%s)", pid, w.queues, status))
			return
		}
		if w.state == workerStopping {
			delete(r.inflight, pid) // stopped by someone else: no longer the roll's
			w.roll = rollNone
			continue
		}
		if !w.ready {
			continue
		}
		delete(r.inflight, pid)
		w.roll = rollNone
		m.dirty = true
		if old := m.oldestOld(w.queues); old != nil {
			m.log.Printf("restart: worker[%d] replaced by worker[%d] (queues %s): %s", old.pid, w.pid, w.queues, r.pub.Reason)
			old.roll = rollNone
			m.retire(old)
			r.pub.Replaced++
		}
	}
	remaining, started := map[string]int{}, map[string]int{}
	left := 0
	for _, w := range m.workers {
		if w.roll == rollOld && w.state != workerStopping && r.covers(w.queues) && m.groups[w.queues] != nil {
			remaining[w.queues]++
			left++
		}
	}
	for _, w := range r.inflight {
		started[w.queues]++
	}
	if total := r.pub.Replaced + left; total != r.pub.Total {
		r.pub.Total, m.dirty = total, true
	}
	if left == 0 {
		m.endRoll(nil)
		return
	}
	for _, q := range r.pub.Queues {
		g := m.groups[q]
		for g != nil && len(r.inflight) < r.pub.Batch && started[q] < remaining[q] {
			w := m.spawn(g)
			if w == nil {
				m.endRoll(fmt.Errorf("cannot start a replacement for queues %s: %s", q, g.reason))
				return
			}
			w.roll = rollNew
			r.inflight[w.pid] = w
			started[q]++
			m.armReadyTimeout(r, w, readyTimeout(g))
		}
	}
}

// armReadyTimeout ends roll r when replacement w is not ready in time.
func (m *Master) armReadyTimeout(r *roll, w *worker, bound time.Duration) {
	time.AfterFunc(bound, func() {
		m.post(func() {
			if m.roll == r && r.running() && r.inflight[w.pid] == w && !w.ready {
				m.endRoll(fmt.Errorf("replacement worker[%d] for queues %s was not ready within %s", w.pid, w.queues, bound))
			}
		})
	})
}

// oldestOld is the longest-running old worker of queues still serving.
func (m *Master) oldestOld(queues string) *worker {
	var found *worker
	for _, w := range m.workers {
		if w.queues == queues && w.roll == rollOld && w.state != workerStopping &&
			(found == nil || w.started.Before(found.started) || (w.started.Equal(found.started) && w.pid < found.pid)) {
			found = w
		}
	}
	return found
}

// endRoll finishes the running roll: done when err is nil, else failed,
// stopping the replacements not yet ready and leaving the old workers
// not yet replaced running.
func (m *Master) endRoll(err error) {
	r := m.roll
	r.pub.EndedAt = time.Now()
	r.pub.State = poolfs.RestartDone
	m.dirty = true
	for _, pid := range sortedPids(r.inflight) {
		w := r.inflight[pid]
		w.roll = rollNone
		if m.workers[pid] == w && w.state != workerStopping {
			m.log.Printf("restart: stopping replacement worker[%d] (queues %s): the restart stopped", pid, w.queues)
			m.stopWorker(w, syscall.SIGQUIT, m.cfg.TermTimeout, false)
		}
	}
	r.inflight = nil
	for _, w := range m.workers {
		// Old workers of an unchanged command are plain workers again;
		// those of a changed one stay held, serving until the next HUP
		// or restart replaces them.
		if g := m.groups[w.queues]; w.roll == rollOld && g != nil && g.fingerprint == w.fingerprint {
			w.roll = rollNone
		}
	}
	if err != nil {
		r.pub.State, r.pub.Error = poolfs.RestartFailed, err.Error()
		m.log.Printf("restart failed: %v; %d of %d replaced, the others keep running", err, r.pub.Replaced, r.pub.Total)
		return
	}
	m.log.Printf("restart done: %s replaced (queues %s): %s", countOf(r.pub.Replaced, "worker"), strings.Join(r.pub.Queues, " "), r.pub.Reason)
}

func sortedPids(ws map[int]*worker) []int {
	pids := make([]int, 0, len(ws))
	for pid := range ws {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}
