package queue

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Every producer of poolctl's pushes wake-up tokens with its jobs: to the
// queue's own notify list and to the any-queue list, bounded by NotifyCap.
func TestProducersPushBoundedWakeUpTokens(t *testing.T) {
	c, rdb := newClient(t)
	tokens := func(q string) (own, anyQ int64) {
		return rdb.LLen(ctx, "resque:poolctl:notify:"+q).Val(), rdb.LLen(ctx, "resque:poolctl:notify-any").Val()
	}
	if err := c.Enqueue(ctx, "foo", []byte(`{"class":"A","args":[]}`)); err != nil {
		t.Fatal(err)
	}
	if own, anyQ := tokens("foo"); own != 1 || anyQ != 1 {
		t.Fatalf("after one job: %d tokens for foo, %d any-queue; want 1, 1", own, anyQ)
	}
	if own, _ := tokens("bar"); own != 0 {
		t.Fatalf("a job for foo pushed %d tokens for bar", own)
	}
	payloads := make([][]byte, 3*NotifyCap)
	for i := range payloads {
		payloads[i] = []byte(fmt.Sprintf(`{"class":"A","args":[%d]}`, i))
	}
	if err := c.Enqueue(ctx, "foo", payloads...); err != nil {
		t.Fatal(err)
	}
	if own, anyQ := tokens("foo"); own != NotifyCap || anyQ != NotifyCap {
		t.Fatalf("after a burst: %d and %d tokens; want both bounded at %d", own, anyQ, NotifyCap)
	}

	// A requeue notifies the queues that got jobs back, and only those.
	rdb.Del(ctx, "resque:poolctl:notify:foo", "resque:poolctl:notify-any")
	id := "h:1:foo,bar"
	if j, err := c.Reserve(ctx, id, []string{"bar", "foo"}, time.Now()); err != nil || j == nil || j.Queue != "foo" {
		t.Fatalf("Reserve = %+v, %v", j, err)
	}
	if n, err := c.Requeue(ctx, id); err != nil || n != 1 {
		t.Fatalf("Requeue = %d, %v; want 1", n, err)
	}
	if own, anyQ := tokens("foo"); own != 1 || anyQ != 1 {
		t.Errorf("after a requeue to foo: %d tokens for foo, %d any-queue; want 1, 1", own, anyQ)
	}
	if own, _ := tokens("bar"); own != 0 {
		t.Errorf("a requeue to foo pushed %d tokens for bar", own)
	}

	// So does a retried failure.
	rdb.Del(ctx, "resque:poolctl:notify:foo", "resque:poolctl:notify-any")
	j, _ := c.Reserve(ctx, id, []string{"foo"}, time.Now())
	if err := c.Fail(ctx, id, j, Timing{}, Failure{Exception: "E", Error: "e"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := c.RetryFailed(ctx, 0, RetryRemove, time.Now()); err != nil {
		t.Fatal(err)
	}
	if own, anyQ := tokens("foo"); own != 1 || anyQ != 1 {
		t.Errorf("after a retry to foo: %d tokens for foo, %d any-queue; want 1, 1", own, anyQ)
	}
}

// The waiter sees which list a token came from, and a short timeout ends
// an empty wait with "".
func TestWaitNotifyAndRenotify(t *testing.T) {
	c, rdb := newClient(t)
	blocking := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr, PoolSize: 1})
	defer blocking.Close()
	keys := c.NotifyKeys([]string{"a", "b"}, []string{"a", "b"})
	start := time.Now()
	key, err := c.WaitNotify(ctx, blocking, keys, 50*time.Millisecond)
	if err != nil || key != "" {
		t.Fatalf("empty wait = %q, %v", key, err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("a 50 ms wait took %s: the timeout was rounded up", el)
	}
	if got := c.NotifyKeys([]string{"a", "*"}, []string{"a", "b", "c"}); len(got) != 1 || got[0] != "resque:poolctl:notify-any" {
		t.Errorf("a list with * waits on %v, want the any-queue list alone", got)
	}
	_ = c.Enqueue(ctx, "b", []byte(`{"class":"A","args":[]}`))
	if key, err := c.WaitNotify(ctx, blocking, keys, time.Second); err != nil || key != "resque:poolctl:notify:b" {
		t.Fatalf("wait = %q, %v; want b's list", key, err)
	}
	// Renotify passes a token on only while the queue holds jobs.
	if err := c.Renotify(ctx, "b", "resque:poolctl:notify:b"); err != nil {
		t.Fatal(err)
	}
	if n := rdb.LLen(ctx, "resque:poolctl:notify:b").Val(); n != 1 {
		t.Errorf("b holds a job: %d tokens after Renotify, want 1", n)
	}
	rdb.Del(ctx, "resque:queue:b", "resque:poolctl:notify:b")
	if err := c.Renotify(ctx, "b", "resque:poolctl:notify:b"); err != nil {
		t.Fatal(err)
	}
	if n := rdb.LLen(ctx, "resque:poolctl:notify:b").Val(); n != 0 {
		t.Errorf("b is empty: %d tokens after Renotify, want 0", n)
	}
	// One idle poller per queue list per period.
	won1, err1 := c.TryIdlePoll(ctx, []string{"*"}, time.Minute)
	won2, err2 := c.TryIdlePoll(ctx, []string{"*"}, time.Minute)
	if err1 != nil || err2 != nil || !won1 || won2 {
		t.Errorf("TryIdlePoll twice = %v, %v (%v, %v); want true then false", won1, won2, err1, err2)
	}
}
