package main

// End-to-end tests of pools on Redis's own distributed set-ups (issue 14
// §4): a 3-node Redis Cluster and a master + replica + sentinel, real
// servers on loopback ports.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/pool/poolfs"
)

// startDistributedPool writes a config of built-in workers on redisURL
// (body extends it), starts a master by hand and waits until its workers
// run.
func startDistributedPool(t *testing.T, e *shellEnv, name, redisURL, body string) (poolfs.Paths, int) {
	t.Helper()
	p, pid := startHandPool(t, e, name, fmt.Sprintf("redis: %q\nstart_secs: 100ms\nterm_timeout: 10s\nheartbeat_interval: 1s\n%s", redisURL, body))
	waitFor(t, 30*time.Second, "workers running", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && st.Settled() && len(st.Workers) == 4
	})
	return p, pid
}

// startHandPool writes config as pool name's config file and starts its
// master by hand, without waiting for anything; a failed test shows the
// end of the pool's log.
func startHandPool(t *testing.T, e *shellEnv, name, config string) (poolfs.Paths, int) {
	t.Helper()
	e.reap(name)
	cfg := filepath.Join(t.TempDir(), "pool.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.paths(name)
	t.Cleanup(func() {
		if b, err := os.ReadFile(p.Log); t.Failed() && err == nil {
			t.Logf("pool log (last 12 KB):\n%s", b[max(0, len(b)-12000):])
		}
	})
	master, _ := e.startMaster(t, "-c", cfg, "--name", name, "--log", p.Log)
	return p, master.Process.Pid
}

func readLog(t *testing.T, p poolfs.Paths) string {
	t.Helper()
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stopPool stops the master with QUIT and waits for it and its workers to
// be gone.
func stopPool(t *testing.T, p poolfs.Paths, pid int) {
	t.Helper()
	st, _ := poolfs.ReadState(p.State)
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	pids := []int{pid}
	if st != nil {
		pids = append(pids, pidsOfState(st)...)
	}
	waitFor(t, 30*time.Second, "the master and its workers to exit", func() bool {
		for _, p := range pids {
			if alive(p) {
				return false
			}
		}
		return true
	})
}

func pidsOfState(st *poolfs.State) []int {
	var pids []int
	for _, w := range st.Workers {
		pids = append(pids, w.PID)
	}
	return pids
}

// A pool of built-in workers on a 3-node Cluster, with the default
// namespace, drains 10,000 jobs enqueued by `poolctl enqueue -n`: the
// master says it uses the hash-tagged namespace {resque}: and publishes
// it; every key is Resque's, under that namespace (Ruby's
// Resque.redis.namespace = "{resque}" reads them); nothing says Redis is
// unavailable or refused a command. Before the namespace was decided in
// one place, every worker logged "Redis unavailable: … CROSSSLOT …"
// forever while enqueue reported success.
func TestClusterPoolDrainsWithRubyCompatibleKeys(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	e := newShellEnv(t)
	p, pid := startDistributedPool(t, e, "cl", cluster.URL(), "workers:\n  clq: 4\n")
	rdb := cluster.Client()
	ctx := context.Background()

	const n = 10000
	r := e.run("", "enqueue", "--redis", cluster.URL(), "-n", fmt.Sprint(n), "clq", "Poolctl::Noop", "{i}")
	if r.code != 0 || !strings.Contains(r.stdout, "enqueued 10000 job(s)") {
		t.Fatalf("enqueue: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitFor(t, 60*time.Second, "10,000 jobs processed", func() bool {
		got, _ := rdb.Get(ctx, "{resque}:stat:processed").Int()
		return got == n
	})
	if got := rdb.LLen(ctx, "{resque}:queue:clq").Val(); got != 0 {
		t.Errorf("{resque}:queue:clq holds %d jobs after the drain", got)
	}
	if !rdb.SIsMember(ctx, "{resque}:queues", "clq").Val() {
		t.Error("{resque}:queues does not name clq")
	}
	if got := rdb.SCard(ctx, "{resque}:workers").Val(); got != 4 {
		t.Errorf("{resque}:workers holds %d workers, want 4", got)
	}
	if got := rdb.HLen(ctx, "{resque}:workers:heartbeat").Val(); got != 4 {
		t.Errorf("{resque}:workers:heartbeat holds %d beats, want 4", got)
	}
	for _, id := range rdb.SMembers(ctx, "{resque}:workers").Val() {
		if rdb.Exists(ctx, "{resque}:worker:"+id+":started", "{resque}:stat:processed:"+id).Val() != 2 {
			t.Errorf("worker %s lacks Resque's started or per-worker processed key", id)
		}
	}
	if got := rdb.Get(ctx, "{resque}:stat:failed").Val(); got != "" && got != "0" {
		t.Errorf("{resque}:stat:failed = %s", got)
	}
	// Nothing was written outside the tagged namespace, on any node.
	var mu sync.Mutex
	var stray []string
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		keys, err := node.Keys(ctx, "*").Result()
		mu.Lock()
		defer mu.Unlock()
		for _, k := range keys {
			if !strings.HasPrefix(k, "{resque}:") {
				stray = append(stray, k)
			}
		}
		return err
	})
	if err != nil || len(stray) > 0 {
		t.Errorf("keys outside {resque}: %v (%v)", stray, err)
	}

	st, err := poolfs.ReadState(p.State)
	if err != nil || st.Namespace != "{resque}:" {
		t.Errorf("state.json namespace %q (%v), want {resque}:", st.Namespace, err)
	}
	r = e.run("status --json\nstatus\n", "attach", "cl")
	if m := lastJSON(t, r.stdout); m["namespace"] != "{resque}:" || m["processed"] != float64(n) {
		t.Errorf("status --json: namespace %v, processed %v; want {resque}: and %d\n%s%s", m["namespace"], m["processed"], n, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "namespace {resque}:)") {
		t.Errorf("status does not show the namespace:\n%s", r.stdout)
	}
	r = e.run("", "queues", "--redis", cluster.URL())
	if r.code != 0 || !strings.Contains(r.stdout, "processed 10000, failed 0") {
		t.Errorf("queues on the cluster: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A reload compares the namespace in force with the file's, tagged
	// the same way: nothing changed, so it applies and no worker restarts.
	before := fmt.Sprint(pidsOfState(st))
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the reload", func() bool {
		l := readLog(t, p)
		return strings.Contains(l, "reloaded configuration") || strings.Contains(l, "reload failed")
	})
	if st, err := poolfs.ReadState(p.State); err != nil || fmt.Sprint(pidsOfState(st)) != before {
		t.Errorf("workers after HUP: %v, want the same %s (%v)", pidsOfState(st), before, err)
	}

	stopPool(t, p, pid)
	log := readLog(t, p)
	if !strings.Contains(log, `namespace "resque:" has no hash tag`) || !strings.Contains(log, `using "{resque}:"`) {
		t.Errorf("the log does not say which namespace was chosen:\n%s", log)
	}
	for _, bad := range []string{"unavailable", "refused the command", "CROSSSLOT", "cannot", "reload failed"} {
		if strings.Contains(log, bad) {
			t.Errorf("the log says %q:\n%s", bad, log)
		}
	}
	if got := rdb.SCard(ctx, "{resque}:workers").Val(); got != 0 {
		t.Errorf("%d workers still registered after the pool stopped", got)
	}
}

// A pool on Sentinel survives its master's SIGKILL mid-run: the sentinel
// promotes the replica, the workers (the same processes), the master and
// enqueue carry on against it, and every job runs at least once: the ids
// the job command recorded outside Redis cover every job, the queue is
// empty, nothing is in flight or failed, and the workers are registered
// on the new master.
func TestSentinelFailoverMidRunLosesNothing(t *testing.T) {
	s := redistest.StartSentinel(t)
	e := newShellEnv(t)
	ids := filepath.Join(t.TempDir(), "ids")
	// Each job appends its args (one short line: O_APPEND keeps lines
	// whole) to ids, outside Redis, which the failover cannot roll back.
	body := fmt.Sprintf("jobs:\n  Record: [\"sh\", \"-c\", \"echo \\\"$POOLCTL_ARGS\\\" >> %s\"]\nworkers:\n  sq: 4\n", ids)
	p, pid := startDistributedPool(t, e, "sn", s.URL(), body)
	st, err := poolfs.ReadState(p.State)
	if err != nil {
		t.Fatal(err)
	}
	workers := pidsOfState(st)
	ctx := context.Background()

	const n = 2000
	if r := e.run("", "enqueue", "--redis", s.URL(), "-q", "-n", fmt.Sprint(n), "sq", "Record", "{i}"); r.code != 0 {
		t.Fatalf("enqueue: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Every job is on the replica before the master dies: Redis
	// replicates asynchronously, and what it had not sent is lost with
	// the master (that loss is Redis's, not ours to test).
	master := redis.NewClient(&redis.Options{Addr: s.Master.Addr()})
	defer master.Close()
	if err := master.Set(ctx, "test:marker", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := master.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || got != 1 {
		t.Fatalf("WAIT for the replica: %d, %v", got, err)
	}
	recorded := func() map[string]int {
		b, _ := os.ReadFile(ids)
		seen := map[string]int{}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				seen[l]++
			}
		}
		return seen
	}
	waitFor(t, 30*time.Second, "a tenth of the jobs run", func() bool { return len(recorded()) >= n/10 })
	s.KillMaster()
	atKill := len(recorded())
	if atKill >= n {
		t.Fatalf("all %d jobs ran before the failover completed: the test proves nothing (make the jobs slower)", n)
	}
	t.Logf("%d of %d jobs recorded when the replica was promoted", atKill, n)

	// enqueue goes through the sentinel to the new master.
	if r := e.run("", "enqueue", "--redis", s.URL(), "-q", "-n", "100", "sq", "Record", "late", "{i}"); r.code != 0 {
		t.Fatalf("enqueue after the failover: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	promoted := redis.NewClient(&redis.Options{Addr: s.Master.Addr()})
	defer promoted.Close()
	left := func() string {
		inflight, _ := promoted.Keys(ctx, "resque:poolctl:inflight:*").Result()
		sort.Strings(inflight)
		held := make([]string, 0, len(inflight))
		for _, k := range inflight {
			held = append(held, fmt.Sprintf("%s=%d", k, promoted.LLen(ctx, k).Val()))
		}
		records, _ := promoted.Keys(ctx, "resque:worker:*").Result()
		// Failures (a job that could not append to ids, say on a full
		// disk) and where the promoted master stands.
		failed := promoted.LRange(ctx, "resque:failed", 0, 0).Val()
		info, err := promoted.Info(ctx, "clients", "stats", "replication").Result()
		var fs syscall.Statfs_t
		_ = syscall.Statfs(filepath.Dir(ids), &fs)
		return fmt.Sprintf("%d distinct jobs recorded, %d queued, in flight %v, worker keys %v, %d failed %v; %d MB free beside ids; promoted master (%v):\n%s",
			len(recorded()), promoted.LLen(ctx, "resque:queue:sq").Val(), held, records,
			promoted.LLen(ctx, "resque:failed").Val(), failed, fs.Bavail*uint64(fs.Bsize)>>20, err, info)
	}
	var progress []int // distinct jobs recorded, every 5 s
	next := time.Now()
	// The longest time between two looks at the condition: tens of seconds
	// would say this test process (or the whole host) was not running,
	// rather than that the workers stalled.
	var gap time.Duration
	last := time.Now()
	done := testutil.Poll(60*time.Second, func() bool {
		now := time.Now()
		gap, last = max(gap, now.Sub(last)), now
		if now.After(next) {
			progress, next = append(progress, len(recorded())), next.Add(5*time.Second)
		}
		if len(recorded()) < n+100 || promoted.LLen(ctx, "resque:queue:sq").Val() != 0 {
			return false
		}
		inflight, _ := promoted.Keys(ctx, "resque:poolctl:inflight:*").Result()
		return len(inflight) == 0
	})
	if !done {
		// Where each worker is: a Go program dumps its goroutines on
		// SIGABRT, to its stderr, which the master copies to the log.
		before := len(readLog(t, p))
		for _, w := range workers {
			_ = syscall.Kill(w, syscall.SIGABRT)
		}
		testutil.Poll(5*time.Second, func() bool { return strings.Count(readLog(t, p)[before:], "goroutine ") >= len(workers) })
		t.Logf("the workers' goroutines:\n%s", readLog(t, p)[before:])
		t.Fatalf("after 1m: not every job run, or something left in a queue or in flight: %s; distinct jobs recorded every 5 s: %v; longest pause between two looks: %v", left(), progress, gap)
	}
	seen := recorded()
	for i := 0; i < n; i++ {
		if seen[fmt.Sprintf("[%d]", i)] == 0 {
			t.Errorf("job %d never ran", i)
		}
	}
	for i := 0; i < 100; i++ {
		if seen[fmt.Sprintf(`["late",%d]`, i)] == 0 {
			t.Errorf("late job %d never ran", i)
		}
	}
	again := 0
	for _, c := range seen {
		again += c - 1
	}
	t.Logf("%d job(s) ran more than once (at-least-once across the failover)", again)
	if got := promoted.LLen(ctx, "resque:failed").Val(); got != 0 {
		t.Errorf("%d failure records after the failover: %v", got, promoted.LRange(ctx, "resque:failed", 0, 2).Val())
	}
	// The same workers, registered on the new master (their heartbeat
	// re-asserts registrations).
	for _, w := range workers {
		if !alive(w) {
			t.Errorf("worker %d did not survive the failover", w)
		}
	}
	if !alive(pid) {
		t.Fatal("the master did not survive the failover")
	}
	waitFor(t, 10*time.Second, "4 workers registered on the new master", func() bool {
		return promoted.SCard(ctx, "resque:workers").Val() == 4
	})
	stopPool(t, p, pid)
	log := readLog(t, p)
	if strings.Contains(log, "refused the command") {
		t.Errorf("a failover logged as a refusal:\n%s", log)
	}
}

// A Redis that refuses poolctl's commands for good (an ACL user without
// scripting: NOPERM) is said plainly, as a misconfiguration no retry
// cures, once per worker, not at every retry; the workers keep retrying
// (the operator may grant the permission) and fail no job.
func TestMisconfiguredRedisIsSaidOnce(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client()
	if err := admin.Do(ctx, "ACL", "SETUSER", "noscripts", "on", ">pw", "~*", "&*", "+@all", "-@scripting").Err(); err != nil {
		t.Fatal(err)
	}
	e := newShellEnv(t)
	if r := e.run("", "enqueue", "--redis", srv.URL(), "-q", "-n", "5", "mq", "Poolctl::Noop"); r.code != 0 {
		t.Fatalf("enqueue: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	url := "redis://noscripts:pw@" + srv.Addr() + "/0"
	p, pid := startDistributedPool(t, e, "mc", url, "workers:\n  mq: 4\n")
	// ACL LOG counts the refusals: wait for many retries per worker.
	waitFor(t, 30*time.Second, "24 refused script calls (several per worker)", func() bool {
		entries, err := admin.Do(ctx, "ACL", "LOG").Slice()
		if err != nil {
			return false
		}
		total := int64(0)
		for _, e := range entries {
			if m, ok := e.(map[any]any); ok {
				if c, ok := m["count"].(int64); ok {
					total += c
				}
			}
			if l, ok := e.([]any); ok {
				for i := 0; i+1 < len(l); i += 2 {
					if l[i] == "count" {
						if c, ok := l[i+1].(int64); ok {
							total += c
						}
					}
				}
			}
		}
		return total >= 24
	})
	log := readLog(t, p)
	st, err := poolfs.ReadState(p.State)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range pidsOfState(st) {
		var said []string
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, fmt.Sprintf("poolctl-worker[%d]", w)) && strings.Contains(l, "NOPERM") {
				said = append(said, l)
			}
		}
		if len(said) != 1 || !strings.Contains(said[0], "Redis refused the command: ") || !strings.Contains(said[0], "retrying will not help until it is granted") {
			t.Errorf("worker %d said NOPERM %d times, want once, plainly:\n%s", w, len(said), strings.Join(said, "\n"))
		}
	}
	if strings.Contains(log, "unavailable") {
		t.Errorf("a refusal logged as unavailability:\n%s", log)
	}
	if got := admin.LLen(ctx, "resque:failed").Val(); got != 0 {
		t.Errorf("%d jobs failed", got)
	}
	if got := admin.LLen(ctx, "resque:queue:mq").Val(); got != 5 {
		t.Errorf("queue mq holds %d jobs, want the 5 enqueued (none taken)", got)
	}
	stopPool(t, p, pid)
}
