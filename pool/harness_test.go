package pool

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/pool/poolfs"
)

// The test binary doubles as the master: TestMain runs pool.Run when this
// variable is set, so tests exercise a real process with real signals.
const envTestMaster = "POOLCTL_TEST_MASTER_CONFIG"

// envTestPrepareMarker, when set, makes the test master's PrepareRedis
// write the Redis URL it was given to that file.
const envTestPrepareMarker = "POOLCTL_TEST_MASTER_PREPARE_MARKER"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(envTestMaster); cfg != "" {
		opts := Options{
			ConfigPath: cfg,
			Paths:      poolfs.PathsFor(poolfs.BaseDir(), "test"),
			LogPath:    os.Getenv("POOLCTL_TEST_MASTER_LOG"),
			Overrides:  os.Getenv("POOLCTL_TEST_MASTER_OVERRIDES"),
		}
		if marker := os.Getenv(envTestPrepareMarker); marker != "" {
			opts.PrepareRedis = func(_ context.Context, url string) error {
				return os.WriteFile(marker, []byte(url), 0o644)
			}
		}
		if err := Run(context.Background(), opts); err != nil {
			fmt.Fprintln(os.Stderr, "master:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type testMaster struct {
	*testutil.Process
	t      *testing.T
	paths  Paths
	config string
	log    string
}

func startMaster(t *testing.T, config string) *testMaster {
	t.Helper()
	return startMasterWith(t, config)
}

// startMasterWith is startMaster with extra environment for the master.
func startMasterWith(t *testing.T, config string, env ...string) *testMaster {
	t.Helper()
	dir := t.TempDir()
	tm := &testMaster{
		t:      t,
		paths:  poolfs.PathsFor(filepath.Join(dir, "run"), "test"),
		config: filepath.Join(dir, "pool.yml"),
		log:    filepath.Join(dir, "pool.log"),
	}
	tm.writeConfig(config)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envTestMaster+"="+tm.config,
		"POOLCTL_TEST_MASTER_LOG="+tm.log,
		"POOLCTL_RUNTIME_DIR="+filepath.Join(dir, "run"))
	cmd.Env = append(cmd.Env, env...)
	tm.Process = testutil.StartProcess(t, cmd, 10*time.Second, tm.log)
	tm.waitState("manager started", func(s *State) bool { return true })
	return tm
}

func (tm *testMaster) writeConfig(config string) {
	tm.t.Helper()
	if err := os.WriteFile(tm.config, []byte(config), 0o600); err != nil {
		tm.t.Fatal(err)
	}
}

func (tm *testMaster) pid() int { return tm.PID() }

func (tm *testMaster) signal(sig syscall.Signal) {
	tm.t.Helper()
	if err := tm.Cmd.Process.Signal(sig); err != nil {
		tm.t.Fatalf("signal master: %v", err)
	}
}

func (tm *testMaster) readLog() string {
	b, _ := os.ReadFile(tm.log)
	return string(b)
}

// waitFor polls cond until it holds or the deadline passes.
func (tm *testMaster) waitState(what string, cond func(*State) bool) *State {
	tm.t.Helper()
	var s *State
	testutil.Eventually(tm.t, 10*time.Second, what, func() bool {
		select {
		case <-tm.Done():
			tm.t.Fatalf("master exited while waiting for %s: %v", what, tm.Err())
		default:
		}
		var err error
		s, err = poolfs.ReadState(tm.paths.State)
		return err == nil && cond(s)
	})
	return s
}

func (tm *testMaster) waitLog(substr string) {
	tm.t.Helper()
	testutil.Eventually(tm.t, 10*time.Second, fmt.Sprintf("log line %q", substr), func() bool {
		return strings.Contains(tm.readLog(), substr)
	})
}

func (tm *testMaster) waitExit(timeout time.Duration) {
	tm.t.Helper()
	select {
	case <-tm.Done():
	case <-time.After(timeout):
		tm.t.Fatalf("master did not exit within %s", timeout)
	}
}

func liveChildren(t *testing.T, pid int) []testutil.Proc { return testutil.LiveChildren(t, pid) }

func pidsOf(s *State, queues string) []int {
	var pids []int
	for _, w := range s.Workers {
		if w.Queues == queues && w.State != WorkerStopping {
			pids = append(pids, w.PID)
		}
	}
	sort.Ints(pids)
	return pids
}
