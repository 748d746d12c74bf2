package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newClient(t *testing.T) (*Client, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client()
	return New(rdb, ""), rdb
}

var ctx = context.Background()

func payload(t *testing.T, class string, args ...any) []byte {
	t.Helper()
	p, err := EncodePayload(class, args)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnqueueWritesResqueFormat(t *testing.T) {
	c, rdb := newClient(t)
	if err := c.Enqueue(ctx, "foo", payload(t, "Noop", 1, "two", map[string]int{"k": 3})); err != nil {
		t.Fatal(err)
	}
	if got := rdb.SMembers(ctx, "resque:queues").Val(); !reflect.DeepEqual(got, []string{"foo"}) {
		t.Errorf("resque:queues = %v, want [foo]", got)
	}
	got := rdb.LRange(ctx, "resque:queue:foo", 0, -1).Val()
	want := []string{`{"class":"Noop","args":[1,"two",{"k":3}]}`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resque:queue:foo = %v, want %v", got, want)
	}
}

func TestRegistrationJobRecordStatsAndUnregisterMatchResque(t *testing.T) {
	c, rdb := newClient(t)
	id := WorkerID("vm", 15105, []string{"foo"})
	if id != "vm:15105:foo" {
		t.Fatalf("WorkerID = %q", id)
	}
	now := time.Date(2026, 11, 22, 8, 58, 14, 0, time.UTC)
	if err := c.Register(ctx, Registration{ID: id, Started: now}); err != nil {
		t.Fatal(err)
	}
	if got := rdb.SMembers(ctx, "resque:workers").Val(); !reflect.DeepEqual(got, []string{id}) {
		t.Errorf("workers = %v", got)
	}
	if got := rdb.Get(ctx, "resque:worker:vm:15105:foo:started").Val(); got != "2026-11-22 08:58:14 +0000" {
		t.Errorf("started = %q, want Resque's \"2026-11-22 08:58:14 +0000\"", got)
	}
	// The heartbeat is Redis's clock, in Ruby's iso8601 shape.
	hb := rdb.HGet(ctx, "resque:workers:heartbeat", id).Val()
	if ht, err := time.Parse("2006-01-02T15:04:05-07:00", hb); err != nil || time.Since(ht).Abs() > time.Minute {
		t.Errorf("heartbeat = %q (%v), want Redis's current time like \"2026-11-22T08:58:14+00:00\"", hb, err)
	}

	if err := c.Enqueue(ctx, "foo", []byte(`{"class":"Slow","args":[10]}`), []byte(`{"class":"Failer","args":[42]}`)); err != nil {
		t.Fatal(err)
	}
	runAt := time.Date(2026, 11, 22, 8, 58, 20, 0, time.UTC)
	job, err := c.Reserve(ctx, id, []string{"foo"}, runAt)
	if err != nil || job == nil {
		t.Fatalf("Reserve = %v, %v", job, err)
	}
	rec := rdb.Get(ctx, "resque:worker:"+id).Val()
	if want := `{"queue":"foo","run_at":"2026-11-22T08:58:20Z","payload":{"class":"Slow","args":[10]}}`; rec != want {
		t.Errorf("worker record = %s\nwant %s", rec, want)
	}
	if n := rdb.LLen(ctx, "resque:poolctl:inflight:"+id+":foo").Val(); n != 1 {
		t.Errorf("in-flight list holds %d jobs, want 1", n)
	}
	if err := c.Ack(ctx, id, job, Timing{}); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"resque:stat:processed": "1", "resque:stat:processed:" + id: "1"} {
		if got := rdb.Get(ctx, key).Val(); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if rdb.Exists(ctx, "resque:worker:"+id).Val() != 0 {
		t.Error("worker record not deleted after the job")
	}

	job, _ = c.Reserve(ctx, id, []string{"foo"}, runAt)
	err = c.Fail(ctx, id, job, Timing{}, Failure{Exception: "RuntimeError", Error: "boom [42]", Backtrace: []string{"/app/jobs.rb:14:in `perform'"}}, runAt)
	if err != nil {
		t.Fatal(err)
	}
	raw := rdb.LIndex(ctx, "resque:failed", 0).Val()
	want := `{"failed_at":"2026/11/22 08:58:20 UTC","payload":{"class":"Failer","args":[42]},"exception":"RuntimeError","error":"boom [42]","backtrace":["/app/jobs.rb:14:in ` + "`perform'" + `"],"worker":"vm:15105:foo","queue":"foo"}`
	if raw != want {
		t.Errorf("failure record = %s\nwant %s", raw, want)
	}
	for key, want := range map[string]string{"resque:stat:failed": "1", "resque:stat:failed:" + id: "1"} {
		if got := rdb.Get(ctx, key).Val(); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}

	if _, err := c.Unregister(ctx, id); err != nil {
		t.Fatal(err)
	}
	keys := rdb.Keys(ctx, "*").Val()
	sort.Strings(keys)
	// The queue's stats hash and notify lists (poolctl's) stay: they are
	// the queue's, not the worker's.
	wantKeys := []string{"resque:failed", "resque:poolctl:notify-any", "resque:poolctl:notify:foo", "resque:poolctl:stats:foo", "resque:queues", "resque:stat:failed", "resque:stat:processed"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("keys after unregister = %v, want %v", keys, wantKeys)
	}
}

func TestReserveIsFIFOWithStrictPriority(t *testing.T) {
	c, _ := newClient(t)
	id := WorkerID("h", 1, []string{"high", "low"})
	qs := []string{"high", "low"}
	for i := 0; i < 3; i++ {
		_ = c.Enqueue(ctx, "low", []byte(fmt.Sprintf(`{"class":"L","args":[%d]}`, i)))
	}
	_ = c.Enqueue(ctx, "high", []byte(`{"class":"H","args":[0]}`))
	var order []string
	for i := 0; i < 4; i++ {
		job, err := c.Reserve(ctx, id, qs, time.Now())
		if err != nil || job == nil {
			t.Fatalf("reserve %d: %v %v", i, job, err)
		}
		order = append(order, job.Queue+":"+string(job.Payload))
		if i == 1 {
			// A high job arriving later still comes before the rest of low.
			_ = c.Enqueue(ctx, "high", []byte(`{"class":"H","args":[1]}`))
		}
		_ = c.Ack(ctx, id, job, Timing{})
	}
	want := []string{
		`high:{"class":"H","args":[0]}`,
		`low:{"class":"L","args":[0]}`,
		`high:{"class":"H","args":[1]}`,
		`low:{"class":"L","args":[1]}`,
	}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order = %v\nwant %v", order, want)
	}
	if job, err := c.Reserve(ctx, id, []string{"empty"}, time.Now()); job != nil || err != nil {
		t.Errorf("Reserve on an empty queue = %v, %v; want nil, nil", job, err)
	}
}

