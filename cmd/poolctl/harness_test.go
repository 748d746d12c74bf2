package main

// The harness of the end-to-end tests of the shell: the real binary,
// built once in TestMain, driven through a pipe or a pseudo-terminal.
// Every master and worker a test starts is found by pid (pid file, state
// file) and killed in t.Cleanup if it is still there.

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
	// poolctl-master beside poolctl, built as `make build` does: `poolctl
	// master` execs it, so that is the master every test runs.
	master := exec.Command("go", "build", "-o", filepath.Join(dir, "poolctl-master"), "../poolctl-master")
	master.Env = append(os.Environ(), "CGO_ENABLED=0")
	for _, c := range []*exec.Cmd{exec.Command("go", "build", "-o", shellBin, "."), master} {
		if out, err := c.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n%s", strings.Join(c.Args, " "), err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
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

// pipedShell is a shell whose stdin the test keeps open.
type pipedShell struct {
	cmd   *exec.Cmd
	stdin *os.File
	out   *syncBuffer
}

// startFilePool starts a piped shell on a pool called name run from a -c
// FILE of sleep workers (workers as in sleepConfig), and waits until it
// runs.
func (e *shellEnv) startFilePool(t *testing.T, name, workers string) (sh *pipedShell, cfg string, p poolfs.Paths) {
	t.Helper()
	cfg = sleepConfig(t, workers)
	p = e.paths(name)
	e.reap(name)
	sh = e.startPiped(t, "-c", cfg, "--name", name, "--no-prompt")
	sh.waitRunning(t, p)
	return sh, cfg, p
}

// send writes script lines to the shell.
func (sh *pipedShell) send(t *testing.T, script string) {
	t.Helper()
	if _, err := sh.stdin.WriteString(script); err != nil {
		t.Fatal(err)
	}
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

// startMaster starts `poolctl master ARGS` as by hand, in a session of
// its own; exited is closed once it has exited. The test kills it at the
// end if it still runs.
func (e *shellEnv) startMaster(t *testing.T, args ...string) (master *exec.Cmd, exited <-chan struct{}) {
	t.Helper()
	master = exec.Command(shellBin, append([]string{"master"}, args...)...)
	master.Env = e.env
	master.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = master.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = master.Process.Kill()
			<-done
		}
	})
	return master, done
}
