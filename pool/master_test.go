package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/pool/poolfs"
	"go.uber.org/goleak"
)

const sleepConfig = `
workers:
  foo: 2
  bar: 3
command: ["sleep", "1000"]
start_secs: 0.2
term_timeout: 2s
`

func TestMasterSpawnsConfiguredWorkersInOwnGroups(t *testing.T) {
	tm := startMaster(t, sleepConfig)
	s := tm.waitState("5 workers", func(s *State) bool { return len(s.Workers) == 5 })
	if got := len(pidsOf(s, "foo")); got != 2 {
		t.Errorf("foo workers = %d, want 2", got)
	}
	kids := liveChildren(t, tm.pid())
	if len(kids) != 5 {
		t.Fatalf("master has %d live children in /proc, want 5", len(kids))
	}
	for _, k := range kids {
		pgid, err := syscall.Getpgid(k.PID)
		if err != nil || pgid != k.PID {
			t.Errorf("worker %d: pgid %d (%v), want its own group", k.PID, pgid, err)
		}
		env, _ := os.ReadFile("/proc/" + strconv.Itoa(k.PID) + "/environ")
		if !bytes.Contains(env, []byte("QUEUES=")) || !bytes.Contains(env, []byte("POOLCTL_NAMESPACE=resque:")) {
			t.Errorf("worker %d environment lacks QUEUES / POOLCTL_NAMESPACE", k.PID)
		}
	}
	tm.waitLog("started manager: foo=2:bar=3")
	tm.waitLog("Starting worker[")
	pidFile, err := os.ReadFile(tm.paths.Pid)
	if err != nil || strings.TrimSpace(string(pidFile)) != strconv.Itoa(tm.pid()) {
		t.Errorf("pid file = %q (%v), want %d", pidFile, err, tm.pid())
	}
	fi, err := os.Stat(tm.paths.Dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("runtime dir mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
}

func TestHUPChangesOnlyTheChangedQueue(t *testing.T) {
	tm := startMaster(t, sleepConfig)
	before := tm.waitState("5 workers", func(s *State) bool { return len(s.Workers) == 5 })
	barBefore := pidsOf(before, "bar")

	tm.writeConfig(strings.Replace(sleepConfig, "foo: 2", "foo: 4", 1))
	tm.signal(syscall.SIGHUP)
	after := tm.waitState("foo=4", func(s *State) bool { return len(pidsOf(s, "foo")) == 4 && len(s.Workers) == 7 })
	if got := pidsOf(after, "bar"); fmt.Sprint(got) != fmt.Sprint(barBefore) {
		t.Errorf("bar pids changed on HUP: %v -> %v", barBefore, got)
	}
	fooBefore := pidsOf(before, "foo")
	for _, p := range fooBefore {
		found := false
		for _, q := range pidsOf(after, "foo") {
			found = found || p == q
		}
		if !found {
			t.Errorf("foo worker %d was restarted by HUP; unchanged workers must keep running", p)
		}
	}

	// Scale down: the surplus goes, oldest first; the rest keep their pids.
	tm.writeConfig(strings.Replace(sleepConfig, "foo: 2", "foo: 1", 1))
	tm.signal(syscall.SIGHUP)
	down := tm.waitState("foo=1", func(s *State) bool { return len(s.Workers) == 4 })
	kept := pidsOf(down, "foo")
	newest := pidsOf(after, "foo")[3] // pids grow with spawn order here
	if len(kept) != 1 || kept[0] != newest {
		t.Errorf("after scale-down foo = %v, want the newest worker %d kept", kept, newest)
	}
	tm.waitLog("reloaded configuration: foo=4:bar=3 -> foo=1:bar=3")
}

func TestShutdownSignalsLeaveNoChildOrZombie(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGQUIT, syscall.SIGINT, syscall.SIGTERM} {
		t.Run(signalName(sig), func(t *testing.T) {
			tm := startMaster(t, sleepConfig)
			tm.waitState("5 workers", func(s *State) bool { return len(s.Workers) == 5 })
			kids := liveChildren(t, tm.pid())
			tm.signal(sig)
			tm.waitExit(10 * time.Second)
			if tm.Err() != nil {
				t.Errorf("master exit: %v, want status 0", tm.Err())
			}
			for _, k := range kids {
				if !k.Gone() {
					t.Errorf("worker %d still exists after %s", k.PID, signalName(sig))
				}
			}
			if _, err := os.Stat(tm.paths.Pid); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file left behind: %v", err)
			}
			tm.waitLog("manager stopped: all workers reaped")
		})
	}
}

