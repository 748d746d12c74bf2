package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/procid"
	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/queue"
)

// A job's double-forked daemon (its own session and process group, so
// neither the job's group kill nor a parent-death signal reaches it) ends
// when its worker stops because the master was SIGKILLed.
func TestJobDaemonDiesWithItsWorkerWhenTheMasterIsKilled(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	dir := t.TempDir()
	daemonFile, jobFile := filepath.Join(dir, "daemon"), filepath.Join(dir, "job")
	argv, err := json.Marshal([]string{"sh", "-c", `(setsid sh -c 'echo $$ > "$1"; exec sleep 300' sh "$1" </dev/null >/dev/null 2>&1 &)
while [ ! -s "$1" ]; do sleep 0.01; done
echo $$ > "$2"; exec sleep 300`, "sh", daemonFile, jobFile})
	if err != nil {
		t.Fatal(err)
	}
	m := startMaster(t, t.TempDir(), fmt.Sprintf("workers: {foo: 1}\nredis: %s\njobs:\n  Daemon: %s\n", srv.URL(), argv))
	s := m.waitWorkers(1)
	if err := queue.New(rdb, "").Enqueue(bg, "foo", []byte(`{"class":"Daemon","args":[]}`)); err != nil {
		t.Fatal(err)
	}
	daemon := testutil.WatchPIDFile(t, daemonFile)
	job := testutil.WatchPIDFile(t, jobFile)
	_ = m.Cmd.Process.Kill()
	<-m.Done()
	testutil.Eventually(t, 10*time.Second, "the worker to stop", func() bool {
		return !procid.Alive(s.Workers[0].PID, s.Workers[0].Identity)
	})
	testutil.Eventually(t, 15*time.Second, fmt.Sprintf("the job pid %d and its daemon pid %d to end", job.PID, daemon.PID), func() bool {
		return job.Gone() && daemon.Gone()
	})
}
