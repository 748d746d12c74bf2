// Package worker is poolctl's built-in Resque-compatible worker: it takes
// jobs from Redis with reliable fetch (package queue), runs their handlers
// and records the outcome, and obeys Resque's signals.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/poolctl/poolctl/internal/procid"
	"github.com/poolctl/poolctl/internal/workerenv"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/redis/go-redis/v9"
)

// Config configures a worker.
type Config struct {
	Queues     []string            // as given; may contain "*" and globs
	Jobs       map[string][]string // job class -> argv
	JobTimeout time.Duration       // 0 = none
	Host       string
	PID        int
	// MasterPID, when non-zero, is the pool master: the worker stops on
	// its own when its parent is no longer that process.
	MasterPID int
	Stdout    io.Writer // job output and the worker's log lines
	Stderr    io.Writer

	BlockTimeout time.Duration // longest blocking wait on one queue; 0 = DefaultBlockTimeout
	// PollInterval is the first idle wait of a worker with several queues
	// (or patterns); each idle wait doubles it up to IdleWaitMax (idle.go).
	// 0 = 100ms.
	PollInterval time.Duration
	// IdleWaitMax bounds that backoff, and so the pick-up latency of jobs
	// pushed by foreign producers; 0 = DefaultIdleWaitMax.
	IdleWaitMax       time.Duration
	HeartbeatInterval time.Duration // 0 = 10s
	// MaxJobs, when positive, makes the worker stop cleanly once it has
	// finished this many jobs (succeeded or failed), so that the master
	// replaces it: recycling, against leaks.
	MaxJobs int
	// Batch is the most jobs a busy worker reserves in one round trip
	// (acks.go); 0 = DefaultBatch, 1 = one at a time.
	Batch int
	// ReplyTTL is how long a job's reply list lives after its last reply
	// (docs/messages.md); 0 = queue.DefaultReplyTTL.
	ReplyTTL time.Duration
	// Ready, when set, is the master's readiness pipe (workerenv.ReadyFD):
	// Run writes workerenv.ReadyRegistered to it and closes it once registered.
	Ready io.WriteCloser
	Now   func() time.Time
}

// DefaultBlockTimeout bounds an idle single-queue worker's blocking wait.
// Long waits keep idle workers nearly free (one wake-up per wait); QUIT
// and TERM do not sit them out, because they close the blocking client.
const DefaultBlockTimeout = 5 * time.Second

// Causes of a job's cancellation.
var (
	errTerminated = errors.New("worker terminated")
	errKilled     = errors.New("job killed by USR1")
	errTimeout    = errors.New("job timed out")
)

// Worker runs jobs until told to stop.
type Worker struct {
	cfg      Config
	q        *queue.Client
	blocking redis.UniversalClient
	id       string

	mu        sync.Mutex
	quitting  bool
	stopping  bool
	paused    bool
	cancelJob context.CancelCauseFunc
	wake      chan struct{} // closed and replaced on every control change

	parked    atomic.Bool // the loop is waiting out a pause
	redisOK   atomic.Bool // the last Redis call succeeded
	globs     bool        // the queue list has patterns to re-expand
	processed atomic.Int64
	failed    atomic.Int64
	reg       queue.Registration
	idle      idleState     // the Run loop's own
	acks      *acker        // records a batch's outcomes (acks.go)
	lastRun   time.Duration // the last job's run time, for batchSize
}

