package worker

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/internal/workerenv"
)

// workerProcess is a real poolctl-worker process run by a test.
type workerProcess struct {
	cmd  *exec.Cmd
	out  *testutil.Buffer
	done chan struct{} // closed when it has exited and been reaped
}

// startWorkerProcess builds cmd/poolctl-worker and runs it on queue foo
// against srv with the given job table. Cleanup kills it if the test has
// not stopped it.
func startWorkerProcess(t *testing.T, srv *redistest.Server, jobs map[string][]string) *workerProcess {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "poolctl-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/poolctl-worker").CombinedOutput(); err != nil {
		t.Fatalf("build poolctl-worker: %v\n%s", err, out)
	}
	table, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name != workerenv.MasterPID && name != workerenv.JobTimeout {
			env = append(env, kv)
		}
	}
	w := &workerProcess{out: &testutil.Buffer{}, done: make(chan struct{})}
	w.cmd = exec.Command(bin, "--queues", "foo", "--redis", srv.URL())
	w.cmd.Env = append(env, workerenv.Jobs+"="+string(table))
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	// Whatever might still hold the output pipes must not hang Wait.
	w.cmd.WaitDelay = time.Second
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = w.cmd.Wait()
		close(w.done)
	}()
	t.Cleanup(func() {
		select {
		case <-w.done:
		default:
			// os.Process signals through a pidfd: never a reused pid.
			_ = w.cmd.Process.Kill()
			<-w.done
		}
		if t.Failed() {
			t.Logf("worker output:\n%s", w.out.String())
		}
	})
	testutil.Eventually(t, 10*time.Second, "the worker to register", func() bool {
		return srv.Client().SCard(bg, "resque:workers").Val() == 1
	})
	return w
}

func (w *workerProcess) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func pushJob(t *testing.T, srv *redistest.Server, payload string) {
	t.Helper()
	if err := srv.Client().RPush(bg, "resque:queue:foo", payload).Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().SAdd(bg, "resque:queues", "foo").Err(); err != nil {
		t.Fatal(err)
	}
}

// daemonize starts a proper daemon: a subshell forks it and exits, so it
// is orphaned, and setsid puts it in a session and process group of its
// own, away from the job's. It writes its pid to $1, then sleeps.
const daemonize = `(setsid sh -c 'echo $$ > "$1"; exec sleep 300' sh "$1" </dev/null >/dev/null 2>&1 &)
while [ ! -s "$1" ]; do sleep 0.01; done
`

func TestDaemonOfAFinishedJobIsKilledAndReaped(t *testing.T) {
	srv := redistest.Start(t)
	pidFile := filepath.Join(t.TempDir(), "daemon")
	startWorkerProcess(t, srv, map[string][]string{
		"Daemon": {"sh", "-c", daemonize + "exit 0", "sh", pidFile},
	})
	pushJob(t, srv, `{"class":"Daemon","args":[]}`)
	daemon := testutil.WatchPIDFile(t, pidFile)
	testutil.Eventually(t, 10*time.Second, "the job to succeed", func() bool {
		return srv.Client().Get(bg, "resque:stat:processed").Val() == "1"
	})
	testutil.Eventually(t, 5*time.Second, fmt.Sprintf("the daemon pid %d to be killed and reaped", daemon.PID), daemon.Gone)
}

func TestWorkerTerminatedMidJobLeavesNothingOfTheJob(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	daemonFile, childFile, jobFile := filepath.Join(dir, "daemon"), filepath.Join(dir, "child"), filepath.Join(dir, "job")
	w := startWorkerProcess(t, srv, map[string][]string{
		"Busy": {"sh", "-c", daemonize + `sleep 300 & echo $! > "$2"; echo $$ > "$3"; wait`, "sh", daemonFile, childFile, jobFile},
	})
	pushJob(t, srv, `{"class":"Busy","args":[]}`)
	daemon := testutil.WatchPIDFile(t, daemonFile)
	child := testutil.WatchPIDFile(t, childFile)
	job := testutil.WatchPIDFile(t, jobFile)
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the worker to exit after TERM", w.exited)
	for _, p := range []struct {
		what string
		p    testutil.Proc
	}{{"job", job}, {"job's background child", child}, {"daemon", daemon}} {
		if !p.p.Gone() {
			t.Errorf("the %s %s outlived its worker", p.what, p.p)
		}
	}
}
