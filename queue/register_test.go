package queue

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// registrationOf reads what Resque (and poolctl's recoverer) see of a
// worker's registration.
func registrationOf(rdb *redis.Client, id string) (member bool, started, heartbeat, identity string) {
	return rdb.SIsMember(ctx, "resque:workers", id).Val(),
		rdb.Get(ctx, "resque:worker:"+id+":started").Val(),
		rdb.HGet(ctx, "resque:workers:heartbeat", id).Val(),
		rdb.Get(ctx, "resque:poolctl:identity:"+id).Val()
}

// A worker's start is one script: the jobs a dead predecessor with the
// same id left in flight go back to the head of their queues, in the
// order they were taken, and the predecessor's current job and
// reservation are forgotten, before the new worker is registered exactly
// as Register records it (Resque's shapes, Redis's clock).
func TestEnrollRequeuesAPredecessorsJobsThenRegisters(t *testing.T) {
	c, rdb := newClient(t)
	id := WorkerID("vm", 15105, []string{"foo", "bar"})
	for _, q := range []string{"foo", "bar"} {
		if err := c.Enqueue(ctx, q, []byte(`{"class":"A","args":[1]}`), []byte(`{"class":"B","args":[2]}`), []byte(`{"class":"C","args":[3]}`)); err != nil {
			t.Fatal(err)
		}
	}
	// The predecessor took A and B from foo and A from bar, and died.
	for _, qs := range [][]string{{"foo"}, {"foo"}, {"bar"}} {
		if j, err := c.Reserve(ctx, id, qs, time.Now()); j == nil || err != nil {
			t.Fatalf("Reserve = %v, %v", j, err)
		}
	}
	reg := Registration{ID: id, Started: time.Date(2026, 11, 22, 8, 58, 14, 0, time.UTC), Identity: "boot/42"}
	n, err := c.Enroll(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("Enroll requeued %d jobs, want 3", n)
	}
	want := []string{`{"class":"A","args":[1]}`, `{"class":"B","args":[2]}`, `{"class":"C","args":[3]}`}
	for _, q := range []string{"foo", "bar"} {
		if got := rdb.LRange(ctx, "resque:queue:"+q, 0, -1).Val(); !reflect.DeepEqual(got, want) {
			t.Errorf("queue %s = %v, want %v (the predecessor's jobs back at the head, in order)", q, got, want)
		}
	}
	for _, key := range []string{"resque:worker:" + id, "resque:poolctl:reservation:" + id, "resque:poolctl:inflight-index:" + id,
		"resque:poolctl:inflight:" + id + ":foo", "resque:poolctl:inflight:" + id + ":bar"} {
		if rdb.Exists(ctx, key).Val() != 0 {
			t.Errorf("%s is still there after Enroll", key)
		}
	}
	member, started, hb, identity := registrationOf(rdb, id)
	if !member || started != "2026-11-22 08:58:14 +0000" || identity != "boot/42" {
		t.Errorf("registration: member %v, started %q, identity %q; want true, \"2026-11-22 08:58:14 +0000\", \"boot/42\"", member, started, identity)
	}
	redisNow, _ := c.ServerTime(ctx)
	if ht, err := time.Parse(heartbeatLayout, hb); err != nil || redisNow.Sub(ht).Abs() > 2*time.Second {
		t.Errorf("heartbeat = %q (%v), want Redis's time %s in Ruby's iso8601 shape", hb, err, redisNow.UTC().Format(heartbeatLayout))
	}
	// Only the worker's records, the queues and their wake-up tokens.
	keys := rdb.Keys(ctx, "*").Val()
	for _, k := range keys {
		if !strings.HasPrefix(k, "resque:queue") && !strings.HasPrefix(k, "resque:poolctl:notify") &&
			k != "resque:workers" && k != "resque:workers:heartbeat" && k != "resque:worker:"+id+":started" && k != "resque:poolctl:identity:"+id {
			t.Errorf("unexpected key %s after Enroll", k)
		}
	}
}

