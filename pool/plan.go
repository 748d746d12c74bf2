package pool

import (
	"sort"
	"syscall"
	"time"
)

// The reconcile decision, apart from its effects: plan looks at the
// desired groups, the live workers, the master's mode and the clock and
// says what to do; the event loop does it (Master.apply). Neither plan nor
// backoff starts, signals or waits for anything.

// actionKind is what an action asks of the event loop.
type actionKind int

const (
	// actStop: stop worker pid with sig, killing it after term_timeout.
	actStop actionKind = iota + 1
	// actSpawn: start up to n workers for queues, giving up at the first
	// start that fails (it backs the group off).
	actSpawn
	// actBackoff: queues starts nothing before until; wake the loop then.
	actBackoff
	// actFatal: queues starts nothing until a reload or config change.
	actFatal
)

// An action is one step of a reconcile decision.
type action struct {
	kind   actionKind
	queues string
	pid    int            // actStop
	sig    syscall.Signal // actStop
	n      int            // actSpawn
	until  time.Time      // actBackoff
}

// A world is what a reconcile decision looks at. plan only reads it.
type world struct {
	order    []string          // queue lists of the config in force, in its order
	groups   map[string]*group // by queue list
	workers  map[int]*worker   // by pid
	paused   bool              // after WINCH, until HUP
	stopping stopMode
	now      time.Time
}

// plan decides how the live workers move toward the desired ones:
//
//   - workers whose queue list was removed or whose launch settings
//     changed (fingerprint), and every worker while the master is paused
//     or stopping, are stopped with QUIT (workers already stopping are
//     left alone); a paused or stopping master decides nothing else;
//   - a rolling restart's old workers (restart.go) are live and are not
//     stopped for a changed fingerprint; its replacements are neither
//     counted nor stopped until they are ready (the roll owns them);
//   - a queue list with more live workers than desired stops the surplus,
//     a roll's old workers first, then oldest first;
//   - one with fewer starts the missing ones, unless it is FATAL (nothing)
//     or backing off (it waits); a crash-looping one (failed starts not yet
//     cleared by a worker that survived start_secs) starts one probe, and
//     nothing while the probe lives.
//
// Workers are taken in pid order and queue lists in config order, so a
// world always gives the same actions.
func plan(w world) []action {
	var acts []action
	pids := make([]int, 0, len(w.workers))
	for pid := range w.workers {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	halt := w.paused || w.stopping != notStopping
	live := map[string][]*worker{}
	for _, pid := range pids {
		wk := w.workers[pid]
		if wk.state == workerStopping {
			continue
		}
		if g := w.groups[wk.queues]; halt || g == nil || (g.fingerprint != wk.fingerprint && wk.roll != rollOld) {
			// Removed, changed, paused or stopping: stop gracefully.
			acts = append(acts, stopAction(wk))
			continue
		}
		if wk.roll == rollNew {
			continue // a rolling restart's replacement: counted once ready
		}
		live[wk.queues] = append(live[wk.queues], wk)
	}
	if halt {
		return acts
	}
	for _, q := range w.order {
		g := w.groups[q]
		ws := live[q]
		if n := len(ws) - g.desired; n > 0 {
			// Workers a rolling restart replaces first, then the
			// autoscaler's idle ones, then the oldest.
			sort.SliceStable(ws, func(i, j int) bool {
				if oi, oj := ws[i].roll == rollOld, ws[j].roll == rollOld; oi != oj {
					return oi
				}
				pi, pj := g.autoscale.prefer[ws[i].pid], g.autoscale.prefer[ws[j].pid]
				if pi != pj {
					return pi
				}
				return ws[i].started.Before(ws[j].started)
			})
			for _, wk := range ws[:n] {
				acts = append(acts, stopAction(wk))
			}
			continue
		}
		missing := g.desired - len(ws)
		if missing <= 0 {
			continue
		}
		switch g.state(w.now) {
		case groupFatal:
			continue
		case groupBackoff:
			acts = append(acts, action{kind: actBackoff, queues: q, until: g.backoffUntil})
			continue
		}
		if g.failures > 0 {
			// Crash-looping: probe with one worker; the rest follow once
			// it has survived start_secs.
			if len(ws) > 0 {
				continue
			}
			missing = 1
		}
		acts = append(acts, action{kind: actSpawn, queues: q, n: missing})
	}
	return acts
}

func stopAction(w *worker) action {
	return action{kind: actStop, queues: w.queues, pid: w.pid, sig: syscall.SIGQUIT}
}

// backoff decides what the failures-th failed start in a row of queues
// means (failures counts this one): FATAL once it reaches retries (the
// config's start_retries), else a wait of 250ms, doubled with every
// further failure, at most longest (backoff_max).
func backoff(queues string, failures, retries int, longest time.Duration, now time.Time) action {
	if failures >= retries {
		return action{kind: actFatal, queues: queues}
	}
	delay := min(250*time.Millisecond<<min(failures-1, 16), longest)
	return action{kind: actBackoff, queues: queues, until: now.Add(delay)}
}
