package testutil

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a child process a test started: poolctl masters and shells
// run this way in the pool, e2e and cmd tests.
type Process struct {
	Cmd    *exec.Cmd
	Stderr *Buffer
	done   chan struct{}
	err    error
}

// StartProcess starts cmd in a process group of its own, its stderr
// collected. When the test ends a process still running gets TERM, then
// KILL after grace; and when the test failed its stderr and the files
// named in logs are logged.
func StartProcess(t testing.TB, cmd *exec.Cmd, grace time.Duration, logs ...string) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, Stderr: &Buffer{}, done: make(chan struct{})}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Stderr
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			if !p.WaitExit(grace) {
				_ = cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", cmd.Path, p.Stderr.String())
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", f, Tail(string(b), 6000))
			}
		}
	})
	return p
}

// PID is the process id.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited (and been waited for).
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitExit waits up to timeout for the process to exit and reports
// whether it did.
func (p *Process) WaitExit(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Err is what waiting for the process returned; valid once it exited.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Tail returns the last n bytes of s, marked when cut.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
