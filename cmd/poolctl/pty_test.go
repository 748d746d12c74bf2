package main

// End-to-end tests of the shell at a terminal: a pseudo-terminal drives
// go-prompt as a person would.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ptyShell drives the shell through a pseudo-terminal.
type ptyShell struct {
	t    *testing.T
	ptmx *os.File
	tty  *os.File
	cmd  *exec.Cmd
	out  *syncBuffer
	mark int // output before mark has been consumed by expect
}

func (e *shellEnv) startPTY(t *testing.T, args ...string) *ptyShell {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 160}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shellBin, args...)
	cmd.Env = append(e.env, "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	ps := &ptyShell{t: t, ptmx: ptmx, tty: tty, cmd: cmd, out: &syncBuffer{}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			ps.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		tty.Close()
		ptmx.Close()
	})
	return ps
}

// expect waits for want to appear in the output after the mark, and moves
// the mark past it.
func (ps *ptyShell) expect(want string, timeout time.Duration) {
	ps.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := ps.out.String()
		if i := strings.Index(s[ps.mark:], want); i >= 0 {
			ps.mark += i + len(want)
			return
		}
		if time.Now().After(deadline) {
			ps.t.Fatalf("timed out waiting for %q; output after mark:\n%q", want, s[ps.mark:])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// typeSlowly sends keys one byte at a time, as a person types.
func (ps *ptyShell) typeSlowly(keys string) {
	for i := 0; i < len(keys); {
		n := keyLen(keys[i:])
		if _, err := ps.ptmx.Write([]byte(keys[i : i+n])); err != nil {
			ps.t.Fatal(err)
		}
		i += n
		time.Sleep(15 * time.Millisecond) // keystroke pacing, not synchronisation
	}
}

// keyLen is the length of the key at the start of keys: an escape
// sequence (ESC [ … final byte, or ESC O x) is one key, which a terminal
// sends in one write. Sent a byte at a time, a loaded host can deliver
// the ESC alone, which a screen like top reads as the Esc key (it
// closed top in CI, and "[A" went to the prompt).
func keyLen(keys string) int {
	if len(keys) < 3 || keys[0] != 0x1b {
		return 1
	}
	switch keys[1] {
	case 'O':
		return 3
	case '[':
		for j := 2; j < len(keys); j++ {
			if keys[j] >= 0x40 && keys[j] <= 0x7e {
				return j + 1
			}
		}
	}
	return 1
}

// waitExit waits up to 30 s for the shell to exit (the test fails when
// it does not) and returns how it exited.
func (ps *ptyShell) waitExit() error {
	ps.t.Helper()
	done := make(chan error, 1)
	go func() { done <- ps.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		ps.t.Fatalf("shell did not exit:\n%q", ps.out.String())
		return nil
	}
}

func termiosOf(t *testing.T, f *os.File) unix.Termios {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return *tio
}

func TestShellPTY(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n  bar: 1\n")
	p := e.paths("tty")
	e.reap("tty")
	sh := e.startPTY(t, "-c", cfg, "--name", "tty")
	before := termiosOf(t, sh.tty)
	if before.Lflag&unix.ICANON == 0 || before.Lflag&unix.ISIG == 0 {
		t.Fatalf("pty does not start in cooked mode: %+v", before)
	}
	sh.expect("started manager", 30*time.Second)
	sh.expect(">> ", 10*time.Second)
	pid := readPid(p.Pid)

	// Tab completes a unique command name: "pstr<Tab>" runs pstree.
	sh.typeSlowly("pstr\t\r")
	sh.expect(fmt.Sprintf("%d ", pid), 10*time.Second)
	sh.expect("sleep 1000", 10*time.Second)
	sh.expect(">> ", 10*time.Second)

	// While a command runs, the terminal is back in cooked mode.
	sh.typeSlowly("status\r")
	sh.expect("pool tty: running (master pid "+strconv.Itoa(pid), 10*time.Second)
	sh.expect(">> ", 10*time.Second)

	// Ctrl-C during log.tail (which follows at a terminal) ends just the
	// tail: the prompt comes back and the pool still runs.
	log, _ := os.ReadFile(p.Log)
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	last := lines[len(lines)-1]
	sh.typeSlowly("log.tail 1\r")
	sh.expect(last, 10*time.Second)
	waitFor(t, 15*time.Second, "cooked mode during log.tail", func() bool {
		return termiosOf(t, sh.tty).Lflag&unix.ISIG != 0
	})
	// A line appended now shows up: the tail follows.
	f, err := os.OpenFile(p.Log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "a line appended by the test")
	f.Close()
	sh.expect("a line appended by the test", 10*time.Second)
	sh.typeSlowly("\x03")
	sh.expect(">> ", 10*time.Second)
	if !alive(pid) {
		t.Fatal("Ctrl-C reached the master")
	}
	sh.typeSlowly("pid\r")
	sh.expect(strconv.Itoa(pid), 10*time.Second)
	sh.expect(">> ", 10*time.Second)

	// Pasted lines (one write holding line ends) run, one by one.
	if _, err := sh.ptmx.Write([]byte("config_path\rhas_log?\r")); err != nil {
		t.Fatal(err)
	}
	sh.expect("pool.yml", 10*time.Second)
	sh.expect("true", 10*time.Second)
	sh.expect(">> ", 10*time.Second)

	// Ctrl-C at the prompt just clears the line, even when it arrives in
	// one read with the keys around it (a loaded host read "bogus", Ctrl-C,
	// "exit" as the command "bogus\x03exit").
	mark := len(sh.out.String())
	if _, err := sh.ptmx.Write([]byte("bogus\x03pid\r")); err != nil {
		t.Fatal(err)
	}
	sh.expect(strconv.Itoa(pid), 10*time.Second)
	sh.expect(">> ", 10*time.Second)
	if out := sh.out.String()[mark:]; strings.Contains(out, "unknown command") {
		t.Errorf("Ctrl-C in a read with other keys did not clear the line:\n%q", out)
	}
	sh.typeSlowly("bogus\x03")
	sh.typeSlowly("exit\r")
	sh.expect("manager stopped: all workers reaped", 30*time.Second)
	if err := sh.waitExit(); err != nil {
		t.Errorf("shell exit: %v\n%q", err, sh.out.String())
	}
	if os.Getenv("POOLCTL_TEST_DUMP") != "" {
		t.Logf("terminal output:\n%q", sh.out.String())
	}
	after := termiosOf(t, sh.tty)
	if before != after {
		t.Errorf("terminal state not restored:\nbefore %+v\nafter  %+v", before, after)
	}
	if alive(pid) {
		t.Error("master still running after exit")
	}
	if strings.Contains(sh.out.String(), "unknown command \"bogus") {
		t.Error("Ctrl-C at the prompt did not clear the line")
	}
	hist, err := os.ReadFile(filepath.Join(e.state, "poolctl", "history"))
	if err != nil || !strings.Contains(string(hist), "pstree\n") || !strings.Contains(string(hist), "log.tail 1\n") {
		t.Errorf("history = %q, %v", hist, err)
	}
}

// B10: a master that dies under the prompt is announced at once, with how
// it died, at the prompt and while log.tail follows; the prompt carries
// on and status says the pool is not running.
func TestShellPTYMasterDied(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	p := e.paths("died")
	e.reap("died")
	sh := e.startPTY(t, "-c", cfg, "--name", "died")
	before := termiosOf(t, sh.tty)
	sh.expect("started manager", 30*time.Second)
	sh.expect(">> ", 10*time.Second)

	pid := readPid(p.Pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sh.expect(fmt.Sprintf("master %d died: signal KILL", pid), 10*time.Second)
	sh.expect(">> ", 10*time.Second)
	sh.typeSlowly("status\r")
	sh.expect("pool died: not running", 10*time.Second)
	sh.expect(">> ", 10*time.Second)

	// Again while log.tail follows the log.
	sh.typeSlowly("start\r")
	sh.expect("started manager", 30*time.Second)
	sh.expect(">> ", 10*time.Second)
	pid2 := readPid(p.Pid)
	if pid2 == pid || pid2 <= 0 {
		t.Fatalf("no new master: pid %d", pid2)
	}
	sh.typeSlowly("log.tail 1\r")
	waitFor(t, 15*time.Second, "cooked mode during log.tail", func() bool {
		return termiosOf(t, sh.tty).Lflag&unix.ISIG != 0
	})
	if err := syscall.Kill(pid2, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sh.expect(fmt.Sprintf("master %d died: signal KILL", pid2), 10*time.Second)
	sh.typeSlowly("\x03")
	sh.expect(">> ", 10*time.Second)
	sh.typeSlowly("exit\r")
	_ = sh.waitExit()
	if after := termiosOf(t, sh.tty); before != after {
		t.Errorf("terminal state not restored:\nbefore %+v\nafter  %+v", before, after)
	}
}

// A14: at a terminal, a typo is reported but does not change the exit
// status of the session (only scripts report failed lines by it).
func TestShellPTYTypoExitStatus(t *testing.T) {
	e := newShellEnv(t)
	e.env = append(e.env, "NO_START=1")
	sh := e.startPTY(t, "foo=1", "--name", "typo")
	sh.expect(">> ", 10*time.Second)
	sh.typeSlowly("bogus\r")
	sh.expect(`unknown command "bogus"`, 10*time.Second)
	sh.expect(">> ", 10*time.Second)
	sh.typeSlowly("exit\r")
	if err := sh.waitExit(); err != nil {
		t.Errorf("interactive session with a typo: %v\n%q", err, sh.out.String())
	}
}

// A15 at a terminal: Ctrl-L clears the screen (it is not inserted into
// the line), and exit says "Bye!".
func TestShellPTYCtrlLAndBye(t *testing.T) {
	e := newShellEnv(t)
	e.env = append(e.env, "NO_START=1")
	sh := e.startPTY(t, "foo=1", "--name", "ctrll")
	sh.expect(">> ", 10*time.Second)
	sh.typeSlowly("\x0c")
	sh.expect("\x1b[2J", 10*time.Second) // erase display
	sh.typeSlowly("config\r")
	sh.expect("foo=1", 10*time.Second)
	sh.expect(">> ", 10*time.Second)
	sh.typeSlowly("exit\r")
	sh.expect("Bye!", 10*time.Second)
	_ = sh.waitExit()
	if strings.Contains(sh.out.String(), "unknown command") {
		t.Errorf("Ctrl-L went into the line:\n%q", sh.out.String())
	}
}
