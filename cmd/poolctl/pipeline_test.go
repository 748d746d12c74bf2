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
