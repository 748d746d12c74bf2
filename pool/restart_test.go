package pool

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/pool/poolfs"
)

// servingConfig is a pool of command workers that say when they serve:
// each one warms up for 0.3 s, then creates DIR/QUEUES.PID, and removes
// it as soon as it is told to stop, so the files present are the workers
// serving at that moment. start_secs (1.5 s) outlasts the warm-up by far,
// so a worker the master calls ready does serve even on a loaded host,
// where starting sh, sleep and touch took the 0.3 s margin of an earlier
// 0.6 s (CI-like run: dips of one worker in three roll tests). extra is appended to the
// script, so a HUP can change the command.
func servingConfig(dir, workers, extra string) string {
	script := `trap 'rm -f "$0/$1.$$"; exit 0' QUIT TERM; sleep 0.3; touch "$0/$1.$$"; while :; do sleep 0.05; done` + extra
	return fmt.Sprintf(`
workers:
%s
command: [sh, -c, %q, %q, "{queues}"]
start_secs: 1.5
term_timeout: 3s
`, workers, script, dir)
}

// serving counts the workers of queues serving now: marker files whose
// process is alive.
func serving(dir, queues string) int {
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		q, pid, ok := strings.Cut(e.Name(), ".")
		if !ok || q != queues {
			continue
		}
		if p, err := strconv.Atoi(pid); err == nil && syscall.Kill(p, 0) == nil {
			n++
		}
	}
	return n
}

// sampler records the least number of serving workers of queues seen
// every 50 ms until stopped.
type sampler struct {
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	least  int
	counts int
}

