package main

// End-to-end tests of the shell: the real binary, built once in TestMain,
// driven through a pipe or a pseudo-terminal. Every master and worker a
// test starts is found by pid (pid file, state file) and killed in
// t.Cleanup if it is still there.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
)

var shellBin string // the poolctl binary under test

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "poolctl-shell-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shellBin = filepath.Join(dir, "poolctl")
	out, err := exec.Command("go", "build", "-o", shellBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shellEnv is the environment of one test: private runtime and state
// directories, no inherited Redis or pool settings.
type shellEnv struct {
	t       *testing.T
	runtime string
	state   string // XDG_STATE_HOME
	env     []string
}

func newShellEnv(t *testing.T) *shellEnv {
	t.Helper()
	rt := t.TempDir()
	state := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "POOLCTL_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "REDIS_URL", "WORKERS", "NO_START",
			"POOLCTL_ENV", "RACK_ENV", "RAILS_ENV", "POOLCTL_SHELL_PID", "HOME":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "POOLCTL_RUNTIME_DIR="+rt, "XDG_STATE_HOME="+state, "HOME="+state)
	return &shellEnv{t: t, runtime: rt, state: state, env: env}
}

func (e *shellEnv) paths(name string) poolfs.Paths { return poolfs.PathsFor(e.runtime, name) }

// reap kills, at the end of the test, whatever master and workers of the
// pool are still alive, by pid.
func (e *shellEnv) reap(name string) {
	p := e.paths(name)
	e.t.Cleanup(func() {
		var pids []int
		if st, err := poolfs.ReadState(p.State); err == nil {
			pids = append(pids, st.PID)
			for _, w := range st.Workers {
				pids = append(pids, w.PID)
			}
		}
		if pid := readPid(p.Pid); pid > 0 {
			pids = append(pids, pid)
		}
		for _, pid := range pids {
			if alive(pid) {
				e.t.Logf("killing leftover process %d", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, timeout, what, cond)
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs poolctl with args and the script on stdin, to completion.
func (e *shellEnv) run(script string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, shellBin, args...)
	cmd.Env = e.env
	cmd.Stdin = strings.NewReader(script)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run poolctl: %v", err)
	}
	return result{out.String(), errb.String(), code}
}

// sleepConfig writes a config whose workers are plain `sleep` processes.
func sleepConfig(t *testing.T, workers string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pool.yml")
	data := "workers:\n" + workers + "command: [\"sleep\", \"1000\"]\nstart_secs: 200ms\nterm_timeout: 5s\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// lastJSON decodes the last line of out that starts with '{'.
func lastJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			var m map[string]any
			if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
				t.Fatalf("bad JSON %q: %v", lines[i], err)
			}
			return m
		}
	}
	t.Fatalf("no JSON object in output:\n%s", out)
	return nil
}

// pidsOf returns the master's and the workers' pids from a status --json.
func pidsOf(m map[string]any) []int {
	pids := []int{int(m["pid"].(float64))}
	for _, w := range m["workers"].([]any) {
		pids = append(pids, int(w.(map[string]any)["pid"].(float64)))
	}
	return pids
}

func assertAllGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d is still running after the shell exited", pid)
		}
	}
}

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

