package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/poolctl/poolctl/redisconn"
	"github.com/redis/go-redis/v9"
)

// Defaults of RecovererOptions.
const (
	// DefaultHeartbeatExpiry is how long a worker of another host may stay
	// silent before it is considered dead; Resque uses the same threshold.
	DefaultHeartbeatExpiry = 5 * time.Minute
	// DefaultRecoveryInterval is how often a Recoverer looks for dead
	// workers.
	DefaultRecoveryInterval = 30 * time.Second
)

// AliveFunc reports whether the process pid on this host is the worker
// that registered with identity (see internal/procid; "" when unknown,
// then the pid alone decides).
type AliveFunc func(pid int, identity string) bool

// Recovered summarises a clean-up of dead workers.
type Recovered struct {
	Workers  []string // ids unregistered
	Requeued int      // in-flight jobs put back
}

// RecovererOptions configures a Recoverer.
type RecovererOptions struct {
	Host            string    // this host's name, as in worker ids
	Alive           AliveFunc // liveness of this host's workers
	Logf            func(format string, args ...any)
	Interval        time.Duration // between passes; 0 = DefaultRecoveryInterval
	HeartbeatExpiry time.Duration // 0 = DefaultHeartbeatExpiry
}

// Recoverer returns the jobs of dead workers to their queues: it runs a
// pass at Start and every Interval after, and cleans up after each
// built-in worker its master reaps (WorkerExited).
//
// What counts as dead:
//   - a worker of this host whose process is gone: its pid is not a live
//     process with the identity it registered (boot id and start ticks,
//     which pid reuse and clock steps cannot fake). Heartbeats are never
//     consulted for this host: a live local worker is never declared dead;
//   - a worker of another host whose heartbeat this Recoverer has watched
//     stay unchanged for HeartbeatExpiry while it could reach Redis
//     without a gap, and that Redis's clock also shows as older than
//     HeartbeatExpiry. A heartbeat that went stale while Redis was
//     unreachable (to us, and so probably to the worker) is no evidence
//     of death.
type Recoverer struct {
	c    *Client
	opts RecovererOptions

	mu       sync.Mutex           // serialises passes
	sighted  map[string]sighting  // other hosts' workers by id
	ghosts   map[string]time.Time // other hosts' unregistered ids with jobs in flight: first seen
	lastPass time.Time            // end of the last successful pass (monotonic)

	ctx      context.Context // cancelled by Stop
	cancel   context.CancelFunc
	loopDone chan struct{}
	cleanups sync.WaitGroup
	retry    time.Duration
}

// sighting is the heartbeat value of another host's worker and when it
// was first seen with that value.
type sighting struct {
	beat  string
	since time.Time
}