func TestWorkerIgnoringQuitIsKilledAfterTimeout(t *testing.T) {
	tm := startMaster(t, `
workers: {stubborn: 1}
command: ["sh", "-c", "trap '' QUIT TERM; echo ignoring QUIT and TERM; while :; do sleep 1; done"]
term_timeout: 300ms
start_secs: 50ms
`)
	s := tm.waitState("1 running worker", func(s *State) bool { return len(s.Workers) == 1 && s.Workers[0].State == WorkerRunning })
	// Running (past start_secs) is not yet ignoring QUIT: on a loaded host
	// sh had not reached its trap when the QUIT came, and died of it.
	tm.waitLog(fmt.Sprintf("poolctl-worker[%d]: ignoring QUIT and TERM\n", s.Workers[0].PID))
	tm.signal(syscall.SIGQUIT)
	tm.waitExit(15 * time.Second)
	tm.waitLog(fmt.Sprintf("worker[%d] still running QUIT after 300ms: sending KILL", s.Workers[0].PID))
	tm.waitLog(fmt.Sprintf("Reaped worker[%d] (status: signal KILL)", s.Workers[0].PID))
}

func TestYoungWorkerIsStoppedWithTERM(t *testing.T) {
	// A just-exec'd process may not handle QUIT yet; the master uses TERM
	// for workers still within start_secs.
	tm := startMaster(t, `
workers: {foo: 1}
command: ["sleep", "1000"]
start_secs: 1h
`)
	s := tm.waitState("1 worker", func(s *State) bool { return len(s.Workers) == 1 })
	tm.signal(syscall.SIGQUIT)
	tm.waitExit(15 * time.Second)
	tm.waitLog(fmt.Sprintf("Reaped worker[%d] (status: signal TERM)", s.Workers[0].PID))
}

func TestCrashLoopGoesFatalAndReloadClearsIt(t *testing.T) {
	cfg := `
workers: {crash: 2, ok: 1}
command: ["sh", "-c", "case $QUEUES in crash) exit 3;; *) exec sleep 1000;; esac"]
start_secs: 1s
start_retries: 3
backoff_max: 100ms
`
	tm := startMaster(t, cfg)
	s := tm.waitState("crash FATAL", func(s *State) bool {
		return len(s.Groups) == 2 && s.Groups[0].State == GroupFatal
	})
	if s.Groups[0].Failures != 3 || !strings.Contains(s.Groups[0].Reason, "exit 3") {
		t.Errorf("fatal group = %+v, want 3 failures and the exit status", s.Groups[0])
	}
	tm.waitLog("FATAL: queues crash: 3 consecutive failed starts")
	okPids := pidsOf(s, "ok")
	if len(okPids) != 1 {
		t.Fatalf("ok workers = %v, want 1", okPids)
	}
	// No more spawns once FATAL.
	logLen := strings.Count(tm.readLog(), "Starting worker")
	// The master stays responsive: a HUP clears FATAL and retries.
	tm.signal(syscall.SIGHUP)
	tm.waitLog("reloaded configuration")
	tm.waitState("crash retried", func(s *State) bool {
		return strings.Count(tm.readLog(), "Starting worker") > logLen
	})
	s = tm.waitState("crash FATAL again", func(s *State) bool { return s.Groups[0].State == GroupFatal })
	if got := pidsOf(s, "ok"); fmt.Sprint(got) != fmt.Sprint(okPids) {
		t.Errorf("ok worker restarted by a reload that did not change it: %v -> %v", okPids, got)
	}
}

