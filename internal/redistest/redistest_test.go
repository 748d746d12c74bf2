package redistest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartRestartKeepsDataWithPersistence(t *testing.T) {
	s := Start(t, WithPersistence())
	if s.Addr() == "127.0.0.1:6379" {
		t.Fatal("test server must never use port 6379")
	}
	ctx := context.Background()
	rdb := s.Client()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	got, err := rdb.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart: got %q, %v; want \"v\"", got, err)
	}
}

// A cluster of three answers cluster_state:ok on every node and routes a
// key to whichever node owns its slot.
func TestStartCluster(t *testing.T) {
	c := StartCluster(t, 3)
	ctx := context.Background()
	rdb := c.Client()
	for i := 0; i < 30; i++ {
		k := "k" + string(rune('a'+i))
		if err := rdb.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	var masters atomic.Int32 // ForEachMaster runs concurrently
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		masters.Add(1)
		return nil
	}); err != nil || masters.Load() != 3 {
		t.Fatalf("%d masters, %v; want 3", masters.Load(), err)
	}
	for _, p := range c.Nodes {
		if p.Addr() == "127.0.0.1:6379" {
			t.Fatal("test server must never use port 6379")
		}
	}
}

// Killing the master promotes the replica: the sentinel hands out its
// address and it takes writes.
func TestSentinelKillMasterPromotesTheReplica(t *testing.T) {
	s := StartSentinel(t)
	ctx := context.Background()
	old := s.Master.Addr()
	s.KillMaster()
	if s.Master.Addr() == old {
		t.Fatal("the master did not change")
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Master.Addr()})
	defer rdb.Close()
	if err := rdb.Set(ctx, "after", "failover", 0).Err(); err != nil {
		t.Fatalf("the promoted master refuses writes: %v", err)
	}
}

// A switchover promotes the replica and demotes the live master, which
// then refuses writes with READONLY.
func TestSentinelSwitchoverDemotesTheMaster(t *testing.T) {
	s := StartSentinel(t)
	ctx := context.Background()
	old := s.Master.Addr()
	s.Switchover()
	if s.Master.Addr() == old || s.Replica.Addr() != old {
		t.Fatalf("master %s, replica %s; want them swapped", s.Master.Addr(), s.Replica.Addr())
	}
	demoted := redis.NewClient(&redis.Options{Addr: s.Replica.Addr()})
	defer demoted.Close()
	if err := demoted.Set(ctx, "k", "v", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
		t.Fatalf("a write to the demoted master: %v, want READONLY", err)
	}
}

// A master that stalls for 1.5 s, as a loaded host stalls a process (or
// the sentinel itself), is not failed over: failovers happen when a test
// makes them. With down-after 1 s, a loaded run failed over a live master
// in the middle of TestSentinelRepeatedFailoversLoseNothing, and Master
// and Replica no longer named the servers' roles.
func TestSentinelRidesOutAStalledMaster(t *testing.T) {
	s := StartSentinel(t)
	old := s.Master.Addr()
	if err := s.Master.Freeze(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the stall itself
	if err := s.Master.Thaw(); err != nil {
		t.Fatal(err)
	}
	// A failover already under way would switch within about a second:
	// look for two.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		addr, err := s.MasterAddr(context.Background())
		if err != nil || addr != old {
			t.Fatalf("after a 1.5 s stall the sentinel hands out %q (%v), want the master %s\n%s", addr, err, old, s.evidence())
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(s.Sentinel.dir, "redis.log"))
	if strings.Contains(string(log), "+sdown master") {
		t.Errorf("the sentinel judged a master stalled for 1.5 s down:\n%s", s.evidence())
	}
}
