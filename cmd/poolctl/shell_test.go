package main

// End-to-end tests of the shell driven through a pipe: start-up, exit
// status, leaving the pool (harness_test.go has the helpers).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
)

// The example, with built-in workers on a private Redis.
func TestShellPipedExample(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	e.reap("example")
	r := e.run("config foo=3\nwait 10\nstatus --json\n", "foo=1", "--redis", redis.URL(), "--name", "example")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if errorLines(r.stderr) != "" {
		t.Errorf("errors on stderr: %q", errorLines(r.stderr))
	}
	// Confirmations, progress, start-up and shutdown logs go to stderr,
	// keeping stdout for results.
	for _, want := range []string{"foo=3\nReloading master ", "settled in ", "3 workers running (foo=3)",
		"started manager: foo=1", "manager stopped: all workers reaped"} {
		if !strings.Contains(r.stderr, want) || strings.Contains(r.stdout, want) {
			t.Errorf("%q must be on stderr only:\nstdout:\n%s\nstderr:\n%s", want, r.stdout, r.stderr)
		}
	}
	m := lastJSON(t, r.stdout)
	checkStatusSchema(t, m)
	if m["state"] != "running" || len(m["workers"].([]any)) != 3 {
		t.Errorf("status: %v", m)
	}
	if fmt.Sprint(m["config"]) != "map[foo:3]" {
		t.Errorf("config = %v", m["config"])
	}
	for _, w := range m["workers"].([]any) {
		w := w.(map[string]any)
		if w["queues"] != "foo" || w["state"] != "Waiting for foo" || w["rss_bytes"].(float64) <= 0 {
			t.Errorf("worker %v", w)
		}
	}
	assertAllGone(t, pidsOf(m))
	if poolfs.MasterAlive(e.paths("example")) {
		t.Error("master still holds the pool lock")
	}
}

// The seed transcript of the original REPL.
func TestShellSeedTranscript(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	e.reap("seed")
	script := "status\nconfig foo=1 bar=4\nwait 20\nstatus\nlog.tail\nstatus --json\nexit\n"
	r := e.run(script, "foo=2:bar=2:*=1", "--redis", redis.URL(), "--name", "seed")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"started manager: foo=2:bar=2:*=1",
		"pool seed: running (master pid ",
		"config: foo=2:bar=2:*=1 (5 workers)",
		"foo=1:bar=4:*=1\nReloading master ",
		"config: foo=1:bar=4:*=1 (6 workers)",
		"Waiting for bar",
		"Waiting for *",
		"queues: ",
		"processed: 0  failed: 0",
		"manager stopped: all workers reaped",
	} {
		// Start-up and shutdown chatter goes to stderr in a script.
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("transcript lacks %q:\n%s\n%s", want, r.stdout, r.stderr)
		}
	}
	for _, chatter := range []string{"started manager", "manager stopped"} {
		if strings.Contains(r.stdout, chatter) {
			t.Errorf("stdout of a script carries log chatter %q; it belongs on stderr", chatter)
		}
	}
	m := lastJSON(t, r.stdout)
	counts := map[string]int{}
	for _, w := range m["workers"].([]any) {
		counts[w.(map[string]any)["queues"].(string)]++
	}
	if counts["foo"] != 1 || counts["bar"] != 4 || counts["*"] != 1 {
		t.Errorf("workers per queue list = %v", counts)
	}
	assertAllGone(t, pidsOf(m))
}

