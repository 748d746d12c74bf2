package pool

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/spec"
)

// envInProcess marks a test binary that runs one control test with a
// master in its own process (it signals, reaps and becomes a subreaper,
// which must not leak into the other tests).
const envInProcess = "POOLCTL_TEST_CONTROL_INPROC"

// inOwnProcess runs the calling test again in a process of its own and
// reports true in the parent, which then has nothing more to do.
func inOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envInProcess) != "" {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envInProcess+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s in its own process: %v\n%s", t.Name(), err, out)
	}
	return true
}

// remoteMaster is a master running on a goroutine of the test, with its
// executor of control messages.
type remoteMaster struct {
	t      *testing.T
	remote *Remote
	paths  Paths
	config string // the file the master reads
	log    string
	done   chan error
	cancel context.CancelFunc
}

// pausingWorker is a worker command that catches USR2 and CONT (as
// Resque workers do) and records them, one line each, in its directory.
func pausingWorker(dir string) string {
	script := `trap 'echo paused $$ >> ` + dir + `/signals' USR2; trap 'echo resumed $$ >> ` + dir + `/signals' CONT; ` +
		`trap 'exit 0' QUIT TERM; while :; do sleep 0.05; done`
	return `command: ["sh", "-c", ` + strconv.Quote(script) + `]`
}

