package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/procid"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/stats"
)

func TestParseTopArgs(t *testing.T) {
	good := []struct {
		args []string
		want topOptions
		rest []string
	}{
		{nil, topOptions{interval: time.Second}, nil},
		{[]string{"--json", "--count", "3"}, topOptions{json: true, interval: time.Second, count: 3}, nil},
		{[]string{"pool", "-json", "--interval=250ms", "-count=1"}, topOptions{json: true, interval: 250 * time.Millisecond, count: 1}, []string{"pool"}},
		{[]string{"--interval", "2", "--json=false", "--", "--json"}, topOptions{interval: 2 * time.Second}, []string{"--json"}},
	}
	for _, tc := range good {
		got, rest, err := parseTopArgs(tc.args)
		if err != nil || got != tc.want || strings.Join(rest, " ") != strings.Join(tc.rest, " ") {
			t.Errorf("parseTopArgs(%q) = %+v, %q, %v; want %+v, %q", tc.args, got, rest, err, tc.want, tc.rest)
		}
	}
	// Every mistake names the flag.
	bad := map[string][]string{
		`"--bogus"`:        {"--bogus"},
		`"-x"`:             {"-x=1"},
		"--interval":       {"--interval"},
		`--interval "0"`:   {"--interval", "0"},
		`--interval "x"`:   {"--interval=x"},
		`--interval "-1s"`: {"--interval", "-1s"},
		`--interval "1ms"`: {"--interval", "1ms"},
		`--count "0"`:      {"--count", "0"},
		`--count "1.5"`:    {"--count=1.5"},
		"--count needs":    {"--json", "--count"},
		"--json=maybe":     {"--json=maybe"},
	}
	for want, args := range bad {
		if _, _, err := parseTopArgs(args); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseTopArgs(%q) = %v, want an error naming %s", args, err, want)
		}
	}
	if _, _, err := parseTopArgs([]string{"--count", "2", "-h"}); !errors.Is(err, errTopHelp) {
		t.Errorf("-h: %v", err)
	}
}

// In the shell, a mistake is a usage error of top that changes nothing;
// top on a pool that is not running says so.
func TestTopCommandErrors(t *testing.T) {
	s, out := newTestSession(t, "foo=1")
	var ue *UsageError
	for _, line := range []string{"top --interval nope", "top extra", "top --count=-3"} {
		if err := s.Exec(context.Background(), line); !errors.As(err, &ue) || ue.Cmd.Name != "top" {
			t.Errorf("%s: %v, want a usage error of top", line, err)
		}
	}
	if err := s.Exec(context.Background(), "top --json --count 1"); !errors.Is(err, errNotRunning) {
		t.Errorf("top on a stopped pool: %v", err)
	}
	out.Reset()
	if err := s.Exec(context.Background(), "top -h"); err != nil || !strings.Contains(out.String(), "usage: top [--json]") {
		t.Errorf("top -h: %v\n%s", err, out)
	}
}

