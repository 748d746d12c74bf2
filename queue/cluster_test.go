package queue

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/redisconn"
)

// On a Redis Cluster, with the namespace redisconn.EffectiveNamespace
// picks, every operation of a job's life runs (no CROSSSLOT): enqueue,
// reserve, ack-and-reserve, fail, requeue, retry, summarize, unregister.
// The recoverer finds a dead worker's in-flight jobs whichever node holds
// the namespace's slot: SCAN through a cluster client reads one node only,
// the one of its MATCH pattern's hash tag (go-redis routes it so), which
// the namespace provides.
func TestClusterJobLifeAndRecovery(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	rdb, err := redisconn.Open(cluster.URL(), redisconn.Options{Name: "queue-cluster-test", NoRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	admin := cluster.Client()
	// Namespaces whose slots lie on each of the three nodes.
	byNode := map[string]string{}
	for i := 0; len(byNode) < 3 && i < 1000; i++ {
		ns, _ := redisconn.EffectiveNamespace(cluster.URL(), fmt.Sprintf("app%d:", i))
		node, err := admin.MasterForKey(ctx, ns+"queues")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := byNode[node.Options().Addr]; !ok {
			byNode[node.Options().Addr] = ns
		}
	}
	if len(byNode) != 3 {
		t.Fatalf("namespaces found on %d nodes, want 3", len(byNode))
	}
	for addr, ns := range byNode {
		c := New(rdb, ns)
		now := time.Now()
		if err := c.Enqueue(ctx, "foo", payload(t, "A"), payload(t, "B"), payload(t, "C")); err != nil {
			t.Fatalf("%s on %s: enqueue: %v", ns, addr, err)
		}
		id := WorkerID("thishost", os.Getpid(), []string{"foo"})
		if err := c.Register(ctx, Registration{ID: id, Started: now, Identity: "self/1"}); err != nil {
			t.Fatalf("%s: register: %v", ns, err)
		}
		if err := c.Heartbeat(ctx, Registration{ID: id, Started: now, Identity: "self/1"}, now); err != nil {
			t.Fatalf("%s: heartbeat: %v", ns, err)
		}
		j, err := c.Reserve(ctx, id, []string{"foo"}, now)
		if err != nil || j == nil {
			t.Fatalf("%s: reserve: %v, %v", ns, j, err)
		}
		j, err = c.AckReserve(ctx, id, j, Timing{Class: "A", Run: time.Millisecond}, []string{"foo"}, now)
		if err != nil || j == nil {
			t.Fatalf("%s: ack and reserve: %v, %v", ns, j, err)
		}
		if err := c.Fail(ctx, id, j, Timing{Class: "B"}, Failure{Exception: "E", Error: "boom"}, now); err != nil {
			t.Fatalf("%s: fail: %v", ns, err)
		}
		if err := c.RetryFailed(ctx, 0, RetryRemove, now); err != nil {
			t.Fatalf("%s: retry: %v", ns, err)
		}
		if _, err := c.Reserve(ctx, id, []string{"foo"}, now); err != nil {
			t.Fatalf("%s: reserve: %v", ns, err)
		}
		if n, err := c.Requeue(ctx, id); err != nil || n != 1 {
			t.Fatalf("%s: requeue: %d, %v", ns, n, err)
		}
		s, err := c.Summarize(ctx)
		if err != nil || s.Queues["foo"] != 2 || s.Processed != 2 || s.Failed != 1 || len(s.Workers) != 1 {
			t.Fatalf("%s: summary %+v, %v; want foo=2, processed 2 (Resque counts failures too), failed 1, one worker", ns, s, err)
		}
		if _, err := c.Unregister(ctx, id); err != nil {
			t.Fatalf("%s: unregister: %v", ns, err)
		}

		// A ghost: an unregistered, dead worker of this host holding a job.
		ghost := WorkerID("thishost", deadPID(t), []string{"foo"})
		if j, err := c.Reserve(ctx, ghost, []string{"foo"}, now); err != nil || j == nil {
			t.Fatalf("%s: reserve for the ghost: %v, %v", ns, j, err)
		}
		r := NewRecoverer(c, RecovererOptions{Host: "thishost", Alive: identityAlive, HeartbeatExpiry: time.Second})
		rec, err := r.RecoverOnce(ctx)
		if err != nil || rec.Requeued != 1 {
			t.Errorf("%s on %s: recovered %+v, %v; want the ghost's job requeued", ns, addr, rec, err)
		}
		if n := admin.LLen(ctx, ns+"queue:foo").Val(); n != 2 {
			t.Errorf("%s: queue foo holds %d, want 2", ns, n)
		}
	}
}
