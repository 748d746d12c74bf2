package main

// Pausing built-in workers with USR2 to the master (Resque's pause), at
// the moments that break it: while the workers are still starting, and
// while they run command jobs.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
)

// pausePool writes a config of built-in workers over a private
// redis-server and starts a master by hand without waiting for anything.
func pausePool(t *testing.T, e *shellEnv, name, body string) (poolfs.Paths, int, *queue.Client) {
	t.Helper()
	srv := redistest.Start(t)
	e.reap(name)
	cfg := filepath.Join(t.TempDir(), "pool.yml")
	data := "redis: " + srv.URL() + "\nstart_secs: 100ms\n" + body
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.paths(name)
	t.Cleanup(func() {
		if b, err := os.ReadFile(p.Log); t.Failed() && err == nil {
			t.Logf("pool log (last 8 KB):\n%s", b[max(0, len(b)-8000):])
		}
	})
	master, _ := e.startMaster(t, "-c", cfg, "--name", name, "--log", p.Log)
	return p, master.Process.Pid, queue.New(srv.Client(), "")
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
			p, master, q := pausePool(t, e, fmt.Sprintf("early%d", round), fmt.Sprintf("workers:\n  foo: %d\n", workers))
			waitFor(t, 20*time.Second, "the workers spawned", func() bool {
				st, err := poolfs.ReadState(p.State)
				return err == nil && len(st.Workers) == workers
			})
			time.Sleep(time.Duration(round*5) * time.Millisecond) // where in the start the signal lands
			if err := syscall.Kill(master, syscall.SIGUSR2); err != nil {
				t.Fatal(err)
			}
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

// Pausing a worker lets its running job finish: USR2 is the worker's, not
// its job's (Resque signals the worker alone), so a command job, whose
// default action for USR2 is to die, must never receive it.
func TestUSR2LetsTheRunningCommandJobFinish(t *testing.T) {
	e := newShellEnv(t)
	marks := t.TempDir()
	// The job marks its start, sleeps, and marks its end; its name is its
	// only argument (POOLCTL_ARGS is ["a"]).
	script := fmt.Sprintf(`n=$(echo "$POOLCTL_ARGS" | tr -dc a-z); touch %[1]s/$n.start; sleep 1; touch %[1]s/$n.done`, marks)
	body := fmt.Sprintf("jobs:\n  Slow: [sh, -c, %q]\nworkers:\n  foo: 2\n", script)
	p, master, q := pausePool(t, e, "midjob", body)
	waitFor(t, 20*time.Second, "workers ready", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && st.Settled() && len(st.Workers) == 2
	})
	var jobs [][]byte
	for _, name := range []string{"a", "b"} {
		pl, err := queue.EncodePayload("Slow", []any{name})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, pl)
	}
	if err := q.Enqueue(context.Background(), "foo", jobs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "both jobs running", func() bool {
		return marked(marks, "a.start", "b.start")
	})
	if err := syscall.Kill(master, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "both jobs finished", func() bool {
		return marked(marks, "a.done", "b.done")
	})
	ctx := context.Background()
	waitFor(t, 15*time.Second, "both jobs acknowledged", func() bool {
		n, err := q.Redis().Get(ctx, q.Keys().Processed()).Int()
		return err == nil && n == 2
	})
	if n, err := q.Redis().LLen(ctx, q.Keys().FailedList()).Result(); err != nil || n != 0 {
		t.Fatalf("%d failed jobs after a pause mid-job (%v)", n, err)
	}
}

// marked reports whether every named file exists in dir.
func marked(dir string, names ...string) bool {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			return false
		}
	}
	return true
}
