package queue

import (
	"context"
	"fmt"

	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// HeartbeatExpiry is how long a worker may stay silent before it is
// considered dead wherever it runs; Resque uses the same threshold.
const HeartbeatExpiry = 5 * time.Minute

// AliveFunc reports whether the process pid on this host is the worker
// that registered at started (pids are reused, so the start time matters).
type AliveFunc func(pid int, started time.Time) bool

// Recovered summarises a clean-up of dead workers.
type Recovered struct {
	Workers  []string // ids unregistered
	Requeued int      // in-flight jobs put back
}

// RecoverDead unregisters workers that are dead and requeues their
// in-flight jobs: workers of host whose process is gone, any worker whose
// heartbeat is older than HeartbeatExpiry, and in-flight lists of this
// host's workers that are no longer registered at all.
func (c *Client) RecoverDead(ctx context.Context, host string, alive AliveFunc, now time.Time) (Recovered, error) {
	var rec Recovered
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
		h, pid, _, err := ParseWorkerID(id)
		if err != nil {
			continue
		}
		dead := false
		if hb, ok := beats[id]; ok {
			if t, err := time.Parse(heartbeatLayout, hb); err == nil && now.Sub(t) > HeartbeatExpiry {
				dead = true
			}
		}
		if h == host && !dead {
			started, _ := c.rdb.Get(ctx, c.keys.WorkerStarted(id)).Result()
			st, err := time.Parse(startedLayout, started)
			if err != nil {
				st = now // unknown start: judge by the pid alone
			}
			dead = !alive(pid, st)
		}
		if !dead {
			continue
		}
		n, err := c.Unregister(ctx, id)
		if err != nil {
			return rec, err
		}
		rec.Workers = append(rec.Workers, id)
		rec.Requeued += n
	}
	// In-flight lists left by workers that never registered or were
	// already unregistered by someone else (e.g. Resque's own pruning).
	prefix := c.keys.InFlightIndex(host + ":")
	iter := c.rdb.Scan(ctx, 0, escapeGlob(prefix)+"*", 100).Iterator()
	for iter.Next(ctx) {
		id := strings.TrimPrefix(iter.Val(), c.keys.InFlightIndex(""))
		if registered[id] {
			continue
		}
		_, pid, _, err := ParseWorkerID(id)
		if err != nil || alive(pid, now) {
			continue
		}
		n, err := c.Requeue(ctx, id)
		if err != nil {
			return rec, err
		}
		rec.Requeued += n
	}
	if err := iter.Err(); err != nil {
		return rec, fmt.Errorf("scan in-flight lists: %w", err)
	}
	return rec, nil
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

// Janitor cleans up after built-in workers that a master reaped: it
// requeues their in-flight jobs and removes their registration, retrying
// while Redis is unreachable.
type Janitor struct {
	c     *Client
	host  string
	logf  func(format string, args ...any)
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	retry time.Duration
}

// NewJanitor returns a Janitor for workers of host; logf receives one line
// per notable event.
func NewJanitor(c *Client, host string, logf func(format string, args ...any)) *Janitor {
	ctx, stop := context.WithCancel(context.Background())
	return &Janitor{c: c, host: host, logf: logf, ctx: ctx, stop: stop, retry: 500 * time.Millisecond}
}

// WorkerExited schedules the clean-up of the worker with pid and queue
// list queues, whose process started at started, and returns at once:
// its in-flight jobs are requeued and its registration removed, retrying
// while Redis is unreachable. Close waits for scheduled clean-ups.
func (j *Janitor) WorkerExited(pid int, queues string, started time.Time) {
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		j.cleanUp(pid, queues, started)
	}()
}

func (j *Janitor) cleanUp(pid int, queues string, started time.Time) {
	id := WorkerID(j.host, pid, strings.Split(queues, ","))
	delay := j.retry
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(j.ctx, 5*time.Second)
		n, err := j.unregisterIfSame(ctx, id, started)
		cancel()
		if err == nil {
			if n > 0 {
				j.logf("requeued %d in-flight job(s) of worker[%d] (queues %s)", n, pid, queues)
			}
			return
		}
		if j.ctx.Err() != nil {
			j.logf("could not clean up worker[%d] before shutdown: %v; the next master start will", pid, err)
			return
		}
		if attempt == 1 {
			j.logf("cannot clean up worker[%d] yet: %v; retrying", pid, err)
		}
		select {
		case <-time.After(delay):
		case <-j.ctx.Done():
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// unregisterIfSame unregisters id unless its registration belongs to a
// newer process that reused the pid (registered after started).
func (j *Janitor) unregisterIfSame(ctx context.Context, id string, started time.Time) (int, error) {
	reg, err := j.c.rdb.Get(ctx, j.c.keys.WorkerStarted(id)).Result()
	if err != nil && err != redis.Nil {
		return 0, fmt.Errorf("read registration of %s: %w", id, err)
	}
	if t, perr := time.Parse(startedLayout, reg); perr == nil && t.After(started.Add(2*time.Second)) {
		return 0, nil // a later worker with the same pid and queues
	}
	return j.c.Unregister(ctx, id)
}

// Recover runs RecoverDead once, judging heartbeats by Redis's clock, and
// logs what it did.
func (j *Janitor) Recover(ctx context.Context, alive AliveFunc) error {
	now, err := j.c.ServerTime(ctx)
	if err != nil {
		return err
	}
	rec, err := j.c.RecoverDead(ctx, j.host, alive, now)
	if err != nil {
		return err
	}
	if len(rec.Workers) > 0 || rec.Requeued > 0 {
		j.logf("cleaned up %d dead worker registration(s), requeued %d in-flight job(s)", len(rec.Workers), rec.Requeued)
	}
	return nil
}

// closeGrace is how long Close lets scheduled clean-ups finish before
// abandoning their retries.
const closeGrace = 10 * time.Second

// Close waits (up to closeGrace) for scheduled clean-ups, then stops
// their retries and waits for them to return.
func (j *Janitor) Close() error {
	done := make(chan struct{})
	go func() { j.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeGrace):
	}
	j.stop()
	<-done
	return nil
}
