package worker

import (
	"encoding/json"
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
	"github.com/redis/go-redis/v9"
)

// These tests try hardest to break the worker's delivery guarantees:
// Redis stalls longer than the client timeout, empty restarts, and
// payloads that defeat identity.

// faultWorker starts a worker whose bookkeeping client times out after
// 300 ms (or the given timeout) and never retries inside go-redis, as
// production workers are configured, so a stalled Redis loses replies.
func faultWorker(t *testing.T, srv *redistest.Server, cfg Config, timeout ...time.Duration) *harness {
	t.Helper()
	d := 300 * time.Millisecond
	if len(timeout) > 0 {
		d = timeout[0]
	}
	fast := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: d,
		WriteTimeout: d, DialTimeout: d, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = fast.Close() })
	blocking := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1, MaxRetries: -1,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: DefaultBlockTimeout + 5*time.Second})
	return startWorkerWith(t, srv, cfg, fast, blocking)
}

func lineCount(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// processState is the state letter of /proc/PID/stat ('T' when stopped).
func processState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// Six byte-identical payloads; the fourth job stops redis-server itself
// (SIGSTOP) just before it ends, so the worker's ack-and-reserve of job 4
// times out while Redis still has it queued. When Redis resumes, the
// script runs (job 4 acked, job 5 reserved) and the worker retries the
// ack: that retry must not remove job 5, which has the same bytes.
func TestLostAckReplyNeverRemovesAnIdenticalJob(t *testing.T) {
	srv := redistest.Start(t)
	runs := filepath.Join(t.TempDir(), "runs")
	script := fmt.Sprintf(`echo run >> %s; if [ "$(wc -l < %s)" -eq 4 ]; then kill -STOP %d; fi`, runs, runs, srv.PID())
	h := faultWorker(t, srv, Config{Queues: []string{"foo"}, Jobs: map[string][]string{"Mark": {"sh", "-c", script}}})

	same := `{"class":"Mark","args":[]}`
	h.push("foo", same, same, same, same, same, same)

	testutil.Eventually(t, 10*time.Second, "job 4 to stop redis-server", func() bool {
		return lineCount(runs) >= 4 && processState(srv.PID()) == 'T'
	})
	testutil.Eventually(t, 10*time.Second, "the worker to notice the stall", func() bool {
		return strings.Contains(h.out.String(), "Redis unavailable")
	})
	if err := syscall.Kill(srv.PID(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "the queue and the in-flight list to empty", func() bool {
		inflight, _ := h.rdb.Keys(bg, "resque:poolctl:inflight:*").Result()
		busy := 0
		for _, k := range inflight {
			busy += int(h.rdb.LLen(bg, k).Val())
		}
		return h.rdb.LLen(bg, "resque:queue:foo").Val() == 0 && busy == 0 && !h.running()
	})
	if n := lineCount(runs); n != 6 {
		t.Fatalf("%d of 6 identical jobs ran; a retried ack removed a different job", n)
	}
	if got := h.stat("resque:stat:processed"); got != "6" {
		t.Errorf("stat:processed = %s, want 6", got)
	}
	// The timings too: the retried ack of job 4 added nothing.
	if st := h.stats("foo"); st["processed"] != 6 || buckets(st, "run", "Mark") != 6 {
		t.Errorf("stats hash = %v, want processed 6 and 6 Mark jobs in the run buckets", st)
	}
}

// A worker blocked in a long BLMOVE is paused; a job pushed after the
// pause must not run, and must be back in its queue.
func TestPausedWorkerPicksUpNothing(t *testing.T) {
	srv := redistest.Start(t)
	runs := filepath.Join(t.TempDir(), "runs")
	h := faultWorker(t, srv, Config{Queues: []string{"foo"}, BlockTimeout: 3 * time.Second,
		Jobs: map[string][]string{"Mark": {"sh", "-c", "echo run >> " + runs}}})
	testutil.Eventually(t, 5*time.Second, "the worker to block in BLMOVE", func() bool {
		clients := h.rdb.ClientList(bg).Val()
		return strings.Contains(clients, "cmd=blmove")
	})
	h.w.Pause()
	h.push("foo", `{"class":"Mark","args":[]}`)
	testutil.Eventually(t, 10*time.Second, "the paused worker to park with the job back in its queue", func() bool {
		return h.w.parked.Load() && h.rdb.LLen(bg, "resque:queue:foo").Val() == 1
	})
	if n := lineCount(runs); n != 0 {
		t.Fatalf("a paused worker ran %d job(s)", n)
	}
	if h.running() {
		t.Errorf("a paused worker records a current job")
	}
	h.w.Resume()
	testutil.Eventually(t, 10*time.Second, "the job to run after resume", func() bool { return lineCount(runs) == 1 })
}

// An idle worker whose Redis is stalled (SIGSTOP: connections hang rather
// than fail) must exit at once on QUIT, not sit out its stop timeout.
func TestIdleWorkerWithStalledRedisQuitsAtOnce(t *testing.T) {
	for _, stop := range []struct {
		name string
		fn   func(*Worker)
	}{{"QUIT", (*Worker).Quit}, {"TERM", (*Worker).Terminate}} {
		t.Run(stop.name, func(t *testing.T) {
			srv := redistest.Start(t)
			// The clients poolctl-worker uses: go-redis's 3 s read timeout
			// for bookkeeping, a long one for blocking waits.
			h := faultWorker(t, srv, Config{Queues: []string{"foo", "bar"}}, 3*time.Second)
			testutil.Eventually(t, 5*time.Second, "the worker to wait for jobs", func() bool {
				// A multi-queue worker waits on its notify lists (idle.go).
				return strings.Contains(h.rdb.ClientList(bg).Val(), "cmd=blpop")
			})
			if err := syscall.Kill(srv.PID(), syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond) // the stall is under way
			start := time.Now()
			stop.fn(h.w)
			select {
			case <-h.err:
				if took := time.Since(start); took > 1500*time.Millisecond {
					t.Errorf("worker took %s to stop", took)
				}
			case <-time.After(4 * time.Second):
				t.Fatalf("idle worker with a stalled Redis did not stop within 4s of %s", stop.name)
			}
			h.err <- nil // for the cleanup's wait
			_ = syscall.Kill(srv.PID(), syscall.SIGCONT)
		})
	}
}

// Redis restarts empty under a busy worker: the registration comes back
// within a heartbeat, and the next job's in-flight entry is in an index
// recovery can find.
func TestEmptyRedisRestartLosesNoRegistrationOrLaterJob(t *testing.T) {
	srv := redistest.Start(t) // no persistence
	h := faultWorker(t, srv, Config{Queues: []string{"foo"}, HeartbeatInterval: 200 * time.Millisecond})
	h.push("foo", `{"class":"Poolctl::Sleep","args":[800]}`)
	testutil.Eventually(t, 5*time.Second, "the first job to run", h.running)
	srv.Restart()
	rdb := srv.Client()
	testutil.Eventually(t, 5*time.Second, "the registration to come back", func() bool {
		return rdb.SIsMember(bg, "resque:workers", h.w.ID()).Val() &&
			rdb.Exists(bg, "resque:worker:"+h.w.ID()+":started", "resque:poolctl:identity:"+h.w.ID()).Val() == 2
	})
	if err := queue.New(rdb, "").Enqueue(bg, "foo", []byte(`{"class":"Poolctl::Sleep","args":[60000]}`)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the second job to be taken", func() bool {
		return rdb.LLen(bg, "resque:poolctl:inflight:"+h.w.ID()+":foo").Val() == 1
	})
	if got := rdb.SMembers(bg, "resque:poolctl:inflight-index:"+h.w.ID()).Val(); len(got) != 1 || got[0] != "foo" {
		t.Fatalf("in-flight index = %v after an empty restart; recovery could not find the job", got)
	}
	// Were the worker to die now, recovery would give the job back.
	n, err := queue.New(rdb, "").Requeue(bg, h.w.ID())
	if err != nil || n != 1 {
		t.Errorf("Requeue = %d, %v; want the in-flight job back", n, err)
	}
}

// Payloads Redis's Lua JSON accepts but JSON forbids are bad payloads;
// every record Ruby reads (failure records) stays valid JSON.
func TestLuaOnlyJSONIsABadPayload(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"foo"}})
	bad := []string{
		`{"class":"Poolctl::Noop","args":[NaN]}`,
		`{"class":"Poolctl::Noop","args":[Infinity]}`,
		`{"class":"Poolctl::Noop","args":[0x10]}`,
	}
	h.push("foo", bad...)
	h.eventually("3 failures", func() bool { return h.stat("resque:stat:failed") == "3" })
	raw := h.rdb.LRange(bg, "resque:failed", 0, -1).Val()
	for i, r := range raw {
		if !json.Valid([]byte(r)) {
			t.Errorf("failure record %d is not JSON: %s", i, r)
		}
	}
	for i, f := range h.failures() {
		if f.Exception != "Poolctl::BadPayload" {
			t.Errorf("failure %d: %s: %s, want Poolctl::BadPayload", i, f.Exception, f.Error)
		}
		var s string
		if err := json.Unmarshal(f.Payload, &s); err != nil || s != bad[i] {
			t.Errorf("failure %d payload = %s, want the raw payload as a JSON string", i, f.Payload)
		}
	}
}

