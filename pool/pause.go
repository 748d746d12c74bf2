package pool

// Pausing queue lists: USR2 to their workers, kept per group so that a
// worker started into a paused list later is paused too.

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
)

// PauseResult is what a remote pause or resume answers.
type PauseResult struct {
	Queues  []string `json:"queues"`  // the queue lists paused or resumed
	Workers []int    `json:"workers"` // the workers signalled
	// Pending are workers still starting: each gets USR2 as soon as it
	// catches it.
	Pending []int `json:"pending,omitempty"`
}

// Pause pauses the workers of the named queue lists (all when none) with
// USR2, and keeps those lists paused: a worker started into one later is
// paused too.
func (r *Remote) Pause(ctx context.Context, queues []string) (any, error) {
	return r.call(ctx, func() (any, error) { return r.m.setPaused(queues, true) })
}

// Resume resumes the workers of the named queue lists (all when none)
// with CONT.
func (r *Remote) Resume(ctx context.Context, queues []string) (any, error) {
	return r.call(ctx, func() (any, error) { return r.m.setPaused(queues, false) })
}

func (m *Master) setPaused(names []string, pause bool) (any, error) {
	verb := "resume"
	if pause {
		verb = "pause"
	}
	if m.stopping != notStopping {
		return nil, fmt.Errorf("%s: the pool is stopping", verb)
	}
	lists, err := m.resolveGroups(names, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", verb, err)
	}
	if len(lists) == 0 {
		return nil, fmt.Errorf("%s: pool %s has no queue lists", verb, m.opts.Paths.Name)
	}
	res := &PauseResult{Queues: lists, Workers: []int{}}
	in := map[string]bool{}
	for _, q := range lists {
		in[q] = true
		m.groups[q].paused = pause
	}
	for _, w := range m.sortedWorkers() {
		if !in[w.queues] || w.state == workerStopping {
			continue
		}
		if !pause {
			if err := syscall.Kill(w.pid, syscall.SIGCONT); err == nil {
				res.Workers = append(res.Workers, w.pid)
			}
			w.paused, w.pauseGaveUp = false, false
			continue
		}
		if m.pauseWorker(w) {
			res.Workers = append(res.Workers, w.pid)
		} else if !w.pauseGaveUp {
			res.Pending = append(res.Pending, w.pid)
		}
	}
	if pause {
		m.armPauseCheck()
	}
	m.log.Printf("fleet %s %s: %s signalled", verb, strings.Join(lists, " "), countOf(len(res.Workers), "worker"))
	m.dirty = true
	m.publish()
	return res, nil
}

func (m *Master) sortedWorkers() []*worker {
	ws := make([]*worker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].pid < ws[j].pid })
	return ws
}

// pauseWorker sends w (not its job's processes) USR2 once it obeys it,
// and reports whether w is paused. A process that does not catch USR2
// dies of it; a Go worker drops it until its main asks for signals,
// although /proc shows the runtime's handler from its first instruction,
// so a built-in worker is believed only once it said so on its readiness
// pipe.
func (m *Master) pauseWorker(w *worker) bool {
	if w.paused {
		return true
	}
	if w.builtin {
		if !w.obeysSignals {
			return false // awaitReady pauses it when it says so
		}
	} else if !catchesSignal(w.pid, syscall.SIGUSR2) {
		if w.state == workerRunning && !w.pauseGaveUp {
			// Running past start_secs and still not catching USR2:
			// a command that ignores Resque's signals.
			w.pauseGaveUp = true
			m.log.Printf("worker[%d] does not catch USR2 (it would die of it): not paused", w.pid)
		}
		return false
	}
	if err := syscall.Kill(w.pid, syscall.SIGUSR2); err != nil {
		return false
	}
	w.paused = true
	m.dirty = true
	return true
}

// pauseCheckInterval is how often the workers of paused queue lists that
// do not catch USR2 yet (still starting) are looked at again.
const pauseCheckInterval = 100 * time.Millisecond

// armPauseCheck pauses, from now on until none is left, the workers of
// paused queue lists that are not paused yet.
func (m *Master) armPauseCheck() {
	if m.pauseTimer != nil {
		return
	}
	pending := false
	for _, w := range m.workers {
		if g := m.groups[w.queues]; g != nil && g.paused && w.state != workerStopping && !w.paused && !w.pauseGaveUp {
			if !m.pauseWorker(w) && !w.pauseGaveUp {
				pending = true
			}
		}
	}
	if !pending {
		return
	}
	m.pauseTimer = time.AfterFunc(pauseCheckInterval, func() {
		m.post(func() {
			m.pauseTimer = nil
			m.armPauseCheck()
		})
	})
}

// catchesSignal reports whether process pid has a handler for sig.
func catchesSignal(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			var mask uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &mask); err != nil {
				return false
			}
			return mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}

// pauseAll records a USR2 (pause) or CONT (resume) the master forwarded
// to every worker: every queue list is paused or resumed with it, so a
// worker started later into a paused list is paused too.
func (m *Master) pauseAll(pause bool) {
	for _, g := range m.groups {
		g.paused = pause
	}
	// Each worker gets USR2 again (pausing twice is pausing), or CONT's
	// record of it is cleared; one still starting gets it once it obeys.
	for _, w := range m.workers {
		w.paused, w.pauseGaveUp = false, false
	}
	if pause {
		m.armPauseCheck()
	}
}
