package fleet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/queue"
	"github.com/redis/go-redis/v9"
)

// pool registers and runs a listener for host/name, as a master does.
func pool(t *testing.T, srv *redistest.Server, name string) *fakeExec {
	t.Helper()
	exec := newFakeExec(t)
	exec.remote.Store(true)
	r := NewRegistrar(srv.Client(), testNS, 200*time.Millisecond)
	r.Update(testEntry("h", name, 1))
	runRegistrar(t, r)
	startListener(t, srv, PoolID("h", name), exec, ListenerOptions{})
	return exec
}

func waitListed(t *testing.T, rdb redis.UniversalClient, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "the pools registered", func() bool {
		ls, err := List(context.Background(), rdb, testNS)
		return err == nil && len(ls) == n
	})
}

func TestClientSendAndBroadcastTwoPools(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	a := pool(t, srv, "a")
	b := pool(t, srv, "b")
	waitListed(t, rdb, 2)
	cl := NewClient(rdb, testNS)
	ctx := context.Background()

	r, err := cl.Send(ctx, "h/b", Command{Verb: VerbConfig, Args: []string{"foo=3"}}, 10*time.Second)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if r.Status != StatusOK || r.Pool != "h/b" || r.ID == "" {
		t.Errorf("reply %+v", r)
	}
	if got := strings.Join(b.Calls(), "|"); got != "config foo=3" {
		t.Errorf("h/b's executor: %q", got)
	}
	if got := a.Calls(); len(got) != 0 {
		t.Errorf("h/a's executor ran %q for a command sent to h/b", got)
	}

	// Both answer; Broadcast returns once they have, well before its
	// timeout.
	start := time.Now()
	rs, err := cl.Broadcast(ctx, Command{Verb: VerbPing}, 20*time.Second)
	if err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Broadcast took %s with every pool answered: no early return", d)
	}
	if len(rs) != 2 || rs[0].Pool != "h/a" || rs[1].Pool != "h/b" || rs[0].ID != rs[1].ID || rs[0].Status != StatusOK {
		t.Errorf("broadcast replies %+v", rs)
	}
	for _, r := range rs {
		if r.Elapsed <= 0 || r.Elapsed > time.Since(start) {
			t.Errorf("reply of %s: elapsed %s, want within the broadcast's %s", r.Pool, r.Elapsed, time.Since(start))
		}
	}
	rs, err = cl.Broadcast(ctx, Command{Verb: VerbStatus}, 20*time.Second)
	if err != nil || len(rs) != 2 || !strings.Contains(string(rs[0].Result), `"live":3`) {
		t.Errorf("broadcast status: %+v, %v", rs, err)
	}

	// Reply lists are cleaned up.
	keys, err := rdb.Keys(ctx, testNS+queue.ReplyPrefix+"*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("reply lists left behind: %q (%v)", keys, err)
	}
}

func TestClientBroadcastWaitsForASilentPool(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	pool(t, srv, "a")
	// Registered and fresh, but its listener does not run.
	silent := NewRegistrar(srv.Client(), testNS, 200*time.Millisecond)
	silent.Update(testEntry("h", "silent", 2))
	runRegistrar(t, silent)
	waitListed(t, rdb, 2)

	start := time.Now()
	rs, err := NewClient(rdb, testNS).Broadcast(context.Background(), Command{Verb: VerbPing}, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("Broadcast returned after %s, before its timeout, with h/silent unanswered", d)
	}
	if len(rs) != 1 || rs[0].Pool != "h/a" {
		t.Errorf("replies %+v", rs)
	}
}

func TestClientSendTimeoutThenServedByALaterMaster(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	cl := NewClient(rdb, testNS)
	ctx := context.Background()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}

	// No master runs: the send times out, the command stays queued.
	kept := Command{ReplyTo: "poolctl:reply:kept", Verb: VerbConfig, Args: []string{"foo=3"}, ExpiresAt: now.Add(time.Minute)}
	_, err = cl.Send(ctx, "h/p", kept, 500*time.Millisecond)
	if !errors.Is(err, ErrNoReply) || !strings.Contains(err.Error(), "stays queued") {
		t.Fatalf("Send to a pool that is down: %v; want ErrNoReply saying the command stays queued", err)
	}
	// Its expiry defaults to the timeout: this one will be expired when
	// the master comes.
	gone := Command{ReplyTo: "poolctl:reply:gone", Verb: VerbConfig, Args: []string{"foo=9"}}
	if _, err := cl.Send(ctx, "h/p", gone, 300*time.Millisecond); !errors.Is(err, ErrNoReply) {
		t.Fatalf("second Send: %v", err)
	}
	if n, _ := rdb.LLen(ctx, ControlKey(testNS, "h/p")).Result(); n != 2 {
		t.Fatalf("control list holds %d commands, want 2", n)
	}
	testutil.Eventually(t, 15*time.Second, "the second command's expiry", func() bool {
		t2, err := rdb.Time(ctx).Result()
		return err == nil && t2.Sub(now) > 2*time.Second
	})

	exec := newFakeExec(t)
	exec.remote.Store(true)
	startListener(t, srv, "h/p", exec, ListenerOptions{})
	if r := awaitReply(t, rdb, "poolctl:reply:kept", 10*time.Second); r.Status != StatusOK {
		t.Errorf("the queued command: %+v", r)
	}
	if r := awaitReply(t, rdb, "poolctl:reply:gone", 10*time.Second); r.Status != StatusExpired {
		t.Errorf("the expired command: %+v", r)
	}
	if got := strings.Join(exec.Calls(), "|"); got != "config foo=3" {
		t.Errorf("executor calls %q, want only the unexpired command", got)
	}
}

func TestClientSendIgnoresOtherRepliesAndRefusesBadCommands(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	cl := NewClient(rdb, testNS)
	ctx := context.Background()
	pool(t, srv, "p")

	// A stale reply of another command on the same list.
	if err := rdb.RPush(ctx, testNS+"poolctl:reply:shared", `{"id":"other","pool":"h/x","status":"error","error":"old"}`).Err(); err != nil {
		t.Fatal(err)
	}
	r, err := cl.Send(ctx, "h/p", Command{ID: "mine", ReplyTo: "poolctl:reply:shared", Verb: VerbPing}, 10*time.Second)
	if err != nil || r.ID != "mine" || r.Status != StatusOK {
		t.Errorf("Send: %+v, %v", r, err)
	}

	for _, c := range []Command{{Verb: "exec"}, {Verb: VerbPing, ReplyTo: "queue:foo"}, {Verb: VerbConfig}} {
		if _, err := cl.Send(ctx, "h/p", c, time.Second); err == nil || !strings.Contains(err.Error(), "refusing to send") {
			t.Errorf("Send(%+v): %v, want a refusal", c, err)
		}
	}
	if _, err := cl.Send(ctx, "", Command{Verb: VerbPing}, time.Second); err == nil {
		t.Error("Send with no target: no error")
	}
	if n, _ := rdb.LLen(ctx, ControlKey(testNS, "h/p")).Result(); n != 0 {
		t.Errorf("refused commands were queued: %d", n)
	}
	if n, _ := rdb.Exists(ctx, testNS+"queue:foo").Result(); n != 0 {
		t.Error("something was pushed onto a queue")
	}
}