// A command job that has exited 0 is done, even when TERM arrives while
// its output still drains (a leftover holds its stderr): it must be
// recorded as processed, not requeued to run again.
func TestJobThatExitedZeroBeforeTermIsNotRunAgain(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	runs, leftover := filepath.Join(dir, "runs"), filepath.Join(dir, "leftover.pid")
	script := fmt.Sprintf(`echo run >> %s; setsid sh -c 'echo $$ > %s; exec sleep 5' & sleep 0.2; exit 0`, runs, leftover)
	h := startWorker(t, srv, Config{Queues: []string{"foo"}, Jobs: map[string][]string{"Mark": {"sh", "-c", script}}})
	h.push("foo", `{"class":"Mark","args":[]}`)
	testutil.WatchPIDFile(t, leftover)
	testutil.Eventually(t, 5*time.Second, "the job to run", func() bool { return lineCount(runs) == 1 })
	time.Sleep(400 * time.Millisecond) // sh has exited 0; its output still drains
	h.w.Terminate()
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if q, p := h.rdb.LLen(bg, "resque:queue:foo").Val(), h.stat("resque:stat:processed"); q != 0 || p != "1" {
		t.Errorf("after TERM: queue holds %d, processed = %q; want the finished job recorded, not requeued", q, p)
	}
}

