package worker

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/queue"
)

// stats is the stats hash of queue q, numbers parsed.
func (h *harness) stats(q string) map[string]int64 {
	h.t.Helper()
	raw, err := h.rdb.HGetAll(bg, h.q.Keys().Stats(q)).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	out := make(map[string]int64, len(raw))
	for f, v := range raw {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			h.t.Fatalf("stats field %q = %q, not an integer", f, v)
		}
		out[f] = n
	}
	return out
}

// buckets sums the bucket fields of stat ("run" or "wait"), for class
// (run only; "" = every class).
func buckets(st map[string]int64, stat, class string) (n int64) {
	for f, v := range st {
		s, c, b := queue.ParseStatField(f)
		if s == stat && b >= 0 && (class == "" || c == class) {
			n += v
		}
	}
	return n
}

// N jobs of several classes, byte-identical payloads among them, through
// two built-in workers on a queue whose name has ':', '/' and non-ASCII
// characters: processed = N, failed = the failures, and the run buckets
// sum to N overall and per class.
func TestWorkersRecordEveryJobsTiming(t *testing.T) {
	srv := redistest.Start(t)
	q := "jobs:ünï/✓"
	h := startWorker(t, srv, Config{Queues: []string{q}, PID: 9001})
	startWorker(t, srv, Config{Queues: []string{q}, PID: 9002})
	const noops, sleeps, fails = 150, 12, 9
	var payloads []string
	for i := 0; i < noops; i++ {
		payloads = append(payloads, `{"class":"Poolctl::Noop","args":[]}`) // all identical
	}
	for i := 0; i < sleeps; i++ {
		payloads = append(payloads, `{"class":"Poolctl::Sleep","args":[30]}`)
	}
	for i := 0; i < fails; i++ {
		payloads = append(payloads, fmt.Sprintf(`{"class":"Poolctl::Fail","args":["no %d"]}`, i))
	}
	h.push(q, payloads...)
	n := int64(len(payloads))
	testutil.Eventually(t, 30*time.Second, "every job to be recorded", func() bool {
		return h.stat("resque:stat:processed") == strconv.FormatInt(n, 10)
	})
	st := h.stats(q)
	if st["processed"] != n || st["failed"] != fails || st["failed Poolctl::Fail"] != fails {
		t.Errorf("processed %d, failed %d, failed Poolctl::Fail %d; want %d, %d, %d",
			st["processed"], st["failed"], st["failed Poolctl::Fail"], n, fails, fails)
	}
	if got := buckets(st, "run", ""); got != n {
		t.Errorf("run buckets sum to %d, want %d: %v", got, n, st)
	}
	for class, want := range map[string]int64{ClassNoop: noops, ClassSleep: sleeps, ClassFail: fails} {
		if got := buckets(st, "run", class); got != want {
			t.Errorf("%s: %d jobs in its buckets, want %d", class, got, want)
		}
	}
	// The sleeps ran for at least their 30 ms each, by the worker's
	// monotonic clock, and none of them fell in a bucket below 30 ms.
	if us := st["run_us "+ClassSleep]; us < sleeps*30_000 || us > sleeps*5_000_000 {
		t.Errorf("run_us %s = %d, want about %d", ClassSleep, us, sleeps*30_000)
	}
	for i := 0; i <= queue.Bucket(20*time.Millisecond); i++ {
		if v := st[queue.ClassField(queue.BucketField("run", i), ClassSleep)]; v != 0 {
			t.Errorf("%d sleeps of 30 ms recorded in bucket %d (≤ %s)", v, i, queue.Buckets[i])
		}
	}
	// No payload carried enqueued_at: no wait recorded.
	if w := buckets(st, "wait", ""); w != 0 || st["wait_us"] != 0 {
		t.Errorf("wait recorded for jobs without enqueued_at: %v", st)
	}
	if keys := h.rdb.Keys(bg, "resque:poolctl:stats:*").Val(); len(keys) != 1 {
		t.Errorf("stats keys %q, want only the queue's", keys)
	}
}

