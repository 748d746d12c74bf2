package main

// Resque's signals sent to the master for its built-in workers, at the
// moments that break them: while the workers are still starting, and
// while they run command jobs.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
)

// builtinPool starts a master by hand over a private redis-server with
// the built-in workers body configures, without waiting for anything.
func builtinPool(t *testing.T, e *shellEnv, name, body string) (poolfs.Paths, int, *queue.Client) {
	t.Helper()
	srv := redistest.Start(t)
	config := "redis: " + srv.URL() + "\n" + body
	if !strings.Contains(body, "start_secs:") {
		config += "start_secs: 100ms\n"
	}
	p, master := startHandPool(t, e, name, config)
	return p, master, queue.New(srv.Client(), "")
}

// signalWhenSpawned sends sig to the master after after the log says it
// started n workers: the log is watched every millisecond, so the signal
// lands while the last workers are still starting.
func signalWhenSpawned(t *testing.T, p poolfs.Paths, master, n int, after time.Duration, sig syscall.Signal) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(p.Log)
		if strings.Count(string(b), "Starting worker[") >= n {
			break
		}
		if time.Now().After(deadline) || !alive(master) {
			t.Fatalf("the master did not start %d workers within 20s (alive: %v); log:\n%s", n, alive(master), b)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(after)
	if err := syscall.Kill(master, sig); err != nil {
		t.Fatal(err)
	}
}

// A USR2 that reaches the master while its workers are still starting
// pauses every one of them once it can, and kills none: a Go worker
// catches nothing until its main has asked for signals, so the master
// must not take "the kernel says it has a handler" for "it will obey".
// Each round sends the signal at a different point of the workers' start.
func TestUSR2WhileWorkersStartPausesEveryWorker(t *testing.T) {
	const workers = 6
	e := newShellEnv(t)
	for round := range 4 {
		t.Run(fmt.Sprintf("after%dms", round*5), func(t *testing.T) {
			p, master, q := builtinPool(t, e, fmt.Sprintf("early%d", round), fmt.Sprintf("workers:\n  foo: %d\n", workers))
			signalWhenSpawned(t, p, master, workers, time.Duration(round*5)*time.Millisecond, syscall.SIGUSR2)
			waitFor(t, 15*time.Second, "every worker to log its pause", func() bool {
				return strings.Count(readLog(t, p), "paused: taking no new job") == workers
			})
			if err := q.Enqueue(context.Background(), "foo", sleepJobs(t, 20, 1)...); err != nil {
				t.Fatal(err)
			}
			st, err := poolfs.ReadState(p.State)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range st.Groups {
				if g.Spawns != workers {
					t.Fatalf("%d workers spawned for %d: one died of the pause", g.Spawns, workers)
				}
			}
			// Paused means no job taken: the queue keeps all 20 while the
			// workers are idle-polling (they poll at least every second).
			time.Sleep(1500 * time.Millisecond)
			if n, err := q.Redis().LLen(context.Background(), q.Keys().Queue("foo")).Result(); err != nil || n != 20 {
				t.Fatalf("paused queue holds %d of 20 jobs (%v)", n, err)
			}
			if err := syscall.Kill(master, syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 15*time.Second, "the queue drained after CONT", func() bool {
				n, err := q.Redis().LLen(context.Background(), q.Keys().Queue("foo")).Result()
				return err == nil && n == 0
			})
		})
	}
}

// USR1 (kill the running job) forwarded while workers start kills no
// worker: one that cannot obey yet has no job, and would die of it (a Go
// program dies of a signal it has not asked for when it lands on a
// thread the runtime is still setting up). The master gets a burst of
// USR1s through the workers' whole start.
func TestUSR1WhileWorkersStartKillsNoWorker(t *testing.T) {
	const workers = 6
	e := newShellEnv(t)
	p, master, _ := builtinPool(t, e, "usr1", fmt.Sprintf("workers:\n  foo: %d\n", workers))
	signalWhenSpawned(t, p, master, 1, 0, syscall.SIGUSR1)
	for range 100 {
		if err := syscall.Kill(master, syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	st := &poolfs.State{}
	waitFor(t, 20*time.Second, "the workers registered", func() bool {
		var err error
		st, err = poolfs.ReadState(p.State)
		return err == nil && st.Settled() && len(st.Workers) == workers
	})
	for _, g := range st.Groups {
		if g.Spawns != workers {
			t.Fatalf("%d workers spawned for %d: USR1 killed one while it started", g.Spawns, workers)
		}
	}
}

// A graceful stop (QUIT) just after the workers spawned stops every
// built-in worker cleanly, even past start_secs: one that cannot obey QUIT
// yet gets TERM (it holds no job), never a QUIT its Go runtime answers
// with a stack dump and exit 2.
func TestQuitWhileWorkersStartStopsThemCleanly(t *testing.T) {
	const workers = 6
	e := newShellEnv(t)
	for round := range 3 {
		t.Run(fmt.Sprintf("after%dms", round*5), func(t *testing.T) {
			p, master, _ := builtinPool(t, e, fmt.Sprintf("quit%d", round), fmt.Sprintf("start_secs: 1ms\nworkers:\n  foo: %d\n", workers))
			signalWhenSpawned(t, p, master, workers, time.Duration(round*5)*time.Millisecond, syscall.SIGQUIT)
			waitFor(t, 20*time.Second, "the master gone", func() bool { return !alive(master) })
			log := readLog(t, p)
			for _, bad := range []string{"SIGQUIT: quit", "goroutine ", "(exit 2)"} {
				if strings.Contains(log, bad) {
					t.Fatalf("a worker answered an early QUIT with a crash (%q in the log)", bad)
				}
			}
		})
	}
}
