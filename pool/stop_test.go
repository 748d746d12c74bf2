package pool

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/spec"
)

// Every line a worker writes as it stops reaches the log, even the lines of
// the last workers reaped: the master does not exit (closing its log)
// while a worker's output pipe still holds something. Each worker here
// leaves 40 KB (900 lines) in its pipe (less than the pipe's buffer, so it exits
// without waiting for the master to read) and then its last line.
func TestStopKeepsEveryWorkersLastLogLine(t *testing.T) {
	const n = 60
	tm := startMaster(t, fmt.Sprintf(`
workers: {foo: %d}
command: ["sh", "-c", "trap 'yes filler line of a worker dumping its state | head -n 900; echo bye from $$; exit 0' TERM; echo up; sleep 1000 & wait"]
start_secs: 0.05
term_timeout: 5s
`, n))
	s := tm.waitState(fmt.Sprintf("%d workers", n), func(s *State) bool { return len(s.Workers) == n })
	waitWorkerLines(t, tm, "up", n)
	tm.signal(syscall.SIGTERM)
	tm.waitExit(20 * time.Second)
	if tm.Err() != nil {
		t.Fatalf("master exit: %v", tm.Err())
	}
	log := tm.readLog()
	var missing []int
	for _, w := range s.Workers {
		if !strings.Contains(log, fmt.Sprintf("poolctl-worker[%d]: bye from %d\n", w.PID, w.PID)) {
			missing = append(missing, w.PID)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d workers' last lines are missing from the log (pids %v)", len(missing), n, missing)
	}
	// Worker lines come before the master's last words.
	if i, j := strings.LastIndex(log, "bye from"), strings.Index(log, "manager stopped"); i > j {
		t.Errorf("a worker's line was logged after %q", "manager stopped")
	}
}

// waitWorkerLines waits until the log holds n worker lines ending in
// line.
func waitWorkerLines(t *testing.T, tm *testMaster, line string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(tm.readLog(), "]: "+line+"\n") < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d lines %q", n, line)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A stop of n workers plans O(1) times, not once per reap: every worker is
// signalled when the stop begins and nothing can start while it lasts, so
// a plan per reap (each one O(n)) only made stopping n workers O(n²).
// The master here is driven by hand, one reap per event, the worst case
// of SIGCHLD delivery.
func TestStopPlansOnceNotPerReap(t *testing.T) {
	const n = 200
	dir := t.TempDir()
	log, err := NewLogger(filepath.Join(dir, "pool.log"), os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	m := &Master{
		log:           log,
		cfg:           &spec.Config{TermTimeout: 5 * time.Second},
		groups:        map[string]*group{"foo": {queues: "foo", desired: n, fingerprint: "fp"}},
		order:         []string{"foo"},
		workers:       map[int]*worker{},
		others:        map[int]func(string){},
		calls:         make(chan func(), 1024),
		done:          make(chan struct{}),
		notify:        newNotifier(log.Printf),
		orphansKilled: map[int]bool{},
	}
	defer close(m.done)
	for range n {
		p, err := os.StartProcess("/bin/sleep", []string{"sleep", "1000"}, &os.ProcAttr{
			Sys: &syscall.SysProcAttr{Setpgid: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		pid := p.Pid
		_ = p.Release() // reaped with wait4 below, as the master does
		m.workers[pid] = &worker{pid: pid, queues: "foo", fingerprint: "fp", state: workerRunning, started: time.Now()}
		t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL); _, _ = syscall.Wait4(pid, nil, syscall.WNOHANG, nil) })
	}
	m.reconcile() // a quiet pool: nothing to do
	m.beginStop(fastStop, "test")
	before := m.plans
	pids := make([]int, 0, n)
	for pid := range m.workers {
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			t.Fatalf("wait for worker %d: %v", pid, err)
		}
		m.onExit(pid, ws)
		m.reconcile()
	}
	if len(m.workers) != 0 {
		t.Fatalf("%d workers left after reaping all", len(m.workers))
	}
	if got := m.plans - before; got > 2 {
		t.Errorf("%d plans while stopping %d workers (one reap per event), want at most 2", got, n)
	}
}