// NewRecoverer returns a Recoverer over c; call Start to run it.
func NewRecoverer(c *Client, opts RecovererOptions) *Recoverer {
	if opts.Interval <= 0 {
		opts.Interval = DefaultRecoveryInterval
	}
	if opts.HeartbeatExpiry <= 0 {
		opts.HeartbeatExpiry = DefaultHeartbeatExpiry
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Recoverer{c: c, opts: opts, sighted: map[string]sighting{}, ghosts: map[string]time.Time{},
		ctx: ctx, cancel: cancel, retry: 500 * time.Millisecond}
}

// Start runs a pass now and then every Interval until Stop.
func (r *Recoverer) Start() {
	r.loopDone = make(chan struct{})
	go r.loop()
}

func (r *Recoverer) loop() {
	defer close(r.loopDone)
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	logged := false
	for {
		ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
		rec, err := r.RecoverOnce(ctx)
		cancel()
		switch {
		case err != nil && r.ctx.Err() == nil && !logged:
			r.opts.Logf("cannot check Redis for dead workers yet: %s", redisconn.Describe(err))
			logged = true
		case err == nil:
			logged = false
			if len(rec.Workers) > 0 || rec.Requeued > 0 {
				r.opts.Logf("cleaned up %d dead worker registration(s), requeued %d in-flight job(s)", len(rec.Workers), rec.Requeued)
			}
		}
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// closeGrace is how long Stop lets scheduled clean-ups finish before
// abandoning their retries.
const closeGrace = 10 * time.Second

// Stop ends the periodic passes, waits (up to closeGrace) for clean-ups
// scheduled by WorkerExited, then abandons their retries and returns.
func (r *Recoverer) Stop() {
	done := make(chan struct{})
	go func() { r.cleanups.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeGrace):
	}
	r.cancel()
	<-done
	if r.loopDone != nil {
		<-r.loopDone
	}
}

// RecoverOnce runs one pass: it unregisters dead workers (requeueing
// their in-flight jobs) and requeues in-flight lists that this host's
// dead, unregistered workers left behind.
func (r *Recoverer) RecoverOnce(ctx context.Context) (Recovered, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.pass(ctx)
	if err != nil {
		// We could not see Redis: what we saw of heartbeats before says
		// nothing about the time we could not.
		r.lastPass = time.Time{}
		return rec, err
	}
	r.lastPass = time.Now()
	return rec, nil
}

func (r *Recoverer) pass(ctx context.Context) (Recovered, error) {
	var rec Recovered
	c := r.c
	start := time.Now()
	if r.lastPass.IsZero() || start.Sub(r.lastPass) > 2*r.opts.Interval+10*time.Second {
		// A gap in our view of Redis (an outage, or this process was
		// suspended): start watching heartbeats afresh.
		clear(r.sighted)
		clear(r.ghosts)
	}
	redisNow, err := c.ServerTime(ctx)
	if err != nil {
		return rec, err
	}
	ids, err := c.rdb.SMembers(ctx, c.keys.Workers()).Result()
	if err != nil {
		return rec, fmt.Errorf("list workers: %w", err)
	}
	beats, err := c.rdb.HGetAll(ctx, c.keys.Heartbeat()).Result()
	if err != nil {
		return rec, fmt.Errorf("read heartbeats: %w", err)
	}
	registered := map[string]bool{}
	for _, id := range ids {
		registered[id] = true
		host, pid, _, err := ParseWorkerID(id)
		if err != nil {
			continue
		}
		identity, err := c.identity(ctx, id)
		if err != nil {
			return rec, err
		}
		if host == r.opts.Host {
			if r.opts.Alive(pid, identity) {
				continue
			}
		} else if !r.remoteDead(id, beats[id], redisNow, start) {
			continue
		}
		n, done, err := c.unregisterJudged(ctx, id, identity)
		if err != nil {
			return rec, err
		}
		if !done {
			continue
		}
		delete(r.sighted, id)
		rec.Workers = append(rec.Workers, id)
		rec.Requeued += n
	}
	for id := range r.sighted {
		if !registered[id] {
			delete(r.sighted, id)
		}
	}
	n, err := r.requeueGhosts(ctx, registered, start)
	rec.Requeued += n
	return rec, err
}

// identity reads the process identity a worker registered ("" if none).
func (c *Client) identity(ctx context.Context, id string) (string, error) {
	identity, err := c.rdb.Get(ctx, c.keys.Identity(id)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("read identity of %s: %w", id, err)
	}
	return identity, nil
}

// remoteDead reports whether another host's worker is dead by its
// heartbeat, and records what this pass saw of it.
func (r *Recoverer) remoteDead(id, beat string, redisNow, now time.Time) bool {
	if beat == "" {
		return false // never heartbeated: not ours to judge (as in Resque)
	}
	s, ok := r.sighted[id]
	if !ok || s.beat != beat {
		r.sighted[id] = sighting{beat: beat, since: now}
		return false
	}
	t, err := time.Parse(heartbeatLayout, beat)
	return err == nil && now.Sub(s.since) >= r.opts.HeartbeatExpiry && redisNow.Sub(t) > r.opts.HeartbeatExpiry
}

// requeueGhosts requeues the in-flight lists of workers that are not
// registered: they never did, or someone else unregistered them (Ruby
// Resque's pruning removes only Resque's keys). This host's are requeued
// when their process is gone; another host's when the id has stayed
// unregistered for HeartbeatExpiry while this recoverer watched (a live
// worker re-registers at its next heartbeat, well within that).
func (r *Recoverer) requeueGhosts(ctx context.Context, registered map[string]bool, now time.Time) (int, error) {
	c := r.c
	total := 0
	seen := map[string]bool{}
	iter := c.rdb.Scan(ctx, 0, escapeGlob(c.keys.InFlightIndex(""))+"*", 100).Iterator()
	for iter.Next(ctx) {
		id := strings.TrimPrefix(iter.Val(), c.keys.InFlightIndex(""))
		if registered[id] {
			continue
		}
		host, pid, _, err := ParseWorkerID(id)
		if err != nil {
			continue
		}
		identity, err := c.identity(ctx, id)
		if err != nil {
			return total, err
		}
		if host == r.opts.Host {
			if r.opts.Alive(pid, identity) {
				continue // live: it re-registers at its next heartbeat
			}
		} else {
			seen[id] = true
			first, ok := r.ghosts[id]
			if !ok {
				r.ghosts[id] = now
				continue
			}
			if now.Sub(first) < r.opts.HeartbeatExpiry {
				continue
			}
		}
		n, done, err := c.unregisterJudged(ctx, id, identity)
		if err != nil {
			return total, err
		}
		if !done {
			continue
		}
		delete(r.ghosts, id)
		total += n
	}
	if err := iter.Err(); err != nil {
		return total, fmt.Errorf("scan in-flight lists: %w", err)
	}
	for id := range r.ghosts {
		if !seen[id] {
			delete(r.ghosts, id)
		}
	}
	return total, nil
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

// WorkerExited schedules the clean-up of this host's worker with pid and
// queue list queues, which its master has reaped, and returns at once:
// its in-flight jobs are requeued and its registration removed, retrying
// while Redis is unreachable. Stop waits for scheduled clean-ups.
func (r *Recoverer) WorkerExited(pid int, queues string) {
	r.cleanups.Add(1)
	go func() {
		defer r.cleanups.Done()
		r.cleanUp(pid, queues)
	}()
}

func (r *Recoverer) cleanUp(pid int, queues string) {
	id := WorkerID(r.opts.Host, pid, strings.Split(queues, ","))
	delay := r.retry
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
		n, err := r.unregisterIfGone(ctx, id, pid)
		cancel()
		if err == nil {
			if n > 0 {
				r.opts.Logf("requeued %d in-flight job(s) of worker[%d] (queues %s)", n, pid, queues)
			}
			return
		}
		if r.ctx.Err() != nil {
			r.opts.Logf("could not clean up worker[%d] before shutdown: %s; the next master start will", pid, redisconn.Describe(err))
			return
		}
		if attempt == 1 {
			r.opts.Logf("cannot clean up worker[%d] yet: %s; retrying", pid, redisconn.Describe(err))
		}
		select {
		case <-time.After(delay):
		case <-r.ctx.Done():
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// unregisterIfGone unregisters id unless its registration belongs to a
// live process: a newer worker that reused the reaped one's pid and
// registered the same queue list.
func (r *Recoverer) unregisterIfGone(ctx context.Context, id string, pid int) (int, error) {
	identity, err := r.c.identity(ctx, id)
	if err != nil {
		return 0, err
	}
	if identity != "" && r.opts.Alive(pid, identity) {
		return 0, nil
	}
	n, _, err := r.c.unregisterJudged(ctx, id, identity)
	return n, err
}

// unregisterJudged unregisters id, judged dead with identity, unless a new
// process took the id meanwhile (then done is false and nothing changed).
func (c *Client) unregisterJudged(ctx context.Context, id, identity string) (requeued int, done bool, err error) {
	n, err := c.UnregisterIf(ctx, id, identity)
	if errors.Is(err, ErrIdentityChanged) {
		return 0, false, nil
	}
	return n, err == nil, err
}