// New returns a worker that uses q for bookkeeping and blocking (a client
// of its own, closed by Quit and Terminate) for blocking waits.
func New(q *queue.Client, blocking redis.UniversalClient, cfg Config) *Worker {
	if cfg.BlockTimeout <= 0 {
		cfg.BlockTimeout = DefaultBlockTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.IdleWaitMax <= 0 {
		cfg.IdleWaitMax = DefaultIdleWaitMax
	}
	cfg.IdleWaitMax = max(cfg.IdleWaitMax, cfg.PollInterval)
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	if cfg.PID == 0 {
		cfg.PID = os.Getpid()
	}
	globs := false
	for _, q := range cfg.Queues {
		globs = globs || queue.IsPattern(q)
	}
	w := &Worker{
		globs:    globs,
		cfg:      cfg,
		q:        q,
		blocking: blocking,
		id:       queue.WorkerID(cfg.Host, cfg.PID, cfg.Queues),
		wake:     make(chan struct{}),
	}
	w.reg = queue.Registration{ID: w.id, Started: cfg.Now()}
	if cfg.PID == os.Getpid() {
		if self, err := procid.Self(); err == nil {
			w.reg.Identity = self.String()
		}
	}
	w.redisOK.Store(true)
	return w
}

// ID is the worker's Resque id.
func (w *Worker) ID() string { return w.id }

// Processed and Failed count this worker's jobs.
func (w *Worker) Processed() int64 { return w.processed.Load() }

// Failed counts this worker's failed jobs.
func (w *Worker) Failed() int64 { return w.failed.Load() }

func (w *Worker) logf(format string, args ...any) {
	fmt.Fprintf(w.cfg.Stdout, "%s worker %s: %s\n", w.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z"), w.id, fmt.Sprintf(format, args...))
}

// signalChange wakes the loop after a control change. Call with mu held.
func (w *Worker) signalChange() {
	close(w.wake)
	w.wake = make(chan struct{})
}

// Quit lets the current job finish, then stops (Resque's QUIT).
func (w *Worker) Quit() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.quitting = true
	w.signalChange()
	if w.cancelJob == nil {
		// Idle: abandon the blocking wait now rather than sit it out.
		_ = w.blocking.Close()
	}
}

// Terminate stops now: the running job is killed and goes back to its
// queue (Resque's TERM/INT).
func (w *Worker) Terminate() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopping = true
	w.signalChange()
	if w.cancelJob != nil {
		w.cancelJob(errTerminated)
	}
	_ = w.blocking.Close()
}

// KillJob kills the running job, which is recorded as failed (USR1).
func (w *Worker) KillJob() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancelJob != nil {
		w.cancelJob(errKilled)
	}
}

// busy reports whether a job is running (and so can be killed).
func (w *Worker) busy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cancelJob != nil
}

// Pause stops picking up new jobs (USR2); Resume undoes it (CONT).
// Each says so in the log when it changes something: from that line on,
// the worker takes no new job (or takes them again), which is what an
// operator, or a script pushing jobs to a paused pool, waits for.
func (w *Worker) Pause() {
	w.mu.Lock()
	was := w.paused
	w.paused = true
	w.signalChange()
	if w.cancelJob == nil {
		w.wakeIdle()
	}
	w.mu.Unlock()
	if !was {
		w.logf("paused: taking no new job until CONT (a running job finishes)")
	}
}

// Resume picks up jobs again after Pause.
func (w *Worker) Resume() {
	w.mu.Lock()
	was := w.paused
	w.paused = false
	w.signalChange()
	w.mu.Unlock()
	if was {
		w.logf("resumed: taking jobs again")
	}
}

// control returns the current flags and the channel closed on the next
// change.
func (w *Worker) control() (quitting, stopping, paused bool, wake <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.quitting, w.stopping, w.paused, w.wake
}