// startRemoteMaster runs a master over config. ownCopy makes the config
// the pool's own copy (Paths.Config); overrides gives it --overrides.
func startRemoteMaster(t *testing.T, config string, ownCopy, overrides bool) *remoteMaster {
	t.Helper()
	dir := t.TempDir()
	rm := &remoteMaster{t: t, paths: poolfs.PathsFor(filepath.Join(dir, "run"), "test"), log: filepath.Join(dir, "pool.log"), done: make(chan error, 1)}
	if err := rm.paths.Ensure(); err != nil {
		t.Fatal(err)
	}
	rm.config = filepath.Join(dir, "pool.yml")
	if ownCopy {
		rm.config = rm.paths.Config
	}
	if err := os.WriteFile(rm.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{ConfigPath: rm.config, Paths: rm.paths, LogPath: rm.log}
	if overrides {
		opts.Overrides = rm.paths.Overrides
	}
	got := make(chan *Remote, 1)
	opts.Cockpit = func(_ string, _ *spec.Config, _ Paths, _ *Logger, ctl Control) (Cockpit, error) {
		got <- ctl.Remote()
		return nopCockpit{}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	rm.cancel = cancel
	go func() { rm.done <- Run(ctx, opts) }()
	select {
	case rm.remote = <-got:
	case err := <-rm.done:
		t.Fatalf("master exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("master did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-rm.done:
		case <-time.After(15 * time.Second):
			t.Error("master did not stop")
		}
	})
	rm.waitState("the workers started", func(s *State) bool { return s.Settled() })
	return rm
}

type nopCockpit struct{}

func (nopCockpit) Observe(*State)      {}
func (nopCockpit) MetricsAddr() string { return "" }
func (nopCockpit) Close() error        { return nil }

func (rm *remoteMaster) state() *State {
	rm.t.Helper()
	s, err := poolfs.ReadState(rm.paths.State)
	if err != nil {
		rm.t.Fatal(err)
	}
	return s
}

func (rm *remoteMaster) waitState(what string, cond func(*State) bool) *State {
	rm.t.Helper()
	var s *State
	testutil.Eventually(rm.t, 10*time.Second, what, func() bool {
		var err error
		s, err = poolfs.ReadState(rm.paths.State)
		return err == nil && cond(s)
	})
	return s
}

func groupOf(s *State, queues string) (GroupState, bool) {
	for _, g := range s.Groups {
		if g.Queues == queues {
			return g, true
		}
	}
	return GroupState{}, false
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// TestRemoteConfigOwnCopy: a master running from the pool's own copy has
// it rewritten, merged, and the change is in the state file when Config
// returns; bad words change nothing.
func TestRemoteConfigOwnCopy(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	rm := startRemoteMaster(t, "workers: {foo: 1, bar: 1}\ncommand: [sleep, '30']\nterm_timeout: 1s\n", true, false)
	ctx := context.Background()
	res, err := rm.remote.Config(ctx, []string{"foo=3", "bar=0"})
	if err != nil {
		t.Fatalf("Config: %v", err)
	}
	if r := res.(*ConfigResult); r.Spec != "foo=3" || r.File != rm.paths.Config {
		t.Errorf("Config result = %+v, want spec foo=3 in %s", r, rm.paths.Config)
	}
	// No waiting: the answer comes once the change is applied.
	s := rm.state()
	if g, _ := groupOf(s, "foo"); g.Desired != 3 || g.Live != 3 {
		t.Errorf("after Config: foo desired %d live %d, want 3/3", g.Desired, g.Live)
	}
	if _, ok := groupOf(s, "bar"); ok {
		t.Errorf("after Config: bar still in force: %+v", s.Groups)
	}
	cfg, err := spec.LoadConfig(rm.paths.Config, "")
	if err != nil || cfg.Workers.String() != "foo=3" || cfg.TermTimeout != time.Second {
		t.Errorf("config file after Config: %v, %v", cfg, err)
	}

	before := readFile(t, rm.paths.Config)
	for _, words := range [][]string{{"foo=2", "baz=x"}, {"foo=-1"}, {}} {
		if _, err := rm.remote.Config(ctx, words); err == nil {
			t.Errorf("Config(%q) succeeded", words)
		} else if len(words) > 1 && !strings.Contains(err.Error(), "baz=x") {
			t.Errorf("Config(%q) error %q does not name the bad word", words, err)
		}
	}
	if after := readFile(t, rm.paths.Config); after != before {
		t.Errorf("a refused config changed the file:\n%s\nthen\n%s", before, after)
	}
	if g, _ := groupOf(rm.state(), "foo"); g.Desired != 3 {
		t.Errorf("a refused config changed foo to %d", g.Desired)
	}
}

// TestRemoteConfigOverrides: with --overrides the change goes to the
// overrides file, merged with what a shell put there, and the user's file
// is untouched.
func TestRemoteConfigOverrides(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	yml := "# the user's file\nworkers: {foo: 1, bar: 1}\ncommand: [sleep, '30']\nterm_timeout: 1s\n"
	rm := startRemoteMaster(t, yml, false, true)
	// A shell's earlier change, written behind the master's back.
	if err := os.WriteFile(rm.paths.Overrides, []byte("bar=2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rm.remote.Config(context.Background(), []string{"foo=2"}); err != nil {
		t.Fatalf("Config: %v", err)
	}
	if got := strings.TrimSpace(readFile(t, rm.paths.Overrides)); got != "bar=2:foo=2" {
		t.Errorf("overrides file = %q, want bar=2:foo=2", got)
	}
	if got := readFile(t, rm.config); got != yml {
		t.Errorf("the user's file was rewritten:\n%s", got)
	}
	s := rm.state()
	for q, n := range map[string]int{"foo": 2, "bar": 2} {
		if g, _ := groupOf(s, q); g.Desired != n || g.Live != n {
			t.Errorf("%s: desired %d live %d, want %d", q, g.Desired, g.Live, n)
		}
	}
}

// TestRemoteConfigRefusesUserFile: a master running from the user's file
// without --overrides never rewrites it.
func TestRemoteConfigRefusesUserFile(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	yml := "workers: {foo: 1}\ncommand: [sleep, '30']\nterm_timeout: 1s\n"
	rm := startRemoteMaster(t, yml, false, false)
	_, err := rm.remote.Config(context.Background(), []string{"foo=2"})
	if err == nil || !strings.Contains(err.Error(), "start it with --overrides FILE") {
		t.Fatalf("Config error = %v, want a refusal naming --overrides", err)
	}
	if got := readFile(t, rm.config); got != yml {
		t.Errorf("the user's file was rewritten:\n%s", got)
	}
	if g, _ := groupOf(rm.state(), "foo"); g.Desired != 1 {
		t.Errorf("foo desired %d after a refused config", g.Desired)
	}
	if rm.remote.RemoteControl() {
		t.Error("RemoteControl() = true without remote_control: true")
	}
	if err := os.WriteFile(rm.config, []byte(yml+"remote_control: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rm.remote.Reload(context.Background()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if !rm.remote.RemoteControl() {
		t.Error("RemoteControl() = false after a reload with remote_control: true")
	}
	if err := os.WriteFile(rm.config, []byte("workers: {foo: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rm.remote.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "pool.yml") {
		t.Errorf("Reload of a broken file: %v, want an error naming it", err)
	}
}

// signalled returns the pids that recorded verb (paused, resumed).
func signalled(t *testing.T, dir, verb string) map[int]bool {
	out := map[int]bool{}
	for line := range strings.SplitSeq(readFile(t, filepath.Join(dir, "signals")), "\n") {
		if v, pid, ok := strings.Cut(line, " "); ok && v == verb {
			n, _ := strconv.Atoi(pid)
			out[n] = true
		}
	}
	return out
}

// TestRemotePause: pause signals the named queue list's workers only,
// keeps the list paused so a worker started into it later is paused too,
// and shows it in the state; resume undoes it; an unknown list is named.
func TestRemotePause(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	dir := t.TempDir()
	rm := startRemoteMaster(t, "workers: {foo: 1, bar: 1}\n"+pausingWorker(dir)+"\nterm_timeout: 1s\nstart_secs: 0.2\n", true, false)
	ctx := context.Background()
	if _, err := rm.remote.Pause(ctx, []string{"nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Pause(nope) error = %v, want one naming nope", err)
	}
	// Running workers catch USR2: the pause below is immediate, so the
	// later one of a new worker is the spawn's doing.
	rm.waitState("workers running", func(s *State) bool {
		for _, w := range s.Workers {
			if w.State != WorkerRunning {
				return false
			}
		}
		return true
	})
	res, err := rm.remote.Pause(ctx, []string{"foo"})
	if err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if r := res.(*PauseResult); len(r.Workers) != 1 || len(r.Pending) != 0 {
		t.Errorf("Pause result = %+v, want one worker paused at once", r)
	}
	s := rm.state()
	foo, bar := pidsOf(s, "foo"), pidsOf(s, "bar")
	if g, _ := groupOf(s, "foo"); !g.Paused {
		t.Error("state does not show foo paused")
	}
	if g, _ := groupOf(s, "bar"); g.Paused {
		t.Error("state shows bar paused")
	}
	// A worker spawned into the paused list is paused too.
	if _, err := rm.remote.Config(ctx, []string{"foo=2"}); err != nil {
		t.Fatal(err)
	}
	s = rm.waitState("both foo workers paused", func(s *State) bool {
		n := 0
		for _, w := range s.Workers {
			if w.Queues == "foo" && w.Paused {
				n++
			}
		}
		return n == 2
	})
	foo2 := pidsOf(s, "foo")
	testutil.Eventually(t, 10*time.Second, "every foo worker got USR2", func() bool {
		got := signalled(t, dir, "paused")
		return got[foo2[0]] && got[foo2[1]]
	})
	if got := signalled(t, dir, "paused"); got[bar[0]] {
		t.Errorf("bar's worker %d was paused", bar[0])
	}
	if len(foo) != 1 || (foo[0] != foo2[0] && foo[0] != foo2[1]) {
		t.Errorf("foo's first worker %v was replaced: %v", foo, foo2)
	}
	if _, err := rm.remote.Resume(ctx, nil); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if g, _ := groupOf(rm.state(), "foo"); g.Paused {
		t.Error("state shows foo paused after resume")
	}
	testutil.Eventually(t, 10*time.Second, "every worker got CONT", func() bool {
		got := signalled(t, dir, "resumed")
		return got[foo2[0]] && got[foo2[1]] && got[bar[0]]
	})
}

// TestRemoteStop: stop answers first, then the pool stops gracefully.
func TestRemoteStop(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	rm := startRemoteMaster(t, "workers: {foo: 1}\ncommand: [sleep, '30']\nterm_timeout: 1s\n", true, false)
	res, err := rm.remote.Stop(context.Background())
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if r := res.(*StopResult); r.Stopping != "graceful" || r.Workers != 1 {
		t.Errorf("Stop result = %+v", r)
	}
	select {
	case err := <-rm.done:
		if err != nil {
			t.Errorf("master: %v", err)
		}
		rm.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("the master did not stop")
	}
	if _, err := rm.remote.Status(context.Background()); err == nil {
		t.Error("Status of a stopped master succeeded")
	}
	if !strings.Contains(readFile(t, rm.log), "fleet stop: graceful shutdown") {
		t.Errorf("log does not record the stop:\n%s", readFile(t, rm.log))
	}
}

// TestRemoteAutoscale: on|off pins as the shell does; a pool without
// autoscaled lists says so.
func TestRemoteAutoscale(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	rm := startRemoteMaster(t, "workers:\n  foo: {count: 1, autoscale: {min: 1, max: 3}}\n  bar: 1\ncommand: [sleep, '30']\nterm_timeout: 1s\n", true, false)
	ctx := context.Background()
	if _, err := rm.remote.Autoscale(ctx, false, []string{"bar"}); err == nil || !strings.Contains(err.Error(), `"bar"`) {
		t.Errorf("Autoscale(off, bar) = %v, want an error naming bar", err)
	}
	if _, err := rm.remote.Autoscale(ctx, false, nil); err != nil {
		t.Fatalf("Autoscale(off): %v", err)
	}
	if g, _ := groupOf(rm.state(), "foo"); g.Autoscale == nil || g.Autoscale.Mode != poolfs.AutoscaleOff {
		t.Errorf("foo after autoscale off: %+v", g.Autoscale)
	}
	if pins, _ := poolfs.ReadAutoscaleOff(rm.paths.AutoscaleOff); !pins["foo"] {
		t.Errorf("pins = %v, want foo", pins)
	}
	if _, err := rm.remote.Autoscale(ctx, true, []string{"foo"}); err != nil {
		t.Fatalf("Autoscale(on): %v", err)
	}
	if g, _ := groupOf(rm.state(), "foo"); g.Autoscale == nil || g.Autoscale.Mode != poolfs.AutoscaleOn {
		t.Errorf("foo after autoscale on: %+v", g.Autoscale)
	}
	if _, err := rm.remote.Config(ctx, []string{"bar=0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rm.remote.Config(ctx, []string{"foo=0", "baz=1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rm.remote.Autoscale(ctx, true, nil); err == nil || !strings.Contains(err.Error(), "no autoscaled queue lists") {
		t.Errorf("Autoscale without autoscaled lists: %v", err)
	}
}
