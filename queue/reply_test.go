package queue

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
)

func replyMsg(t *testing.T, status string) []byte {
	t.Helper()
	b, err := EncodeReply(ReplyMessage{CorrelationID: "c1", Status: status, Class: "Same", Queue: "foo", Data: json.RawMessage("null")})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func replies(t *testing.T, c *Client, list string) []ReplyMessage {
	t.Helper()
	raw, err := c.Redis().LRange(ctx, c.Keys().ReplyKey(list), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]ReplyMessage, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &out[i]); err != nil {
			t.Fatalf("reply %d is not JSON: %v: %s", i, err, r)
		}
	}
	return out
}

// The started reply counts one attempt per reservation, whatever the
// retries; the terminal reply carries that count and goes out once per
// acknowledged job, even when the acknowledging call's reply is lost
// (frozen Redis) and the call is retried.
func TestRepliesAreCountedPerReservationAndTerminalOnce(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	c := New(stallingClient(t, srv), "")
	if err := c.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	id := "h:3:foo"
	same := []byte(`{"class":"Same","args":[],"reply_to":"r","correlation_id":"c1"}`)
	_ = New(rdb, "").Enqueue(ctx, "foo", same, same)

	j1 := reserveOne(t, c, id, "foo")
	j1.Reply = &JobReply{To: "r", CorrelationID: "c1", TTL: time.Minute}
	for range 2 { // a retry after a lost reply: nothing more
		if n, err := c.StartedReply(ctx, j1, replyMsg(t, ReplyStarted)); err != nil || n != 1 {
			t.Fatalf("StartedReply = %d, %v; want attempt 1", n, err)
		}
	}
	// Requeued (as after a crash) and reserved again: attempt 2.
	if _, err := c.Requeue(ctx, id); err != nil {
		t.Fatal(err)
	}
	j1 = reserveOne(t, c, id, "foo")
	j1.Reply = &JobReply{To: "r", CorrelationID: "c1", TTL: time.Minute, Final: replyMsg(t, ReplyCompleted)}
	if n, err := c.StartedReply(ctx, j1, replyMsg(t, ReplyStarted)); err != nil || n != 2 {
		t.Fatalf("StartedReply after a requeue = %d, %v; want attempt 2", n, err)
	}
	ack := func() error { return c.Ack(ctx, id, j1, Timing{Class: "Same"}) }
	if err := srv.Freeze(); err != nil {
		t.Fatal(err)
	}
	err := ack()
	if err := srv.Thaw(); err != nil {
		t.Fatal(err)
	}
	if err == nil {
		t.Fatal("Ack against a frozen Redis succeeded; the test needs a lost reply")
	}
	testutil.Eventually(t, 5*time.Second, "the lost ack's script to run", func() bool {
		return rdb.LLen(ctx, "resque:poolctl:inflight:"+id+":foo").Val() == 0
	})
	if err := ack(); err != nil {
		t.Fatalf("retried Ack: %v", err)
	}
	got := replies(t, c, "r")
	if len(got) != 3 || got[0].Attempt != 1 || got[1].Attempt != 2 || got[2].Status != ReplyCompleted || got[2].Attempt != 2 {
		t.Fatalf("replies = %+v; want started 1, started 2, completed 2", got)
	}
	if ttl := rdb.PTTL(ctx, "resque:r").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("reply list TTL = %v, want (0, 1m]", ttl)
	}
	// The count is dropped with the terminal reply: the identical second
	// job is its own first attempt, and fails with exactly one reply too.
	j2 := reserveOne(t, c, id, "foo")
	j2.Reply = &JobReply{To: "r", CorrelationID: "c1", TTL: time.Minute, Final: replyMsg(t, ReplyFailed)}
	if n, err := c.StartedReply(ctx, j2, replyMsg(t, ReplyStarted)); err != nil || n != 1 {
		t.Fatalf("StartedReply of the second job = %d, %v; want attempt 1", n, err)
	}
	for range 2 {
		if err := c.Fail(ctx, id, j2, Timing{Class: "Same"}, Failure{Exception: "E", Error: "e"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	got = replies(t, c, "r")
	if len(got) != 5 || got[4].Status != ReplyFailed || got[4].Attempt != 1 {
		t.Fatalf("replies = %+v; want a single failed reply, attempt 1, last", got)
	}
	if n := rdb.HLen(ctx, "resque:poolctl:attempts:r").Val(); n != 0 {
		t.Errorf("attempts hash keeps %d field(s) after the terminal replies", n)
	}
}

// AckReserve pushes the terminal reply of the job it acknowledges, once.
func TestAckReservePushesTheTerminalReplyOnce(t *testing.T) {
	c, rdb := newClient(t)
	id := "h:4:foo"
	p := []byte(`{"class":"Same","args":[]}`)
	_ = c.Enqueue(ctx, "foo", p, p)
	j := reserveOne(t, c, id, "foo")
	j.Reply = &JobReply{To: "poolctl:reply:x", CorrelationID: "c1", Final: replyMsg(t, ReplyCompleted)}
	for range 2 {
		if _, err := c.AckReserve(ctx, id, j, Timing{Class: "Same"}, []string{"foo"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if got := replies(t, c, "poolctl:reply:x"); len(got) != 1 || got[0].Status != ReplyCompleted || got[0].Attempt != 1 {
		t.Fatalf("replies = %+v; want one completed, attempt 1", got)
	}
	if ttl := rdb.PTTL(ctx, "resque:poolctl:reply:x").Val(); ttl <= DefaultReplyTTL-time.Minute || ttl > DefaultReplyTTL {
		t.Errorf("reply list TTL = %v, want the default %v", ttl, DefaultReplyTTL)
	}
}