// Run registers the worker, takes and runs jobs until Quit, Terminate or
// ctx ends (which acts as Terminate), then unregisters, requeueing
// anything still in flight.
//
// It returns an error when the final unregister failed, so that a master
// knows to clean up after it (it skips that for workers that exit 0).
func (w *Worker) Run(ctx context.Context) (err error) {
	stopOnCancel := context.AfterFunc(ctx, w.Terminate)
	defer stopOnCancel()

	bg := context.Background()
	// Registering holds no job: QUIT as well as TERM ends the attempts.
	// A dead predecessor with our id (a reused pid, the same queues) may
	// have left jobs in flight that recovery would take for ours: we hold
	// nothing yet, so Enroll puts them back before it registers us, in the
	// same round trip (the only one before the first reserve).
	err = w.retry(func() error {
		n, err := w.q.Enroll(bg, w.reg)
		if err == nil && n > 0 {
			w.logf("requeued %d job(s) a dead worker with this id left in flight", n)
		}
		return err
	}, true)
	if err != nil {
		return err
	}
	if w.cfg.Ready != nil {
		tellMaster(w.cfg.Ready, workerenv.ReadyRegistered)
		_ = w.cfg.Ready.Close()
	}
	defer func() {
		// A worker told to stop while Redis is stalled or unreachable must
		// not sit out its stop timeout: a healthy Redis answers this in
		// milliseconds, so try briefly, and on failure exit non-zero so
		// the master's recoverer cleans up after us (nothing is lost).
		bound := time.Second
		if !w.redisOK.Load() {
			bound = 200 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(bg, bound)
		defer cancel()
		n, uerr := w.q.Unregister(ctx, w.id)
		switch {
		case uerr != nil:
			w.logf("could not unregister: %v (the master will clean up)", uerr)
			if err == nil {
				err = uerr
			}
		case n > 0:
			w.logf("requeued %d unfinished job(s)", n)
		}
	}()
	w.logf("started: processing %v", w.cfg.Queues)

	loopDone := make(chan struct{})
	beatDone := make(chan struct{})
	// Deferred after the unregister, so they run first: the heartbeat
	// stops (and so cannot re-register us) before we unregister. A beat
	// stuck on a stalled Redis is not waited for beyond a moment: should
	// it land after all, the dead registration it leaves is recovery's.
	defer func() {
		select {
		case <-beatDone:
		case <-time.After(250 * time.Millisecond):
		}
	}()
	defer close(loopDone)
	go func() { defer close(beatDone); w.heartbeat(loopDone) }()
	w.acks = w.startAcker()
	defer w.acks.stop() // before the unregister, which requeues what is in flight
	if w.cfg.MasterPID != 0 {
		go w.watchParent(loopDone)
	}

	var backoff time.Duration
	lostReply := false
	busy := false // a job was taken since the worker was last idle
	var expanded []string
	var expandedAt time.Time
	for {
		quitting, stopping, paused, wake := w.control()
		if quitting || stopping {
			break
		}
		if lostReply {
			// A reserve failed after Redis may have moved a job to our
			// in-flight list (its reply lost): put back whatever is there
			// before taking anything else, or parking for a pause. We
			// hold no other job now.
			n, err := w.q.Requeue(bg, w.id)
			if err != nil {
				backoff = w.redisDown(err, backoff, wake)
				continue
			}
			if n > 0 {
				w.logf("requeued %d job(s) reserved by a call whose reply was lost", n)
			}
			lostReply = false
		}
		if paused {
			w.parked.Store(true)
			<-wake
			w.parked.Store(false)
			continue
		}
		if expanded == nil || w.cfg.Now().Sub(expandedAt) > time.Second {
			qs, err := w.q.Expand(bg, w.cfg.Queues)
			if err != nil {
				backoff = w.redisDown(err, backoff, wake)
				continue
			}
			expanded, expandedAt = qs, w.cfg.Now()
		}
		job, err := w.reserve(bg, expanded, wake)
		if job != nil && err != nil {
			// Taken by a blocking wait, not yet claimed: it is safe in the
			// in-flight list; claim it before running it. Nothing has run
			// yet, so QUIT as well as TERM ends the attempts.
			w.logf("%v", err)
			err = w.retry(func() error { return w.q.Claim(bg, w.id, job, w.cfg.Now()) }, true)
			if err != nil {
				break // stopping: Unregister (or the master) requeues it
			}
		}
		if job != nil {
			busy = true
			if backoff > 0 {
				w.logf("Redis is reachable again")
				backoff = 0
			}
			w.redisOK.Store(true)
			held := []*queue.Job{job}
			for len(held) > 0 {
				if quitting, stopping, paused, _ := w.control(); quitting || stopping || paused || w.jobsDone() {
					// Signalled while the job was being taken, or between
					// jobs of a batch: nothing is picked up after a pause,
					// QUIT or TERM. What the worker holds but has not
					// started goes back to the head of its queue: now for
					// a paused worker, at unregister for a stopping one;
					// the outcomes of the jobs it ran are recorded first.
					_ = w.acks.wait()
					if !quitting && !stopping {
						w.giveBack(bg) // paused, or recycling after max_jobs
					}
					break
				}
				// Chain through AckReserve while the queue list is fresh
				// (globs are re-expanded at least every second).
				var chain []string
				if w.cfg.Now().Sub(expandedAt) <= time.Second {
					chain = expanded
				}
				var lost bool
				held, lost = w.perform(held, chain)
				lostReply = lostReply || lost
			}
			if w.jobsDone() {
				w.logf("recycling after %d jobs", w.processed.Load()+w.failed.Load())
				break
			}
			continue
		}
		if err != nil {
			if q, s, _, _ := w.control(); q || s {
				break // the blocking client was closed on purpose
			}
			lostReply = true
			backoff = w.redisDown(err, backoff, wake)
			continue
		}
		if backoff > 0 {
			w.logf("Redis is reachable again")
			backoff = 0
		}
		w.redisOK.Store(true)
		if busy {
			// Idle after work, holding nothing: a job still in flight is
			// one whose acknowledgement Redis lost (a Sentinel switchover
			// applied it to the demoted master). It goes back to its queue.
			if n, err := w.q.Requeue(bg, w.id); err == nil {
				busy = false
				if n > 0 {
					w.logf("requeued %d job(s) whose acknowledgement Redis lost (a failover?)", n)
				}
			}
		}
	}
	w.logf("stopping (processed %d, failed %d)", w.processed.Load(), w.failed.Load())
	return nil
}

// giveBack returns the jobs the worker holds but has not started (taken
// as a pause came, or the rest of a batch) to the head of their queues.
func (w *Worker) giveBack(ctx context.Context) {
	err := w.retry(func() error {
		n, err := w.q.Requeue(ctx, w.id)
		if err == nil && n > 0 {
			w.logf("returned %d unstarted job(s) to their queue", n)
		}
		return err
	}, false)
	if err != nil {
		w.logf("could not return unstarted jobs to their queue: %v; they go back when the worker stops", err)
	}
}

// redisDown logs a Redis error (once per outage) and waits with backoff.
func (w *Worker) redisDown(err error, backoff time.Duration, wake <-chan struct{}) time.Duration {
	w.redisOK.Store(false)
	if backoff == 0 {
		w.logf("%s; retrying with backoff", redisconn.Describe(err))
		backoff = 100 * time.Millisecond
	} else {
		backoff = min(backoff*2, 5*time.Second)
	}
	select {
	case <-time.After(backoff):
	case <-wake:
	}
	return backoff
}

// reserve takes the next job in priority order, waiting briefly when
// every queue is empty.
func (w *Worker) reserve(ctx context.Context, qs []string, wake <-chan struct{}) (*queue.Job, error) {
	if len(qs) == 0 {
		// A glob that matches no queue yet.
		select {
		case <-time.After(w.cfg.PollInterval):
		case <-wake:
		}
		return nil, nil
	}
	job, err := w.q.Reserve(ctx, w.id, qs, w.cfg.Now())
	if job != nil {
		w.tookJob(ctx, job)
	}
	if job != nil || err != nil {
		return job, err
	}
	w.idle.woken = false
	if len(qs) > 1 || w.globs {
		// Several queues, or queues a glob has yet to match: wait for a
		// notification (idle.go), then reserve over all of them again.
		return nil, w.idleWait(ctx, qs, wake)
	}
	// One queue: block on it; the wait ends the moment a job arrives.
	return w.q.BlockingReserve(ctx, w.blocking, w.id, qs[0], w.cfg.BlockTimeout, w.cfg.Now)
}

// perform runs the first of the jobs the worker holds (a batch, or one
// job) and records its outcome; it returns the jobs still held. The job
// stays in the in-flight list until its success or failure is recorded;
// a job interrupted by Terminate stays there and is requeued at
// unregister.
//
// Within a batch the outcome goes to the acker with the next job, which
// runs at once; after the batch's last job it is recorded here, with the
// next reservation when the worker goes on (AckReserveBatch).
func (w *Worker) perform(held []*queue.Job, chain []string) (rest []*queue.Job, lost bool) {
	job, rest := held[0], held[1:]
	jobCtx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	w.mu.Lock()
	if w.stopping {
		w.mu.Unlock()
		return nil, false // leave it in flight: Unregister requeues it
	}
	w.cancelJob = cancel
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.cancelJob = nil
		w.mu.Unlock()
	}()

	ran, err := w.execute(jobCtx, job)
	if errors.Is(err, errTerminated) {
		return nil, false // back to the queue at unregister, not to failed
	}
	w.lastRun = ran.run
	now := w.cfg.Now()
	w.setFinal(job, ran, err)
	timing := queue.Timing{Class: ran.class, Run: ran.run}
	if !ran.enqueued.IsZero() {
		timing.Wait, timing.Waited = queue.QueueWait(ran.enqueued, job.Reserved, now)
	}
	var failure *queue.Failure
	if err != nil {
		f := toFailure(err)
		failure = &f
		w.logf("job from %s failed: %s: %s", job.Queue, f.Exception, f.Error)
		w.failed.Add(1)
	} else {
		w.processed.Add(1)
	}
	quitting, stopping, paused, _ := w.control()
	goOn := !quitting && !stopping && !paused && !w.jobsDone()
	if len(rest) > 0 {
		done := queue.Finished{Job: job, Timing: timing, Failure: failure, At: now}
		if goOn {
			done.Next = rest[0]
			w.acks.push(done)
			return rest, false
		}
		// Stopping, pausing or recycling mid-batch: the reservation ends
		// with this job, so the rest cannot run in this batch even if a
		// resume comes at once. It goes back unstarted, now (pause,
		// max_jobs) or at unregister (QUIT, TERM), once this outcome is
		// recorded.
		w.acks.push(done)
		_ = w.acks.wait()
		if quitting, stopping, _, _ := w.control(); !quitting && !stopping {
			w.giveBack(context.Background())
		}
		return nil, false
	}
	// The batch's last job: the reservation moves on only once the
	// outcomes of the jobs before it are recorded, so they are sent
	// first, in the same pipeline when the worker goes on.
	pending := w.acks.handOver()
	record := func() error { return w.q.Ack(context.Background(), w.id, job, timing) }
	if failure != nil {
		record = func() error { return w.q.Fail(context.Background(), w.id, job, timing, *failure, now) }
	} else if len(chain) > 0 && goOn {
		// Busy fast path: acknowledge and take the next jobs in one round
		// trip.
		next, err := w.q.FinishAllAndReserve(context.Background(), w.id, pending, job, timing, chain, w.batchSize(), now)
		if err == nil {
			return next, false
		}
		// Unknown what ran: the acknowledgements are idempotent, so make
		// sure of them, and have the caller requeue what may have been
		// moved.
		w.logf("%s; recording the job again", redisconn.Describe(err))
		lost = true
	}
	if len(pending) > 0 {
		if err := w.retryWithGrace(func() error { return w.q.FinishAll(context.Background(), w.id, pending) }, false, outcomeGrace); err != nil {
			w.logf("could not record the outcome of %d job(s) from %s: %v; they stay in flight and will run again", len(pending), job.Queue, err)
		}
	}
	if err := w.retryWithGrace(record, false, outcomeGrace); err != nil {
		w.logf("could not record the outcome of a job from %s: %v; it stays in flight and will run again", job.Queue, err)
	}
	return nil, lost
}

