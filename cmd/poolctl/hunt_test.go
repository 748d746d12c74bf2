package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/spec"
)

// Faults a helper found by trying to break the shell; each test failed
// before its fix.

// A master stopped by SIGSTOP must not keep the pool alive at the end of
// the script that started it.
func TestScriptEndStopsASuspendedMaster(t *testing.T) {
	e := newShellEnv(t)
	e.reap("susp")
	start := time.Now()
	r := e.run("wait 10\nkill! STOP\nwait 2\n", "foo=1", "--name", "susp")
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the script took %s to end", took)
	}
	if !strings.Contains(r.stderr, "is stopped by SIGSTOP or SIGTSTP") {
		t.Errorf("wait on a stopped master did not say so:\n%s", r.stderr)
	}
	p := e.paths("susp")
	waitFor(t, 10*time.Second, "the pool to be gone", func() bool { return !poolfs.MasterAlive(p) })
}

// Extra arguments are errors, never ignored; flags may follow the index.
func TestFailedRefusesExtraArgumentsAndTakesFlagsAnywhere(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	e := newShellEnv(t)
	rec := `{"failed_at":"2026/11/22 08:58:20 UTC","payload":{"class":"A","args":[]},"exception":"E","error":"e","backtrace":[],"worker":"w","queue":"q"}`
	rdb.RPush(context.Background(), "resque:failed", rec, rec)
	r := e.run("", "failed", "clear", "3", "--redis", srv.URL())
	if r.code != 2 || rdb.LLen(context.Background(), "resque:failed").Val() != 2 {
		t.Errorf("failed clear 3: exit %d, %d records left; want exit 2 and both kept\n%s", r.code, rdb.LLen(context.Background(), "resque:failed").Val(), r.stderr)
	}
	r = e.run("", "failed", "retry", "0", "--remove", "--redis", srv.URL())
	if r.code != 0 || rdb.LLen(context.Background(), "resque:failed").Val() != 1 || rdb.LLen(context.Background(), "resque:queue:q").Val() != 1 {
		t.Errorf("failed retry 0 --remove: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// Bad input is a clear error up front.
func TestShellRefusesNaNTimeoutsAndEnvWithoutAFile(t *testing.T) {
	e := newShellEnv(t)
	e.reap("nan")
	r := e.run("wait NaN\n", "foo=1", "--name", "nan", "--no-start")
	if r.code != 1 || !strings.Contains(r.stderr, `timeout "NaN" out of range`) {
		t.Errorf("wait NaN: exit %d\n%s", r.code, r.stderr)
	}
	r = e.run("", "foo=1", "--env", "production", "--name", "nan", "--no-start")
	if r.code != 2 || !strings.Contains(r.stderr, "give the file with -c FILE") {
		t.Errorf("--env without -c: exit %d\n%s", r.code, r.stderr)
	}
}

// A second shell attached to a -c pool changes the overrides; the first
// shell's next config must build on them, not undo them.
func TestConfigFromTwoShellsOnAUserFilePoolAccumulates(t *testing.T) {
	e := newShellEnv(t)
	sh, _, _ := e.startFilePool(t, "two", "  foo: 1\n")
	if r := e.run("config qux=1\nwait 10\n", "attach", "two"); r.code != 0 {
		t.Fatalf("second shell: exit %d\n%s", r.code, r.stderr)
	}
	sh.send(t, "config foo=2\nwait 10\nstatus --json\n")
	sh.close(t)
	m := lastJSON(t, sh.out.String())
	if m["spec"] != "foo=2:qux=1" {
		t.Errorf("after config qux=1 from another shell and config foo=2 here: spec %v, overrides %v\n%s", m["spec"], m["overrides"], sh.out.String())
	}
}

// Two shells starting one pool at once: one wins and runs its own spec;
// the other stops with "already running" and writes nothing.
func TestTwoShellsStartingOnePoolAtOnce(t *testing.T) {
	e := newShellEnv(t)
	for round := 0; round < 4; round++ {
		name := fmt.Sprintf("race%d", round)
		e.reap(name)
		results := make(chan result, 2)
		for _, spec := range []string{"foo=2", "foo=7"} {
			go func() { results <- e.run("wait 10\nstatus --json\n", spec, "--name", name) }()
		}
		var won []result
		for i := 0; i < 2; i++ {
			if r := <-results; r.code == 0 {
				won = append(won, r)
			} else if !strings.Contains(r.stderr, "is already running") {
				t.Errorf("round %d: the losing shell: exit %d\n%s", round, r.code, r.stderr)
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d shells succeeded, want exactly 1", round, len(won))
		}
		m := lastJSON(t, won[0].stdout)
		if cfg := m["config"].(map[string]any); m["spec"] != fmt.Sprintf("foo=%v", cfg["foo"]) {
			t.Errorf("round %d: the winner's status: spec %v, config %v", round, m["spec"], cfg)
		}
		groups := m["groups"].([]any)
		if g := groups[0].(map[string]any); fmt.Sprint(g["desired"]) != fmt.Sprint(m["config"].(map[string]any)["foo"]) {
			t.Errorf("round %d: the master runs desired %v, the winner asked for %v", round, g["desired"], m["config"])
		}
	}
}

// status shows what the master runs: an edit of the -c file that was not
// reloaded yet is shown as such, not as the pool's spec.
func TestStatusShowsWhatTheMasterRuns(t *testing.T) {
	e := newShellEnv(t)
	sh, cfg, _ := e.startFilePool(t, "truth", "  foo: 1\n")
	data := "workers:\n  foo: 1\n  bar: 4\ncommand: [\"sleep\", \"1000\"]\nstart_secs: 200ms\nterm_timeout: 5s\n"
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	sh.send(t, "status --json\nstatus\n")
	sh.close(t)
	out := sh.out.String()
	if m := lastJSON(t, out); m["spec"] != "foo=1" {
		t.Errorf("status --json spec = %v, want the master's foo=1 (the file's edit is not applied)", m["spec"])
	}
	if !strings.Contains(out, "not applied yet: foo=1:bar=4") {
		t.Errorf("status does not show the pending edit:\n%s", out)
	}
}

// The README's tour lines for config run as written (the shell takes a
// trailing # comment), on a pool started from a -c file, and config
// --save writes the counts into that file.
func TestReadmeTourConfigLinesRunAsWritten(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, ">> config ") {
			script.WriteString(strings.TrimPrefix(line, ">> ") + "\n")
		}
	}
	if !strings.Contains(script.String(), "config --save") {
		t.Fatalf("the README's tour has no config --save line:\n%s", script.String())
	}
	script.WriteString("wait 10\n")
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 2\n")
	e.reap("tour")
	r := e.run(script.String(), "-c", cfg, "--name", "tour")
	if r.code != 0 {
		t.Fatalf("the tour's config lines: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	saved, err := spec.LoadConfig(cfg, "")
	if err != nil || saved.Workers.String() != "foo=1:bar=2" {
		t.Errorf("FILE after the tour's config --save: %v, %v; want foo=1:bar=2", saved, err)
	}
}
