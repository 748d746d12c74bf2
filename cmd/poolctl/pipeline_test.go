package main

// Tests of the shell in shell pipelines, run through bash exactly as a
// user types them: poolctl is found on PATH (the binary under test), the
// pool is named after the working directory, and Redis comes from
// REDIS_URL.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
)

// pipelineResult is the outcome of one bash command line.
type pipelineResult struct {
	stdout, stderr string
	status         []int // ${PIPESTATUS[@]}: one exit status per stage
}

// pipeline runs cmdline with bash in a new directory called name (so the
// pool is called name), with the binary under test first on PATH and the
// given extra environment. It reaps the pool's processes at the end of the
// test.
func (e *shellEnv) pipeline(t *testing.T, name, cmdline string, extraEnv ...string) pipelineResult {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.reap(name)
	e.reapPrivateRedis(name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The exit status of every stage goes to a file (not a pipe: a leaked
	// master would inherit it and keep it open), so that stdout and stderr
	// stay exactly what the pipeline printed.
	statusFile := filepath.Join(t.TempDir(), "pipestatus")
	cmd := exec.CommandContext(ctx, "bash", "-c", cmdline+"\necho \"${PIPESTATUS[@]}\" >"+statusFile)
	cmd.Dir = dir
	cmd.Env = append(withPath(e.env, filepath.Dir(shellBin)), extraEnv...)
	cmd.WaitDelay = 10 * time.Second // a leaked process may hold stdout or stderr
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("bash -c %q: %v\nstdout:\n%s\nstderr:\n%s", cmdline, err, out.String(), errb.String())
	}
	st, _ := os.ReadFile(statusFile)
	r := pipelineResult{stdout: out.String(), stderr: errb.String()}
	for _, f := range strings.Fields(string(st)) {
		n, _ := strconv.Atoi(f)
		r.status = append(r.status, n)
	}
	return r
}

// withPath puts dir first on PATH.
func withPath(env []string, dir string) []string {
	out := make([]string, 0, len(env)+1)
	path := os.Getenv("PATH")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PATH="+dir+string(os.PathListSeparator)+path)
}

// privateRedisPids finds the private redis-server of pool name: its
// process title names the pool's socket, a path in this test's own
// temporary directory.
func (e *shellEnv) privateRedisPids(name string) []int {
	sock := e.paths(name).Redis
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(sock)) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (e *shellEnv) reapPrivateRedis(name string) {
	e.t.Cleanup(func() {
		for _, pid := range e.privateRedisPids(name) {
			e.t.Logf("killing leftover redis-server %d", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// poolPids returns the pids of every master and worker the pool's log
// names (the pid and state files go away with the master).
func (e *shellEnv) poolPids(name string) []int {
	b, _ := os.ReadFile(e.paths(name).Log)
	seen := map[int]bool{}
	var pids []int
	for _, m := range logPidRE.FindAllSubmatch(b, -1) {
		for _, g := range m[1:] {
			if pid, err := strconv.Atoi(string(g)); err == nil && !seen[pid] {
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

var logPidRE = regexp.MustCompile(`poolctl-manager\[(\d+)\]: \S+ Starting worker\[(\d+)\]`)

// assertPoolGone waits until the master, its workers and its private
// redis-server have all exited.
func (e *shellEnv) assertPoolGone(t *testing.T, name string, pids []int) {
	t.Helper()
	waitFor(t, 30*time.Second, "the master, its workers and its private Redis to exit", func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return len(e.privateRedisPids(name)) == 0 && !poolfs.MasterAlive(e.paths(name))
	})
}

// A1: piping the shell into head must not leak the pool. head exits after
// one line; the shell's next write fails (EPIPE, or SIGPIPE); the shell
// must still stop the pool it started, and say so by its exit status.
func TestShellPipeIntoHeadStopsPool(t *testing.T) {
	e := newShellEnv(t)
	const name = "headpool"
	r := e.pipeline(t, name, `printf 'status\nstatus\n' | poolctl foo=1 | head -1`, "REDIS_URL=embedded")
	if !strings.HasPrefix(r.stdout, "pool "+name+": running (master pid ") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("stdout = %q, want the first line of status", r.stdout)
	}
	pids := e.poolPids(name)
	if len(pids) < 2 {
		t.Fatalf("no master and worker pids published: %v\nstderr:\n%s", pids, r.stderr)
	}
	e.assertPoolGone(t, name, pids)
	if len(r.status) != 3 || r.status[1] == 0 {
		t.Errorf("exit statuses %v: poolctl must exit non-zero when its standard output goes away\nstderr:\n%s", r.status, r.stderr)
	}
	if !strings.Contains(r.stderr, "poolctl: standard output closed") {
		t.Errorf("stderr does not say why the pool was stopped:\n%s", r.stderr)
	}
}

// A12: in a pipe, standard output carries only command results, so the
// issue's pipeline parses as JSON: config's confirmation, wait's summary
// and the start-up and shutdown logs go to standard error.
func TestShellPipeIntoJQ(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("jq is not installed")
	}
	redis := redistest.Start(t)
	e := newShellEnv(t)
	r := e.pipeline(t, "jqpool", `printf 'config foo=3\nwait 10\nstatus --json\n' | poolctl foo=1 | jq .`, "REDIS_URL="+redis.URL())
	if fmt.Sprint(r.status) != "[0 0 0]" {
		t.Fatalf("exit statuses %v\nstdout:\n%s\nstderr:\n%s", r.status, r.stdout, r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, r.stdout)
	}
	checkStatusSchema(t, m)
	if len(m["workers"].([]any)) != 3 {
		t.Errorf("workers: %v", m["workers"])
	}
	for _, want := range []string{"foo=3\nReloading master ", "settled in ", "started manager: foo=1", "manager stopped"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	e.assertPoolGone(t, "jqpool", pidsOf(m))
}

// readmeExample is a shell pipeline quoted in README.md.
type readmeExample struct {
	cmdline string
	prints  string // what the README says it prints, "" when it does not say
}

// readmeExamples extracts every pipeline that feeds the shell from
// README.md: lines of ```sh blocks and `code spans` holding "| poolctl".
func readmeExamples(t *testing.T) []readmeExample {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var out []readmeExample
	seen := map[string]bool{}
	add := func(cmdline, prints string) {
		if !seen[cmdline] {
			seen[cmdline] = true
			out = append(out, readmeExample{cmdline, prints})
		}
	}
	inSh := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			inSh = true
		case strings.HasPrefix(line, "```"):
			inSh = false
		case inSh && strings.Contains(line, "| poolctl"):
			add(strings.TrimSpace(line), "")
		}
	}
	prose := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(text, "")
	flat := strings.ReplaceAll(prose, "\n", " ")
	for _, m := range regexp.MustCompile("`([^`]*\\| poolctl[^`]*)`(?: prints `([^`]*)`)?").FindAllStringSubmatch(flat, -1) {
		add(m[1], m[2])
	}
	return out
}

// Every pipeline the README shows runs, exactly as written, and prints
// what the README says it prints. NAME in "poolctl attach NAME" is a pool
// of that name started by the test.
func TestShellReadmeExamples(t *testing.T) {
	examples := readmeExamples(t)
	if len(examples) < 2 {
		t.Fatalf("found only %d shell pipelines in README.md: %v", len(examples), examples)
	}
	redis := redistest.Start(t)
	for i, ex := range examples {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Logf("README: %s", ex.cmdline)
			if strings.Contains(ex.cmdline, "| jq") {
				if _, err := exec.LookPath("jq"); err != nil {
					t.Skip("jq is not installed")
				}
			}
			e := newShellEnv(t)
			env := []string{"REDIS_URL=" + redis.URL()}
			if strings.Contains(ex.cmdline, "attach NAME") {
				e.reap("NAME")
				sh := e.startPiped(t, "foo=1", "--name", "NAME", "--redis", redis.URL())
				sh.waitRunning(t, e.paths("NAME"))
				defer sh.close(t)
			}
			r := e.pipeline(t, fmt.Sprintf("readme%d", i), ex.cmdline, env...)
			for _, st := range r.status {
				if st != 0 {
					t.Fatalf("exit statuses %v\nstdout:\n%s\nstderr:\n%s", r.status, r.stdout, r.stderr)
				}
			}
			if got := errorLines(r.stderr); got != "" {
				t.Errorf("errors on stderr: %q", got)
			}
			if ex.prints != "" && strings.TrimSpace(r.stdout) != ex.prints {
				t.Errorf("stdout = %q, README says it prints %q", r.stdout, ex.prints)
			}
			if strings.HasSuffix(ex.cmdline, "--json\\n' | poolctl attach NAME") {
				var m map[string]any
				if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m["name"] != "NAME" {
					t.Errorf("stdout is not the status of pool NAME: %v\n%s", err, r.stdout)
				}
			}
		})
	}
}

// A7: a script whose start failed stops there (exit 1): it must not go on
// and change the pool that is already running, whether the start was the
// shell's own (poolctl SPEC) or the start command.
func TestShellFailedStartStopsScript(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	p := e.paths("busy")
	e.reap("busy")
	first := e.startPiped(t, "-c", cfg, "--name", "busy")
	pid := first.waitRunning(t, p)
	before, err := os.ReadFile(p.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		script string
		args   []string
	}{
		{"config foo=3\nstatus --json\n", []string{"foo=1", "--name", "busy"}},
		{"start\nconfig foo=3\nstatus --json\n", []string{"foo=1", "--name", "busy", "--no-start"}},
	} {
		r := e.run(tc.script, tc.args...)
		if r.code != 1 {
			t.Errorf("%v: exit %d, want 1", tc.args, r.code)
		}
		if r.stdout != "" {
			t.Errorf("%v: the script went on after the failed start; stdout:\n%s", tc.args, r.stdout)
		}
		if !strings.Contains(r.stderr, fmt.Sprintf("is already running (master pid %d); use attach busy", pid)) ||
			!strings.Contains(r.stderr, "poolctl: start failed: script stopped") {
			t.Errorf("%v: stderr:\n%s", tc.args, r.stderr)
		}
		if after, _ := os.ReadFile(p.Config); !bytes.Equal(before, after) {
			t.Fatalf("%v: the script rewrote the running pool's config:\n%s", tc.args, after)
		}
	}
	if !alive(pid) {
		t.Fatal("the running pool's master died")
	}
	first.close(t)
}

// A9: a Redis URL that is not one is a usage error up front (exit 2, and
// nothing started), whether from --redis or REDIS_URL; a script whose wait
// ends with a FATAL queue list exits non-zero.
func TestShellBadRedisURLAndFatalWait(t *testing.T) {
	e := newShellEnv(t)
	e.reap("badredis")
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"foo=1", "--name", "badredis", "--redis", "http://x"}, `poolctl: usage error: --redis: redis URL http://x: scheme "http" is not one of redis://, rediss://, unix://`},
		{[]string{"REDIS_URL=http://x"}, []string{"foo=1", "--name", "badredis"}, `poolctl: usage error: REDIS_URL: redis URL http://x: scheme "http" is not one of redis://, rediss://, unix://`},
		{[]string{"REDIS_URL=redis://:secret@h:notaport/0"}, []string{"foo=1", "--name", "badredis"}, "poolctl: usage error: REDIS_URL: redis URL redis://:xxxxx@h:notaport/0: "},
		{nil, []string{"master", "-c", "/dev/null", "--name", "badredis", "--redis", "ftp://x"}, `poolctl: usage error: --redis: redis URL ftp://x: scheme "ftp" is not one of redis://, rediss://, unix://`},
	} {
		saved := e.env
		e.env = append(append([]string{}, e.env...), tc.env...)
		r := e.run("wait 10\n", tc.args...)
		e.env = saved
		if r.code != 2 || !strings.HasPrefix(r.stderr, tc.want) || strings.Contains(r.stderr, "secret") {
			t.Errorf("%v %v: exit %d, stderr %q, want exit 2 and %q", tc.env, tc.args, r.code, r.stderr, tc.want)
		}
		if _, err := os.Stat(e.paths("badredis").Pid); err == nil {
			t.Fatalf("%v: a master was started", tc.args)
		}
	}

	// A worker command that does not exist is FATAL at once: wait says so
	// and the script fails.
	cfg := filepath.Join(t.TempDir(), "fatal.yml")
	if err := os.WriteFile(cfg, []byte("workers:\n  foo: 1\ncommand: [\"/nonexistent/worker\"]\nredis: embedded\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.reap("fatal")
	e.reapPrivateRedis("fatal")
	r := e.run("wait 10\n", "-c", cfg, "--name", "fatal")
	if r.code != 1 || !strings.Contains(errorLines(r.stderr), "poolctl: line 1: wait: ") || !strings.Contains(errorLines(r.stderr), "FATAL: foo") {
		t.Errorf("wait on a FATAL pool: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// A8: wait waits for exactly the desired state: no workers after config
// foo=0 bar=0 (not "settled" while the old ones still run), and a paused
// master (WINCH) with no workers, which it calls paused. The master is
// stopped (SIGSTOP) while the change is asked for, so the first wait
// deterministically sees the state from before the change: it must not
// call that settled, and times out instead (exit status 1). (The first
// wait lets the workers out of their start_secs probation.) After CONT
// the master applies the change and the second wait succeeds.
func TestShellWaitForExactState(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 2\n  bar: 1\n")
	e.reap("zero")
	r := e.run("wait 10\nkill! STOP\nconfig foo=0 bar=0\nwait 1\nkill! CONT\nwait 10\nstatus --json\n", "-c", cfg, "--name", "zero")
	if r.code != 1 || errorLines(r.stderr) != "poolctl: line 4: wait: timed out after 1s: the master still runs foo=2:bar=1, not no workers\npoolctl: 1 command failed\n" {
		t.Errorf("exit %d, want 1 for the first wait only\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Count(r.stderr, "settled in ") != 2 || !strings.Contains(r.stderr, ": 0 workers running (no workers)") {
		t.Errorf("wait did not wait for no workers:\n%s", r.stderr)
	}
	m := lastJSON(t, r.stdout)
	if n := len(m["workers"].([]any)); n != 0 || m["spec"] != "" {
		t.Errorf("after wait: %d workers, spec %q", n, m["spec"])
	}

	e.reap("winch")
	r = e.run("wait 10\nkill! STOP\nkill! WINCH\nwait 1\nkill! CONT\nwait 10\nstatus --json\n", "-c", cfg, "--name", "winch")
	if r.code != 1 || !strings.HasPrefix(errorLines(r.stderr), "poolctl: line 4: wait: timed out after 1s: the master has not paused yet") {
		t.Errorf("exit %d, want 1 for the first wait only\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "paused in ") || strings.Count(r.stderr, "settled in ") != 1 {
		t.Errorf("wait after WINCH must say paused:\n%s", r.stderr)
	}
	m = lastJSON(t, r.stdout)
	if n := len(m["workers"].([]any)); n != 0 || m["state"] != "paused" {
		t.Errorf("after WINCH and wait: %d workers, state %q", n, m["state"])
	}
}

// A4: the shell selects the config file's environment section from --env,
// else POOLCTL_ENV, RACK_ENV or RAILS_ENV, as -h says. A section named by
// --env or POOLCTL_ENV that does not exist is a usage error (exit 2);
// RACK_ENV and RAILS_ENV, set for whole applications, select a section
// only where there is one (as resque-pool does).
func TestShellEnvironmentSection(t *testing.T) {
	e := newShellEnv(t)
	e.env = append(e.env, "NO_START=1")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pool.yml")
	if err := os.WriteFile(cfg, []byte("workers:\n  foo: 1\nenvironments:\n  production:\n    workers: {foo: 3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flat := filepath.Join(dir, "resque-pool.yml")
	if err := os.WriteFile(flat, []byte("foo: 1\nproduction:\n  foo: 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  string
		args []string
		code int
		out  string // stdout, or the start of stderr when code != 0
	}{
		{"", []string{"-c", cfg}, 0, "foo=1\n"},
		{"RACK_ENV=production", []string{"-c", cfg}, 0, "foo=3\n"},
		{"RAILS_ENV=production", []string{"-c", cfg}, 0, "foo=3\n"},
		{"POOLCTL_ENV=production", []string{"-c", cfg}, 0, "foo=3\n"},
		{"RAILS_ENV=production", []string{"-c", flat}, 0, "foo=4\n"},
		{"RACK_ENV=staging", []string{"-c", cfg}, 0, "foo=1\n"},
		{"RACK_ENV=staging", []string{"-c", cfg, "--env", "production"}, 0, "foo=3\n"},
		{"", []string{"-c", cfg, "--env", "staging"}, 2, `poolctl: usage error: --env staging: ` + cfg + ` has no environment section "staging" (it has: production)`},
		{"POOLCTL_ENV=staging", []string{"-c", cfg}, 2, `poolctl: usage error: POOLCTL_ENV=staging: ` + cfg + ` has no environment section "staging" (it has: production)`},
	} {
		saved := e.env
		if tc.env != "" {
			e.env = append(append([]string{}, e.env...), tc.env)
		}
		r := e.run("config\n", append(tc.args, "--name", "env")...)
		e.env = saved
		got := r.stdout
		if tc.code != 0 {
			got = r.stderr
		}
		if r.code != tc.code || !strings.HasPrefix(got, tc.out) {
			t.Errorf("%s poolctl %v: exit %d\nstdout: %q\nstderr: %q\nwant exit %d and %q", tc.env, tc.args, r.code, r.stdout, r.stderr, tc.code, tc.out)
		}
	}
}

// B10: status tells a master stopped by SIGSTOP (state "suspended"),
// workers paused by USR2 and a master paused by WINCH (state "paused")
// from a running pool.
func TestShellStatusStoppedAndPaused(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	e.reap("st")
	script := "wait 10\nkill! STOP\nstatus\nstatus --json\nkill! CONT\n" +
		"kill! USR2\nstatus\nstatus --json\nkill! CONT\nstatus --json\n" +
		"kill! WINCH\nwait 10\nstatus\nstatus --json\n"
	r := e.run(script, "foo=1", "--redis", redis.URL(), "--name", "st")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var states []string
	var docs []map[string]any
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "{") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatal(err)
			}
			docs = append(docs, m)
			states = append(states, m["state"].(string))
		}
	}
	if fmt.Sprint(states) != "[suspended paused running paused]" {
		t.Errorf("states = %v, want [suspended paused running paused]\nstdout:\n%s", states, r.stdout)
	}
	for _, want := range []string{
		"pool st: stopped by SIGSTOP or SIGTSTP (master pid ",
		"pool st: paused: workers paused by USR2 (master pid ",
		"pool st: paused (master pid ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if len(docs) == 4 {
		for _, w := range docs[1]["workers"].([]any) {
			if st := w.(map[string]any)["state"]; st != "Paused (USR2)" {
				t.Errorf("worker state after USR2 = %q", st)
			}
		}
	}
}

// B11: status right after config shows the change applied (the new
// workers, not the table from before), with the workers grouped by queue
// list in the order of the configuration.
func TestShellStatusAfterConfig(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n  bar: 1\n")
	e.reap("fresh")
	r := e.run("config bar=2\nstatus --json\nconfig foo=2\nstatus --json\n", "-c", cfg, "--name", "fresh")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		var qs []string
		for _, w := range m["workers"].([]any) {
			w := w.(map[string]any)
			if w["process_state"] != "stopping" {
				qs = append(qs, w["queues"].(string))
			}
		}
		got = append(got, fmt.Sprintf("%s %v", m["spec"], qs))
	}
	want := []string{"foo=1:bar=2 [foo bar bar]", "foo=2:bar=2 [foo foo bar bar]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("status after config = %q, want %q", got, want)
	}
}

// B13: a master started by hand with a pid file elsewhere (--pidfile) is
// found by attach: status says running with its pid, pid prints it and
// stop stops it.
func TestShellAttachMasterWithOtherPidfile(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	e.reap("hp")
	pidfile := filepath.Join(t.TempDir(), "elsewhere.pid")
	master := exec.Command(shellBin, "master", "-c", cfg, "--name", "hp", "--pidfile", pidfile)
	master.Env = e.env
	master.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = master.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = master.Process.Kill()
			<-exited
		}
	})
	pid := master.Process.Pid
	waitFor(t, 30*time.Second, "the master to publish its state", func() bool {
		st, err := poolfs.ReadState(e.paths("hp").State)
		return err == nil && st.PID == pid && poolfs.MasterAlive(e.paths("hp"))
	})

	r := e.run("status --json\npid\nstop\n", "attach", "hp")
	if r.code != 0 {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.SplitN(r.stdout, "\n", 2)
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("%v: %q", err, r.stdout)
	}
	if m["state"] != "running" || int(m["pid"].(float64)) != pid || len(lines) < 2 || lines[1] != fmt.Sprintf("%d\n", pid) {
		t.Errorf("attached status: state %v pid %v; stdout:\n%s", m["state"], m["pid"], r.stdout)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Error("stop from the attached shell did not stop the master")
	}
}

// A6: attached to a master started by hand with -c FILE, config changes
// are refused (exit 1; nothing changes, FILE is not rewritten), and a
// syntax error in FILE does not make attach fail: it attaches, shows the
// status of what the master runs, and warns.
func TestShellAttachHandStartedMaster(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	e.reap("hm")
	master := exec.Command(shellBin, "master", "-c", cfg, "--name", "hm")
	master.Env = e.env
	master.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = master.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = master.Process.Kill()
			<-exited
		}
	})
	waitFor(t, 30*time.Second, "the master to run its worker", func() bool {
		st, err := poolfs.ReadState(e.paths("hm").State)
		return err == nil && st.PID == master.Process.Pid && len(st.Workers) == 1
	})
	before, _ := os.ReadFile(cfg)

	r := e.run("config foo=3\nstatus --json\n", "attach", "hm")
	if r.code != 1 || !strings.Contains(errorLines(r.stderr), "poolctl: line 1: config: the master reads "+cfg) {
		t.Errorf("config on a hand-started master: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "Reloading master") {
		t.Errorf("said it reloads while refusing:\n%s", r.stderr)
	}
	if after, _ := os.ReadFile(cfg); !bytes.Equal(before, after) {
		t.Errorf("the user's file was rewritten:\n%s", after)
	}
	if m := lastJSON(t, r.stdout); len(m["workers"].([]any)) != 1 || m["spec"] != "foo=1" {
		t.Errorf("after a refused config: spec %v, workers %v", m["spec"], m["workers"])
	}

	if err := os.WriteFile(cfg, []byte("workers:\n  foo: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.run("status --json\n", "attach", "hm")
	if r.code != 0 || !strings.Contains(r.stderr, "poolctl: warning: ") || !strings.Contains(r.stderr, cfg) {
		t.Errorf("attach with a broken config file: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r.stdout != "" {
		if m := lastJSON(t, r.stdout); m["state"] != "running" || m["spec"] != "foo=1" || len(m["workers"].([]any)) != 1 {
			t.Errorf("status with a broken config file: %v", m)
		}
	}
}

// Issue 9 A7: a pool restarted from an attached shell keeps its Redis. A
// master started with --redis URL is killed (SIGKILL) under a shell that
// attached to it; start in that shell brings the new master up on the
// same Redis, not on a private one or on the shell's own REDIS_URL.
func TestShellRestartFromAttachKeepsRedis(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	e.reap("r9")
	e.reapPrivateRedis("r9")
	first := e.startPiped(t, "foo=1", "--redis", redis.URL(), "--name", "r9")
	pid := first.waitRunning(t, e.paths("r9"))

	// The attached shell's own environment points elsewhere (a closed
	// port): the pool's Redis must win.
	e.env = append(e.env, "REDIS_URL=redis://127.0.0.1:1/0")
	r := e.run("kill! KILL\nstart\nstatus --json\nstop\n", "attach", "r9")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	m := lastJSON(t, r.stdout)
	if int(m["pid"].(float64)) == pid || m["redis"] != redis.URL() || m["redis_error"] != nil {
		t.Errorf("restarted master %v runs on Redis %v (error %v), want %s", m["pid"], m["redis"], m["redis_error"], redis.URL())
	}
	first.close(t)
}

// A15, the small things: --version, a trailing # comment, log.tail_until
// with TIMEOUT 0 says it has none, queues --json on one line, enqueue -h
// lists the built-in job classes.
func TestShellSmallThings(t *testing.T) {
	e := newShellEnv(t)
	r := e.run("", "--version")
	if r.code != 0 || r.stdout != "poolctl "+"dev\n" {
		t.Errorf("--version: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	e.env = append(e.env, "NO_START=1")
	r = e.run("config   # the spec\nlog.tail_until nothing 0\n", "foo=1", "--name", "small")
	if !strings.HasPrefix(r.stdout, "foo=1\n") {
		t.Errorf("config with a trailing comment: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "log.tail_until: TIMEOUT 0: no timeout") {
		t.Errorf("log.tail_until RE 0 does not say it has no timeout: %q", r.stderr)
	}

	redis := redistest.Start(t)
	r = e.run("", "queues", "--json", "--redis", redis.URL())
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || !json.Valid([]byte(r.stdout)) {
		t.Errorf("queues --json: exit %d, stdout %q", r.code, r.stdout)
	}

	r = e.run("", "enqueue", "-h")
	if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "usage: poolctl enqueue") ||
		!strings.Contains(r.stdout+r.stderr, "Poolctl::Noop") || !strings.Contains(r.stdout+r.stderr, "Poolctl::Sleep") {
		t.Errorf("enqueue -h: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// A15: a long FATAL reason wraps in status instead of widening the table.
func TestShellStatusWrapsLongReason(t *testing.T) {
	e := newShellEnv(t)
	cmdPath := "/nonexistent/" + strings.Repeat("very-long-directory-name/", 8) + "worker"
	cfg := filepath.Join(t.TempDir(), "fatal.yml")
	if err := os.WriteFile(cfg, []byte("workers:\n  foo: 1\ncommand: [\""+cmdPath+"\"]\nredis: embedded\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.reap("wrap")
	e.reapPrivateRedis("wrap")
	r := e.run("wait 10\nstatus\n", "-c", cfg, "--name", "wrap")
	if !strings.Contains(r.stdout, "FATAL") {
		t.Fatalf("no FATAL row:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		// The table and the reasons below it (the Redis line holds a
		// temporary directory's path).
		if strings.HasPrefix(line, "  ") && len(line) > 100 {
			t.Errorf("status line of %d characters:\n%s", len(line), r.stdout)
			break
		}
	}
	if flat := strings.Join(strings.Fields(r.stdout), ""); !strings.Contains(flat, strings.ReplaceAll(cmdPath, " ", "")) {
		t.Errorf("the wrapped reason lost text:\n%s", r.stdout)
	}
}

// A5 (shell side): the file given with -c is the source of truth: edited
// while the pool runs, reload re-reads it; the shell's own config changes
// (and SPEC arguments) stay on top as overrides, which status shows.
func TestShellReloadRereadsUserConfig(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	p := e.paths("src")
	e.reap("src")
	sh := e.startPiped(t, "-c", cfg, "--name", "src", "--no-prompt")
	sh.waitRunning(t, p)
	if _, err := sh.stdin.WriteString("config bar=1\nwait 10\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "config bar=1 to be applied", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && st.Spec == "foo=1:bar=1"
	})
	// The user edits the file: foo=2, and a new queue list.
	data := "workers:\n  foo: 2\n  baz: 1\ncommand: [\"sleep\", \"1000\"]\nstart_secs: 200ms\nterm_timeout: 5s\n"
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sh.stdin.WriteString("reload\nwait 10\nstatus --json\nstatus\n"); err != nil {
		t.Fatal(err)
	}
	sh.close(t)
	out := sh.out.String()
	m := lastJSON(t, out)
	if m["spec"] != "foo=2:baz=1:bar=1" || m["overrides"] != "bar=1" {
		t.Errorf("after editing the file and reload: spec %v, overrides %v\n%s", m["spec"], m["overrides"], out)
	}
	if !strings.Contains(out, "overrides from the shell: bar=1 (on top of "+cfg+")") {
		t.Errorf("status does not show the overrides:\n%s", out)
	}
}
