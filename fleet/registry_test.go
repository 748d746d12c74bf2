package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/redis/go-redis/v9"
)

const testNS = "fleettest:"

func testEntry(host, name string, pid int) Entry {
	return Entry{
		ID: PoolID(host, name), Host: host, Name: name, PID: pid,
		Version: "test", StartedAt: time.Now().UTC().Truncate(time.Millisecond),
		State: "running", Groups: []Group{{Queues: "foo", Desired: 2, Live: 2}},
	}
}

// runRegistrar runs r until the test ends (or stop is called).
func runRegistrar(t *testing.T, r *Registrar) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Errorf("Registrar.Run did not return within 15 s of its context's end")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func listed(t *testing.T, rdb redis.UniversalClient, o ListOptions) map[string]Listed {
	t.Helper()
	ls, err := ListWith(context.Background(), rdb, testNS, o)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	m := make(map[string]Listed, len(ls))
	for i, l := range ls {
		if i > 0 && ls[i-1].ID >= l.ID {
			t.Errorf("List not sorted by id: %q before %q", ls[i-1].ID, l.ID)
		}
		m[l.ID] = l
	}
	return m
}

func TestRegistryTwoPoolsListedAndHeartbeatAdvances(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	a := NewRegistrar(rdb, testNS, 100*time.Millisecond)
	b := NewRegistrar(rdb, testNS, 100*time.Millisecond)
	noID := testEntry("h1", "b", 100)
	noID.ID = "" // defaults to HOST/NAME
	a.Update(noID)
	b.Update(testEntry("h1", "a", 200))
	runRegistrar(t, a)
	runRegistrar(t, b)

	var first map[string]Listed
	testutil.Eventually(t, 15*time.Second, "both pools listed", func() bool {
		first = listed(t, rdb, ListOptions{})
		return len(first) == 2
	})
	for id, l := range first {
		if l.Stale || l.Heartbeat.IsZero() {
			t.Errorf("%s: fresh entry listed as stale=%v heartbeat=%v", id, l.Stale, l.Heartbeat)
		}
	}
	if first["h1/b"].PID != 100 || first["h1/a"].Groups[0].Live != 2 {
		t.Errorf("entries not as written: %+v", first)
	}
	testutil.Eventually(t, 15*time.Second, "the heartbeat to advance", func() bool {
		return listed(t, rdb, ListOptions{})["h1/a"].Heartbeat.After(first["h1/a"].Heartbeat)
	})

	// An Update is written by the next heartbeat.
	e := testEntry("h1", "a", 200)
	e.State = "paused"
	b.Update(e)
	testutil.Eventually(t, 15*time.Second, "the updated state to be written", func() bool {
		return listed(t, rdb, ListOptions{})["h1/a"].State == "paused"
	})
}

func TestRegistryHeartbeatIsServerTime(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	r := NewRegistrar(rdb, testNS, time.Second)
	r.Update(testEntry("h", "p", 1))
	runRegistrar(t, r)
	var l map[string]Listed
	testutil.Eventually(t, 15*time.Second, "the entry", func() bool {
		l = listed(t, rdb, ListOptions{})
		return len(l) == 1
	})
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := now.Sub(l["h/p"].Heartbeat); d < 0 || d > 5*time.Second {
		t.Errorf("heartbeat %v is %v away from the server's time %v", l["h/p"].Heartbeat, d, now)
	}
}

func TestRegistryStoppedRegistrarGoesStale(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	r := NewRegistrar(rdb, testNS, 100*time.Millisecond)
	r.Update(testEntry("h", "p", 1))
	stop := runRegistrar(t, r)
	o := ListOptions{StaleAfter: 500 * time.Millisecond}
	testutil.Eventually(t, 15*time.Second, "the entry listed fresh", func() bool {
		l, ok := listed(t, rdb, o)["h/p"]
		return ok && !l.Stale
	})
	stop()
	testutil.Eventually(t, 15*time.Second, "the entry to go stale", func() bool {
		return listed(t, rdb, o)["h/p"].Stale
	})
	l := listed(t, rdb, o)["h/p"]
	if l.Age < 500*time.Millisecond {
		t.Errorf("stale entry has age %v, below StaleAfter", l.Age)
	}
}

