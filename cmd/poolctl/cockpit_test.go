package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/stats"
)

// cockpitPool starts a master by hand over a private redis-server with a
// fast sampler, and returns its paths and a queue client.
func cockpitPool(t *testing.T, name, workers string) (poolfs.Paths, *queue.Client, int) {
	t.Helper()
	srv := redistest.Start(t)
	e := newShellEnv(t)
	e.reap(name)
	cfg := filepath.Join(t.TempDir(), "pool.yml")
	body := "redis: " + srv.URL() + "\nsample_interval: 200ms\nstalled_after: 1s\nstart_secs: 100ms\nworkers:\n" + workers
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.paths(name)
	e.startMaster(t, "-c", cfg, "--name", name, "--log", p.Log)
	var st *poolfs.State
	waitFor(t, 20*time.Second, "workers running", func() bool {
		var err error
		st, err = poolfs.ReadState(p.State)
		return err == nil && st.Settled() && len(st.Workers) > 0
	})
	return p, queue.New(srv.Client(), ""), st.PID
}

// waitQueueState reads the published sample until queue q is in state
// want, and returns that sample.
func waitQueueState(t *testing.T, p poolfs.Paths, q, want string, timeout time.Duration) *stats.Sample {
	t.Helper()
	var last *stats.Sample
	var got string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if smp, err := stats.ReadFile(p.Sample); err == nil {
			last = smp
			for _, qs := range smp.Queues {
				if qs.Name == q {
					got = qs.State
				}
			}
			if got == want {
				return smp
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("queue %s: state %q, want %q; last sample: %+v", q, got, want, last)
	return nil
}

func sleepJobs(t *testing.T, n, ms int) [][]byte {
	t.Helper()
	p, err := queue.EncodePayload("Poolctl::Sleep", []any{ms})
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = p
	}
	return out
}

// Paused workers (USR2 through the master) leave a queue with jobs and
// nothing finishing: the master's sample calls it stalled within
// stalled_after, and empty once the workers resume and drain it.
func TestCockpitShowsPausedQueueStalled(t *testing.T) {
	p, q, master := cockpitPool(t, "stall", "  foo: 2\n")
	waitQueueState(t, p, "foo", stats.QueueEmpty, 10*time.Second)
	if err := syscall.Kill(master, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	// The master records the pause when it has sent USR2; each worker
	// logs it once it takes no new job. Jobs pushed before that could
	// run (a loaded host delayed the signal once: "paused queue ran its
	// jobs").
	waitFor(t, 15*time.Second, "both workers to log their pause", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && !st.WorkersPausedAt.IsZero() &&
			strings.Count(readLog(t, p), "paused: taking no new job") == 2
	})
	if err := q.Enqueue(context.Background(), "foo", sleepJobs(t, 50, 1)...); err != nil {
		t.Fatal(err)
	}
	smp := waitQueueState(t, p, "foo", stats.QueueStalled, 10*time.Second)
	for _, qs := range smp.Queues {
		if qs.Name == "foo" && (qs.Depth != 50 || qs.ETASeconds != nil) {
			t.Fatalf("stalled queue: depth %d eta %v, want 50 and none", qs.Depth, qs.ETASeconds)
		}
	}
	if err := syscall.Kill(master, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitQueueState(t, p, "foo", stats.QueueEmpty, 15*time.Second)
}

// A producer that pushes faster than the pool can drain: growing, and no
// ETA (it will not drain).
func TestCockpitShowsOutpacedQueueGrowing(t *testing.T) {
	p, q, _ := cockpitPool(t, "grow", "  bar: 1\n")
	waitQueueState(t, p, "bar", stats.QueueEmpty, 10*time.Second)
	// One worker runs 50 ms jobs: at most 20/s. Push 60/s.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = q.Enqueue(ctx, "bar", sleepJobs(t, 3, 50)...)
			}
		}
	}()
	smp := waitQueueState(t, p, "bar", stats.QueueGrowing, 15*time.Second)
	cancel()
	<-done
	for _, qs := range smp.Queues {
		if qs.Name == "bar" && (qs.ETASeconds != nil || qs.InRate <= qs.OutRate) {
			t.Fatalf("growing queue: in %.1f/s out %.1f/s eta %v", qs.InRate, qs.OutRate, qs.ETASeconds)
		}
	}
}
