package worker

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
)

// batchQueue is 40 numbered Noop jobs, one Sleep of ms with a marker
// (job 41), then 200 more numbered Noops: deep enough that the Sleep
// arrives inside a batch, not at its head (the first job is reserved
// alone, then batches of 16 follow: 2–17, 18–33, 34–49).
func batchQueue(h *harness, sleepMS int) {
	h.t.Helper()
	var ps []string
	for i := 1; i <= 241; i++ {
		if i == 41 {
			ps = append(ps, fmt.Sprintf(`{"class":"Poolctl::Sleep","args":[%d],"id":"marker"}`, sleepMS))
			continue
		}
		ps = append(ps, fmt.Sprintf(`{"class":"Poolctl::Noop","args":[%d]}`, i))
	}
	h.push("foo", ps...)
}

// sleeping waits until the marked Sleep runs, and checks it runs inside
// a batch: Resque's record shows it, and the rest of its batch waits in
// flight behind it.
func (h *harness) sleeping() {
	h.t.Helper()
	h.eventually("the marked Sleep job to run", func() bool {
		return h.w.busy() && strings.Contains(h.stat("resque:worker:"+h.w.ID()), `"marker"`)
	})
	var rec struct {
		Queue   string          `json:"queue"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal([]byte(h.stat("resque:worker:"+h.w.ID())), &rec); err != nil || rec.Queue != "foo" || !strings.Contains(string(rec.Payload), `"Poolctl::Sleep"`) {
		h.t.Fatalf("worker record %q (%v) while the Sleep runs", h.stat("resque:worker:"+h.w.ID()), err)
	}
	if n := h.rdb.LLen(bg, "resque:poolctl:inflight:"+h.w.ID()+":foo").Val(); n < 2 {
		h.t.Fatalf("%d job(s) in flight while the Sleep runs: it was not inside a batch", n)
	}
}

// head returns the first payload of the queue.
func (h *harness) head() string { return h.rdb.LIndex(bg, "resque:queue:foo", 0).Val() }

// conserved checks that every job was either finished once or is back
// in the queue: processed + queued = 241, nothing in flight.
func (h *harness) conserved(processed int) {
	h.t.Helper()
	if got := h.stat("resque:stat:processed"); got != fmt.Sprint(processed) {
		h.t.Errorf("processed %s, want %d", got, processed)
	}
	if q := h.rdb.LLen(bg, "resque:queue:foo").Val(); int(q)+processed != 241 {
		h.t.Errorf("queued %d + processed %d != 241: a job was lost or run twice", q, processed)
	}
	if n := h.rdb.LLen(bg, "resque:poolctl:inflight:"+h.w.ID()+":foo").Val(); n != 0 {
		h.t.Errorf("%d job(s) left in flight", n)
	}
}

// QUIT inside a batch: the running job finishes, the jobs before it are
// recorded, the batch's unstarted jobs go back to the head of the queue
// in their order.
func TestQuitInsideABatchGivesBackTheRestInOrder(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"foo"}})
	batchQueue(h, 500)
	h.sleeping()
	h.w.Quit()
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	h.conserved(41)
	if got := h.head(); got != `{"class":"Poolctl::Noop","args":[42]}` {
		t.Errorf("queue head %s, want job 42, the one after the Sleep", got)
	}
}

// TERM inside a batch: the running job goes back too, first.
func TestTerminateInsideABatchRequeuesTheRunningJobFirst(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"foo"}})
	batchQueue(h, 30000)
	h.sleeping()
	h.w.Terminate()
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	h.conserved(40)
	if got := h.head(); !strings.Contains(got, `"marker"`) {
		t.Errorf("queue head %s, want the interrupted Sleep", got)
	}
	if got := h.rdb.LIndex(bg, "resque:queue:foo", 1).Val(); got != `{"class":"Poolctl::Noop","args":[42]}` {
		t.Errorf("second in queue %s, want job 42", got)
	}
}

// A pause inside a batch: the running job finishes, the rest goes back
// at once (other workers may take it), and a resume runs everything.
func TestPauseInsideABatchGivesBackTheRest(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"foo"}})
	batchQueue(h, 500)
	h.sleeping()
	h.w.Pause()
	h.eventually("the paused worker to park", h.w.parked.Load)
	h.conserved(41)
	if got := h.head(); got != `{"class":"Poolctl::Noop","args":[42]}` {
		t.Errorf("queue head %s, want job 42", got)
	}
	h.w.Resume()
	h.eventually("every job to run after the resume", func() bool { return h.stat("resque:stat:processed") == "241" })
	h.conserved(241)
}

// max_jobs caps the batches: the worker finishes exactly MaxJobs jobs and
// leaves the rest queued.
func TestMaxJobsCapsBatches(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"foo"}, MaxJobs: 25})
	batchQueue(h, 1)
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	h.conserved(25)
}

// A failure inside a batch is recorded as one (failure record, counters)
// and the batch goes on.
func TestFailureInsideABatch(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"foo"}})
	var ps []string
	for i := 1; i <= 300; i++ {
		class := "Poolctl::Noop"
		if i == 40 || i == 41 {
			class = "Poolctl::Fail"
		}
		ps = append(ps, fmt.Sprintf(`{"class":%q,"args":[]}`, class))
	}
	h.push("foo", ps...)
	h.eventually("the queue to drain", func() bool { return h.stat("resque:stat:processed") == "300" })
	if f := h.stat("resque:stat:failed"); f != "2" || len(h.failures()) != 2 {
		t.Errorf("failed %s with %d records, want 2", f, len(h.failures()))
	}
	if st := h.stats("foo"); st["processed"] != 300 || st["failed"] != 2 {
		t.Errorf("stats hash %v, want processed 300, failed 2", st)
	}
}

// Redis frozen (SIGSTOP) past the client's timeout while a worker drains
// byte-identical jobs in batches: replies of batched acknowledgements are
// lost and sent again; every job is counted exactly once.
func TestFrozenRedisDuringBatchesCountsEachJobOnce(t *testing.T) {
	srv := redistest.Start(t)
	h := faultWorker(t, srv, Config{Queues: []string{"foo"}})
	const n = 20000
	ps := make([]string, n)
	for i := range ps {
		ps[i] = `{"class":"Poolctl::Noop","args":[]}`
	}
	h.push("foo", ps...)
	// Freeze it again and again, until a batch's acknowledgements (not
	// only a reserve) lost their reply, or 12 times.
	processed := func() int { p, _ := h.rdb.Get(bg, "resque:stat:processed").Int(); return p }
	for i := 0; i < 12 && !strings.Contains(h.out.String(), "job outcome(s)"); i++ {
		from := processed()
		testutil.Eventually(t, 10*time.Second, "the drain to be under way", func() bool { return processed() > from+150 })
		if processed() > n-500 {
			break
		}
		stalls := strings.Count(h.out.String(), "Redis unavailable")
		if err := syscall.Kill(srv.PID(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "the worker to notice the stall", func() bool {
			return strings.Count(h.out.String(), "Redis unavailable") > stalls
		})
		if err := srv.Thaw(); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 30*time.Second, "the queue to drain", func() bool {
		return h.rdb.LLen(bg, "resque:queue:foo").Val() == 0 && !h.running()
	})
	testutil.Eventually(t, 10*time.Second, "nothing in flight", func() bool {
		return h.rdb.LLen(bg, "resque:poolctl:inflight:"+h.w.ID()+":foo").Val() == 0
	})
	t.Logf("worker output:\n%s", h.out.String())
	if got := h.stat("resque:stat:processed"); got != fmt.Sprint(n) {
		t.Errorf("processed %s, want %d: a job was counted twice or lost", got, n)
	}
	if st := h.stats("foo"); st["processed"] != n || buckets(st, "run", "Poolctl::Noop") != n {
		t.Errorf("stats hash %v, want processed %d", st, n)
	}
}
