package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/queue"
)

// A3: flags are flags anywhere before "--": -q after the job's arguments
// silences enqueue instead of becoming an argument, --redis after them
// picks the Redis; after "--" everything is an argument, and a negative
// number is an argument too. An unknown flag is refused, changing nothing.
func TestEnqueueFlagsAfterArguments(t *testing.T) {
	redis := redistest.Start(t)
	rdb := redis.Client()
	e := newShellEnv(t)
	// Where a flag taken for an argument would send the jobs: nowhere.
	e.env = append(e.env, "REDIS_URL=redis://127.0.0.1:1/0")
	ctx := context.Background()
	jobs := func() []string {
		t.Helper()
		got, err := rdb.LRange(ctx, "resque:queue:q", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		rdb.Del(ctx, "resque:queue:q")
		return got
	}

	before := time.Now()
	r := e.run("", "enqueue", "q", "Poolctl::Noop", "a", "-q", "--redis", redis.URL())
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("enqueue ... a -q --redis URL: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := jobs(); len(got) != 1 || unstamped(t, got[0], before) != `{"class":"Poolctl::Noop","args":["a"]}` {
		t.Errorf("jobs = %q", got)
	}

	r = e.run("", "enqueue", "--redis", redis.URL(), "-n", "2", "q", "Poolctl::Sleep", "-5", "x", "--", "-q", "--name")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "enqueued 2 job(s) of Poolctl::Sleep on q") {
		t.Errorf("enqueue with -- : exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := jobs(); len(got) != 2 || unstamped(t, got[0], before) != `{"class":"Poolctl::Sleep","args":[-5,"x","-q","--name"]}` {
		t.Errorf("jobs = %q", got)
	}

	r = e.run("", "enqueue", "--redis", redis.URL(), "q", "Poolctl::Noop", "a", "--bogus")
	if r.code != 2 || !strings.Contains(r.stderr, "flag provided but not defined: -bogus") ||
		!strings.Contains(r.stderr, `put job arguments that start with "-" after --`) {
		t.Errorf("unknown flag: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := jobs(); len(got) != 0 {
		t.Errorf("an enqueue with an unknown flag pushed %q", got)
	}
}

// unstamped checks that payload ends with the enqueued_at stamp of a time
// between after and now, and returns it without the stamp.
func unstamped(t *testing.T, payload string, after time.Time) string {
	t.Helper()
	i := strings.LastIndex(payload, `,"enqueued_at":`)
	if i < 0 || !strings.HasSuffix(payload, "}") {
		t.Errorf("payload %s has no enqueued_at at its end", payload)
		return payload
	}
	stamp := payload[i+len(`,"enqueued_at":`) : len(payload)-1]
	at, ok := queue.ParseEnqueuedAt([]byte(stamp))
	if !ok || at.Before(after.Truncate(time.Microsecond)) || at.After(time.Now()) {
		t.Errorf("enqueued_at %s (%v) is not a time between %v and now", stamp, at, after)
	}
	return payload[:i] + "}"
}

// A2: failed retry --all retries exactly the records present when it
// started. A worker that fails every job again (emulated: each job pushed
// back on the queue becomes a new failure record at the end of the list,
// as a live pool's would) must not make it retry the failures it caused.
func TestFailedRetryAllRetriesOnlyPresentRecords(t *testing.T) {
	redis := redistest.Start(t)
	rdb := redis.Client()
	e := newShellEnv(t)
	e.env = append(e.env, "REDIS_URL=redis://127.0.0.1:1/0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	record := func(i int) string {
		return fmt.Sprintf(`{"failed_at":"2026-01-01T00:00:00Z","payload":{"class":"Poolctl::Fail","args":[%d]},"exception":"RuntimeError","error":"boom","backtrace":[],"worker":"w","queue":"q"}`, i)
	}
	for i := 0; i < 20; i++ {
		if err := rdb.RPush(ctx, "resque:failed", record(i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	echoed := make(chan int, 1)
	go func() {
		n := 0
		defer func() { echoed <- n }()
		for n < 500 {
			_, err := rdb.BLPop(ctx, time.Second, "resque:queue:q").Result()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				continue
			}
			rdb.RPush(ctx, "resque:failed", record(1000+n))
			n++
		}
	}()
	r := e.run("", "failed", "retry", "--all", "--redis", redis.URL())
	if r.code != 0 || !strings.HasPrefix(r.stdout, "retried 20 job(s)") {
		t.Errorf("failed retry --all: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	cancel()
	<-echoed
}

// Issue 10 A15: with no pool of the default name running, and no --redis,
// --name or REDIS_URL, enqueue, queues and failed use the only pool that
// runs and say so on stderr; with several running they name them and
// exit 2. (Without the fallback they would try redis://127.0.0.1:6379.)
func TestClientUsesTheOnlyRunningPool(t *testing.T) {
	redis := redistest.Start(t)
	rdb := redis.Client()
	ctx := context.Background()
	e := newShellEnv(t) // its runtime directory has no pool named after the working directory
	e.reap("solo")
	solo := e.startPiped(t, "--redis", redis.URL(), "--name", "solo")
	solo.waitRunning(t, e.paths("solo"))

	const note = "using pool solo, the only one running"
	r := e.run("", "enqueue", "-q", "fallback", "Poolctl::Noop")
	if r.code != 0 || !strings.Contains(r.stderr, note) {
		t.Fatalf("enqueue: exit %d, stderr %q, want 0 and %q", r.code, r.stderr, note)
	}
	if n, err := rdb.LLen(ctx, "resque:queue:fallback").Result(); err != nil || n != 1 {
		t.Errorf("queue fallback holds %d jobs (%v), want 1", n, err)
	}
	r = e.run("", "queues", "--json")
	if r.code != 0 || !strings.Contains(r.stderr, note) || !strings.Contains(r.stdout, `"fallback":1`) {
		t.Errorf("queues --json: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = e.run("", "failed", "list")
	if r.code != 0 || !strings.Contains(r.stderr, note) {
		t.Errorf("failed list: exit %d, stderr %q", r.code, r.stderr)
	}

	e.reap("duo")
	duo := e.startPiped(t, "--redis", redis.URL(), "--name", "duo")
	duo.waitRunning(t, e.paths("duo"))
	r = e.run("", "queues")
	if r.code != 2 || !strings.Contains(r.stderr, "several pools are running (duo, solo)") {
		t.Errorf("queues with two pools: exit %d, stderr %q, want 2 and both names", r.code, r.stderr)
	}
	// Naming the pool picks it, without a note.
	r = e.run("", "queues", "--name", "duo")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("queues --name duo: exit %d, stderr %q", r.code, r.stderr)
	}
	solo.close(t)
	duo.close(t)
}

// The stamp adds one key and changes nothing of Resque's shape: class
// and args are byte for byte what they were, in Resque's order, and every
// copy carries the same time.
func TestEnqueuePayloadsKeepResqueShape(t *testing.T) {
	at := time.Date(2026, 11, 22, 8, 58, 20, 500000000, time.UTC)
	raw := []string{"1", "two", `{"k":3}`, "{i}", "-2.5", "[1,[2]]", "null", "ü ∑"}
	stamped, err := buildPayloads("Mod::Job Name", raw, 3, at)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range stamped {
		want := fmt.Sprintf(`{"class":"Mod::Job Name","args":[1,"two",{"k":3},%d,-2.5,[1,[2]],null,"ü ∑"],"enqueued_at":1795337900.500000}`, i)
		if string(p) != want {
			t.Errorf("payload %d = %s\nwant %s", i, p, want)
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(p, &keys); err != nil || len(keys) != 3 {
			t.Errorf("payload %d: %v, keys %v; want exactly class, args, enqueued_at", i, err, keys)
		}
	}
}
