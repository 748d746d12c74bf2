package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolctl/poolctl/internal/redistest"
)

// The classifier is checked on errors real servers give: a CROSSSLOT from
// a Cluster, a NOPERM from an ACL user, a WRONGTYPE, and, as
// "unavailable", a closed port, a stalled server and a closed client.
func TestDescribeRealErrors(t *testing.T) {
	ctx := context.Background()
	cluster := redistest.StartCluster(t, 3)
	crdb, err := Open(cluster.URL(), Options{Name: "describe-test", NoRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer crdb.Close()
	crossSlot := crdb.Eval(ctx, "return redis.call('rpush', KEYS[1], 'x') + redis.call('rpush', KEYS[2], 'x')", []string{"resque:queue:a", "resque:queues"}).Err()

	// The namespace EffectiveNamespace picks puts every key in one slot:
	// the same script over the tagged keys runs.
	ns, _ := EffectiveNamespace(cluster.URL(), "resque:")
	if err := crdb.Eval(ctx, "return redis.call('rpush', KEYS[1], 'x') + redis.call('rpush', KEYS[2], 'x')", []string{ns + "queue:a", ns + "queue:b"}).Err(); err != nil {
		t.Errorf("a script over keys of namespace %q: %v", ns, err)
	}

	srv := redistest.Start(t)
	admin := srv.Client()
	if err := admin.Do(ctx, "ACL", "SETUSER", "reader", "on", ">pw", "~*", "+get", "+ping").Err(); err != nil {
		t.Fatal(err)
	}
	reader, err := Open("redis://reader:pw@"+srv.Addr()+"/0", Options{NoRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	noPerm := reader.Set(ctx, "k", "v", 0).Err()
	badPass, err := Open("redis://reader:wrong@"+srv.Addr()+"/0", Options{NoRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer badPass.Close()
	wrongPass := badPass.Ping(ctx).Err()
	admin.Set(ctx, "str", "v", 0)
	wrongType := admin.LPush(ctx, "str", "x").Err()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().String()
	l.Close()
	down, err := Open("redis://"+closedPort+"/0", Options{NoRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	refused := down.Ping(ctx).Err()
	down.Close()
	closed := down.Ping(ctx).Err()

	stalled := redistest.Start(t)
	slow, err := Open(stalled.URL(), Options{NoRetry: true, ReadTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := stalled.Freeze(); err != nil {
		t.Fatal(err)
	}
	timeout := slow.Ping(ctx).Err()
	_ = stalled.Thaw()

	for _, c := range []struct {
		name          string
		err           error
		want          string // prefix
		misconfigured bool
	}{
		{"CROSSSLOT", crossSlot, "Redis refused the command: CROSSSLOT ", true},
		{"NOPERM", noPerm, "Redis refused the command: NOPERM ", true},
		{"WRONGPASS", wrongPass, "Redis refused the command: WRONGPASS ", true},
		{"WRONGTYPE", wrongType, "Redis refused the command: WRONGTYPE ", false},
		{"wrapped WRONGTYPE", fmt.Errorf("record the job: %w", wrongType), "Redis refused the command: record the job: WRONGTYPE ", false},
		{"closed port", refused, "Redis unavailable: dial tcp " + closedPort, false},
		{"closed client", closed, "Redis unavailable: redis: client is closed", false},
		{"timeout", timeout, "Redis unavailable: ", false},
	} {
		if c.err == nil {
			t.Errorf("%s: the server gave no error", c.name)
			continue
		}
		got := Describe(c.err)
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: Describe = %q, want prefix %q", c.name, got, c.want)
		}
		if Misconfigured(c.err) != c.misconfigured {
			t.Errorf("%s (%v): Misconfigured = %v, want %v", c.name, c.err, !c.misconfigured, c.misconfigured)
		}
		if c.misconfigured && !strings.Contains(got, "retrying will not help") {
			t.Errorf("%s: Describe = %q does not say retrying will not help", c.name, got)
		}
	}
	if !strings.Contains(Describe(crossSlot), "hash tag") {
		t.Errorf("a CROSSSLOT does not point at the hash tag: %q", Describe(crossSlot))
	}
	if Describe(nil) != "" || IsServerError(redis.Nil) || IsServerError(errors.New("x")) {
		t.Error("nil, redis.Nil or a plain error taken for a server error")
	}
}

// Every key poolctl builds under the namespace EffectiveNamespace picks
// for a Cluster hashes to one slot, as the cluster itself computes it.
func TestEffectiveNamespaceKeysShareASlot(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	ctx := context.Background()
	rdb := cluster.Client()
	for _, configured := range []string{"", "resque:", "myapp:resque:", "a{}:", "a{b:", "app:{jobs}:"} {
		ns, _ := EffectiveNamespace(cluster.URL(), configured)
		var slots []int64
		for _, suffix := range []string{"queues", "queue:q}{x", "stat:processed", "failed", "poolctl:inflight:h:1:q{1}:q", "workers:heartbeat"} {
			slot, err := rdb.ClusterKeySlot(ctx, ns+suffix).Result()
			if err != nil {
				t.Fatal(err)
			}
			slots = append(slots, slot)
		}
		for _, s := range slots[1:] {
			if s != slots[0] {
				t.Errorf("namespace %q (configured %q): keys in slots %v", ns, configured, slots)
				break
			}
		}
	}
}

// Explain gives Describe's message and keeps the error for errors.As.
func TestExplain(t *testing.T) {
	err := fmt.Errorf("enqueue to q: %w", Explain(redis.ErrCrossSlot))
	if !strings.HasPrefix(err.Error(), "enqueue to q: Redis refused the command: CROSSSLOT ") {
		t.Errorf("message %q", err)
	}
	if !IsServerError(err) || !errors.Is(err, redis.ErrCrossSlot) || Explain(nil) != nil {
		t.Error("Explain hides the error it wraps, or wraps nil")
	}
}