// fakeMaster makes this test process the running master of s's pool as
// shells see it: it holds master.lock, names itself in master.pid and
// publishes st. release gives the lock up, as a master that exits.
func fakeMaster(t *testing.T, s *Session, st *poolfs.State) (release func()) {
	t.Helper()
	p := s.paths
	if err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p.Lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := os.WriteFile(p.Pid, fmt.Appendf(nil, "%d\n", os.Getpid()), 0o600); err != nil {
		t.Fatal(err)
	}
	st.PID, st.Name, st.Status = os.Getpid(), p.Name, poolfs.MasterRunning
	if err := poolfs.WriteState(p.State, st); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// writeSample publishes a sample taken at ts, with extra raw JSON fields
// (a newer master's) spliced in.
func writeSample(t *testing.T, path string, ts time.Time, depth int64, extra string) {
	t.Helper()
	s := stats.Sample{TS: ts, Pool: "unit", Interval: 1, Master: stats.ProcSample{PID: os.Getpid()},
		Queues: []stats.QueueSample{{Name: "報告/daily:x", Depth: depth, State: stats.QueueBusy}}, Workers: []stats.WorkerSample{}}
	b, err := json.MarshalIndent(s, "", "  ") // several lines: top prints it on one
	if err != nil {
		t.Fatal(err)
	}
	if extra != "" {
		b = append([]byte("{"+extra+","), b[1:]...)
	}
	if err := poolfs.WriteFileAtomic(path, b); err != nil {
		t.Fatal(err)
	}
}

// top --json prints a frame per new sample, on one line each, as the
// master wrote it (fields it does not know included), never a missing,
// stale or repeated sample; it says why on standard error.
func TestTopJSONFrames(t *testing.T) {
	s, _ := newTestSession(t, "foo=1")
	var out, errw testutil.Buffer
	s.out, s.errw = &out, &errw
	fakeMaster(t, s, &poolfs.State{})
	done := make(chan error, 1)
	go func() {
		done <- s.topJSON(context.Background(), topOptions{json: true, interval: 10 * time.Millisecond, count: 2})
	}()

	testutil.Eventually(t, 15*time.Second, "no sample yet", func() bool { return strings.Contains(errw.String(), "top: no sample yet\n") })
	// It asks the master to publish (the master does only while asked).
	if fi, err := os.Stat(s.paths.Sample + ".wanted"); err != nil || time.Since(fi.ModTime()) > time.Second {
		t.Errorf("top does not ask for samples: %v", err)
	}
	writeSample(t, s.paths.Sample, time.Now().Add(-10*time.Second), 1, "")
	testutil.Eventually(t, 15*time.Second, "stale sample", func() bool {
		return strings.Contains(errw.String(), "s old: is the master stopped?\n")
	})
	if out.String() != "" {
		t.Fatalf("a stale or missing sample printed a frame: %q", out.String())
	}
	first := time.Now()
	writeSample(t, s.paths.Sample, first, 5, `"from_the_future":{"x":1}`)
	testutil.Eventually(t, 15*time.Second, "first frame", func() bool { return strings.Count(out.String(), "\n") == 1 })
	// The same sample again and again: no second frame.
	for i := 0; i < 5; i++ {
		writeSample(t, s.paths.Sample, first, 5, `"from_the_future":{"x":1}`)
		time.Sleep(15 * time.Millisecond) // a few of top's intervals, nothing to wait for
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Fatalf("one sample printed %d times:\n%s", n, out.String())
	}
	writeSample(t, s.paths.Sample, first.Add(time.Millisecond), 6, "")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("top --count 2 did not end after two frames")
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("frames: %q", out.String())
	}
	var f1, f2 map[string]any
	if json.Unmarshal([]byte(lines[0]), &f1) != nil || json.Unmarshal([]byte(lines[1]), &f2) != nil {
		t.Fatalf("frames are not JSON objects: %q", lines)
	}
	if f1["from_the_future"] == nil || f1["pool"] != "unit" || f1["queues"].([]any)[0].(map[string]any)["name"] != "報告/daily:x" {
		t.Errorf("frame 1 is not the sample as written: %s", lines[0])
	}
	if f2["queues"].([]any)[0].(map[string]any)["depth"] != 6.0 {
		t.Errorf("frame 2 is not the second sample: %s", lines[1])
	}
	if strings.Contains(errw.String(), "{") {
		t.Errorf("a frame went to standard error: %q", errw.String())
	}
}

