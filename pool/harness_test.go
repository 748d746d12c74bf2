package pool

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
)

// The test binary doubles as the master: TestMain runs pool.Run when this
// variable is set, so tests exercise a real process with real signals.
const envTestMaster = "POOLCTL_TEST_MASTER_CONFIG"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(envTestMaster); cfg != "" {
		opts := Options{
			ConfigPath: cfg,
			Paths:      PathsFor(BaseDir(), "test"),
			LogPath:    os.Getenv("POOLCTL_TEST_MASTER_LOG"),
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
	t      *testing.T
	cmd    *exec.Cmd
	paths  Paths
	config string
	log    string
	done   chan struct{}
	err    error
}

func startMaster(t *testing.T, config string) *testMaster {
	t.Helper()
	dir := t.TempDir()
	tm := &testMaster{
		t:      t,
		paths:  PathsFor(filepath.Join(dir, "run"), "test"),
		config: filepath.Join(dir, "pool.yml"),
		log:    filepath.Join(dir, "pool.log"),
		done:   make(chan struct{}),
	}
	tm.writeConfig(config)
	tm.cmd = exec.Command(os.Args[0], "-test.run=^$")
	tm.cmd.Env = append(os.Environ(),
		envTestMaster+"="+tm.config,
		"POOLCTL_TEST_MASTER_LOG="+tm.log,
		"POOLCTL_RUNTIME_DIR="+filepath.Join(dir, "run"))
	var stderr bytes.Buffer
	tm.cmd.Stderr = &stderr
	tm.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := tm.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { tm.err = tm.cmd.Wait(); close(tm.done) }()
	t.Cleanup(func() {
		select {
		case <-tm.done:
		default:
			_ = tm.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-tm.done:
			case <-time.After(10 * time.Second):
				_ = tm.cmd.Process.Kill()
				<-tm.done
			}
		}
		if t.Failed() {
			t.Logf("master stderr: %s", stderr.String())
			t.Logf("pool log:\n%s", tm.readLog())
		}
	})
	tm.waitState("manager started", func(s *State) bool { return true })
	return tm
}

func (tm *testMaster) writeConfig(config string) {
	tm.t.Helper()
	if err := os.WriteFile(tm.config, []byte(config), 0o600); err != nil {
		tm.t.Fatal(err)
	}
}

func (tm *testMaster) pid() int { return tm.cmd.Process.Pid }

func (tm *testMaster) signal(sig syscall.Signal) {
	tm.t.Helper()
	if err := tm.cmd.Process.Signal(sig); err != nil {
		tm.t.Fatalf("signal master: %v", err)
	}
}

func (tm *testMaster) readLog() string {
	b, _ := os.ReadFile(tm.log)
	return string(b)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, timeout, what, cond)
}

func (tm *testMaster) waitState(what string, cond func(*State) bool) *State {
	tm.t.Helper()
	var s *State
	waitFor(tm.t, what, 10*time.Second, func() bool {
		select {
		case <-tm.done:
			tm.t.Fatalf("master exited while waiting for %s: %v", what, tm.err)
		default:
		}
		var err error
		s, err = ReadState(tm.paths.State)
		return err == nil && cond(s)
	})
	return s
}

func (tm *testMaster) waitLog(substr string) {
	tm.t.Helper()
	waitFor(tm.t, fmt.Sprintf("log line %q", substr), 10*time.Second, func() bool {
		return strings.Contains(tm.readLog(), substr)
	})
}

func (tm *testMaster) waitExit(timeout time.Duration) {
	tm.t.Helper()
	select {
	case <-tm.done:
	case <-time.After(timeout):
		tm.t.Fatalf("master did not exit within %s", timeout)
	}
}

// proc identifies a process by pid and start time (pids are reused).
type proc struct {
	pid   int
	start string
}

func procStat(pid int) (ppid int, state byte, start string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, "", false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0][0], f[19], true
}

// liveChildren lists the running (not zombie) children of pid from /proc.
func liveChildren(t *testing.T, pid int) []proc {
	t.Helper()
	kids, err := childrenOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	var out []proc
	for _, k := range kids {
		if _, st, start, ok := procStat(k); ok && st != 'Z' {
			out = append(out, proc{k, start})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}

func alive(p proc) bool {
	_, st, start, ok := procStat(p.pid)
	return ok && start == p.start && st != 'Z'
}

func exists(p proc) bool {
	_, _, start, ok := procStat(p.pid)
	return ok && start == p.start
}

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