// jobsDone reports whether the worker has finished its MaxJobs jobs.
func (w *Worker) jobsDone() bool {
	return w.cfg.MaxJobs > 0 && w.processed.Load()+w.failed.Load() >= int64(w.cfg.MaxJobs)
}

// jobRun is what the worker measured of a job, for its timing and
// replies.
type jobRun struct {
	id       string        // the job id handlers and replies see
	class    string        // the payload's class, "" when it has none
	enqueued time.Time     // its enqueued_at, zero when none
	run      time.Duration // the handler's run time, by the monotonic clock
	stdout   *tailBuffer   // a command job's stdout tail; nil for built-ins
}

// execute decodes the payload, checks it can run, reports it started
// (when it wants replies) and runs its handler. A job that cannot run
// fails at once, without a started reply.
func (w *Worker) execute(ctx context.Context, job *queue.Job) (jobRun, error) {
	r := jobRun{id: w.jobID()}
	p, err := DecodePayload(job.Payload)
	if err != nil {
		var pe *PayloadError
		if errors.As(err, &pe) {
			r.class, r.enqueued = pe.Class, pe.EnqueuedAt
			w.wantReplies(job, pe.ReplyTo, pe.CorrelationID)
		}
		return r, &JobError{Exception: "Poolctl::BadPayload", Message: err.Error()}
	}
	r.class, r.enqueued = p.Class, p.EnqueuedAt
	w.wantReplies(job, p.ReplyTo, p.CorrelationID)
	h, ok := builtinHandler(p.Class)
	if argv, found := w.cfg.Jobs[p.Class]; found && len(argv) > 0 {
		r.stdout = &tailBuffer{max: stdoutTailBytes}
		h, ok = commandHandler(argv, w.cfg.Stdout, w.cfg.Stderr, r.stdout), true
	}
	if !ok {
		return r, &JobError{Exception: "Poolctl::UnknownClass", Message: "unknown job class " + p.Class}
	}
	if h.check != nil {
		if err := h.check(p.Args); err != nil {
			return r, err
		}
	}
	if job.Reply != nil {
		if err := w.sendStarted(job, r); err != nil {
			w.logf("could not report a job from %s started: %v; it goes back to its queue", job.Queue, err)
			return r, errTerminated
		}
	}
	if w.cfg.JobTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, w.cfg.JobTimeout, errTimeout)
		defer cancel()
	}
	start := time.Now() // monotonic, whatever cfg.Now says
	err = h.run(ctx, JobInfo{ID: r.id, Class: p.Class, Queue: job.Queue, Args: p.Args})
	r.run = time.Since(start)
	switch {
	case errors.Is(err, errTimeout):
		return r, &JobError{Exception: "Poolctl::Timeout", Message: fmt.Sprintf("job %s timed out after %s", p.Class, w.cfg.JobTimeout)}
	case errors.Is(err, errKilled):
		return r, &JobError{Exception: "Poolctl::Killed", Message: fmt.Sprintf("job %s killed by USR1", p.Class)}
	}
	return r, err
}