// Told to stop while Redis is down just after a job finished, the worker
// keeps trying to record the job for a moment: a Redis back within that
// grace records it, rather than leave it to run again.
func TestFinishedJobIsRecordedWhenRedisComesBackDuringStop(t *testing.T) {
	srv := redistest.Start(t, redistest.WithPersistence())
	runs := filepath.Join(t.TempDir(), "runs")
	script := fmt.Sprintf(`echo run >> %s; sleep 0.5`, runs)
	h := faultWorker(t, srv, Config{Queues: []string{"foo"}, Jobs: map[string][]string{"Mark": {"sh", "-c", script}}})
	h.push("foo", `{"class":"Mark","args":[]}`)
	testutil.Eventually(t, 5*time.Second, "the job to start", func() bool { return lineCount(runs) == 1 })
	srv.Process.Stop() // down before the job ends: its ack fails
	testutil.Eventually(t, 5*time.Second, "the ack to fail", func() bool {
		return strings.Contains(h.out.String(), "Redis unavailable")
	})
	h.w.Terminate()
	time.Sleep(700 * time.Millisecond) // attempts after the stop fail too
	srv.Restart()
	_ = h.wait()
	if q, p := h.rdb.LLen(bg, "resque:queue:foo").Val(), h.stat("resque:stat:processed"); q != 0 || p != "1" {
		t.Errorf("queue holds %d, processed = %q; want the finished job recorded", q, p)
	}
}