// Beat (a worker's heartbeat, and Register) brings back a registration
// that was lost, with the same records Heartbeat writes, and leaves a
// worker's jobs in flight alone.
func TestBeatReassertsTheRegistrationAndKeepsJobsInFlight(t *testing.T) {
	c, rdb := newClient(t)
	id := WorkerID("h", 3, []string{"foo"})
	reg := Registration{ID: id, Started: time.Date(2026, 11, 22, 8, 58, 14, 0, time.UTC), Identity: "b/9"}
	if _, err := c.Enroll(ctx, reg); err != nil {
		t.Fatal(err)
	}
	_ = c.Enqueue(ctx, "foo", []byte(`{"class":"A","args":[]}`))
	if j, err := c.Reserve(ctx, id, []string{"foo"}, time.Now()); j == nil || err != nil {
		t.Fatalf("Reserve = %v, %v", j, err)
	}
	rdb.Del(ctx, "resque:workers", "resque:worker:"+id+":started", "resque:workers:heartbeat", "resque:poolctl:identity:"+id)
	if err := c.Beat(ctx, reg); err != nil {
		t.Fatal(err)
	}
	member, started, hb, identity := registrationOf(rdb, id)
	if !member || started != "2026-11-22 08:58:14 +0000" || identity != "b/9" || hb == "" {
		t.Errorf("registration after a beat: member %v, started %q, heartbeat %q, identity %q", member, started, hb, identity)
	}
	if n := rdb.LLen(ctx, "resque:poolctl:inflight:"+id+":foo").Val(); n != 1 {
		t.Errorf("in-flight list holds %d jobs after a beat, want 1 (a heartbeat never requeues)", n)
	}
	if rdb.Exists(ctx, "resque:worker:"+id).Val() != 1 {
		t.Error("the worker's current job record is gone after a beat")
	}
	// The same records as Heartbeat's, but for the clock's reading.
	now, _ := c.ServerTime(ctx)
	if err := c.Heartbeat(ctx, reg, now); err != nil {
		t.Fatal(err)
	}
	m2, s2, hb2, i2 := registrationOf(rdb, id)
	ht, err1 := time.Parse(heartbeatLayout, hb)
	ht2, err2 := time.Parse(heartbeatLayout, hb2)
	if m2 != member || s2 != started || i2 != identity || err1 != nil || err2 != nil || ht2.Sub(ht).Abs() > 2*time.Second {
		t.Errorf("Beat wrote %v %q %q %q, Heartbeat %v %q %q %q", member, started, hb, identity, m2, s2, hb2, i2)
	}
	// No identity recorded when none is known: Beat leaves the key alone.
	other := Registration{ID: WorkerID("h", 4, []string{"foo"}), Started: time.Now()}
	if err := c.Beat(ctx, other); err != nil {
		t.Fatal(err)
	}
	if rdb.Exists(ctx, "resque:poolctl:identity:"+other.ID).Val() != 0 {
		t.Error("Beat recorded an empty identity")
	}
}

// The heartbeat the scripts write from Redis's TIME is the one Go writes
// for the same second, in UTC, across month, year, leap-day and century
// boundaries.
func TestHeartbeatLuaFormatsAsGo(t *testing.T) {
	_, rdb := newClient(t)
	script := redis.NewScript(heartbeatLua + "return iso8601(tonumber(ARGV[1]))")
	times := []time.Time{
		time.Unix(0, 0),
		time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2000, 2, 29, 12, 0, 0, 0, time.UTC),
		time.Date(2000, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 11, 22, 8, 58, 14, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2100, 2, 28, 23, 59, 59, 0, time.UTC),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
	}
	for d := 0; d < 800; d += 7 { // every weekday of two years, at varied seconds
		times = append(times, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(d)*24*time.Hour+time.Duration(d*37)*time.Second))
	}
	for _, tm := range times {
		got, err := script.Run(ctx, rdb, nil, tm.Unix()).Text()
		if want := tm.UTC().Format(heartbeatLayout); err != nil || got != want {
			t.Errorf("iso8601(%d) = %q, %v; want %q", tm.Unix(), got, err, want)
		}
	}
}

// A Redis whose script cache is empty (restarted, or SCRIPT FLUSH) still
// serves Enroll and Beat: EVALSHA's NOSCRIPT falls back on the body. With
// the scripts loaded (LoadScripts, as a pool master does), no body is
// sent at all.
func TestRegistrationScriptsSurviveAnEmptyScriptCache(t *testing.T) {
	c, rdb := newClient(t)
	reg := Registration{ID: WorkerID("h", 5, []string{"foo"}), Started: time.Now()}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enroll(ctx, reg); err != nil {
		t.Fatalf("Enroll on an empty script cache: %v", err)
	}
	rdb.ScriptFlush(ctx)
	if err := c.Beat(ctx, reg); err != nil {
		t.Fatalf("Beat on an empty script cache: %v", err)
	}
	if member, _, _, _ := registrationOf(rdb, reg.ID); !member {
		t.Fatal("not registered")
	}

	rdb.ScriptFlush(ctx)
	if err := c.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*redis.Script{enrollScript, beatScript, reserveScript, ackReserveScript, claimScript, ackScript, startedScript, requeueScript, unregisterScript, retryScript} {
		if ok, err := s.Exists(ctx, rdb).Result(); err != nil || !ok[0] {
			t.Errorf("script %s not loaded by LoadScripts (%v)", s.Hash(), err)
		}
	}
	rdb.ConfigResetStat(ctx)
	if _, err := c.Enroll(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if err := c.Beat(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if stats := rdb.Info(ctx, "commandstats").Val(); strings.Contains(stats, "cmdstat_eval:") {
		t.Errorf("a script body was sent although the scripts were loaded:\n%s", stats)
	}
}
