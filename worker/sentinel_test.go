package worker

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/redis/go-redis/v9"
)

// killAfterPipeline is a hook on a worker's bookkeeping client: once
// armed, the next pipeline runs on the master, the replica is made to
// have it (WAIT), then the master is SIGKILLed and the worker sees the
// pipeline fail with EOF. That is a master that applied and replicated
// the worker's ack-and-reserve but died before its reply went out: the
// sentinel's promoted replica has the new reservation the worker never
// heard of.
//
// With lag set, the replica is frozen and its link to the master cut
// before the armed pipeline runs, which then succeeds; the pipeline after it (the next
// job's ack-and-reserve) kills the master and thaws the replica: the
// promoted replica lacks the writes the worker was told had happened, as
// after asynchronous replication lagging at a crash.
type killAfterPipeline struct {
	armed   atomic.Bool
	lag     bool
	pending atomic.Bool
	fired   chan struct{}
	s       *redistest.Sentinel
}

func (h *killAfterPipeline) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *killAfterPipeline) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *killAfterPipeline) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.lag && h.armed.CompareAndSwap(true, false) {
			// Cut the replication link while the replica is frozen, so
			// that it cannot reconnect: what the master does meanwhile is
			// lost with it.
			_ = h.s.Replica.Freeze()
			c := redis.NewClient(&redis.Options{Addr: h.s.Master.Addr(), MaxRetries: -1})
			_ = c.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err()
			_ = c.Close()
			err := next(ctx, cmds)
			h.pending.Store(true)
			return err
		}
		if h.lag && h.pending.CompareAndSwap(true, false) {
			h.s.Master.Kill()
			_ = h.s.Replica.Thaw()
			close(h.fired)
			for _, cmd := range cmds {
				cmd.SetErr(io.EOF)
			}
			return io.EOF
		}
		err := next(ctx, cmds)
		if h.lag || err != nil || !h.armed.CompareAndSwap(true, false) {
			return err
		}
		m := h.s.Master
		c := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
		_ = c.Do(ctx, "WAIT", 1, 5000).Err()
		_ = c.Close()
		m.Kill()
		close(h.fired)
		for _, cmd := range cmds {
			cmd.SetErr(io.EOF)
		}
		return io.EOF
	}
}

// sentinelWorker runs a worker whose clients find the master through the
// sentinel, configured as poolctl-worker configures them.
func sentinelWorker(t *testing.T, s *redistest.Sentinel, cfg Config, hooks ...redis.Hook) *syncBuffer {
	t.Helper()
	id := fmt.Sprint(cfg.PID)
	rdb, err := redisconn.Open(s.URL(), redisconn.Options{Name: "w:" + id, PoolSize: 2, NoRetry: true,
		ReadTimeout: bookkeepingTimeout, DialTimeout: bookkeepingTimeout, Lean: true})
	if err != nil {
		t.Fatal(err)
	}
	blocking, err := redisconn.Open(s.URL(), redisconn.Options{Name: "ww:" + id, PoolSize: 1, NoRetry: true,
		ReadTimeout: DefaultBlockTimeout + 5*time.Second, DialTimeout: bookkeepingTimeout, Lean: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks {
		rdb.AddHook(h)
	}
	out := &syncBuffer{}
	cfg.Stdout, cfg.Stderr = out, out
	if cfg.Host == "" {
		cfg.Host = "testhost"
	}
	w := New(queue.New(rdb, ""), blocking, cfg)
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	t.Cleanup(func() {
		w.Terminate()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("worker did not stop within 15s")
		}
		_ = rdb.Close()
		_ = blocking.Close()
		if t.Failed() {
			t.Logf("worker %s output:\n%s", id, out.String())
		}
	})
	return out
}

// recordedIDs counts the lines of the ids file the Record jobs append to.
func recordedIDs(path string) map[string]int {
	b, _ := os.ReadFile(path)
	seen := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			seen[l]++
		}
	}
	return seen
}

// A master that applied and replicated a worker's ack-and-reserve, then
// died before replying, is failed over to its replica: the worker must
// put back the job the lost reply reserved and go on until every job has
// run, nothing queued and nothing in flight.
func TestSentinelLostAckReserveReplyLosesNothing(t *testing.T) {
	testSentinelFailover(t, false)
}

// The promoted replica lags: it lacks an ack-and-reserve whose reply the
// worker had, and the job that call reserved ran. The worker must put
// back what the replica still has in flight for it.
func TestSentinelLaggingReplicaLosesNothing(t *testing.T) {
	testSentinelFailover(t, true)
}