func TestMissingCommandIsFatalAtOnce(t *testing.T) {
	tm := startMaster(t, `
workers: {foo: 3}
command: ["/nonexistent/worker-binary"]
`)
	s := tm.waitState("FATAL", func(s *State) bool { return len(s.Groups) == 1 && s.Groups[0].State == GroupFatal })
	if !strings.Contains(s.Groups[0].Reason, "/nonexistent/worker-binary") {
		t.Errorf("reason %q does not name the command", s.Groups[0].Reason)
	}
	if n := strings.Count(tm.readLog(), "FATAL"); n != 1 {
		t.Errorf("FATAL logged %d times, want once (no busy loop)", n)
	}
}

func TestBrokenConfigOnHUPKeepsOldPool(t *testing.T) {
	tm := startMaster(t, sleepConfig)
	before := tm.waitState("5 workers", func(s *State) bool { return len(s.Workers) == 5 })
	tm.writeConfig("workers:\n  foo: 2\n  bar: many\n")
	tm.signal(syscall.SIGHUP)
	tm.waitLog("reload failed, keeping the current configuration:")
	s := tm.waitState("error published", func(s *State) bool { return s.Error != "" })
	if !strings.Contains(s.Error, "pool.yml:3") {
		t.Errorf("reload error %q does not give the line (pool.yml:3)", s.Error)
	}
	if fmt.Sprint(pidsOf(s, "foo"), pidsOf(s, "bar")) != fmt.Sprint(pidsOf(before, "foo"), pidsOf(before, "bar")) {
		t.Errorf("workers changed after a broken reload")
	}
	if s.Spec != "foo=2:bar=3" {
		t.Errorf("spec in force = %q, want the old foo=2:bar=3", s.Spec)
	}
}

func TestWorkersDieWhenMasterIsKilled(t *testing.T) {
	tm := startMaster(t, sleepConfig)
	tm.waitState("5 workers", func(s *State) bool { return len(s.Workers) == 5 })
	kids := liveChildren(t, tm.pid())
	tm.signal(syscall.SIGKILL)
	tm.waitExit(15 * time.Second)
	testutil.Eventually(t, 5*time.Second, "workers to die with their master", func() bool {
		for _, k := range kids {
			if !k.Dead() {
				return false
			}
		}
		return true
	})
}

func TestOrphanedJobProcessIsKilled(t *testing.T) {
	// The worker starts a process in a new session (so killing the worker's
	// group does not reach it) and then dies: the orphan reparents to the
	// master, which must kill it.
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "orphan.PID")
	tm := startMaster(t, fmt.Sprintf(`
workers: {foo: 1}
command: ["sh", "-c", "setsid sleep 1000 & echo $! > %s; sleep 1000"]
start_secs: 0.1
`, pidFile))
	s := tm.waitState("worker", func(s *State) bool { return len(s.Workers) == 1 })
	var orphan testutil.Proc
	testutil.Eventually(t, 15*time.Second, "orphan pid file", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			return false
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		var ok bool
		orphan, ok = testutil.ProcOf(pid)
		// Only once setsid has exec'd sleep is it outside the worker's group.
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(orphan.PID) + "/cmdline")
		return ok && bytes.HasPrefix(cmdline, []byte("sleep\x00"))
	})
	if err := syscall.Kill(s.Workers[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "orphan to be killed", func() bool { return orphan.Gone() })
	tm.waitLog(fmt.Sprintf("killing orphaned process %d", orphan.PID))
}

func TestWinchStopsWorkersUntilHUP(t *testing.T) {
	tm := startMaster(t, sleepConfig)
	tm.waitState("5 workers", func(s *State) bool { return len(s.Workers) == 5 })
	tm.signal(syscall.SIGWINCH)
	tm.waitState("paused, no workers", func(s *State) bool { return s.Status == MasterPaused && len(s.Workers) == 0 })
	if n := len(liveChildren(t, tm.pid())); n != 0 {
		t.Errorf("%d children after WINCH, want 0", n)
	}
	tm.signal(syscall.SIGHUP)
	tm.waitState("running again", func(s *State) bool { return s.Status == MasterRunning && len(s.Workers) == 5 })
}

func TestSecondMasterForSamePoolIsRefused(t *testing.T) {
	tm := startMaster(t, sleepConfig)
	opts := Options{ConfigPath: tm.config, Paths: tm.paths, LogPath: filepath.Join(t.TempDir(), "x.log")}
	err := Run(context.Background(), opts)
	want := fmt.Sprintf("pool \"test\" is already running (master pid %d)", tm.pid())
	if err == nil || err.Error() != want {
		t.Fatalf("second master: %v, want %q", err, want)
	}
}