// An earlier master's sample is no sample; a master that goes away ends
// top with an error.
func TestTopJSONMasterChangesAndGoes(t *testing.T) {
	s, _ := newTestSession(t, "foo=1")
	var out, errw testutil.Buffer
	s.out, s.errw = &out, &errw
	release := fakeMaster(t, s, &poolfs.State{})
	smp := stats.Sample{TS: time.Now(), Interval: 1, Master: stats.ProcSample{PID: os.Getpid() + 1}}
	if err := stats.WriteFile(s.paths.Sample, &smp); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.topJSON(context.Background(), topOptions{json: true, interval: 10 * time.Millisecond})
	}()
	testutil.Eventually(t, 15*time.Second, "no sample yet", func() bool { return strings.Contains(errw.String(), "top: no sample yet\n") })
	release()
	select {
	case err := <-done:
		if !errors.Is(err, errNotRunning) {
			t.Errorf("err = %v, want the master is not running", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("top went on after the master had gone")
	}
	if out.String() != "" {
		t.Errorf("an earlier master's sample was printed: %q", out.String())
	}
}

// + and - go through the config command: the same merge, the same
// messages, and - stops at 1.
func TestTopScale(t *testing.T) {
	s, _ := newTestSession(t, "foo=1:bar,baz=3")
	msg, err := s.topScale(context.Background(), "foo", 1)
	if err != nil || msg != "foo=2:bar,baz=3" {
		t.Fatalf("+: %q, %v", msg, err)
	}
	if msg, err = s.topScale(context.Background(), "bar,baz", -1); err != nil || !strings.Contains(msg, "bar,baz=2") {
		t.Fatalf("-: %q, %v", msg, err)
	}
	s.topScale(context.Background(), "foo", -1)
	if _, err := s.topScale(context.Background(), "foo", -1); err == nil || !strings.Contains(err.Error(), "- stops at 1 (config foo=0 removes the queue list)") {
		t.Errorf("- below 1: %v", err)
	}
	if _, err := s.topScale(context.Background(), "nosuch", 1); err == nil || !strings.Contains(err.Error(), "nosuch is not in") {
		t.Errorf("unknown list: %v", err)
	}
	if got := s.cfg.Workers.String(); got != "foo=1:bar,baz=2" {
		t.Errorf("config = %s", got)
	}
}

// signalRecorder is a process that appends the names of the USR2 and CONT
// signals it gets to a file.
func signalRecorder(t *testing.T) (pid int, identity string, log string) {
	t.Helper()
	log = filepath.Join(t.TempDir(), "signals")
	ready := log + ".ready"
	cmd := exec.Command("bash", "-c", `trap 'echo USR2 >>"$1"' USR2; trap 'echo CONT >>"$1"' CONT; : >"$2"; while :; do sleep 0.05; done`, "rec", log, ready)
	p := testutil.StartProcess(t, cmd, time.Second)
	testutil.Eventually(t, 15*time.Second, "recorder ready", func() bool { _, err := os.Stat(ready); return err == nil })
	id, err := procid.Of(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	return p.PID(), id.String(), log
}

// p pauses the selected list's workers with USR2 and resumes them with
// CONT, remembers which, and never signals a process that took over a
// worker's pid.
func TestTopPause(t *testing.T) {
	s, _ := newTestSession(t, "foo=2:bar=1")
	w1, id1, log1 := signalRecorder(t)
	w2, id2, log2 := signalRecorder(t)
	w3, id3, log3 := signalRecorder(t)
	impostor, _, logImp := signalRecorder(t)
	started := time.Now().Add(-time.Minute)
	st := &poolfs.State{Workers: []poolfs.WorkerState{
		{PID: w1, Queues: "foo", State: poolfs.WorkerRunning, Identity: id1, StartedAt: started},
		{PID: w2, Queues: "foo", State: poolfs.WorkerRunning, Identity: id2, StartedAt: started},
		{PID: w3, Queues: "bar", State: poolfs.WorkerRunning, Identity: id3, StartedAt: started},
		// A worker that exited; a later process has its pid.
		{PID: impostor, Queues: "foo", State: poolfs.WorkerRunning, Identity: "not-this-boot/1", StartedAt: started},
	}}
	fakeMaster(t, s, st)
	signals := func(log string) string { b, _ := os.ReadFile(log); return string(b) }

	msg, err := s.topPause(context.Background(), "foo")
	if err != nil || !strings.HasPrefix(msg, "paused 2 workers of foo (SIGUSR2 to ") {
		t.Fatalf("p: %q, %v", msg, err)
	}
	testutil.Eventually(t, 15*time.Second, "USR2 delivered", func() bool {
		return signals(log1) == "USR2\n" && signals(log2) == "USR2\n"
	})
	st, _, _ = s.pool().State()
	if got := pausedWorkers(st, s.top.marks); !got[w1] || !got[w2] || got[w3] {
		t.Errorf("paused = %v", got)
	}
	msg, err = s.topPause(context.Background(), "foo")
	if err != nil || !strings.HasPrefix(msg, "resumed 2 workers of foo (SIGCONT to ") {
		t.Fatalf("p again: %q, %v", msg, err)
	}
	testutil.Eventually(t, 15*time.Second, "CONT delivered", func() bool {
		return signals(log1) == "USR2\nCONT\n" && signals(log2) == "USR2\nCONT\n"
	})
	if got := pausedWorkers(st, s.top.marks); got[w1] || got[w2] {
		t.Errorf("resumed, yet paused = %v", got)
	}
	if signals(log3) != "" || signals(logImp) != "" {
		t.Errorf("signals reached another list's worker (%q) or a reused pid (%q)", signals(log3), signals(logImp))
	}

	// A USR2 the master forwarded to every worker after top's marks
	// decides; top's own marks count again only when made after it.
	st.WorkersPausedAt = time.Now()
	if got := pausedWorkers(st, s.top.marks); !got[w1] || !got[w3] {
		t.Errorf("after the master's USR2, paused = %v", got)
	}
	if err := poolfs.WriteState(s.paths.State, st); err != nil {
		t.Fatal(err)
	}
	if msg, err := s.topPause(context.Background(), "bar"); err != nil || !strings.HasPrefix(msg, "resumed 1 worker of bar (SIGCONT") {
		t.Errorf("p on a list paused by the master: %q, %v", msg, err)
	}
	if got := pausedWorkers(st, s.top.marks); got[w3] || !got[w1] {
		t.Errorf("bar resumed by top, foo paused by the master: paused = %v", got)
	}
	if _, err := s.topPause(context.Background(), "nosuch"); err == nil || !strings.Contains(err.Error(), "no running workers") {
		t.Errorf("p on a list without workers: %v", err)
	}
}

// p waits for a starting worker to run before it signals it: a USR2 that
// beats the worker's signal handling is lost.
func TestTopPauseWaitsForStartingWorkers(t *testing.T) {
	w, id, log := signalRecorder(t)
	checkPauseWaits(t, poolfs.WorkerState{PID: w, Queues: "foo", State: poolfs.WorkerStarting, Identity: id, StartedAt: time.Now()},
		log, "the worker runs", func(w *poolfs.WorkerState) { w.State = poolfs.WorkerRunning })
}

// p waits for a built-in worker to register before it signals it, even
// when /proc already shows a USR2 handler: a Go worker has one from its
// first instruction but drops USR2 until its main asks for it.
func TestTopPauseWaitsForBuiltinWorkersToRegister(t *testing.T) {
	w, id, log := signalRecorder(t) // catches USR2, as a Go program does at once
	checkPauseWaits(t, poolfs.WorkerState{PID: w, Queues: "foo", State: poolfs.WorkerRunning, Builtin: true, Identity: id, StartedAt: time.Now()},
		log, "the worker registers", func(w *poolfs.WorkerState) { w.Ready = true })
}

// checkPauseWaits runs p over the one worker of list foo in the
// background, checks that it signals nothing while the worker is as
// given, then lets ready change it, and checks that p goes on and the
// worker (whose signals are recorded in log) gets USR2.
func checkPauseWaits(t *testing.T, worker poolfs.WorkerState, log, until string, ready func(*poolfs.WorkerState)) {
	t.Helper()
	s, _ := newTestSession(t, "foo=1")
	st := &poolfs.State{Workers: []poolfs.WorkerState{worker}}
	fakeMaster(t, s, st)
	type result struct {
		msg string
		err error
	}
	done := make(chan result, 1)
	go func() {
		msg, err := s.topPause(context.Background(), "foo")
		done <- result{msg, err}
	}()
	time.Sleep(4 * pollInterval) // p polls the state meanwhile; nothing to wait for
	if b, _ := os.ReadFile(log); len(b) > 0 {
		t.Fatalf("signalled before %s: %q", until, b)
	}
	ready(&st.Workers[0])
	if err := poolfs.WriteState(s.paths.State, st); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || !strings.HasPrefix(r.msg, "paused 1 worker of foo") {
			t.Fatalf("p: %q, %v", r.msg, r.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("p did not go on once %s", until)
	}
	testutil.Eventually(t, 15*time.Second, "USR2 delivered", func() bool { b, _ := os.ReadFile(log); return string(b) == "USR2\n" })
}

// p never sends USR2 to a process that does not catch it (a command
// worker that ignores Resque's signals, a worker not yet started): it
// would die of it.
func TestTopPauseSparesWorkersWithoutHandler(t *testing.T) {
	prev := startingWait
	startingWait = 300 * time.Millisecond
	t.Cleanup(func() { startingWait = prev })
	s, _ := newTestSession(t, "baz=2")
	sleeper := testutil.StartProcess(t, exec.Command("sleep", "1000"), time.Second)
	rec, recID, log := signalRecorder(t)
	id, err := procid.Of(sleeper.PID())
	if err != nil {
		t.Fatal(err)
	}
	fakeMaster(t, s, &poolfs.State{Workers: []poolfs.WorkerState{
		{PID: sleeper.PID(), Queues: "baz", State: poolfs.WorkerRunning, Identity: id.String()},
		{PID: rec, Queues: "baz", State: poolfs.WorkerRunning, Identity: recID},
	}})
	msg, err := s.topPause(context.Background(), "baz")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d does not catch USR2", sleeper.PID())) || !strings.HasPrefix(msg, "paused 1 worker of baz") {
		t.Fatalf("p: %q, %v", msg, err)
	}
	testutil.Eventually(t, 15*time.Second, "USR2 to the worker that catches it", func() bool { b, _ := os.ReadFile(log); return string(b) == "USR2\n" })
	if sleeper.Exited() {
		t.Fatal("p killed a worker that does not catch USR2")
	}
}
