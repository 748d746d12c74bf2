package main

// End-to-end tests of scripts piped into the shell: what stops a script,
// what wait waits for, what status shows.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/spec"
)

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
	// The pool runs from cfg, the shell's changes in its overrides file:
	// neither may change, nor a copy in the runtime directory appear.
	files := func() string {
		var b bytes.Buffer
		for _, f := range []string{cfg, p.Config, p.Overrides} {
			c, _ := os.ReadFile(f)
			b.Write(c)
			b.WriteString("\x00")
		}
		return b.String()
	}
	before := files()
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
		if after := files(); after != before {
			t.Fatalf("%v: the script rewrote the running pool's config:\n%q", tc.args, after)
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
// call that settled, and says the master is stopped instead (exit 1). (The first
// wait lets the workers out of their start_secs probation.) After CONT
// the master applies the change and the second wait succeeds.
func TestShellWaitForExactState(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 2\n  bar: 1\n")
	e.reap("zero")
	r := e.run("wait 10\nkill! STOP\nconfig foo=0 bar=0\nwait 1\nkill! CONT\nwait 10\nstatus --json\n", "-c", cfg, "--name", "zero")
	// A stopped master settles nothing: wait says so at once.
	if r.code != 1 || !strings.HasPrefix(errorLines(r.stderr), "poolctl: line 4: wait: the master (pid ") || !strings.Contains(errorLines(r.stderr), "is stopped by SIGSTOP or SIGTSTP") {
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
	if r.code != 1 || !strings.HasPrefix(errorLines(r.stderr), "poolctl: line 4: wait: the master (pid ") {
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
	sh, cfg, p := e.startFilePool(t, "src", "  foo: 1\n")
	sh.send(t, "config bar=1\nwait 10\n")
	waitFor(t, 30*time.Second, "config bar=1 to be applied", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && st.Spec == "foo=1:bar=1"
	})
	// The user edits the file: foo=2, and a new queue list.
	data := "workers:\n  foo: 2\n  baz: 1\ncommand: [\"sleep\", \"1000\"]\nstart_secs: 200ms\nterm_timeout: 5s\n"
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	sh.send(t, "reload\nwait 10\nstatus --json\nstatus\n")
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

// With -c FILE, FILE stays the source of truth for the master itself: a
// HUP sent to the master directly (not through the shell's reload)
// re-reads FILE, and the shell's overrides stay on top (issue 10 A5).
func TestHUPToTheMasterRereadsTheUserConfig(t *testing.T) {
	e := newShellEnv(t)
	sh, cfg, p := e.startFilePool(t, "hup", "  foo: 1\n")
	sh.send(t, "config bar=1\nwait 10\n")
	waitFor(t, 30*time.Second, "the shell's wait to see config bar=1 applied", func() bool {
		return strings.Contains(sh.out.String(), "settled")
	})
	st, err := poolfs.ReadState(p.State)
	if err != nil || st.Spec != "foo=1:bar=1" {
		t.Fatalf("state %+v, %v; want foo=1:bar=1", st, err)
	}
	pid := st.PID
	data := "workers:\n  foo: 2\n  baz: 1\ncommand: [\"sleep\", \"1000\"]\nstart_secs: 200ms\nterm_timeout: 5s\n"
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the master to re-read FILE under the overrides", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && st.Spec == "foo=2:baz=1:bar=1"
	})
	if b, _ := os.ReadFile(cfg); string(b) != data {
		t.Errorf("the shell rewrote the user's file:\n%s", b)
	}
	sh.close(t)
}

// A USR2 sent to the master from outside the shell (kill -USR2) pauses
// the workers all the same: status must say so (issue 10 B10).
func TestShellStatusShowsAPauseSentByAnotherProcess(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	p := e.paths("pz")
	e.reap("pz")
	sh := e.startPiped(t, "foo=1", "--redis", redis.URL(), "--name", "pz", "--no-prompt")
	pid := sh.waitRunning(t, p)
	sh.send(t, "wait 10\n")
	waitFor(t, 15*time.Second, "the shell's wait to settle", func() bool { return strings.Contains(sh.out.String(), "settled") })
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the master to record the pause", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && !st.WorkersPausedAt.IsZero()
	})
	sh.send(t, "status --json\nkill! CONT\n")
	sh.close(t)
	m := lastJSON(t, sh.out.String())
	if m["state"] != "paused" || m["workers_paused_at"] == nil {
		t.Errorf("after kill -USR2 of the master: state %v, workers_paused_at %v\n%s", m["state"], m["workers_paused_at"], sh.out.String())
	}
}

// config --save writes the counts into the user's file, only when the
// file loses nothing by it, and only when asked (issue 10 A5).
func TestConfigSaveWritesTheUserFileOnlyWhenSafe(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	e.reap("sv")
	r := e.run("config bar=1 --save\nwait 10\nstatus --json\n", "-c", cfg, "--name", "sv")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	saved, err := spec.LoadConfig(cfg, "")
	if err != nil || saved.Workers.String() != "foo=1:bar=1" {
		t.Errorf("FILE after config --save: %v, %v; want foo=1:bar=1", saved, err)
	}
	if m := lastJSON(t, r.stdout); m["overrides"] != nil || m["spec"] != "foo=1:bar=1" {
		t.Errorf("after --save: spec %v, overrides %v; want no overrides", m["spec"], m["overrides"])
	}

	// A file with comments is not rewritten: an error, and nothing changes.
	commented := sleepConfig(t, "  foo: 1 # one\n")
	before, _ := os.ReadFile(commented)
	e.reap("sv2")
	r = e.run("config bar=1 --save\nstatus --json\n", "-c", commented, "--name", "sv2")
	if r.code != 1 || !strings.Contains(r.stderr, "it has comments, which saving would lose") {
		t.Errorf("config --save on a commented file: exit %d\n%s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(commented); string(after) != string(before) {
		t.Errorf("a commented file was rewritten:\n%s", after)
	}
}