func TestWorkerOutputIsPrefixedInTheLog(t *testing.T) {
	tm := startMaster(t, `
workers: {foo: 1}
command: ["sh", "-c", "printf 'hello from worker\\npartial'; exec sleep 1000"]
`)
	s := tm.waitState("worker", func(s *State) bool { return len(s.Workers) == 1 })
	tm.waitLog(fmt.Sprintf("poolctl-worker[%d]: hello from worker\n", s.Workers[0].PID))
	tm.signal(syscall.SIGTERM)
	tm.waitExit(15 * time.Second)
	// The unterminated last line is flushed when the pipe closes.
	tm.waitLog(fmt.Sprintf("poolctl-worker[%d]: partial\n", s.Workers[0].PID))
}

func TestRuntimeDirRemovedUnderARunningPool(t *testing.T) {
	tm := startMaster(t, sleepConfig)
	before := tm.waitState("5 workers", func(s *State) bool { return len(s.Workers) == 5 })
	if err := os.RemoveAll(tm.paths.Dir); err != nil {
		t.Fatal(err)
	}
	// Any change makes the master write its state again.
	if err := syscall.Kill(before.Workers[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tm.waitState("state file rewritten", func(s *State) bool { return len(s.Workers) == 5 && s.PID == tm.pid() })
	tm.waitLog("was removed: recreated it")
	if b, err := os.ReadFile(tm.paths.Pid); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(tm.pid()) {
		t.Errorf("pid file not restored: %q %v", b, err)
	}
}

func TestRunInProcessStopsOnCancelWithoutLeaks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pool.yml")
	if err := os.WriteFile(cfg, []byte(sleepConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	paths := poolfs.PathsFor(filepath.Join(dir, "run"), "inproc")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: cfg, Paths: paths, LogPath: filepath.Join(dir, "pool.log")})
	}()
	var s *State
	testutil.Eventually(t, 10*time.Second, "5 workers", func() bool {
		var err error
		s, err = poolfs.ReadState(paths.State)
		return err == nil && len(s.Workers) == 5
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, w := range s.Workers {
		if _, ok := testutil.ProcOf(w.PID); ok {
			t.Errorf("worker %d left behind", w.PID)
		}
	}
}

func TestNamespaceChangeOnHUPIsRefused(t *testing.T) {
	cfg := sleepConfig + "namespace: \"old:\"\n"
	tm := startMaster(t, cfg)
	before := tm.waitState("5 workers", func(s *State) bool { return len(s.Workers) == 5 && s.Settled() })
	// The whole reload is refused: neither the namespace nor the new count
	// takes effect.
	tm.writeConfig(strings.Replace(strings.Replace(cfg, `"old:"`, `"new:"`, 1), "foo: 2", "foo: 3", 1))
	tm.signal(syscall.SIGHUP)
	tm.waitLog(`reload failed, keeping the current configuration: the namespace: setting cannot change while the pool runs ("old:" -> "new:"); restart the pool to change it`)
	s := tm.waitState("reload error published", func(s *State) bool { return s.Error != "" })
	if !strings.Contains(s.Error, "namespace") {
		t.Errorf("state error = %q, want it to name the namespace: setting", s.Error)
	}
	if s.Namespace != "old:" || s.Spec != "foo=2:bar=3" {
		t.Errorf("state says namespace %q, spec %q; want the old config (old:, foo=2:bar=3)", s.Namespace, s.Spec)
	}
	if fmt.Sprint(pidsOf(s, "foo"), pidsOf(s, "bar")) != fmt.Sprint(pidsOf(before, "foo"), pidsOf(before, "bar")) {
		t.Errorf("workers changed after a refused reload: %v -> %v", before.Workers, s.Workers)
	}
	for _, k := range liveChildren(t, tm.pid()) {
		env, _ := os.ReadFile("/proc/" + strconv.Itoa(k.PID) + "/environ")
		if !bytes.Contains(env, []byte("\x00POOLCTL_NAMESPACE=old:\x00")) {
			t.Errorf("worker %d does not run with POOLCTL_NAMESPACE=old:", k.PID)
		}
	}
	// A later reload that keeps the namespace applies and clears the error.
	tm.writeConfig(strings.Replace(cfg, "foo: 2", "foo: 3", 1))
	tm.signal(syscall.SIGHUP)
	tm.waitState("foo=3 applied", func(s *State) bool { return s.Error == "" && s.Spec == "foo=3:bar=3" && s.Namespace == "old:" })
}

// Whoever sends USR2 to the master (not only a shell), the state file says
// from when the workers are paused, and CONT clears it (issue 10 B10).
func TestStateSaysWhenWorkersWerePausedByUSR2(t *testing.T) {
	tm := startMaster(t, "workers: {foo: 1}\ncommand: [\"sleep\", \"1000\"]\nstart_secs: 0.1\n")
	tm.waitState("1 worker", func(s *State) bool { return len(s.Workers) == 1 })
	before := time.Now()
	tm.signal(syscall.SIGUSR2)
	s := tm.waitState("workers_paused_at set", func(s *State) bool { return !s.WorkersPausedAt.IsZero() })
	if s.WorkersPausedAt.Before(before.Add(-time.Second)) {
		t.Errorf("workers_paused_at = %s, before the signal (%s)", s.WorkersPausedAt, before)
	}
	tm.signal(syscall.SIGCONT)
	tm.waitState("workers_paused_at cleared by CONT", func(s *State) bool { return s.WorkersPausedAt.IsZero() })
}

// With an overrides file, the user's config file stays the source of
// truth: a HUP re-reads it, and the overrides stay on top (issue 10 A5).
func TestHUPRereadsTheConfigFileUnderTheOverrides(t *testing.T) {
	dir := t.TempDir()
	over := filepath.Join(dir, "overrides.spec")
	if err := os.WriteFile(over, []byte("bar=1:baz=0"), 0o600); err != nil {
		t.Fatal(err)
	}
	tm := startMasterWith(t, "workers: {foo: 1, baz: 1}\ncommand: [\"sleep\", \"1000\"]\n", "POOLCTL_TEST_MASTER_OVERRIDES="+over)
	s := tm.waitState("foo and bar", func(s *State) bool { return s.Spec == "foo=1:bar=1" && len(s.Workers) == 2 })
	if s.Overrides != "bar=1:baz=0" {
		t.Errorf("state overrides = %q, want bar=1:baz=0", s.Overrides)
	}
	tm.writeConfig("workers: {foo: 2, baz: 1, qux: 1}\ncommand: [\"sleep\", \"1000\"]\n")
	tm.signal(syscall.SIGHUP)
	tm.waitState("the edited file under the overrides", func(s *State) bool {
		return s.Spec == "foo=2:qux=1:bar=1" && len(s.Workers) == 4
	})
}

// USR2 to the master pauses each worker process, not its process group:
// a worker's children (a Resque worker's forked job, a PHP worker's
// helper) do not catch USR2 and would die of it, as Resque-pool never
// lets them.
func TestUSR2PausesTheWorkerNotItsChildren(t *testing.T) {
	tm := startMaster(t, `
workers: {foo: 1}
start_secs: 0.1
command: ["sh", "-c", "trap 'echo paused' USR2; sleep 1000 & echo child=$!; while :; do wait; done"]
`)
	s := tm.waitState("the worker running", func(s *State) bool {
		return len(s.Workers) == 1 && s.Workers[0].State == "running"
	})
	tm.waitLog("child=")
	var child int
	for line := range strings.SplitSeq(tm.readLog(), "\n") {
		if _, v, ok := strings.Cut(line, "child="); ok {
			child, _ = strconv.Atoi(v)
		}
	}
	if child == 0 {
		t.Fatalf("no child pid in the log:\n%s", tm.readLog())
	}
	tm.signal(syscall.SIGUSR2)
	tm.waitLog(fmt.Sprintf("poolctl-worker[%d]: paused", s.Workers[0].PID))
	// The child got nothing: it is still there, and still sleeping.
	for range 10 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil || strings.Contains(string(b), ") Z ") {
			t.Fatalf("the worker's child %d died of the pause", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
