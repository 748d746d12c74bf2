package worker

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
)

// addQueues declares n empty queues q000…, as a busy system has.
func addQueues(t *testing.T, srv *redistest.Server, n int) []string {
	t.Helper()
	names := make([]string, n)
	args := make([]any, n)
	for i := range names {
		names[i] = fmt.Sprintf("q%03d", i)
		args[i] = names[i]
	}
	if err := srv.Client().SAdd(bg, "resque:queues", args...).Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// scriptCalls is how many scripts Redis has run (EVALSHA and EVAL).
func scriptCalls(t *testing.T, h *harness) int64 {
	t.Helper()
	info := h.rdb.Info(bg, "commandstats").Val()
	var n int64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_eval:") {
			continue
		}
		_, rest, _ := strings.Cut(line, "calls=")
		v, _, _ := strings.Cut(rest, ",")
		c, _ := strconv.ParseInt(v, 10, 64)
		n += c
	}
	return n
}

// An idle `*` worker over many queues must not run the reserve script
// (whose cost grows with the queues) ten times a second: it waits on a
// notify list and polls rarely. It still takes a job pushed by poolctl's
// enqueue path at once, and a foreign RPUSH within IdleWaitMax.
func TestIdleStarWorkerOverManyQueuesIsCheapAndStillPicksUp(t *testing.T) {
	srv := redistest.Start(t)
	names := addQueues(t, srv, 300)
	h := startWorker(t, srv, Config{Queues: []string{"*"}})
	time.Sleep(2 * time.Second) // idle long enough to back off
	before, t0 := scriptCalls(t, h), time.Now()
	time.Sleep(3 * time.Second)
	rate := float64(scriptCalls(t, h)-before) / time.Since(t0).Seconds()
	// The old loop ran one script per 100 ms poll: ~10/s.
	if rate > 2.5 {
		t.Errorf("an idle * worker ran %.1f reserve scripts/s; want at most ~1 (one poll per IdleWaitMax)", rate)
	}
	t.Logf("idle: %.2f scripts/s over %d queues", rate, len(names))

	// poolctl's enqueue path wakes it at once.
	start := time.Now()
	h.push(names[150], `{"class":"Poolctl::Noop","args":[]}`)
	h.eventually("the enqueued job", func() bool { return h.stat("resque:stat:processed") == "1" })
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("a job pushed by poolctl's enqueue path waited %s (want ≤ 100 ms, 500 ms on a loaded host)", took)
	}

	// A foreign producer pushes no token: the poll finds it.
	time.Sleep(2 * time.Second)
	start = time.Now()
	h.rdb.RPush(bg, "resque:queue:"+names[299], `{"class":"Poolctl::Noop","args":[]}`)
	h.eventually("the foreign job", func() bool { return h.stat("resque:stat:processed") == "2" })
	if took := time.Since(start); took > DefaultIdleWaitMax+time.Second {
		t.Errorf("a foreign RPUSH waited %s; the documented cap is %s", took, DefaultIdleWaitMax)
	}
}

// A token for bar never delays the foo worker's job: each waits on its own
// queues' lists. With a long IdleWaitMax, only a token can wake them in
// time.
func TestNotifyTokensReachOnlyWorkersOfTheirQueue(t *testing.T) {
	srv := redistest.Start(t)
	cfg := func(qs ...string) Config {
		return Config{Queues: qs, IdleWaitMax: 6 * time.Second}
	}
	foo := startWorker(t, srv, cfg("foo", "foo2"))
	bar := startWorker(t, srv, cfg("bar", "bar2"))
	time.Sleep(1500 * time.Millisecond) // both idle, backed off
	for i := 0; i < 3; i++ {
		bar.push("bar", `{"class":"Poolctl::Sleep","args":[300]}`)
	}
	start := time.Now()
	foo.push("foo2", `{"class":"Poolctl::Noop","args":[]}`)
	foo.eventually("foo's job", func() bool { return foo.stat("resque:stat:processed:"+foo.w.ID()) == "1" })
	if took := time.Since(start); took > time.Second {
		t.Errorf("foo's job waited %s behind bar's tokens", took)
	}
	bar.eventually("bar's jobs", func() bool { return bar.stat("resque:stat:processed:"+bar.w.ID()) == "3" })
	if n := foo.stat("resque:stat:processed:" + foo.w.ID()); n != "1" {
		t.Errorf("the foo worker processed %s jobs, want 1", n)
	}
}

// Strict priority holds after an idle wake: when jobs land in a low and a
// high queue together, the high one is taken first, whichever token woke
// the worker.
func TestIdleWakeKeepsPriority(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"high", "low"}, IdleWaitMax: 6 * time.Second})
	time.Sleep(1500 * time.Millisecond)
	pipe := h.rdb.TxPipeline()
	pipe.RPush(bg, "resque:queue:low", `{"class":"Poolctl::Sleep","args":[500]}`)
	pipe.RPush(bg, "resque:queue:high", `{"class":"Poolctl::Sleep","args":[500]}`)
	pipe.RPush(bg, "resque:poolctl:notify:low", "1") // only low's token
	if _, err := pipe.Exec(bg); err != nil {
		t.Fatal(err)
	}
	h.eventually("a job taken", func() bool {
		return h.rdb.LLen(bg, "resque:queue:high").Val()+h.rdb.LLen(bg, "resque:queue:low").Val() < 2
	})
	if h.rdb.LLen(bg, "resque:queue:high").Val() != 0 || h.rdb.LLen(bg, "resque:queue:low").Val() != 1 {
		t.Errorf("the low job was taken before the high one")
	}
	h.eventually("both jobs", func() bool { return h.stat("resque:stat:processed") == "2" })
}

// QUIT ends an idle multi-queue worker at once: its wait on the notify
// list is abandoned (the blocking client is closed), not sat out.
func TestIdleMultiQueueQuitIsImmediate(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"a", "b", "*"}, IdleWaitMax: 6 * time.Second})
	h.eventually("worker waiting on the notify list", func() bool {
		return strings.Contains(h.rdb.ClientList(bg).Val(), "cmd=blpop")
	})
	time.Sleep(2 * time.Second) // backed off to a long wait
	start := time.Now()
	h.w.Quit()
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("idle QUIT took %s: the notify wait was sat out", took)
	}
}

// Redis restarting empty under an idle multi-queue worker: it notices,
// recovers, and takes new jobs.
func TestIdleMultiQueueWorkerSurvivesRedisRestartEmpty(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"a", "*"}})
	time.Sleep(1500 * time.Millisecond)
	h.srv.RestartEmpty()
	h.push("zz", `{"class":"Poolctl::Noop","args":[]}`)
	h.eventually("a job after the restart", func() bool { return h.stat("resque:stat:processed") == "1" })
}

// A pause reaches an idle multi-queue worker at once, not after its
// (backed-off) wait on the notify lists: it parks, and takes nothing.
func TestIdleMultiQueuePauseIsImmediate(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"a", "b"}, IdleWaitMax: 6 * time.Second})
	time.Sleep(2 * time.Second) // backed off to a long wait
	start := time.Now()
	h.w.Pause()
	h.eventually("the worker to park", h.w.parked.Load)
	if took := time.Since(start); took > time.Second {
		t.Errorf("an idle worker took %s to park", took)
	}
	h.push("b", `{"class":"Poolctl::Noop","args":[]}`)
	time.Sleep(300 * time.Millisecond)
	if h.stat("resque:stat:processed") != "" || h.rdb.LLen(bg, "resque:queue:b").Val() != 1 {
		t.Fatal("a paused worker took a job")
	}
	h.w.Resume()
	h.eventually("the job after resume", func() bool { return h.stat("resque:stat:processed") == "1" })
}