// checkStatusSchema checks the documented keys and their JSON types.
func checkStatusSchema(t *testing.T, m map[string]any) {
	t.Helper()
	types := map[string]string{
		"name": "string", "state": "string", "pid": "number", "spec": "string", "config": "object",
		"groups": "array", "workers": "array", "queues": "object", "processed": "number", "failed": "number",
		"config_path": "string", "log_path": "string", "started_at": "string", "redis": "string",
	}
	for k, want := range types {
		if got := jsonType(m[k]); got != want {
			t.Errorf("status --json %q is %s, want %s", k, got, want)
		}
	}
	for _, w := range m["workers"].([]any) {
		w := w.(map[string]any)
		for k, want := range map[string]string{"pid": "number", "queues": "string", "state": "string", "process_state": "string",
			"started_at": "string", "uptime_seconds": "number", "restarts": "number", "cpu_percent": "number", "rss_bytes": "number"} {
			if got := jsonType(w[k]); got != want {
				t.Errorf("worker %q is %s, want %s", k, got, want)
			}
		}
		if _, ok := w["job"]; !ok {
			t.Errorf("worker lacks job: %v", w)
		}
	}
	for _, g := range m["groups"].([]any) {
		g := g.(map[string]any)
		for k, want := range map[string]string{"queues": "string", "desired": "number", "live": "number", "state": "string"} {
			if got := jsonType(g[k]); got != want {
				t.Errorf("group %q is %s, want %s", k, got, want)
			}
		}
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "?"
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

// pipedShell is a shell whose stdin the test keeps open.
type pipedShell struct {
	cmd   *exec.Cmd
	stdin *os.File
	out   *syncBuffer
}

func (e *shellEnv) startPiped(t *testing.T, args ...string) *pipedShell {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shellBin, args...)
	cmd.Env = e.env
	cmd.Stdin = r
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	ps := &pipedShell{cmd: cmd, stdin: w, out: out}
	t.Cleanup(func() {
		w.Close()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return ps
}

// waitRunning waits for the shell to have printed its first status and
// returns the master's pid.
func (ps *pipedShell) waitRunning(t *testing.T, p poolfs.Paths) int {
	t.Helper()
	waitFor(t, 30*time.Second, "the pool to start", func() bool {
		return strings.Contains(ps.out.String(), "queues: ") && poolfs.MasterAlive(p)
	})
	pid := readPid(p.Pid)
	if pid <= 0 {
		t.Fatalf("no pid file; output:\n%s", ps.out.String())
	}
	return pid
}

func (ps *pipedShell) close(t *testing.T) {
	t.Helper()
	ps.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- ps.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shell: %v\n%s", err, ps.out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("shell did not exit at end of input:\n%s", ps.out.String())
	}
}

type syncBuffer = testutil.Buffer

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
	for i := 0; i < len(keys); i++ {
		if _, err := ps.ptmx.Write([]byte{keys[i]}); err != nil {
			ps.t.Fatal(err)
		}
		time.Sleep(15 * time.Millisecond) // keystroke pacing, not synchronisation
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
	waitFor(t, 5*time.Second, "cooked mode during log.tail", func() bool {
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

	// Ctrl-C at the prompt just clears the line.
	sh.typeSlowly("bogus\x03")
	sh.typeSlowly("exit\r")
	sh.expect("manager stopped: all workers reaped", 30*time.Second)
	waitErr := make(chan error, 1)
	go func() { waitErr <- sh.cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("shell exit: %v\n%q", err, sh.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("shell did not exit:\n%q", sh.out.String())
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

// errorLines keeps the shell's own error lines ("poolctl: ...") of stderr,
// dropping the start-up and shutdown log a script also gets there.
func errorLines(stderr string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(stderr, "\n") {
		if strings.HasPrefix(line, "poolctl: ") {
			b.WriteString(line)
		}
	}
	return b.String()
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
	waitFor(t, 5*time.Second, "cooked mode during log.tail", func() bool {
		return termiosOf(t, sh.tty).Lflag&unix.ISIG != 0
	})
	if err := syscall.Kill(pid2, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sh.expect(fmt.Sprintf("master %d died: signal KILL", pid2), 10*time.Second)
	sh.typeSlowly("\x03")
	sh.expect(">> ", 10*time.Second)
	sh.typeSlowly("exit\r")
	waitErr := make(chan error, 1)
	go func() { waitErr <- sh.cmd.Wait() }()
	select {
	case <-waitErr:
	case <-time.After(30 * time.Second):
		t.Fatalf("shell did not exit:\n%q", sh.out.String())
	}
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
	waitErr := make(chan error, 1)
	go func() { waitErr <- sh.cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("interactive session with a typo: %v\n%q", err, sh.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("shell did not exit:\n%q", sh.out.String())
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
	waitErr := make(chan error, 1)
	go func() { waitErr <- sh.cmd.Wait() }()
	select {
	case <-waitErr:
	case <-time.After(30 * time.Second):
		t.Fatalf("shell did not exit:\n%q", sh.out.String())
	}
	if strings.Contains(sh.out.String(), "unknown command") {
		t.Errorf("Ctrl-L went into the line:\n%q", sh.out.String())
	}
}