func TestShellPipedExitStatus(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")

	e.reap("ok")
	r := e.run("# comment\n\nconfig foo=2\nwait 10\npid\nstatus --json\n", "-c", cfg, "--name", "ok")
	if r.code != 0 || strings.Contains(r.stderr, "poolctl: ") {
		t.Fatalf("exit %d, stderr %q\n%s", r.code, r.stderr, r.stdout)
	}
	if strings.Contains(r.stdout, "poolctl-manager[") || !strings.Contains(r.stderr, "started manager") {
		t.Errorf("in a script the start-up log must go to stderr, not stdout:\nstdout:\n%s", r.stdout)
	}
	m := lastJSON(t, r.stdout)
	checkStatusSchema(t, m)
	if !strings.HasPrefix(r.stdout, fmt.Sprintf("%d\n{", int(m["pid"].(float64)))) {
		t.Errorf("pid not printed:\n%s", r.stdout)
	}
	if m["redis_error"] == nil && m["redis"] == nil {
		t.Errorf("no Redis information: %v", m)
	}
	assertAllGone(t, pidsOf(m)) // stopped at the end of input

	e.reap("bad")
	r = e.run("config foo=2\nbogus 'x\nstatus --json\nwait 1.5\n", "-c", cfg, "--name", "bad")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	want := "poolctl: line 2: unterminated single quote (column 7)\npoolctl: 1 command failed\n"
	if got := errorLines(r.stderr); got != want {
		t.Errorf("error lines on stderr = %q, want %q", got, want)
	}
	assertAllGone(t, pidsOf(lastJSON(t, r.stdout)))

	// wait times out on a pool that cannot settle: exit status 1.
	crash := filepath.Join(t.TempDir(), "crash.yml")
	os.WriteFile(crash, []byte("workers:\n  foo: 1\ncommand: [\"sh\", \"-c\", \"exit 3\"]\nstart_retries: 1000\nstart_secs: 1s\n"), 0o600)
	e.reap("crash")
	r = e.run("wait 1\n", "-c", crash, "--name", "crash")
	if r.code != 1 || !strings.Contains(r.stderr, "poolctl: line 1: wait: timed out after 1s: live/desired: foo ") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}

	// Usage errors: exit status 2.
	r = e.run("", "--bogus")
	if r.code != 2 {
		t.Errorf("--bogus: exit %d", r.code)
	}
	e.env = append(e.env, "NO_START=maybe")
	r = e.run("", "foo=1")
	if r.code != 2 || !strings.Contains(r.stderr, `NO_START="maybe"`) {
		t.Errorf("NO_START=maybe: exit %d, %q", r.code, r.stderr)
	}
	e.env[len(e.env)-1] = "NO_START=yes"
	r = e.run("config\nstatus\n", "foo=1", "--name", "nostart")
	if r.code != 0 || !strings.Contains(r.stdout, "pool nostart: not running") || poolfs.MasterAlive(e.paths("nostart")) {
		t.Errorf("NO_START=yes: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// A second shell on a running pool's name fails to start it, reports why,
// and its exit leaves the running pool alone.
func TestShellAlreadyRunning(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	e.reap("busy")
	first := e.startPiped(t, "-c", cfg, "--name", "busy")
	pid := first.waitRunning(t, e.paths("busy"))

	r := e.run("status\n", "foo=1", "--name", "busy")
	if r.code != 1 {
		t.Errorf("second shell exit %d", r.code)
	}
	want := fmt.Sprintf("poolctl: start: pool \"busy\" is already running (master pid %d); use attach busy\n", pid)
	if !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr = %q, want prefix %q", r.stderr, want)
	}
	if !alive(pid) {
		t.Fatal("the second shell stopped the first one's pool")
	}
	first.close(t)
	if alive(pid) {
		t.Error("master still running after its shell's input ended")
	}
}

// SIGTERM (or SIGHUP: the terminal went away) makes the shell leave and
// keep the pool running, like detach.
func TestShellSignalDetaches(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	p := e.paths("sig")
	e.reap("sig")
	sh := e.startPiped(t, "-c", cfg, "--name", "sig")
	pid := sh.waitRunning(t, p)
	if err := sh.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sh.cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("shell exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("shell did not leave on SIGTERM")
	}
	out := sh.out.String()
	if !strings.Contains(out, fmt.Sprintf("pool sig keeps running (master pid %d); re-attach with: poolctl attach sig", pid)) ||
		!strings.Contains(out, "poolctl: stopped by signal terminated") {
		t.Errorf("output:\n%s", out)
	}
	if !alive(pid) {
		t.Fatal("SIGTERM to the shell stopped the pool")
	}
	r := e.run("stop\n", "attach", "sig")
	if r.code != 0 || alive(pid) {
		t.Errorf("stop via attach: exit %d, master alive %v\n%s%s", r.code, alive(pid), r.stdout, r.stderr)
	}
}

// A master that cannot start: the shell says why (its stderr), runs no
// more of the script, and the script's exit status is 1.
func TestShellMasterStartFailure(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	e.reap("nolog")
	badLog := filepath.Join(t.TempDir(), "missing-dir", "pool.log")
	r := e.run("status\nconfig foo=2\n", "-c", cfg, "--name", "nolog", "--log", badLog)
	if r.code != 1 {
		t.Errorf("exit %d", r.code)
	}
	if !strings.Contains(r.stderr, "poolctl: start: master exited during start-up (exit status 1):\n") ||
		!strings.Contains(r.stderr, "open log "+badLog) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "pool nolog: not running") || !strings.Contains(r.stderr, "poolctl: start failed: script stopped\n") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if r.stdout != "" || strings.Contains(r.stderr, "foo=2") {
		t.Errorf("the script went on after the failed start:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}