// enqueued_at: a float (Sidekiq's) and an integer are measured, from the
// reservation; a string, null, a time in the future and garbage are not;
// a payload the worker cannot run still has its wait and its class
// recorded when it has them, and (unknown) when it has no class.
func TestWorkerMeasuresWaitFromEnqueuedAt(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"w"}, Jobs: map[string][]string{"Mod::Some Job": {"true"}}})
	h.w.Pause()
	testutil.Eventually(t, 10*time.Second, "the worker to park", h.w.parked.Load)
	now := time.Now()
	stamp := func(d time.Duration) string { return queue.FormatEnqueuedAt(now.Add(-d)) }
	h.push("w",
		`{"class":"Mod::Some Job","args":[],"enqueued_at":`+stamp(3*time.Second)+`}`,                // wait_b11 (2–5 s)
		`{"class":"Poolctl::Noop","args":[],"enqueued_at":`+strconv.FormatInt(now.Unix()-7, 10)+`}`, // wait_b12 (5–10 s)
		`{"class":"Poolctl::Noop","args":[],"enqueued_at":"`+stamp(time.Second)+`"}`,
		`{"class":"Poolctl::Noop","args":[],"enqueued_at":null}`,
		`{"class":"Poolctl::Noop","args":[],"enqueued_at":`+stamp(-time.Hour)+`}`,
		`{"class":"Poolctl::Noop","args":[],"enqueued_at":-12}`,
		`{"class":"Poolctl::Noop","args":[],"enqueued_at":{"t":1}}`,
		`{"class":"Poolctl::Noop","args":[]}`,
		`{"class":"Poolctl::Noop","args":"bad","enqueued_at":`+stamp(30*time.Millisecond)+`}`, // BadPayload, class and wait known
		`{"class":42,"enqueued_at":`+stamp(30*time.Millisecond)+`}`,                           // (unknown) class
		`not json at all`,
	)
	h.w.Resume()
	testutil.Eventually(t, 10*time.Second, "11 jobs recorded", func() bool { return h.stat("resque:stat:processed") == "11" })
	// Each wait is its stamp's age plus up to late: the time from the
	// stamps to the last job's reservation (a loaded host stretches it).
	late := time.Since(now)
	st := h.stats("w")
	if w := buckets(st, "wait", ""); w != 4 {
		t.Errorf("%d waits recorded, want 4 (float, integer, two bad payloads): %v", w, st)
	}
	// 3 s and 7–8 s; the two 30 ms waits fall at or below 30 ms + late
	// (500 ms at least: the bucket bound a quiet host meets).
	shortBound := max(500*time.Millisecond, 30*time.Millisecond+late)
	short := int64(0)
	for i := 0; i <= queue.Bucket(shortBound); i++ {
		short += st[queue.BucketField("wait", i)]
	}
	if late < 2*time.Second && (st["wait_b11"] != 1 || st["wait_b12"] != 1) {
		t.Errorf("wait_b11 %d, wait_b12 %d; want 1 and 1 (%v)", st["wait_b11"], st["wait_b12"], st)
	}
	if short != 2 && shortBound < 2*time.Second {
		t.Errorf("waits ≤ %s: %d, want 2 (%v)", shortBound, short, st)
	}
	lo, hi := int64(10_060_000), int64(11_060_000)+4*late.Microseconds()
	if us := st["wait_us"]; us < lo || us > hi {
		t.Errorf("wait_us = %d, want %d–%d: 3 s + 7–8 s + 2 × 30 ms, each plus up to %s", us, lo, hi, late)
	}
	for class, want := range map[string]int64{"Mod::Some Job": 1, ClassNoop: 8, queue.UnknownClass: 2} {
		if got := buckets(st, "run", class); got != want {
			t.Errorf("class %q: %d jobs, want %d (%v)", class, got, want, st)
		}
	}
	if st["failed"] != 3 || st["failed (unknown)"] != 2 || st["failed Poolctl::Noop"] != 1 {
		t.Errorf("failed %d, failed (unknown) %d, failed Poolctl::Noop %d; want 3, 2, 1", st["failed"], st["failed (unknown)"], st["failed Poolctl::Noop"])
	}
	if strings.Contains(h.out.String(), "panic") {
		t.Errorf("worker output mentions a panic:\n%s", h.out.String())
	}
}

// A worker stopped mid-job (TERM: the job is killed and goes back to its
// queue unrecorded, as when the master requeues a crashed worker's jobs)
// leaves no trace in the stats; the next worker runs the same job to the
// end and it is counted once, with that run's time.
func TestInterruptedJobIsTimedOnceWhenItFinallyRuns(t *testing.T) {
	srv := redistest.Start(t)
	marker := t.TempDir() + "/ran-once"
	// The first run hangs; the second finishes at once.
	crashy := map[string][]string{"Crashy": {"sh", "-c", `[ -e "$1" ] && exit 0; touch "$1"; exec sleep 100`, "sh", marker}}
	first := startWorker(t, srv, Config{Queues: []string{"crash"}, PID: 9101, Jobs: crashy})
	first.push("crash", `{"class":"Crashy","args":[]}`)
	testutil.Eventually(t, 10*time.Second, "the first run to start", func() bool { return first.running() && fileExists(marker) })
	first.w.Terminate()
	if err := first.wait(); err != nil {
		t.Fatal(err)
	}
	if n := first.rdb.LLen(bg, "resque:queue:crash").Val(); n != 1 {
		t.Fatalf("queue holds %d jobs after TERM, want the job back", n)
	}
	if st := first.stats("crash"); len(st) != 0 {
		t.Fatalf("an interrupted job was recorded: %v", st)
	}
	second := startWorker(t, srv, Config{Queues: []string{"crash"}, PID: 9102, Jobs: crashy})
	testutil.Eventually(t, 10*time.Second, "the job to finish", func() bool { return second.stat("resque:stat:processed") == "1" })
	st := second.stats("crash")
	if st["processed"] != 1 || buckets(st, "run", "Crashy") != 1 || st["run_us Crashy"] > 5_000_000 {
		t.Errorf("stats = %v, want one Crashy run, the short one", st)
	}
}

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }
