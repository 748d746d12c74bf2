package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
)

// registered counts the built-in workers of queues registered in Resque's
// workers set whose process is alive: the workers serving the list, at the
// moment the set was read.
//
// The processes are looked at after that read, and a loaded host can put
// a roll's whole hand-over between the two (GOMAXPROCS=1 under two CPU
// hogs counted 2 of 3 in TestHUPRollsBuiltinWorkersAndQuitMidRoll: an old
// worker gone, its replacement not yet in the set read). So the set is
// read again after the look: a member found dead then that has left the
// set unregistered itself, which a worker does before it exits, so it was
// alive when the set was first read. A dead member still in the set is a
// stale registration, not counted.
func registered(ctx context.Context, rdb *redis.Client, queues string) (int, error) {
	host, _ := os.Hostname()
	ids, err := rdb.SMembers(ctx, "resque:workers").Result()
	if err != nil {
		return 0, err
	}
	var dead []string
	n := 0
	for _, id := range ids {
		parts := strings.SplitN(id, ":", 3)
		if len(parts) != 3 || parts[0] != host || parts[2] != queues {
			continue
		}
		pid, err := strconv.Atoi(parts[1])
		switch {
		case err != nil:
		case alive(pid):
			n++
		default:
			dead = append(dead, id)
		}
	}
	if len(dead) == 0 {
		return n, nil
	}
	still, err := rdb.SMembers(ctx, "resque:workers").Result()
	if err != nil {
		return 0, err
	}
	for _, id := range dead {
		if !slices.Contains(still, id) {
			n++
		}
	}
	return n, nil
}

// sampleRegistered records, every 50 ms, the least number of registered
// workers of queues; the returned func stops sampling and returns it (it
// also stops at the end of the test).
func sampleRegistered(t *testing.T, rdb *redis.Client, queues string) (finish func() int) {
	stop, done := make(chan struct{}), make(chan struct{})
	least := 1 << 30
	var sampleErr error
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if n, err := registered(context.Background(), rdb, queues); err != nil {
				sampleErr = err
			} else {
				least = min(least, n)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	finish = func() int {
		once.Do(func() { close(stop); <-done })
		if sampleErr != nil {
			t.Errorf("sampling Redis: %v", sampleErr)
		}
		return least
	}
	t.Cleanup(func() { finish() })
	return finish
}

func workerPids(st *poolfs.State, queues string) []int {
	var pids []int
	for _, w := range st.Workers {
		if w.Queues == queues && w.State != poolfs.WorkerStopping {
			pids = append(pids, w.PID)
		}
	}
	slices.Sort(pids)
	return pids
}

func settledWith(t *testing.T, p poolfs.Paths, rdb *redis.Client, want map[string]int) *poolfs.State {
	t.Helper()
	var st *poolfs.State
	waitFor(t, 30*time.Second, fmt.Sprintf("workers %v running and registered", want), func() bool {
		var err error
		if st, err = poolfs.ReadState(p.State); err != nil || !st.Settled() {
			return false
		}
		for q, n := range want {
			if r, err := registered(context.Background(), rdb, q); err != nil || r != n || len(workerPids(st, q)) != n {
				return false
			}
		}
		return true
	})
	return st
}

// restart --batch 1 on 4 built-in workers while 200 jobs stream in:
// sampled every 50 ms, Redis never shows fewer than 4 registered live
// workers; all 4 are replaced, the other queue list's worker is not, and
// every job is processed once, none failed.
func TestRestartBuiltinWorkersWithoutDip(t *testing.T) {
	p, q, e := recyclePool(t, "rollb", "", "  foo: 4\n  bar: 1\n")
	rdb := redisOf(t, p)
	before := settledWith(t, p, rdb, map[string]int{"foo": 4, "bar": 1})

	least := sampleRegistered(t, rdb, "foo")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		job, _ := queue.EncodePayload("Poolctl::Sleep", []any{20})
		for i := 0; i < 200; i++ {
			if err := q.Enqueue(context.Background(), "foo", job); err != nil {
				t.Errorf("enqueue: %v", err)
				return
			}
			time.Sleep(10 * time.Millisecond) // a steady stream over the roll
		}
	}()
	res := e.run("", "restart", "rollb", "foo", "--batch", "1")
	wg.Wait()
	after := settledWith(t, p, rdb, map[string]int{"foo": 4, "bar": 1})
	if res.code != 0 || !strings.Contains(res.stdout, "restarted 4 workers (queues foo)") {
		t.Fatalf("poolctl restart: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, " of 4 replaced (batch 1)") {
		t.Errorf("no progress on stderr: %q", res.stderr)
	}
	if n := least(); n < 4 {
		t.Errorf("Redis showed %d registered workers of foo at one point of the roll; want never fewer than 4", n)
	}
	old, now := workerPids(before, "foo"), workerPids(after, "foo")
	for _, pid := range old {
		if slices.Contains(now, pid) {
			t.Errorf("worker[%d] was not replaced: %v -> %v", pid, old, now)
		}
	}
	if a, b := workerPids(before, "bar"), workerPids(after, "bar"); !slices.Equal(a, b) {
		t.Errorf("restart of foo replaced bar's worker: %v -> %v", a, b)
	}
	log := recycleLog(t, p)
	for _, pid := range old {
		if !strings.Contains(log, fmt.Sprintf("restart: worker[%d] replaced by worker[", pid)) {
			t.Errorf("the log does not say what replaced worker[%d]", pid)
		}
	}
	var sum *queue.Summary
	waitFor(t, 60*time.Second, "200 jobs processed", func() bool {
		var err error
		sum, err = q.Summarize(context.Background())
		return err == nil && sum.Processed+sum.Failed >= 200 && sum.Queues["foo"] == 0
	})
	if sum.Processed != 200 || sum.Failed != 0 {
		t.Errorf("processed %d, failed %d; want 200 and 0", sum.Processed, sum.Failed)
	}
}

// --batch 2 and restart! through the shell and the CLI; usage mistakes
// exit 2 and change nothing, refusals exit 1.
func TestRestartBatchNowAndErrors(t *testing.T) {
	p, _, e := recyclePool(t, "rollc", "", "  foo: 4\n")
	rdb := redisOf(t, p)
	st := settledWith(t, p, rdb, map[string]int{"foo": 4})

	least := sampleRegistered(t, rdb, "foo")
	res := e.run("", "restart", "rollc", "--batch=2")
	if res.code != 0 || !strings.Contains(res.stdout, "restarted 4 workers") {
		t.Fatalf("restart --batch=2: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if n := least(); n < 4 {
		t.Errorf("Redis showed %d registered workers during restart --batch 2", n)
	}
	st2 := settledWith(t, p, rdb, map[string]int{"foo": 4})
	if r := st2.Restart; r == nil || r.Batch != 2 || r.Replaced != 4 {
		t.Errorf("state shows restart %+v, want batch 2 with 4 replaced", r)
	}
	for _, pid := range workerPids(st, "foo") {
		if slices.Contains(workerPids(st2, "foo"), pid) {
			t.Errorf("--batch 2 did not replace worker[%d]", pid)
		}
	}

	res = e.run("restart!\n", "attach", "rollc")
	if res.code != 0 || !strings.Contains(res.stdout, "restarted 4 workers") {
		t.Fatalf("restart! in a script: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	st3 := settledWith(t, p, rdb, map[string]int{"foo": 4})
	for _, pid := range workerPids(st2, "foo") {
		if slices.Contains(workerPids(st3, "foo"), pid) {
			t.Errorf("restart! did not replace worker[%d]", pid)
		}
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"restart", "rollc", "--batch", "0"}, 2, `--batch "0": want a whole number of at least 1`},
		{[]string{"restart", "rollc", "--bogus"}, 2, "unknown flag --bogus"},
		{[]string{"restart"}, 2, "the pool NAME comes first"},
		{[]string{"restart", "rollc", "nope"}, 1, `restart refused: no queue list "nope" in the pool (it has: foo)`},
		{[]string{"restart", "nosuchpool"}, 1, "nosuchpool: the master is not running"},
	} {
		res := e.run("", c.args...)
		if res.code != c.code || !strings.Contains(res.stderr, c.want) {
			t.Errorf("poolctl %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), res.code, res.stderr, c.code, c.want)
		}
	}
	if got := workerPids(settledWith(t, p, rdb, map[string]int{"foo": 4}), "foo"); !slices.Equal(got, workerPids(st3, "foo")) {
		t.Errorf("refused restarts changed the workers: %v -> %v", workerPids(st3, "foo"), got)
	}
}

// redisOf is a client of the Redis the pool's master runs against.
func redisOf(t *testing.T, p poolfs.Paths) *redis.Client {
	t.Helper()
	url := poolfs.Pool{Paths: p}.RedisURL()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redis.url %q: %v", url, err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// A HUP that changes what reaches built-in workers (job_timeout) rolls
// them: Redis never shows fewer registered workers than desired. QUIT in
// the middle of a roll leaves no process behind.
func TestHUPRollsBuiltinWorkersAndQuitMidRoll(t *testing.T) {
	p, _, _ := recyclePool(t, "rollh", "job_timeout: 5m\n", "  foo: 3\n")
	rdb := redisOf(t, p)
	before := settledWith(t, p, rdb, map[string]int{"foo": 3})
	cfg, err := os.ReadFile(before.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(before.ConfigPath, []byte(strings.Replace(string(cfg), "job_timeout: 5m", "job_timeout: 6m", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	least := sampleRegistered(t, rdb, "foo")
	if err := syscall.Kill(before.PID, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var after *poolfs.State
	waitFor(t, 30*time.Second, "the HUP's roll to end", func() bool {
		after = settledWith(t, p, rdb, map[string]int{"foo": 3})
		return after.Restart != nil && after.Restart.Reason == "command changed" && after.Restart.State == poolfs.RestartDone
	})
	if n := least(); n < 3 {
		t.Errorf("Redis showed %d registered workers of foo after the HUP; want never fewer than 3", n)
	}
	for _, pid := range workerPids(before, "foo") {
		if slices.Contains(workerPids(after, "foo"), pid) {
			t.Errorf("worker[%d] still runs the old job_timeout", pid)
		}
	}

	// QUIT while a restart's replacement is starting.
	if err := poolfs.WriteRestartRequest(p.RestartRequest, poolfs.RestartRequest{ID: "q", Batch: 2}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(after.PID, syscall.SIGPWR); err != nil {
		t.Fatal(err)
	}
	var mid *poolfs.State
	waitFor(t, 10*time.Second, "a replacement starting", func() bool {
		mid, err = poolfs.ReadState(p.State)
		if err != nil {
			return false
		}
		for _, w := range mid.Workers {
			if w.Roll == "new" {
				return true
			}
		}
		return false
	})
	if err := syscall.Kill(mid.PID, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	pids := []int{mid.PID}
	for _, w := range mid.Workers {
		pids = append(pids, w.PID)
	}
	waitFor(t, 20*time.Second, "master and workers gone", func() bool {
		return !slices.ContainsFunc(pids, alive)
	})
	if n, err := registered(context.Background(), rdb, "foo"); err != nil || n != 0 {
		t.Errorf("%d workers still registered after QUIT (%v)", n, err)
	}
}

// restart and restart! of one queue list return once that list is
// replaced, though another list of the pool never settles (it
// crash-loops); restart! of the crash-looping list says why it failed.
func TestRestartIgnoresOtherListsAndReportsCrashLoop(t *testing.T) {
	e := newShellEnv(t)
	e.reap("rollx")
	cfg := filepath.Join(t.TempDir(), "pool.yml")
	body := `workers:
  foo: 2
  bad:
    count: 1
    command: [sh, -c, "exit 4"]
command: [sleep, "1000"]
start_secs: 300ms
start_retries: 100000
backoff_max: 200ms
term_timeout: 3s
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.paths("rollx")
	e.startMaster(t, "-c", cfg, "--name", "rollx", "--log", p.Log)
	var st *poolfs.State
	waitFor(t, 20*time.Second, "foo running, bad backing off", func() bool {
		var err error
		st, err = poolfs.ReadState(p.State)
		return err == nil && len(workerPids(st, "foo")) == 2 && slices.ContainsFunc(st.Workers, func(w poolfs.WorkerState) bool {
			return w.Queues == "foo" && w.State == poolfs.WorkerRunning
		}) && !st.Settled()
	})
	for _, args := range [][]string{{"restart", "rollx", "foo"}, {"restart", "rollx", "foo", "--now"}} {
		res := e.run("", args...)
		if res.code != 0 || !strings.Contains(res.stdout, "restarted 2 workers (queues foo)") {
			t.Errorf("poolctl %s: exit %d\n%s\n%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
		}
	}
	res := e.run("", "restart", "rollx", "bad", "--now")
	if res.code != 1 || !strings.Contains(res.stderr, "restart!: queues bad: backoff: ") || !strings.Contains(res.stderr, "exit 4") {
		t.Errorf("restart --now of a crash-looping list: exit %d, stderr %q; want exit 1 and the reason", res.code, res.stderr)
	}
}
