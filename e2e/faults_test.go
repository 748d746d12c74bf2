package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/queue"
)

// Real master, real workers, real redis-server: the faults that broke
// delivery (issue 9 A2, A3), tried the hard way.

func lines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// A Redis stall much longer than heartbeat_expiry while a job runs: when
// Redis comes back every heartbeat is stale, and recovery runs every
// 200 ms. The running job must not be requeued (and so run twice on the
// idle worker), and its worker must stay registered.
func TestStaleHeartbeatOfALiveBusyWorkerIsNoEvidenceOfDeath(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	runs := filepath.Join(t.TempDir(), "runs")
	cfg := fmt.Sprintf(`workers: {foo: 2}
redis: %s
heartbeat_interval: 400ms
heartbeat_expiry: 1s
recovery_interval: 100ms
jobs:
  Long: ["sh", "-c", "echo run >> %s; sleep 4"]
`, srv.URL(), runs)
	m := startMaster(t, t.TempDir(), cfg)
	m.waitWorkers(2)
	testutil.Eventually(t, 10*time.Second, "2 workers registered", func() bool { return len(registered(rdb)) == 2 })
	if err := queue.New(rdb, "").Enqueue(bg, "foo", []byte(`{"class":"Long","args":[]}`)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the job to start", func() bool { return lines(runs) == 1 })
	if err := srv.Freeze(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // the outage: longer than heartbeat_expiry
	if err := srv.Thaw(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "the job to finish", func() bool {
		return rdb.Get(bg, "resque:stat:processed").Val() == "1"
	})
	if n := lines(runs); n != 1 {
		t.Fatalf("the job ran %d times: recovery took its live worker for dead", n)
	}
	if ids := registered(rdb); len(ids) != 2 {
		t.Errorf("registered workers = %v, want both still registered", ids)
	}
	if strings.Contains(m.logText(), "cleaned up") {
		t.Errorf("the master cleaned up a live worker:\n%s", tail(m.logText(), 2000))
	}
}

// Redis restarts empty under a busy pool. The registrations are back
// within a heartbeat; a job taken after the restart is recovered when its
// worker is SIGKILLed.
func TestEmptyRedisRestartThenWorkerKillLosesNothing(t *testing.T) {
	srv := redistest.Start(t) // no persistence
	rdb := srv.Client()
	runs := filepath.Join(t.TempDir(), "runs")
	cfg := fmt.Sprintf(`workers: {foo: 1}
redis: %s
heartbeat_interval: 300ms
heartbeat_expiry: 1s
recovery_interval: 200ms
jobs:
  Mark: ["sh", "-c", "echo \"$POOLCTL_ARGS\" >> %s; sleep 2"]
`, srv.URL(), runs)
	m := startMaster(t, t.TempDir(), cfg)
	s := m.waitWorkers(1)
	q := queue.New(rdb, "")
	if err := q.Enqueue(bg, "foo", []byte(`{"class":"Mark","args":["before"]}`)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the first job to start", func() bool { return lines(runs) == 1 })
	srv.RestartEmpty()
	testutil.Eventually(t, 15*time.Second, "the worker's registration to come back", func() bool {
		return len(registered(rdb)) == 1
	})
	if err := q.Enqueue(bg, "foo", []byte(`{"class":"Mark","args":["after"]}`)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the second job to start", func() bool {
		b, _ := os.ReadFile(runs)
		return strings.Contains(string(b), "after")
	})
	if !killWorker(s.Workers[0]) {
		t.Fatalf("worker %d is gone already", s.Workers[0].PID)
	}
	testutil.Eventually(t, 20*time.Second, "the second job to run again on the replacement and finish", func() bool {
		b, _ := os.ReadFile(runs)
		return strings.Count(string(b), "after") == 2 && rdb.Get(bg, "resque:stat:processed").Val() == "1"
	})
	if n := rdb.LLen(bg, "resque:queue:foo").Val(); n != 0 {
		t.Errorf("queue still holds %d jobs", n)
	}
	_ = syscall.Kill(m.PID(), syscall.SIGQUIT)
}
