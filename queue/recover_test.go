package queue

import (
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// deadPID is a pid that belongs to no live process: a child we ran and
// reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// unreachable is a client of a loopback port where nothing listens.
func unreachable(t *testing.T) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// identityAlive is a test AliveFunc: pid 1 with identity "init/1" and the
// test process with identity "self/1" are alive, nothing else is.
func identityAlive(pid int, identity string) bool {
	return (pid == 1 && (identity == "" || identity == "init/1")) || (pid == os.Getpid() && identity == "self/1")
}

func TestRecovererJudgesThisHostByProcessNotHeartbeat(t *testing.T) {
	c, rdb := newClient(t)
	long := time.Now().Add(-365 * 24 * time.Hour)
	dead := WorkerID("thishost", deadPID(t), []string{"foo"})
	// A live, busy worker of this host whose heartbeat is a year old
	// (Redis was unreachable for longer than any threshold): it must stay.
	live := WorkerID("thishost", os.Getpid(), []string{"foo"})
	// Same pid, but registered by an earlier process (another identity):
	// its process is gone although the pid is alive.
	reused := WorkerID("thishost", os.Getpid(), []string{"bar"})
	for id, identity := range map[string]string{dead: "", live: "self/1", reused: "self/0"} {
		if err := c.Heartbeat(ctx, Registration{ID: id, Started: long, Identity: identity}, long); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Enqueue(ctx, "foo", []byte("job1"))
	_ = c.Enqueue(ctx, "bar", []byte("barjob"))
	if j, _ := c.Reserve(ctx, dead, []string{"foo"}, long); j == nil {
		t.Fatal("no job reserved")
	}
	if j, _ := c.Reserve(ctx, reused, []string{"bar"}, long); j == nil {
		t.Fatal("no job reserved")
	}
	_ = c.Enqueue(ctx, "foo", []byte("running"))
	running, _ := c.Reserve(ctx, live, []string{"foo"}, long)
	if running == nil {
		t.Fatal("no job reserved")
	}
	// An in-flight list of a worker that is no longer registered.
	ghost := WorkerID("thishost", deadPID(t), []string{"foo"})
	_ = c.Enqueue(ctx, "foo", []byte("ghostjob"))
	_, _ = c.Reserve(ctx, ghost, []string{"foo"}, long)
	_ = c.Enqueue(ctx, "foo", []byte("job2"))

	r := NewRecoverer(c, RecovererOptions{Host: "thishost", Alive: identityAlive, HeartbeatExpiry: time.Second})
	rec, err := r.RecoverOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(rec.Workers)
	want := []string{dead, reused}
	sort.Strings(want)
	if !reflect.DeepEqual(rec.Workers, want) || rec.Requeued != 3 {
		t.Errorf("recovered %+v, want workers %v and 3 jobs requeued", rec, want)
	}
	if got := rdb.SMembers(ctx, "resque:workers").Val(); !reflect.DeepEqual(got, []string{live}) {
		t.Errorf("workers left = %v, want only the live one %s", got, live)
	}
	if got := rdb.LRange(ctx, "resque:queue:foo", 0, -1).Val(); !reflect.DeepEqual(got, []string{"ghostjob", "job1", "job2"}) {
		t.Errorf("queue foo = %v, want the dead workers' jobs back at the head", got)
	}
	// The live worker's job was not requeued, and its ack still counts.
	if err := c.Ack(ctx, live, running, Timing{}); err != nil {
		t.Fatal(err)
	}
	if got := rdb.Get(ctx, "resque:stat:processed").Val(); got != "1" {
		t.Errorf("processed = %q after the live worker's ack, want 1", got)
	}
}

func TestRecovererNeedsToWatchAnotherHostsHeartbeatGoStale(t *testing.T) {
	c, rdb := newClient(t)
	stale := time.Now().Add(-time.Hour)
	remote := WorkerID("otherhost", 7, []string{"foo"})
	if err := c.Heartbeat(ctx, Registration{ID: remote, Started: stale}, stale); err != nil {
		t.Fatal(err)
	}
	r := NewRecoverer(c, RecovererOptions{Host: "thishost", Alive: identityAlive, HeartbeatExpiry: 300 * time.Millisecond, Interval: 100 * time.Millisecond})

	// First sight of an old heartbeat is no evidence: perhaps Redis was
	// unreachable until a moment ago.
	if rec, err := r.RecoverOnce(ctx); err != nil || len(rec.Workers) != 0 {
		t.Fatalf("first pass = %+v, %v; want nothing recovered", rec, err)
	}
	// A pass that cannot reach Redis resets what was seen.
	time.Sleep(200 * time.Millisecond)
	r.c = New(unreachable(t), "")
	if _, err := r.RecoverOnce(ctx); err == nil {
		t.Fatal("a pass against an unreachable Redis succeeded")
	}
	r.c = c
	time.Sleep(200 * time.Millisecond)
	if rec, err := r.RecoverOnce(ctx); err != nil || len(rec.Workers) != 0 {
		t.Fatalf("pass after an outage = %+v, %v; want nothing recovered (the watch starts again)", rec, err)
	}
	// Watched unchanged, with Redis reachable, for longer than the
	// expiry: dead.
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, err := r.RecoverOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Workers) == 1 && rec.Workers[0] == remote {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("another host's worker silent for the whole watch was never recovered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rdb.SIsMember(ctx, "resque:workers", remote).Val() {
		t.Errorf("%s still registered", remote)
	}

	// A remote worker that keeps beating is never recovered.
	beating := WorkerID("otherhost", 8, []string{"foo"})
	for i := 0; i < 8; i++ {
		now, _ := c.ServerTime(ctx)
		_ = c.Heartbeat(ctx, Registration{ID: beating, Started: now}, now.Add(time.Duration(i)*time.Second))
		if rec, err := r.RecoverOnce(ctx); err != nil || len(rec.Workers) != 0 {
			t.Fatalf("beating worker: pass = %+v, %v", rec, err)
		}
		time.Sleep(60 * time.Millisecond)
	}
}

func TestRegistrationIsReassertedByEveryHeartbeat(t *testing.T) {
	c, rdb := newClient(t)
	id := WorkerID("h", 3, []string{"foo"})
	reg := Registration{ID: id, Started: time.Date(2026, 11, 22, 8, 58, 14, 0, time.UTC), Identity: "b/9"}
	if err := c.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	rdb.FlushAll(ctx) // an empty restart, or a prune by another tool
	now, _ := c.ServerTime(ctx)
	if err := c.Heartbeat(ctx, reg, now); err != nil {
		t.Fatal(err)
	}
	if !rdb.SIsMember(ctx, "resque:workers", id).Val() ||
		rdb.Get(ctx, "resque:worker:"+id+":started").Val() != "2026-11-22 08:58:14 +0000" ||
		rdb.Get(ctx, "resque:poolctl:identity:"+id).Val() != "b/9" ||
		rdb.HGet(ctx, "resque:workers:heartbeat", id).Val() == "" {
		t.Errorf("registration not restored by a heartbeat: keys %v", rdb.Keys(ctx, "*").Val())
	}
	// A reservation declares its queue in the in-flight index itself,
	// so recovery finds the job although the index was lost.
	_ = c.Enqueue(ctx, "foo", []byte("j"))
	if j, err := c.Reserve(ctx, id, []string{"foo"}, now); j == nil || err != nil {
		t.Fatalf("Reserve = %v, %v", j, err)
	}
	if got := rdb.SMembers(ctx, "resque:poolctl:inflight-index:"+id).Val(); !reflect.DeepEqual(got, []string{"foo"}) {
		t.Errorf("in-flight index = %v, want [foo]", got)
	}
}

func TestReserveEmbedsOnlyStrictJSONInTheWorkerRecord(t *testing.T) {
	c, rdb := newClient(t)
	id := WorkerID("h", 5, []string{"foo"})
	cases := []string{
		`{"class":"A","args":[NaN]}`,
		`{"class":"A","args":[Infinity]}`,
		`{"class":"A","args":[-Infinity]}`,
		`{"class":"A","args":[0x10]}`,
		`{"class":"A","args":[01]}`,
		`{"class":"A","args":[+1]}`,
		`{"class":"A","args":[1.]}`,
		`{"class":"A","args":["tab	inside"]}`,
		`{"class":"A","args":[1,"two",{"k":-3.5e+2,"l":[true,false,null]}],"s":"a\"b\\c\u00e9"}`,
		`not json`,
		`[1,2]`,
	}
	for _, p := range cases {
		_ = c.Enqueue(ctx, "foo", []byte(p))
		j, err := c.Reserve(ctx, id, []string{"foo"}, time.Now())
		if err != nil || j == nil {
			t.Fatalf("Reserve(%s) = %v, %v", p, j, err)
		}
		rec := rdb.Get(ctx, "resque:worker:"+id).Bytes
		b, _ := rec()
		var decoded struct {
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(b, &decoded); err != nil {
			t.Errorf("payload %s: worker record %s is not JSON: %v", p, b, err)
			continue
		}
		strict := json.Valid([]byte(p)) && p[0] == '{'
		if embedded := string(decoded.Payload) == p; embedded != strict {
			t.Errorf("payload %s: embedded raw = %v, want %v (record %s)", p, embedded, strict, b)
		}
		if err := c.Ack(ctx, id, j, Timing{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGlobsMatchAsRubyFnmatch(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "reports/daily", true},
		{"*", "mail:high", true},
		{"*", "日本語", true},
		{"*", ".hidden", false},
		{".*", ".hidden", true},
		{"reports*", "reports/daily", true},
		{"reports/*", "reports/daily/x", true},
		{"r?ports", "reports", true},
		{"?", "日", true},
		{"[a-c]x", "bx", true},
		{"[!a-c]x", "bx", false},
		{"[^a-c]x", "dx", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
		{"[ab", "[ab", true},
		{"", "", true},
		{"", "a", false},
	}
	for _, c := range cases {
		if got := fnmatch(c.pattern, c.name); got != c.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestExpandFindsQueuesWithSlashColonAndUnicode(t *testing.T) {
	c, _ := newClient(t)
	for _, q := range []string{"reports/daily", "mail:high", "日本語", "plain"} {
		_ = c.Enqueue(ctx, q, []byte("x"))
	}
	got, err := c.Expand(ctx, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mail:high", "plain", "reports/daily", "日本語"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Expand(*) = %v, want %v", got, want)
	}
}

// Ruby Resque's prune (heartbeat expired) unregisters another host's dead
// worker but leaves poolctl's in-flight list: it must be requeued once the
// id has stayed unregistered for heartbeat_expiry under watch.
func TestRecovererRequeuesAnotherHostsPrunedWorkersJobs(t *testing.T) {
	c, rdb := newClient(t)
	id := WorkerID("deadhost", 123, []string{"foo"})
	_ = c.Register(ctx, Registration{ID: id, Started: time.Now()})
	_ = c.Enqueue(ctx, "foo", []byte(`{"class":"A","args":[]}`))
	if j, _ := c.Reserve(ctx, id, []string{"foo"}, time.Now()); j == nil {
		t.Fatal("no job reserved")
	}
	// What Ruby's unregister_worker removes.
	rdb.SRem(ctx, "resque:workers", id)
	rdb.Del(ctx, "resque:worker:"+id, "resque:worker:"+id+":started", "resque:stat:processed:"+id, "resque:stat:failed:"+id)
	rdb.HDel(ctx, "resque:workers:heartbeat", id)

	r := NewRecoverer(c, RecovererOptions{Host: "thishost", Alive: identityAlive, Interval: 50 * time.Millisecond, HeartbeatExpiry: 300 * time.Millisecond})
	if rec, err := r.RecoverOnce(ctx); err != nil || rec.Requeued != 0 {
		t.Fatalf("first sight = %+v, %v; want nothing requeued yet", rec, err)
	}
	testutil.Eventually(t, 5*time.Second, "the pruned worker's job back in its queue", func() bool {
		_, _ = r.RecoverOnce(ctx)
		return rdb.LLen(ctx, "resque:queue:foo").Val() == 1
	})
	if n := rdb.LLen(ctx, "resque:poolctl:inflight:"+id+":foo").Val(); n != 0 {
		t.Errorf("%d jobs still in flight", n)
	}
}

// The recoverer judges a worker dead, then, before it unregisters it, a
// new process takes the same id (a reused pid) and reserves a job: the
// unregister must not touch the newcomer.
func TestRecovererNeverUnregistersANewcomerWithTheSameID(t *testing.T) {
	c, rdb := newClient(t)
	id := WorkerID("thishost", os.Getpid(), []string{"foo"})
	_ = c.Register(ctx, Registration{ID: id, Started: time.Now(), Identity: "self/0"}) // dead predecessor
	_ = c.Enqueue(ctx, "foo", []byte("newjob"))
	alive := func(pid int, identity string) bool {
		// Between the judgement and the unregister: the newcomer starts.
		_ = c.Register(ctx, Registration{ID: id, Started: time.Now(), Identity: "self/1"})
		if j, _ := c.Reserve(ctx, id, []string{"foo"}, time.Now()); j == nil {
			t.Error("the newcomer reserved nothing")
		}
		return identityAlive(pid, identity)
	}
	r := NewRecoverer(c, RecovererOptions{Host: "thishost", Alive: alive})
	rec, err := r.RecoverOnce(ctx)
	if err != nil || len(rec.Workers) != 0 || rec.Requeued != 0 {
		t.Errorf("recovered %+v, %v; want the newcomer left alone", rec, err)
	}
	if !rdb.SIsMember(ctx, "resque:workers", id).Val() || rdb.LLen(ctx, "resque:queue:foo").Val() != 0 {
		t.Errorf("the newcomer was unregistered or its running job requeued")
	}
}
