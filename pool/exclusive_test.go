package pool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/pool/poolfs"
)

const twoSleepers = `
workers: {foo: 2}
command: ["sleep", "1000"]
start_secs: 0.2
term_timeout: 2s
`

// workerProcesses lists the live processes that run as workers of a pool
// in runDir, whichever master started them: they inherit the test
// master's POOLCTL_RUNTIME_DIR, and only workers have QUEUES set.
func workerProcesses(t *testing.T, runDir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	mark := []byte("\x00POOLCTL_RUNTIME_DIR=" + runDir + "\x00")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, env...), mark) || !bytes.Contains(env, []byte("QUEUES=")) {
			continue
		}
		if p, ok := testutil.ProcOf(pid); ok && !p.Dead() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// runSecondMaster starts another master on tm's pool (same runtime
// directory and name) and returns its standard error and exit error. A
// second master that keeps running fails the test.
func runSecondMaster(t *testing.T, tm *testMaster) (string, error) {
	t.Helper()
	runDir := filepath.Dir(tm.paths.Dir)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envTestMaster+"="+tm.config,
		"POOLCTL_TEST_MASTER_LOG="+filepath.Join(t.TempDir(), "second.log"),
		"POOLCTL_RUNTIME_DIR="+runDir)
	var stderr testutil.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stderr.String(), err
	case <-time.After(10 * time.Second):
		n := len(workerProcesses(t, runDir))
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		t.Fatalf("a second master on pool %q kept running (%d worker processes for a config of 2)", tm.paths.Name, n)
		return "", nil
	}
}

func testSecondMasterIsRefusedAfter(t *testing.T, remove func(Paths) error) {
	tm := startMaster(t, twoSleepers)
	before := tm.waitState("2 workers", func(s *State) bool { return len(s.Workers) == 2 && s.Settled() })
	if err := remove(tm.paths); err != nil {
		t.Fatal(err)
	}
	stderr, err := runSecondMaster(t, tm)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Errorf("second master ended with %v, want a non-zero exit status", err)
	}
	want := fmt.Sprintf("pool %q is already running (master pid %d)", "test", tm.pid())
	if !bytes.Contains([]byte(stderr), []byte(want)) {
		t.Errorf("second master's error = %q, want %q", stderr, want)
	}
	select {
	case <-tm.Done():
		t.Fatalf("the first master exited: %v", tm.Err())
	default:
	}
	runDir := filepath.Dir(tm.paths.Dir)
	if got := workerProcesses(t, runDir); len(got) != 2 {
		t.Errorf("%d worker processes of the pool (%v), want 2", len(got), got)
	}
	after := tm.waitState("state of the first master", func(s *State) bool { return s.PID == tm.pid() })
	if fmt.Sprint(pidsOf(after, "foo")) != fmt.Sprint(pidsOf(before, "foo")) {
		t.Errorf("the first master's workers changed: %v -> %v", pidsOf(before, "foo"), pidsOf(after, "foo"))
	}
	testutil.Eventually(t, 15*time.Second, "shells to see the first master alive again", func() bool { return poolfs.MasterAlive(tm.paths) })
}

func TestSecondMasterIsRefusedAfterTheLockFileIsRemoved(t *testing.T) {
	testSecondMasterIsRefusedAfter(t, func(p Paths) error { return os.Remove(p.Lock) })
}

func TestSecondMasterIsRefusedAfterTheRuntimeDirIsRemoved(t *testing.T) {
	testSecondMasterIsRefusedAfter(t, func(p Paths) error { return os.RemoveAll(p.Dir) })
}

func TestMasterRetakesARemovedLockFile(t *testing.T) {
	tm := startMaster(t, twoSleepers)
	tm.waitState("2 workers", func(s *State) bool { return len(s.Workers) == 2 })
	if !poolfs.MasterAlive(tm.paths) {
		t.Fatal("MasterAlive is false for a running master")
	}
	if err := os.Remove(tm.paths.Lock); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "MasterAlive to be true again", func() bool { return poolfs.MasterAlive(tm.paths) })
	tm.waitLog("lock file " + tm.paths.Lock + " was removed or replaced: recreated it")

	// A replaced lock file (another inode) is taken over as well.
	if err := os.Remove(tm.paths.Lock); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tm.paths.Lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "MasterAlive to be true on the replaced lock file", func() bool { return poolfs.MasterAlive(tm.paths) })

	// The master still stops cleanly and releases the pool.
	tm.signal(syscall.SIGTERM)
	tm.waitExit(10 * time.Second)
	if poolfs.MasterAlive(tm.paths) {
		t.Error("MasterAlive is true after the master exited")
	}
}
