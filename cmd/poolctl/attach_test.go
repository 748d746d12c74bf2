package main

// End-to-end tests of attaching a shell to a running pool: one whose
// shell was killed, one started by hand, one restarted from the attached
// shell.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
)

// A shell killed with SIGKILL leaves the pool running; the log says so,
// poolctl list shows it and poolctl attach takes over. exit from an
// attached shell leaves the pool running; stop stops it.
func TestShellAttachAfterKill(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 2\n")
	p := e.paths("orphan")
	e.reap("orphan")
	sh := e.startPiped(t, "-c", cfg, "--name", "orphan")
	pid := sh.waitRunning(t, p)
	shellPid := sh.cmd.Process.Pid
	if err := sh.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = sh.cmd.Wait()

	waitFor(t, 10*time.Second, "the master to log that the shell is gone", func() bool {
		b, _ := os.ReadFile(p.Log)
		return strings.Contains(string(b), fmt.Sprintf("shell (pid %d) is gone; the pool keeps running", shellPid))
	})
	if !alive(pid) {
		t.Fatal("master died with its shell")
	}

	r := e.run("", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "orphan") || !strings.Contains(r.stdout, strconv.Itoa(pid)) || !strings.Contains(r.stdout, "foo=2") {
		t.Errorf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = e.run("", "list", "--json")
	var pools []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &pools); err != nil || len(pools) != 1 || pools[0]["name"] != "orphan" {
		t.Errorf("list --json = %q, %v", r.stdout, err)
	}

	r = e.run("config foo=3\nwait 10\nstatus --json\nexit\n", "attach", "orphan")
	if r.code != 0 {
		t.Fatalf("attach: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("attached to pool orphan (master pid %d", pid)) ||
		!strings.Contains(r.stderr, fmt.Sprintf("pool orphan keeps running (master pid %d)", pid)) {
		t.Errorf("attach output:\n%s\n%s", r.stdout, r.stderr)
	}
	if m := lastJSON(t, r.stdout); len(m["workers"].([]any)) != 3 {
		t.Errorf("after config foo=3 via attach: %v", m["workers"])
	}
	if !alive(pid) {
		t.Fatal("exit from an attached shell stopped the pool")
	}

	// attach with no name picks the only running pool; stop stops it.
	r = e.run("stop\n", "attach")
	if r.code != 0 || !strings.Contains(r.stderr, "manager stopped") || r.stdout != "" {
		t.Errorf("attach + stop: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if alive(pid) {
		t.Error("master still alive after stop")
	}
	r = e.run("", "attach", "orphan")
	if r.code != 1 || !strings.Contains(r.stderr, `pool "orphan" is not running`) {
		t.Errorf("attach to a stopped pool: exit %d, %q", r.code, r.stderr)
	}
	r = e.run("", "list")
	if r.stdout != "no pools are running\n" {
		t.Errorf("list = %q", r.stdout)
	}
}

// B13: a master started by hand with a pid file elsewhere (--pidfile) is
// found by attach: status says running with its pid, pid prints it and
// stop stops it.
func TestShellAttachMasterWithOtherPidfile(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	e.reap("hp")
	pidfile := filepath.Join(t.TempDir(), "elsewhere.pid")
	master, exited := e.startMaster(t, "-c", cfg, "--name", "hp", "--pidfile", pidfile)
	pid := master.Process.Pid
	waitFor(t, 30*time.Second, "the master to publish its state", func() bool {
		st, err := poolfs.ReadState(e.paths("hp").State)
		return err == nil && st.PID == pid && poolfs.MasterAlive(e.paths("hp"))
	})

	r := e.run("status --json\npid\nstop\n", "attach", "hp")
	if r.code != 0 {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.SplitN(r.stdout, "\n", 2)
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("%v: %q", err, r.stdout)
	}
	if m["state"] != "running" || int(m["pid"].(float64)) != pid || len(lines) < 2 || lines[1] != fmt.Sprintf("%d\n", pid) {
		t.Errorf("attached status: state %v pid %v; stdout:\n%s", m["state"], m["pid"], r.stdout)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Error("stop from the attached shell did not stop the master")
	}
}

// A6: attached to a master started by hand with -c FILE, config changes
// are refused (exit 1; nothing changes, FILE is not rewritten), and a
// syntax error in FILE does not make attach fail: it attaches, shows the
// status of what the master runs, and warns.
func TestShellAttachHandStartedMaster(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	e.reap("hm")
	master, _ := e.startMaster(t, "-c", cfg, "--name", "hm")
	waitFor(t, 30*time.Second, "the master to run its worker", func() bool {
		st, err := poolfs.ReadState(e.paths("hm").State)
		return err == nil && st.PID == master.Process.Pid && len(st.Workers) == 1
	})
	before, _ := os.ReadFile(cfg)

	r := e.run("config foo=3\nstatus --json\n", "attach", "hm")
	if r.code != 1 || !strings.Contains(errorLines(r.stderr), "poolctl: line 1: config: the master reads "+cfg) {
		t.Errorf("config on a hand-started master: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "Reloading master") {
		t.Errorf("said it reloads while refusing:\n%s", r.stderr)
	}
	if after, _ := os.ReadFile(cfg); !bytes.Equal(before, after) {
		t.Errorf("the user's file was rewritten:\n%s", after)
	}
	if m := lastJSON(t, r.stdout); len(m["workers"].([]any)) != 1 || m["spec"] != "foo=1" {
		t.Errorf("after a refused config: spec %v, workers %v", m["spec"], m["workers"])
	}

	if err := os.WriteFile(cfg, []byte("workers:\n  foo: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.run("status --json\n", "attach", "hm")
	if r.code != 0 || !strings.Contains(r.stderr, "poolctl: warning: ") || !strings.Contains(r.stderr, cfg) {
		t.Errorf("attach with a broken config file: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r.stdout != "" {
		if m := lastJSON(t, r.stdout); m["state"] != "running" || m["spec"] != "foo=1" || len(m["workers"].([]any)) != 1 {
			t.Errorf("status with a broken config file: %v", m)
		}
	}

	// Restarting from what the master ran would drop the file's command
	// (the pool would run built-in workers): start refuses until it loads.
	r = e.run("stop\nstart\n", "attach", "hm")
	if r.code != 1 || !strings.Contains(r.stderr, "does not load") {
		t.Errorf("start with a broken config file: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	if poolfs.MasterAlive(e.paths("hm")) {
		t.Errorf("a master was started from a broken config file")
	}
}

// Issue 9 A7: a pool restarted from an attached shell keeps its Redis. A
// master started with --redis URL is killed (SIGKILL) under a shell that
// attached to it; start in that shell brings the new master up on the
// same Redis, not on a private one or on the shell's own REDIS_URL.
func TestShellRestartFromAttachKeepsRedis(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	e.reap("r9")
	e.reapPrivateRedis("r9")
	first := e.startPiped(t, "foo=1", "--redis", redis.URL(), "--name", "r9")
	pid := first.waitRunning(t, e.paths("r9"))

	// The attached shell's own environment points elsewhere (a closed
	// port): the pool's Redis must win.
	e.env = append(e.env, "REDIS_URL=redis://127.0.0.1:1/0")
	r := e.run("kill! KILL\nstart\nstatus --json\nstop\n", "attach", "r9")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	m := lastJSON(t, r.stdout)
	if int(m["pid"].(float64)) == pid || m["redis"] != redis.URL() || m["redis_error"] != nil {
		t.Errorf("restarted master %v runs on Redis %v (error %v), want %s", m["pid"], m["redis"], m["redis_error"], redis.URL())
	}
	first.close(t)
}