var jobSeq atomic.Int64

func (w *Worker) jobID() string {
	return strconv.Itoa(w.cfg.PID) + "-" + strconv.FormatInt(jobSeq.Add(1), 10)
}

func toFailure(err error) queue.Failure {
	var je *JobError
	if errors.As(err, &je) {
		return queue.Failure{Exception: je.Exception, Error: je.Message, Backtrace: je.Backtrace}
	}
	return queue.Failure{Exception: "Poolctl::Error", Error: err.Error()}
}

// retry runs op until it succeeds, backing off while Redis is down; it
// gives up when the worker is terminating, or also quitting when idle
// (nothing of ours is at stake then).
func (w *Worker) retry(op func() error, idle bool) error {
	return w.retryWithGrace(op, idle, 0)
}

// outcomeGrace is how long a worker told to stop keeps trying to record
// the outcome of a job that has run: giving up means the job runs again.
const outcomeGrace = 2 * time.Second

// retryWithGrace is retry, giving up only grace after the stop.
func (w *Worker) retryWithGrace(op func() error, idle bool, grace time.Duration) error {
	delay := 50 * time.Millisecond
	logged := false
	var stopSeen time.Time
	for {
		err := op()
		if err == nil {
			w.redisOK.Store(true)
			if logged {
				w.logf("Redis is reachable again")
			}
			return nil
		}
		w.redisOK.Store(false)
		quitting, stopping, _, wake := w.control()
		if stopping || (idle && quitting) {
			if stopSeen.IsZero() {
				stopSeen = time.Now()
			}
			if time.Since(stopSeen) >= grace {
				return err
			}
			wake = nil // stopping: only the backoff wakes us now
		}
		if !logged {
			w.logf("%s; retrying with backoff", redisconn.Describe(err))
			logged = true
		}
		select {
		case <-time.After(delay):
		case <-wake:
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// heartbeat refreshes the worker's heartbeat every HeartbeatInterval until
// done. Each beat re-asserts the whole registration, so a worker whose
// registration was lost (Redis restarted empty, or pruned by Resque) is
// back within one heartbeat.
func (w *Worker) heartbeat(done <-chan struct{}) {
	every(w.cfg.HeartbeatInterval, done, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = w.q.Beat(ctx, w.reg)
		return true
	})
}

// watchParent terminates the worker when its master is gone (it was
// SIGKILLed and the parent-death signal did not reach us). It is a
// backstop, so it looks rarely: idle workers should cost nothing.
func (w *Worker) watchParent(done <-chan struct{}) {
	every(2*time.Second, done, func() bool {
		if os.Getppid() == w.cfg.MasterPID {
			return true
		}
		w.logf("master %d is gone: stopping", w.cfg.MasterPID)
		w.Terminate()
		return false
	})
}

// every runs fn each period until done is closed or fn returns false.
func every(period time.Duration, done <-chan struct{}, fn func() bool) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
	}
}
