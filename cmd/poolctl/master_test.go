package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
)

// leanMasterPool writes a config of one built-in worker on queue foo and
// one `sleep` worker over a private redis-server.
func leanMasterPool(t *testing.T) string {
	t.Helper()
	srv := redistest.Start(t)
	cfg := filepath.Join(t.TempDir(), "pool.yml")
	body := "redis: " + srv.URL() + "\nstart_secs: 100ms\nterm_timeout: 5s\nworkers:\n  foo: 1\n" +
		"  sleepers:\n    count: 1\n    command: [\"sleep\", \"1000\"]\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runMasterBin starts `BIN master -c cfg --name name` as startMaster
// does, from the binary bin, and waits until both workers run. It returns
// the command and the settled state.
func runMasterBin(t *testing.T, e *shellEnv, bin, cfg, name string) (*exec.Cmd, <-chan struct{}, *poolfs.State) {
	t.Helper()
	p := e.paths(name)
	e.reap(name)
	m := exec.Command(bin, "master", "-c", cfg, "--name", name, "--log", p.Log)
	m.Env = e.env
	m.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = m.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = m.Process.Kill()
			<-done
		}
	})
	var st *poolfs.State
	waitFor(t, 20*time.Second, "both workers running", func() bool {
		s, err := poolfs.ReadState(p.State)
		if err != nil || !s.Settled() || len(s.Workers) != 2 {
			return false
		}
		for _, w := range s.Workers {
			if w.State != poolfs.WorkerRunning {
				return false
			}
		}
		st = s
		return true
	})
	return m, done, st
}

// exe is the executable a live process runs.
func exe(t *testing.T, pid int) string {
	t.Helper()
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	return p
}

// quitMaster sends QUIT and checks the master exits 0 with its workers.
func quitMaster(t *testing.T, m *exec.Cmd, done <-chan struct{}, st *poolfs.State) {
	t.Helper()
	if err := m.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the master did not exit within 20 s of QUIT")
	}
	if code := m.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("master exit status %d, want 0", code)
	}
	var pids []int
	for _, w := range st.Workers {
		pids = append(pids, w.PID)
	}
	assertAllGone(t, pids)
}

// `poolctl master` becomes poolctl-master when it sits beside poolctl
// (TestMain builds both): the same pid (pid files, systemd's MAINPID),
// and its built-in workers are `poolctl work` of the poolctl beside it,
// since poolctl-master has no work sub-command and there is no
// poolctl-worker here.
func TestMasterExecsLeanBinary(t *testing.T) {
	e := newShellEnv(t)
	m, done, st := runMasterBin(t, e, shellBin, leanMasterPool(t), "lean")
	if st.PID != m.Process.Pid {
		t.Fatalf("the state names master pid %d, want the started process %d", st.PID, m.Process.Pid)
	}
	if got, want := exe(t, st.PID), filepath.Join(filepath.Dir(shellBin), "poolctl-master"); got != want {
		t.Fatalf("the master runs %s, want %s", got, want)
	}
	for _, w := range st.Workers {
		if w.Queues == "foo" {
			if got := exe(t, w.PID); got != shellBin {
				t.Fatalf("the built-in worker runs %s, want %s (poolctl work)", got, shellBin)
			}
		}
	}
	quitMaster(t, m, done, st)
}

// Without poolctl-master beside it (e.g. `go install` of cmd/poolctl
// alone), `poolctl master` runs the same master in its own process.
func TestMasterInProcessWithoutLeanBinary(t *testing.T) {
	alone := copyBinary(t, shellBin)
	e := newShellEnv(t)
	m, done, st := runMasterBin(t, e, alone, leanMasterPool(t), "inproc")
	if st.PID != m.Process.Pid {
		t.Fatalf("the state names master pid %d, want the started process %d", st.PID, m.Process.Pid)
	}
	if got := exe(t, st.PID); got != alone {
		t.Fatalf("the master runs %s, want %s (in-process)", got, alone)
	}
	for _, w := range st.Workers {
		if w.Queues == "foo" {
			if got := exe(t, w.PID); got != alone {
				t.Fatalf("the built-in worker runs %s, want %s (poolctl work)", got, alone)
			}
		}
	}
	quitMaster(t, m, done, st)
}

// The exec'd master and the in-process one answer bad command lines with
// the same message and exit status.
func TestMasterUsageErrorsSameBothWays(t *testing.T) {
	alone := copyBinary(t, shellBin)
	e := newShellEnv(t)
	for _, args := range [][]string{
		{"master"},
		{"master", "-c", "x.yml", "--fleet-heartbeat", "0s"},
		{"master", "-c", "x.yml", "--bogus"},
		{"master", "-c", "x.yml", "--redis", "http://nope"},
		{"master", "-c", "x.yml", "extra"},
	} {
		var outs [2]string
		for i, bin := range []string{shellBin, alone} {
			c := exec.Command(bin, args...)
			c.Env = e.env
			var stderr bytes.Buffer
			c.Stderr = &stderr
			err := c.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("%s %v: %v, want exit status 2; stderr:\n%s", bin, args, err, stderr.String())
			}
			outs[i] = stderr.String()
		}
		if outs[0] != outs[1] {
			t.Errorf("%v: poolctl-master says\n%s\nthe in-process master says\n%s", args, outs[0], outs[1])
		}
	}
}

// copyBinary copies the poolctl binary alone into a directory of its own.
func copyBinary(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "poolctl")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}