func TestRegistryRemoveKeepsANewerMastersEntry(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()

	oldM := NewRegistrar(rdb, testNS, 50*time.Millisecond)
	oldM.Update(testEntry("h", "p", 100))
	stopOld := runRegistrar(t, oldM)
	testutil.Eventually(t, 15*time.Second, "the old master's entry", func() bool {
		return listed(t, rdb, ListOptions{})["h/p"].PID == 100
	})
	stopOld()

	// A newer master of the same name takes over the entry; the old one
	// exits late.
	newM := NewRegistrar(rdb, testNS, 50*time.Millisecond)
	newE := testEntry("h", "p", 101)
	newE.StartedAt = newE.StartedAt.Add(time.Second)
	newM.Update(newE)
	stopNew := runRegistrar(t, newM)
	testutil.Eventually(t, 15*time.Second, "the new master's entry", func() bool {
		return listed(t, rdb, ListOptions{})["h/p"].PID == 101
	})
	if err := oldM.Remove(ctx); err != nil {
		t.Fatalf("old Remove: %v", err)
	}
	if l, ok := listed(t, rdb, ListOptions{})["h/p"]; !ok || l.PID != 101 {
		t.Fatalf("old master's Remove took the newer master's entry: %+v, present=%v", l, ok)
	}

	// Same pid, other start time (pid reused): still not ours.
	reused := NewRegistrar(rdb, testNS, time.Second)
	reusedE := testEntry("h", "p", 101)
	reused.Update(reusedE)
	if err := reused.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := listed(t, rdb, ListOptions{})["h/p"]; !ok {
		t.Fatal("a Remove with the same pid but another started_at deleted the entry")
	}

	// The newer master's own Remove works, and no heartbeat follows it.
	if err := newM.Remove(ctx); err != nil {
		t.Fatalf("new Remove: %v", err)
	}
	if _, ok := listed(t, rdb, ListOptions{})["h/p"]; ok {
		t.Fatal("the entry survived its own master's Remove")
	}
	time.Sleep(200 * time.Millisecond) // four heartbeat intervals: none may write
	if _, ok := listed(t, rdb, ListOptions{})["h/p"]; ok {
		t.Fatal("a heartbeat after Remove wrote the entry back")
	}
	stopNew()
}

func TestRegistryListPrunesOldSkipsUndecodable(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	put := func(e Entry) {
		b, _ := json.Marshal(e)
		if err := rdb.HSet(ctx, RegistryKey(testNS), e.ID, b).Err(); err != nil {
			t.Fatal(err)
		}
	}
	old := testEntry("h", "old", 1)
	old.Heartbeat = now.Add(-2 * time.Hour)
	put(old)
	stale := testEntry("h", "stale", 2)
	stale.Heartbeat = now.Add(-time.Minute)
	put(stale)
	fresh := testEntry("h", "fresh", 3)
	fresh.Heartbeat = now
	put(fresh)
	if err := rdb.HSet(ctx, RegistryKey(testNS), "h/garbage", "{not json").Err(); err != nil {
		t.Fatal(err)
	}

	got := listed(t, rdb, ListOptions{StaleAfter: 10 * time.Second, PruneAfter: time.Hour})
	if _, ok := got["h/old"]; ok {
		t.Error("an entry older than PruneAfter is listed")
	}
	if !got["h/stale"].Stale || got["h/fresh"].Stale {
		t.Errorf("stale flags wrong: stale=%v fresh=%v", got["h/stale"].Stale, got["h/fresh"].Stale)
	}
	if len(got) != 2 {
		t.Errorf("listed %d entries, want stale and fresh: %v", len(got), got)
	}
	fields, err := rdb.HKeys(ctx, RegistryKey(testNS)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(fields, " "), "h/old") {
		t.Errorf("the old entry was not pruned from Redis: %v", fields)
	}
	if !strings.Contains(strings.Join(fields, " "), "h/garbage") {
		t.Errorf("the undecodable entry was deleted; a listing should only skip it: %v", fields)
	}
}

func TestRegistryPruneSparesAnEntryRewrittenMeanwhile(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	key := RegistryKey(testNS)
	if err := rdb.HSet(ctx, key, "h/p", `{"id":"h/p","heartbeat":"2000-01-01T00:00:00Z"}`).Err(); err != nil {
		t.Fatal(err)
	}
	// The master came back between a listing's read and its prune.
	if err := rdb.HSet(ctx, key, "h/p", `{"id":"h/p","pid":7}`).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := pruneScript.Run(ctx, rdb, []string{key}, "h/p", `{"id":"h/p","heartbeat":"2000-01-01T00:00:00Z"}`).Int()
	if err != nil || n != 0 {
		t.Fatalf("prune of a changed entry: n=%d err=%v", n, err)
	}
	if ok, _ := rdb.HExists(ctx, key, "h/p").Result(); !ok {
		t.Fatal("prune deleted an entry that changed after it was read")
	}
}

func TestRegistryOutageLoggedOnceAndRecovered(t *testing.T) {
	srv := redistest.Start(t)
	// No retries: each heartbeat of the outage fails fast, so several do.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	var logs testutil.Buffer
	r := NewRegistrar(rdb, testNS, 50*time.Millisecond)
	r.Logf = func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) }
	r.Update(testEntry("h", "p", 1))
	runRegistrar(t, r)
	testutil.Eventually(t, 15*time.Second, "the entry", func() bool { return len(listed(t, rdb, ListOptions{})) == 1 })

	srv.Process.Stop()
	testutil.Eventually(t, 10*time.Second, "the outage to be logged", func() bool {
		return strings.Contains(logs.String(), "heartbeat failed")
	})
	// Let several more heartbeats fail: each must stay silent.
	time.Sleep(300 * time.Millisecond)
	srv.RestartEmpty() // the data is gone too
	testutil.Eventually(t, 10*time.Second, "the entry rewritten after an empty restart", func() bool {
		ls, err := List(context.Background(), rdb, testNS)
		return err == nil && len(ls) == 1
	})
	testutil.Eventually(t, 15*time.Second, "the recovery to be logged", func() bool {
		return strings.Contains(logs.String(), "written again")
	})
	if n := strings.Count(logs.String(), "heartbeat failed"); n != 1 {
		t.Errorf("one outage logged %d times:\n%s", n, logs.String())
	}
}