func sampleServing(dir, queues string) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{}), least: 1 << 30}
	go func() {
		defer close(s.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			n := serving(dir, queues)
			s.mu.Lock()
			s.least, s.counts = min(s.least, n), s.counts+1
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) finish() (least, samples int) {
	close(s.stop)
	<-s.done
	return s.least, s.counts
}

// requestRestart asks tm's master for a rolling restart, as a shell does.
func (tm *testMaster) requestRestart(req poolfs.RestartRequest) {
	tm.t.Helper()
	if err := poolfs.WriteRestartRequest(tm.paths.RestartRequest, req); err != nil {
		tm.t.Fatal(err)
	}
	tm.signal(syscall.SIGPWR)
}

// waitRestart waits until the restart id has ended and returns it.
func (tm *testMaster) waitRestart(id string, timeout time.Duration) *poolfs.RestartState {
	tm.t.Helper()
	var r *poolfs.RestartState
	testutil.Eventually(tm.t, timeout, "restart "+id+" to end", func() bool {
		s, err := poolfs.ReadState(tm.paths.State)
		if err != nil {
			return false
		}
		if s.RestartRefused != nil && s.RestartRefused.ID == id {
			tm.t.Fatalf("restart %s refused: %s", id, s.RestartRefused.Error)
		}
		r = s.Restart
		return r != nil && r.ID == id && r.State != poolfs.RestartRunning && s.Settled()
	})
	return r
}

func allServing(t *testing.T, tm *testMaster, dir, queues string, n int) []int {
	t.Helper()
	st := tm.waitState(fmt.Sprintf("%d workers of %s serving", n, queues), func(s *State) bool {
		return s.Settled() && len(pidsOf(s, queues)) == n && serving(dir, queues) == n
	})
	return pidsOf(st, queues)
}

func disjoint(a, b []int) bool {
	for _, p := range a {
		if slices.Contains(b, p) {
			return false
		}
	}
	return true
}

// restart --batch 1: every worker is replaced, and the number serving
// never drops below the desired count.
func TestRestartRollsWithoutDip(t *testing.T) {
	dir := t.TempDir()
	tm := startMaster(t, servingConfig(dir, "  foo: 3\n  bar: 1", ""))
	before := allServing(t, tm, dir, "foo", 3)
	bar := allServing(t, tm, dir, "bar", 1)

	s := sampleServing(dir, "foo")
	tm.requestRestart(poolfs.RestartRequest{ID: "r1", Queues: []string{"foo"}, Batch: 1})
	r := tm.waitRestart("r1", 30*time.Second)
	after := allServing(t, tm, dir, "foo", 3)
	least, samples := s.finish()

	if r.State != poolfs.RestartDone || r.Replaced != 3 || r.Total != 3 || r.Error != "" {
		t.Fatalf("restart ended %+v, want done with 3 of 3 replaced", r)
	}
	if least < 3 {
		t.Errorf("only %d workers of foo served at one point of the roll (%d samples); want never fewer than 3", least, samples)
	}
	if !disjoint(before, after) {
		t.Errorf("not every worker was replaced: %v -> %v", before, after)
	}
	if got := allServing(t, tm, dir, "bar", 1); !slices.Equal(got, bar) {
		t.Errorf("restart of foo replaced bar's worker: %v -> %v", bar, got)
	}
	for i, old := range before {
		if !strings.Contains(tm.readLog(), fmt.Sprintf("worker[%d] replaced by worker[", old)) {
			t.Errorf("the log does not say what replaced worker[%d] (%d of 3)", old, i+1)
		}
	}
}

// --batch 2 replaces two at a time and never dips either.
func TestRestartBatchTwo(t *testing.T) {
	dir := t.TempDir()
	tm := startMaster(t, servingConfig(dir, "  foo: 4", ""))
	before := allServing(t, tm, dir, "foo", 4)
	s := sampleServing(dir, "foo")
	tm.requestRestart(poolfs.RestartRequest{ID: "b2", Batch: 2})
	// Two replacements start together.
	tm.waitState("two replacements at once", func(s *State) bool {
		n := 0
		for _, w := range s.Workers {
			if w.Roll == "new" {
				n++
			}
		}
		return n == 2
	})
	r := tm.waitRestart("b2", 30*time.Second)
	after := allServing(t, tm, dir, "foo", 4)
	least, _ := s.finish()
	if r.State != poolfs.RestartDone || r.Replaced != 4 || r.Batch != 2 {
		t.Fatalf("restart ended %+v, want done with 4 replaced, batch 2", r)
	}
	if least < 4 {
		t.Errorf("only %d of 4 workers served at one point of the roll", least)
	}
	if !disjoint(before, after) {
		t.Errorf("not every worker was replaced: %v -> %v", before, after)
	}
}

// restart! stops them all and starts them all: a dip is allowed, every
// worker is replaced.
func TestRestartNowReplacesAll(t *testing.T) {
	dir := t.TempDir()
	tm := startMaster(t, servingConfig(dir, "  foo: 3", ""))
	before := allServing(t, tm, dir, "foo", 3)
	tm.requestRestart(poolfs.RestartRequest{ID: "now", Now: true})
	r := tm.waitRestart("now", 30*time.Second)
	after := allServing(t, tm, dir, "foo", 3)
	if r.State != poolfs.RestartDone || r.Replaced != 3 || r.Reason != "restart!" {
		t.Fatalf("restart! ended %+v", r)
	}
	if !disjoint(before, after) {
		t.Errorf("not every worker was replaced: %v -> %v", before, after)
	}
}

// A HUP whose only change is a group's command rolls that group: the
// number serving never drops below the desired count.
func TestHUPCommandChangeRollsWithoutDip(t *testing.T) {
	dir := t.TempDir()
	tm := startMaster(t, servingConfig(dir, "  foo: 3", ""))
	before := allServing(t, tm, dir, "foo", 3)
	s := sampleServing(dir, "foo")
	tm.writeConfig(servingConfig(dir, "  foo: 3", " # v2"))
	tm.signal(syscall.SIGHUP)
	tm.waitLog("reloaded configuration")
	after := tm.waitState("foo rolled to the new command", func(s *State) bool {
		pids := pidsOf(s, "foo")
		if !s.Settled() || len(pids) != 3 || !disjoint(before, pids) {
			return false
		}
		for _, p := range pids {
			if argv := cmdlineOf(p); len(argv) < 3 || !strings.HasSuffix(argv[2], "# v2") {
				return false
			}
		}
		return serving(dir, "foo") == 3
	})
	least, samples := s.finish()
	if least < 3 {
		t.Errorf("only %d of 3 workers served at one point after the HUP (%d samples); a command change must roll, not stop first", least, samples)
	}
	if after.Restart == nil || after.Restart.Reason != "command changed" || after.Restart.State != poolfs.RestartDone {
		t.Errorf("state does not show the HUP's roll as done: %+v", after.Restart)
	}
}

// A HUP that also changes the count rolls to the new count: a shrink
// stops the surplus old workers at once, a growth starts the new ones at
// once; the rest roll.
func TestHUPCommandAndCountChange(t *testing.T) {
	dir := t.TempDir()
	tm := startMaster(t, servingConfig(dir, "  foo: 2\n  bar: 3", ""))
	allServing(t, tm, dir, "foo", 2)
	allServing(t, tm, dir, "bar", 3)
	s := sampleServing(dir, "foo")
	tm.writeConfig(servingConfig(dir, "  foo: 3\n  bar: 1", " # v2"))
	tm.signal(syscall.SIGHUP)
	tm.waitState("rolled to foo=3 bar=1", func(s *State) bool {
		return s.Settled() && len(pidsOf(s, "foo")) == 3 && len(pidsOf(s, "bar")) == 1 &&
			serving(dir, "foo") == 3 && serving(dir, "bar") == 1 &&
			s.Restart != nil && s.Restart.State == poolfs.RestartDone
	})
	if least, _ := s.finish(); least < 2 {
		t.Errorf("foo dipped to %d serving while growing from 2 to 3", least)
	}
	for _, q := range []string{"foo", "bar"} {
		st, _ := poolfs.ReadState(tm.paths.State)
		for _, p := range pidsOf(st, q) {
			if argv := cmdlineOf(p); len(argv) < 3 || !strings.HasSuffix(argv[2], "# v2") {
				t.Errorf("worker[%d] of %s runs the old command", p, q)
			}
		}
	}
}

// A replacement that cannot become ready (the HUP's new command exits at
// once) stops the roll with an error and keeps the old workers serving;
// a HUP back to the old command leaves them be.
func TestRollStopsWhenReplacementFails(t *testing.T) {
	dir := t.TempDir()
	good := servingConfig(dir, "  foo: 2", "")
	tm := startMaster(t, good)
	before := allServing(t, tm, dir, "foo", 2)
	s := sampleServing(dir, "foo")
	tm.writeConfig(strings.Replace(good, "command: [sh, -c,", "command: [sh, -c, 'exit 3', ignored, ", 1))
	tm.signal(syscall.SIGHUP)
	st := tm.waitState("the roll to fail", func(s *State) bool {
		return s.Restart != nil && s.Restart.State == poolfs.RestartFailed
	})
	if !strings.Contains(st.Restart.Error, "exited before it was ready") || !strings.Contains(st.Restart.Error, "(exit 3)") {
		t.Errorf("roll error %q does not say the replacement exited, and how", st.Restart.Error)
	}
	// The old workers keep serving through the group's backoff and
	// whatever reconciles follow.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		st = tm.waitState("a state", func(*State) bool { return true })
		if got := pidsOf(st, "foo"); !slices.Equal(got, before) {
			t.Fatalf("old workers not kept after the failed roll: %v -> %v", before, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if least, _ := s.finish(); least < 2 {
		t.Errorf("only %d of 2 old workers served after the failed roll", least)
	}
	for _, g := range st.Groups {
		if g.Queues == "foo" && g.Live != 2 {
			t.Errorf("foo shows %d live, want the 2 old workers", g.Live)
		}
	}
	tm.writeConfig(good)
	tm.signal(syscall.SIGHUP)
	tm.waitLog("reloaded configuration: foo=2 -> foo=2")
	if got := allServing(t, tm, dir, "foo", 2); !slices.Equal(got, before) {
		t.Errorf("a HUP back to the running command replaced workers: %v -> %v", before, got)
	}
}

// Malformed and impossible requests are refused with an error in the
// state file; nothing changes. A second restart while one runs is refused.
func TestRestartRequestsRefused(t *testing.T) {
	dir := t.TempDir()
	tm := startMaster(t, servingConfig(dir, "  foo: 2", ""))
	before := allServing(t, tm, dir, "foo", 2)
	refused := func(id, want string) {
		t.Helper()
		st := tm.waitState("refusal of "+id, func(s *State) bool {
			return s.RestartRefused != nil && s.RestartRefused.ID == id
		})
		if !strings.Contains(st.RestartRefused.Error, want) {
			t.Errorf("refusal of %s says %q, want it to mention %q", id, st.RestartRefused.Error, want)
		}
	}
	for i, c := range []struct{ body, id, want string }{
		{`{"id": "m1", "batch": "two"}`, "m1", "restart.request: malformed restart request"},
		{`{"id": "m2", "bogus": 1}`, "m2", `unknown field "bogus"`},
		{`{"id": "m3", "batch": -1}`, "m3", "batch must be at least 1"},
		{`{"id": "m4", "queues": ["nope"]}`, "m4", `no queue list "nope" in the pool (it has: foo)`},
		{`not json`, "", "malformed restart request"},
	} {
		if err := os.WriteFile(tm.paths.RestartRequest, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		tm.signal(syscall.SIGPWR)
		if c.id == "" {
			tm.waitState("refusal "+strconv.Itoa(i), func(s *State) bool {
				return s.RestartRefused != nil && s.RestartRefused.ID == "" && strings.Contains(s.RestartRefused.Error, c.want)
			})
		} else {
			refused(c.id, c.want)
		}
		if _, err := os.Stat(tm.paths.RestartRequest); !os.IsNotExist(err) {
			t.Errorf("request %d left in place: %v", i, err)
		}
	}
	st := tm.waitState("state", func(*State) bool { return true })
	if got := pidsOf(st, "foo"); !slices.Equal(got, before) || st.Restart != nil {
		t.Fatalf("refused requests changed the pool: %v -> %v, restart %+v", before, got, st.Restart)
	}

	tm.requestRestart(poolfs.RestartRequest{ID: "first", Batch: 1})
	tm.waitState("first roll running", func(s *State) bool { return s.Restart != nil && s.Restart.ID == "first" })
	tm.requestRestart(poolfs.RestartRequest{ID: "second", Batch: 1})
	refused("second", "a restart is already running")
	if r := tm.waitRestart("first", 30*time.Second); r.State != poolfs.RestartDone || r.Replaced != 2 {
		t.Errorf("the first roll ended %+v, want done with 2 replaced", r)
	}
	if err := poolfs.WriteRestartRequest(tm.paths.RestartRequest, poolfs.RestartRequest{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := poolfs.WriteRestartRequest(tm.paths.RestartRequest, poolfs.RestartRequest{ID: "y"}); err == nil || !strings.Contains(err.Error(), "already waiting") {
		t.Errorf("a second pending request was not refused: %v", err)
	}
}

// QUIT in the middle of a roll stops it and the pool: nothing is left.
func TestQuitMidRollLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	tm := startMaster(t, servingConfig(dir, "  foo: 3", ""))
	allServing(t, tm, dir, "foo", 3)
	tm.requestRestart(poolfs.RestartRequest{ID: "q", Batch: 2})
	st := tm.waitState("a replacement starting", func(s *State) bool {
		for _, w := range s.Workers {
			if w.Roll == "new" {
				return true
			}
		}
		return false
	})
	var pids []int
	for _, w := range st.Workers {
		pids = append(pids, w.PID)
	}
	tm.signal(syscall.SIGQUIT)
	tm.waitExit(15 * time.Second)
	for _, p := range pids {
		if syscall.Kill(p, 0) == nil {
			t.Errorf("worker[%d] outlived its master", p)
		}
	}
	if !strings.Contains(tm.readLog(), "restart failed: the pool is stopping") {
		t.Errorf("the log does not say the roll stopped with the pool")
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "foo.*")); len(ents) > 0 {
		t.Errorf("workers left their serving markers: %v (not stopped in order)", ents)
	}
}

// A HUP that removes a queue list in the middle of its roll ends the roll
// without an error: the list's workers, old and new, are stopped.
func TestHUPRemovingRolledListEndsRoll(t *testing.T) {
	dir := t.TempDir()
	tm := startMaster(t, servingConfig(dir, "  foo: 3\n  bar: 1", ""))
	allServing(t, tm, dir, "foo", 3)
	bar := allServing(t, tm, dir, "bar", 1)
	tm.requestRestart(poolfs.RestartRequest{ID: "rm", Queues: []string{"foo"}})
	tm.waitState("a replacement starting", func(s *State) bool {
		return slices.ContainsFunc(s.Workers, func(w WorkerState) bool { return w.Roll == "new" })
	})
	tm.writeConfig(servingConfig(dir, "  bar: 1", ""))
	tm.signal(syscall.SIGHUP)
	st := tm.waitState("foo gone, the roll ended", func(s *State) bool {
		return s.Settled() && len(s.Workers) == 1 && s.Restart != nil && s.Restart.State != poolfs.RestartRunning
	})
	if st.Restart.State != poolfs.RestartDone {
		t.Errorf("the roll of a removed list ended %+v, want done", st.Restart)
	}
	if got := pidsOf(st, "bar"); !slices.Equal(got, bar) {
		t.Errorf("bar's worker changed: %v -> %v", bar, got)
	}
}

// A queue list's own start_secs is what its command workers must live to
// be ready: with the config's (shorter than the warm-up) the roll would
// take replacements still warming up for ready, and dip.
func TestRollWaitsForTheListsOwnStartSecs(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(servingConfig(dir, "  foo: {count: 3, start_secs: 1.5s}", ""), "start_secs: 1.5\n", "start_secs: 0.05\n", 1)
	tm := startMaster(t, cfg)
	before := allServing(t, tm, dir, "foo", 3)
	s := sampleServing(dir, "foo")
	tm.requestRestart(poolfs.RestartRequest{ID: "ss"})
	tm.waitRestart("ss", 30*time.Second)
	after := allServing(t, tm, dir, "foo", 3)
	if least, samples := s.finish(); least < 3 {
		t.Errorf("only %d of 3 served at one point (%d samples): the list's start_secs was not waited for", least, samples)
	}
	if !disjoint(before, after) {
		t.Errorf("not every worker was replaced: %v -> %v", before, after)
	}
}
