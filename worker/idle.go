package worker

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/poolctl/poolctl/queue"
)

// DefaultIdleWaitMax is the longest an idle multi-queue worker waits for a
// notification before it looks at its queues itself. It bounds the
// pick-up latency of jobs from foreign producers (Resque.push pushes no
// token): about this long, less with many idle workers on one queue list.
const DefaultIdleWaitMax = time.Second

// idleState is what a multi-queue worker remembers between idle waits.
// Only the Run loop's goroutine touches it.
type idleState struct {
	timeout time.Duration // the next wait's timeout: backs off while idle
	woken   bool          // the last wait ended on a token or a won poll
}

// idleWait is the idle path of a worker whose queue list has several
// queues or patterns, after a reserve found every queue empty. Rather
// than run the reserve over every queue again soon (a script whose cost
// grows with the number of queues, for every idle worker), it blocks on
// the notify lists poolctl's producers push to (queue/notify.go) and
// returns when a reserve is worth running: a token arrived, or this
// worker won its queue list's shared poll (for foreign producers), or a
// control change (pause) is pending. QUIT and TERM close the blocking
// client, which ends the wait at once.
func (w *Worker) idleWait(ctx context.Context, qs []string, wake <-chan struct{}) error {
	if w.idle.timeout == 0 {
		w.idle.timeout = w.cfg.PollInterval
	}
	wakeKey := w.q.Keys().WorkerWake(w.id)
	keys := append(w.q.NotifyKeys(w.cfg.Queues, qs), wakeKey)
	for {
		key, err := w.q.WaitNotify(ctx, w.blocking, keys, jitter(w.idle.timeout))
		if err != nil {
			return err
		}
		if key == wakeKey {
			return nil // a control change: the loop looks at it
		}
		if key != "" {
			if quitting, stopping, paused, _ := w.control(); quitting || stopping || paused {
				// Not ours to act on now: pass it on rather than lose it.
				_ = w.q.RenotifyAny(ctx, key)
				return nil
			}
			w.idle.woken = true
			return nil
		}
		w.idle.timeout = min(2*w.idle.timeout, w.cfg.IdleWaitMax)
		select {
		case <-wake:
			return nil
		default:
		}
		// Half the cap, so that with one worker or many a foreign job
		// waits at most about IdleWaitMax.
		won, err := w.q.TryIdlePoll(ctx, w.cfg.Queues, w.cfg.IdleWaitMax/2)
		if err != nil {
			return err
		}
		if won {
			w.idle.woken = true
			return nil
		}
	}
}

// jitter returns d shortened by up to half, at random. Workers that went
// idle together would otherwise back off in step and all time out at
// the same moment, so that their queue list's poll lock (IdleWaitMax/2)
// would be tried once per IdleWaitMax instead of throughout it: foreign
// jobs would wait up to a full IdleWaitMax plus the poll.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// wakeIdle ends an idle multi-queue wait now, for a control change that
// does not close the blocking client (a pause). It runs in the
// background: the signal's caller does not wait on Redis.
func (w *Worker) wakeIdle() {
	if len(w.cfg.Queues) < 2 && !w.globs {
		return // a single-queue worker waits in BLMOVE, not here
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = w.q.WakeWorker(ctx, w.id) // best effort: the wait times out anyway
	}()
}

// tookJob is called when a reserve took job. After an idle wake, it
// passes a token on while job's queue holds more, so a burst wakes
// further idle workers one by one (whoever pushed it, poolctl or a
// foreign producer), and the next idle wait starts short again.
func (w *Worker) tookJob(ctx context.Context, job *queue.Job) {
	w.idle.timeout = 0
	if !w.idle.woken {
		return
	}
	w.idle.woken = false
	key := w.q.NotifyKeys(w.cfg.Queues, []string{job.Queue})[0]
	if err := w.q.Renotify(ctx, job.Queue, key); err != nil {
		// Only a wake-up is lost: the other idle workers poll.
		w.logf("%v", err)
	}
}
