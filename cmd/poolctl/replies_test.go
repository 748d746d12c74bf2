package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
)

// replyPool starts a master by hand with two built-in workers on queue rq
// over a private redis-server, with reply_ttl 5m and a command job class
// Echo that prints its args.
func replyPool(t *testing.T) (*shellEnv, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	e := newShellEnv(t)
	name := "replies"
	e.reap(name)
	cfg := filepath.Join(t.TempDir(), "pool.yml")
	body := "redis: " + srv.URL() + "\nreply_ttl: 5m\nstart_secs: 100ms\nterm_timeout: 3s\njobs:\n  Echo: [sh, -c, cat]\nworkers:\n  rq: 2\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.paths(name)
	e.startMaster(t, "-c", cfg, "--name", name, "--log", p.Log)
	waitFor(t, 20*time.Second, "workers running", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && st.Settled() && len(st.Workers) == 2 &&
			srv.Client().SCard(context.Background(), "resque:workers").Val() == 2
	})
	return e, srv
}

// replyLists are the reply lists left in Redis.
func replyLists(t *testing.T, srv *redistest.Server) []string {
	t.Helper()
	keys, err := srv.Client().Keys(context.Background(), "resque:"+queue.ReplyPrefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// enqueue --wait: a job run through the pool as if it were a local
// command. Exit 0 when it completed, 1 when it failed, 2 at the timeout;
// stdout holds the replies only; the reply list is gone at the end.
func TestEnqueueWaitExitStatuses(t *testing.T) {
	e, srv := replyPool(t)
	url := srv.URL()

	r := e.run("", "enqueue", "--wait", "--timeout", "20s", "--redis", url, "rq", "Poolctl::Sleep", "50")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "started   Poolctl::Sleep on rq by ") ||
		!strings.Contains(lines[0], "attempt 1") || !strings.HasPrefix(lines[1], "completed Poolctl::Sleep on rq in ") {
		t.Fatalf("Sleep: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "enqueued 1 job(s) of Poolctl::Sleep on rq") {
		t.Errorf("Sleep: stderr %q, want the enqueue note there, not on stdout", r.stderr)
	}
	if left := replyLists(t, srv); len(left) != 0 {
		t.Errorf("reply lists left behind: %q", left)
	}

	r = e.run("", "enqueue", "--redis", url, "rq", "Echo", "1", "two", "--wait", "--json", "--timeout", "20s")
	var msgs []queue.ReplyMessage
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m queue.ReplyMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("--json line %q: %v (stdout %q)", l, err, r.stdout)
		}
		msgs = append(msgs, m)
	}
	if r.code != 0 || len(msgs) != 2 || msgs[0].Status != "started" || msgs[1].Status != "completed" ||
		string(msgs[1].Data) != `[1,"two"]` || msgs[0].CorrelationID == "" || msgs[0].CorrelationID != msgs[1].CorrelationID {
		t.Fatalf("Echo --json: exit %d, replies %+v, stderr %q", r.code, msgs, r.stderr)
	}

	r = e.run("", "enqueue", "--wait", "--timeout", "20s", "--redis", url, "rq", "Poolctl::Fail", "boom")
	if r.code != 1 || !strings.Contains(r.stdout, "failed    Poolctl::Fail on rq") || !strings.Contains(r.stdout, "Poolctl::Failure: boom") ||
		!strings.Contains(r.stderr, "1 of 1 job(s) failed") {
		t.Fatalf("Fail: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	r = e.run("", "enqueue", "--wait", "--timeout", "20s", "--redis", url, "rq", "Poolctl::Sleep", "x")
	if r.code != 1 || strings.Contains(r.stdout, "started") || !strings.Contains(r.stdout, "ArgumentError") {
		t.Fatalf("rejected args: exit %d, stdout %q (want a single failed reply), stderr %q", r.code, r.stdout, r.stderr)
	}

	r = e.run("", "enqueue", "--wait", "--timeout", "700ms", "--redis", url, "rq", "Poolctl::Sleep", "3000")
	if r.code != 2 || !strings.Contains(r.stderr, "timed out after 700ms") || !strings.Contains(r.stderr, "may still run") ||
		strings.Contains(r.stdout, "completed") {
		t.Fatalf("timeout: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// The job still runs and replies later, to a list that expires after
	// the pool's reply_ttl (5m, not the default 1h): the setting reached
	// the workers.
	ctx := context.Background()
	waitFor(t, 10*time.Second, "the abandoned job's reply", func() bool { return len(replyLists(t, srv)) == 1 })
	if ttl := srv.Client().PTTL(ctx, replyLists(t, srv)[0]).Val(); ttl <= 4*time.Minute || ttl > 5*time.Minute {
		t.Errorf("abandoned reply list TTL = %v, want reply_ttl (5m)", ttl)
	}
}

// -n N waits for every copy; --json lines carry one correlation id each.
func TestEnqueueWaitForSeveralJobs(t *testing.T) {
	e, srv := replyPool(t)
	r := e.run("", "enqueue", "--wait", "--json", "-n", "4", "--timeout", "20s", "--redis", srv.URL(), "rq", "Poolctl::Sleep", "20")
	final := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m queue.ReplyMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("--json line %q: %v", l, err)
		}
		if m.Status != "started" {
			final[m.CorrelationID] = m.Status
		}
	}
	if r.code != 0 || len(final) != 4 {
		t.Fatalf("-n 4: exit %d, finals %v, stderr %q", r.code, final, r.stderr)
	}

	r = e.run("", "enqueue", "--json", "--redis", srv.URL(), "rq", "Poolctl::Noop")
	if r.code != 2 || !strings.Contains(r.stderr, "--json and --timeout apply to --wait only") {
		t.Errorf("--json without --wait: exit %d, stderr %q", r.code, r.stderr)
	}
}

// INT while waiting: exit 130 before the job ends, saying the job may still run, and
// the reply list is deleted.
func TestEnqueueWaitInterrupted(t *testing.T) {
	e, srv := replyPool(t)
	cmd := exec.Command(shellBin, "enqueue", "--wait", "--redis", srv.URL(), "rq", "Poolctl::Sleep", "8000")
	cmd.Env = e.env
	out, errb := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	waitFor(t, 10*time.Second, "the started reply", func() bool { return strings.Contains(out.String(), "started") })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(errb.String(), "interrupted: 1 of 1 job(s) without a final reply; they may still run") {
			t.Fatalf("after INT: %v, stderr %q", err, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("enqueue --wait did not stop within 10s of INT (the job it waits for takes 8s)")
	}
	if left := replyLists(t, srv); len(left) != 0 {
		t.Errorf("reply lists left behind while the job runs: %q", left)
	}
}