func TestExpandGlobsAlphabeticallyAsResque(t *testing.T) {
	c, _ := newClient(t)
	for _, q := range []string{"zeta", "alpha", "high_b", "high_a", "mid"} {
		_ = c.Enqueue(ctx, q, []byte(`{"class":"X","args":[]}`))
	}
	got, err := c.Expand(ctx, []string{"mid", "high_*", "*"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mid", "high_a", "high_b", "alpha", "zeta"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Expand = %v, want %v", got, want)
	}
}

func TestBlockingReserveWakesOnPushAndTimesOut(t *testing.T) {
	srv := redistest.Start(t)
	c := New(srv.Client(), "")
	blocking := srv.Client()
	id := "h:2:foo"
	job, err := c.BlockingReserve(ctx, blocking, id, "foo", 50*time.Millisecond, time.Now)
	if job != nil || err != nil {
		t.Fatalf("empty queue: %v, %v; want nil, nil after the timeout", job, err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = c.Enqueue(ctx, "foo", []byte(`{"class":"X","args":[]}`))
	}()
	job, err = c.BlockingReserve(ctx, blocking, id, "foo", 5*time.Second, time.Now)
	if err != nil || job == nil {
		t.Fatalf("BlockingReserve = %v, %v", job, err)
	}
	var rec RunningJob
	if err := json.Unmarshal([]byte(srv.Client().Get(ctx, "resque:worker:"+id).Val()), &rec); err != nil || rec.Queue != "foo" || rec.Class() != "X" {
		t.Errorf("worker record after blocking reserve = %+v (%v)", rec, err)
	}
}

func TestRequeuePutsInFlightJobsBackAtTheHead(t *testing.T) {
	c, rdb := newClient(t)
	id := "h:3:a,b"
	_ = c.Enqueue(ctx, "a", []byte("a1"), []byte("a2"), []byte("a3"))
	_ = c.Enqueue(ctx, "b", []byte("b1"))
	for i := 0; i < 2; i++ {
		if j, err := c.Reserve(ctx, id, []string{"a"}, time.Now()); j == nil || err != nil {
			t.Fatalf("reserve: %v %v", j, err)
		}
	}
	_, _ = c.Reserve(ctx, id, []string{"b"}, time.Now())
	n, err := c.Requeue(ctx, id)
	if err != nil || n != 3 {
		t.Fatalf("Requeue = %d, %v; want 3", n, err)
	}
	if got := rdb.LRange(ctx, "resque:queue:a", 0, -1).Val(); !reflect.DeepEqual(got, []string{"a1", "a2", "a3"}) {
		t.Errorf("queue a = %v, want the original order a1 a2 a3", got)
	}
	if got := rdb.LRange(ctx, "resque:queue:b", 0, -1).Val(); !reflect.DeepEqual(got, []string{"b1"}) {
		t.Errorf("queue b = %v", got)
	}
	var left []string
	for _, k := range rdb.Keys(ctx, "resque:poolctl:*").Val() {
		if !strings.HasPrefix(k, "resque:poolctl:notify") { // the queues' wake-up tokens
			left = append(left, k)
		}
	}
	if len(left) != 0 {
		t.Errorf("in-flight keys left: %v", left)
	}
}

func TestRetryAndClearFailed(t *testing.T) {
	c, rdb := newClient(t)
	id := "h:4:foo"
	_ = c.Enqueue(ctx, "foo", []byte(`{"class":"A","args":[1]}`), []byte(`not json`))
	for i := 0; i < 2; i++ {
		j, _ := c.Reserve(ctx, id, []string{"foo"}, time.Now())
		_ = c.Fail(ctx, id, j, Timing{}, Failure{Exception: "E", Error: "e"}, time.Now())
	}
	recs, err := c.FailedRecords(ctx, 0, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("FailedRecords = %d, %v", len(recs), err)
	}
	if string(recs[1].Payload) != `"not json"` {
		t.Errorf("a non-JSON payload is kept as a string, got %s", recs[1].Payload)
	}
	if err := c.RetryFailed(ctx, 1, RetryRemove, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := c.RetryFailed(ctx, 0, RetryRemove, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := rdb.LRange(ctx, "resque:queue:foo", 0, -1).Val(); !reflect.DeepEqual(got, []string{"not json", `{"class":"A","args":[1]}`}) {
		t.Errorf("queue after retries = %q", got)
	}
	if err := c.RetryFailed(ctx, 0, RetryKeep, time.Now()); err == nil || !regexp.MustCompile(`no failure record`).MatchString(err.Error()) {
		t.Errorf("retry of an empty list: %v", err)
	}
	j, _ := c.Reserve(ctx, id, []string{"foo"}, time.Now())
	_ = c.Fail(ctx, id, j, Timing{}, Failure{Exception: "E", Error: "e"}, time.Now())
	if n, err := c.ClearFailed(ctx); n != 1 || err != nil {
		t.Errorf("ClearFailed = %d, %v; want 1", n, err)
	}
}

func TestSummarize(t *testing.T) {
	c, _ := newClient(t)
	_ = c.Enqueue(ctx, "foo", []byte("1"), []byte("2"))
	_ = c.Enqueue(ctx, "bar", []byte(`{"class":"Slow","args":[]}`))
	id := "h:9:bar,foo"
	_ = c.Register(ctx, Registration{ID: id, Started: time.Now()})
	j, _ := c.Reserve(ctx, id, []string{"bar"}, time.Now())
	_ = c.Ack(ctx, id, j, Timing{})
	_ = c.Enqueue(ctx, "bar", []byte(`{"class":"Slow","args":[]}`))
	_, _ = c.Reserve(ctx, id, []string{"bar"}, time.Now())
	s, err := c.Summarize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Queues, map[string]int64{"foo": 2, "bar": 0}) || s.Processed != 1 || s.Failed != 0 {
		t.Errorf("summary = %+v", s)
	}
	if len(s.Workers) != 1 || s.Workers[0].PID != 9 || s.Workers[0].Job == nil || s.Workers[0].Job.Class() != "Slow" {
		t.Errorf("workers = %+v", s.Workers)
	}
	if on := s.WorkersOn(); on["bar"] != 1 || on["foo"] != 1 {
		t.Errorf("WorkersOn = %v", on)
	}
}

func BenchmarkReserveAck(b *testing.B) {
	srv := redistest.Start(b)
	c := New(srv.Client(), "")
	id := "bench:1:foo"
	p := []byte(`{"class":"Poolctl::Noop","args":[]}`)
	payloads := make([][]byte, b.N)
	for i := range payloads {
		payloads[i] = p
	}
	if err := c.Enqueue(ctx, "foo", payloads...); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j, err := c.Reserve(ctx, id, []string{"foo"}, time.Now())
		if err != nil || j == nil {
			b.Fatalf("reserve: %v %v", j, err)
		}
		if err := c.Ack(ctx, id, j, Timing{Class: "Poolctl::Noop", Run: 3 * time.Microsecond}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAckAndFailAreIdempotent(t *testing.T) {
	c, rdb := newClient(t)
	id := "h:5:foo"
	_ = c.Enqueue(ctx, "foo", []byte(`{"class":"A","args":[]}`), []byte(`{"class":"B","args":[]}`))
	a, _ := c.Reserve(ctx, id, []string{"foo"}, time.Now())
	// A retried Ack (its first reply lost) must not count twice.
	for i := 0; i < 2; i++ {
		if err := c.Ack(ctx, id, a, Timing{}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := c.Reserve(ctx, id, []string{"foo"}, time.Now())
	for i := 0; i < 2; i++ {
		if err := c.Fail(ctx, id, b, Timing{}, Failure{Exception: "E", Error: "e"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// As in Resque, a failure counts as processed too.
	if p, f, n := rdb.Get(ctx, "resque:stat:processed").Val(), rdb.Get(ctx, "resque:stat:failed").Val(), rdb.LLen(ctx, "resque:failed").Val(); p != "2" || f != "1" || n != 1 {
		t.Errorf("processed %s, failed %s, %d failure records; want 2, 1, 1", p, f, n)
	}
	if p, f := rdb.Get(ctx, "resque:stat:processed:"+id).Val(), rdb.Get(ctx, "resque:stat:failed:"+id).Val(); p != "2" || f != "1" {
		t.Errorf("worker's processed %s, failed %s; want 2, 1", p, f)
	}
}

// Two jobs with byte-identical payloads: acknowledging the first twice
// (a retry whose first reply was lost) must leave the second in flight.
func TestRetriedAckNeverRemovesAnIdenticalJob(t *testing.T) {
	c, rdb := newClient(t)
	id := "h:6:foo"
	same := []byte(`{"class":"A","args":[]}`)
	_ = c.Enqueue(ctx, "foo", same, same, same)
	first, _ := c.Reserve(ctx, id, []string{"foo"}, time.Now())
	// The busy path: ack the first and reserve the second in one script,
	// then the worker retries the ack because the reply was lost.
	second, err := c.AckReserve(ctx, id, first, Timing{}, []string{"foo"}, time.Now())
	if err != nil || second == nil {
		t.Fatalf("AckReserve = %v, %v", second, err)
	}
	if err := c.Ack(ctx, id, first, Timing{}); err != nil {
		t.Fatal(err)
	}
	if n := rdb.LLen(ctx, "resque:poolctl:inflight:"+id+":foo").Val(); n != 1 {
		t.Fatalf("in-flight list holds %d jobs after a retried ack, want the second job still there", n)
	}
	// A retried AckReserve of the first must not ack the second either.
	if _, err := c.AckReserve(ctx, id, first, Timing{}, []string{"foo"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if p := rdb.Get(ctx, "resque:stat:processed").Val(); p != "1" {
		t.Errorf("processed = %s, want 1", p)
	}
}

func TestAckReserveAcksOnceAndTakesTheNextJob(t *testing.T) {
	c, rdb := newClient(t)
	id := "h:6:foo"
	qs := []string{"foo"}
	_ = c.Enqueue(ctx, "foo", []byte(`{"class":"A","args":[1]}`), []byte(`{"class":"A","args":[2]}`))
	first, _ := c.Reserve(ctx, id, qs, time.Now())
	second, err := c.AckReserve(ctx, id, first, Timing{}, qs, time.Now())
	if err != nil || second == nil || string(second.Payload) != `{"class":"A","args":[2]}` {
		t.Fatalf("AckReserve = %v, %v", second, err)
	}
	if rec := rdb.Get(ctx, "resque:worker:"+id).Val(); !strings.Contains(rec, `"payload":{"class":"A","args":[2]}`) {
		t.Errorf("worker record = %s, want the second job", rec)
	}
	// A retry of the same call (first reply lost) does not count again.
	third, err := c.AckReserve(ctx, id, first, Timing{}, qs, time.Now())
	if err != nil || third != nil {
		t.Fatalf("AckReserve on an empty queue = %v, %v; want nil, nil", third, err)
	}
	if got := rdb.Get(ctx, "resque:stat:processed").Val(); got != "1" {
		t.Errorf("processed = %s, want 1", got)
	}
	if rdb.Exists(ctx, "resque:worker:"+id).Val() != 0 {
		t.Error("worker record left after an empty reserve")
	}
	if got := rdb.LRange(ctx, "resque:poolctl:inflight:"+id+":foo", 0, -1).Val(); !reflect.DeepEqual(got, []string{`{"class":"A","args":[2]}`}) {
		t.Errorf("in flight = %v, want only the second job", got)
	}
}
