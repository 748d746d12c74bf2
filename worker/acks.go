package worker

import (
	"context"
	"time"

	"github.com/poolctl/poolctl/queue"
)

// DefaultBatch is the most jobs a busy worker reserves in one round trip
// (Config.Batch): jobs of its highest-priority queue, while that queue is
// deep and its jobs are short (batchSize).
const DefaultBatch = 16

// batchBudget is how much work a batch may hold, by the last job's run
// time: a batch of slow jobs would keep them from idle workers.
const batchBudget = 2 * time.Millisecond

// batchSize is how many jobs to reserve next.
func (w *Worker) batchSize() int {
	k := w.cfg.Batch
	if k <= 1 {
		return 1
	}
	if w.lastRun > 0 {
		k = min(k, int(batchBudget/w.lastRun))
	}
	if w.cfg.MaxJobs > 0 {
		k = min(k, w.cfg.MaxJobs-int(w.processed.Load()+w.failed.Load()))
	}
	return max(k, 1)
}

// acker records the outcomes of a batch's jobs in the background: the
// worker hands it each finished job with the next one of the batch, and
// runs that next job at once, while the acker pipelines whatever has
// accumulated into one round trip (queue.FinishAll). So Resque's record
// follows the running job without a round trip per job.
//
// Before anything that requeues the worker's in-flight jobs (a pause, a
// stop) or takes its reservation on (the next AckReserveBatch), the
// worker waits for the acker: an outcome not yet recorded would put a
// finished job back in its queue.
type acker struct {
	w        *Worker
	ops      chan queue.Finished
	flush    chan chan error
	handover chan chan []queue.Finished
	done     chan struct{}
	ended    chan struct{}
}

func (w *Worker) startAcker() *acker {
	a := &acker{
		w:        w,
		ops:      make(chan queue.Finished, 4*DefaultBatch),
		flush:    make(chan chan error),
		handover: make(chan chan []queue.Finished),
		done:     make(chan struct{}),
		ended:    make(chan struct{}),
	}
	go a.loop()
	return a
}

// push hands over a finished job's outcome.
func (a *acker) push(f queue.Finished) { a.ops <- f }

// wait returns once every outcome pushed so far is recorded, or the
// error of the last one that could not be (after the retries a stopping
// worker allows: those jobs stay in flight and run again).
func (a *acker) wait() error {
	reply := make(chan error, 1)
	a.flush <- reply
	return <-reply
}

// handOver returns the outcomes pushed so far and not yet sent, for the
// caller to send itself (with the batch's last acknowledgement and the
// next reserve: one round trip), once no send of the acker is under
// way. Outcomes it already failed to record stay failed: those jobs run
// again.
func (a *acker) handOver() []queue.Finished {
	reply := make(chan []queue.Finished, 1)
	a.handover <- reply
	return <-reply
}

// stop records what is pending and ends the loop.
func (a *acker) stop() {
	_ = a.wait()
	close(a.done)
	<-a.ended
}

func (a *acker) loop() {
	defer close(a.ended)
	var pending []queue.Finished
	var failed error
	take := func() {
		for {
			select {
			case f := <-a.ops:
				pending = append(pending, f)
			default:
				return
			}
		}
	}
	send := func() {
		if len(pending) == 0 {
			return
		}
		err := a.w.retryWithGrace(func() error {
			return a.w.q.FinishAll(context.Background(), a.w.id, pending)
		}, false, outcomeGrace)
		if err != nil {
			a.w.logf("could not record the outcome of %d job(s) from %s: %v; they stay in flight and will run again", len(pending), pending[0].Job.Queue, err)
			failed = err
		}
		pending = pending[:0]
	}
	for {
		select {
		case f := <-a.ops:
			pending = append(pending, f)
			take()
			send()
		case reply := <-a.flush:
			take()
			send()
			reply <- failed
			failed = nil
		case reply := <-a.handover:
			take()
			reply <- append([]queue.Finished(nil), pending...)
			pending, failed = pending[:0], nil
		case <-a.done:
			return
		}
	}
}