func testSentinelFailover(t *testing.T, lag bool) {
	s := redistest.StartSentinel(t)
	ids := filepath.Join(t.TempDir(), "ids")
	hook := &killAfterPipeline{fired: make(chan struct{}), s: s, lag: lag}
	const n = 300
	enqueueRecords(t, s, n)
	cfg := Config{Queues: []string{"sq"}, Jobs: map[string][]string{"Record": {"sh", "-c", `echo "$POOLCTL_ARGS" >> ` + ids}}}
	var first *syncBuffer
	for i := 0; i < 4; i++ {
		c := cfg
		c.PID = 100000 + i
		var hooks []redis.Hook
		if i == 0 {
			hooks = append(hooks, hook)
		}
		out := sentinelWorker(t, s, c, hooks...)
		if i == 0 {
			first = out
		}
	}
	testutil.Eventually(t, 30*time.Second, "a tenth of the jobs run", func() bool { return len(recordedIDs(ids)) >= n/10 })
	hook.armed.Store(true)
	select {
	case <-hook.fired:
	case <-time.After(30 * time.Second):
		t.Fatal("the hook never fired")
	}
	s.KillMaster()
	promoted := redis.NewClient(&redis.Options{Addr: s.Master.Addr()})
	defer promoted.Close()
	ctx := context.Background()
	ok := testutil.Poll(30*time.Second, func() bool {
		if len(recordedIDs(ids)) < n || promoted.LLen(ctx, "resque:queue:sq").Val() != 0 {
			return false
		}
		keys, _ := promoted.Keys(ctx, "resque:poolctl:inflight:*").Result()
		return len(keys) == 0
	})
	if !ok {
		seen := recordedIDs(ids)
		var missing []string
		for i := 0; i < n; i++ {
			if seen[fmt.Sprintf("[%d]", i)] == 0 {
				missing = append(missing, fmt.Sprint(i))
			}
		}
		keys, _ := promoted.Keys(ctx, "resque:*").Result()
		sort.Strings(keys)
		var state []string
		for _, k := range keys {
			switch promoted.Type(ctx, k).Val() {
			case "list":
				state = append(state, fmt.Sprintf("%s=%v", k, promoted.LRange(ctx, k, 0, 5).Val()))
			case "string":
				state = append(state, fmt.Sprintf("%s=%q", k, promoted.Get(ctx, k).Val()))
			case "set":
				state = append(state, fmt.Sprintf("%s=%v", k, promoted.SMembers(ctx, k).Val()))
			}
		}
		t.Fatalf("jobs never recorded: %v\nRedis:\n%s", missing, strings.Join(state, "\n"))
	}
	// The fault happened as meant: the hooked worker found a job in flight
	// that it did not know it held, and put it back.
	if !strings.Contains(first.String(), "job(s) reserved by a call whose reply was lost") {
		t.Errorf("the hooked worker did not put back what the promoted replica held for it:\n%s", first.String())
	}
}

// Four workers drain jobs while the master is SIGKILLed again and again
// (the old master rejoining as the replica each time), at moments spread
// over the run, every other time with a lagging replica. Every job must
// run, and no worker may stall: while jobs are left, some job must finish
// every 15 s, else the test fails with every goroutine's stack.
func TestSentinelRepeatedFailoversLoseNothing(t *testing.T) {
	testRepeatedFailovers(t, []int{150, 450, 800, 1150}, func(s *redistest.Sentinel, round int) {
		if round%2 == 1 {
			s.KillMasterLagging(100 * time.Millisecond)
		} else {
			s.KillMaster()
		}
		s.Rejoin()
	})
}

// The same with switchovers (SENTINEL FAILOVER): the old master, alive,
// is demoted while workers are connected to it.
func TestSentinelRepeatedSwitchoversLoseNothing(t *testing.T) {
	testRepeatedFailovers(t, []int{150, 700}, func(s *redistest.Sentinel, _ int) { s.Switchover() })
}

func testRepeatedFailovers(t *testing.T, at []int, failover func(s *redistest.Sentinel, round int)) {
	s := redistest.StartSentinel(t)
	ids := filepath.Join(t.TempDir(), "ids")
	const n = 1500
	admin := enqueueRecords(t, s, n)
	// Every job is on the replica before the first failover.
	if err := admin.Do(context.Background(), "WAIT", 1, 5000).Err(); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close()
	cfg := Config{Queues: []string{"sq"}, Jobs: map[string][]string{"Record": {"sh", "-c", `echo "$POOLCTL_ARGS" >> ` + ids}}}
	for i := 0; i < 4; i++ {
		c := cfg
		c.PID = 100000 + i
		sentinelWorker(t, s, c)
	}
	progressing := func(what string, cond func() bool) {
		t.Helper()
		last, lastAt := len(recordedIDs(ids)), time.Now()
		for !cond() {
			if got := len(recordedIDs(ids)); got != last {
				last, lastAt = got, time.Now()
			}
			if time.Since(lastAt) > 15*time.Second {
				buf := make([]byte, 1<<20)
				t.Fatalf("no job finished for 15 s waiting for %s (%d recorded); goroutines:\n%s", what, last, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for round, k := range at {
		progressing(fmt.Sprintf("%d jobs", k), func() bool { return len(recordedIDs(ids)) >= k })
		failover(s, round)
	}
	promoted := redis.NewClient(&redis.Options{Addr: s.Master.Addr()})
	defer promoted.Close()
	ctx := context.Background()
	progressing("every job run, none queued or in flight", func() bool {
		if len(recordedIDs(ids)) < n || promoted.LLen(ctx, "resque:queue:sq").Val() != 0 {
			return false
		}
		keys, _ := promoted.Keys(ctx, "resque:poolctl:inflight:*").Result()
		return len(keys) == 0
	})
}

// enqueueRecords pushes n Record jobs, args [i], to sq on s's master and
// returns a client of that master, closed at the end of the test.
func enqueueRecords(t *testing.T, s *redistest.Sentinel, n int) *redis.Client {
	t.Helper()
	admin := redis.NewClient(&redis.Options{Addr: s.Master.Addr()})
	t.Cleanup(func() { _ = admin.Close() })
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i], _ = queue.EncodePayload("Record", []any{i})
	}
	if err := queue.New(admin, "").Enqueue(context.Background(), "sq", payloads...); err != nil {
		t.Fatal(err)
	}
	return admin
}
