package queue

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// statsOf is the whole stats hash of queue q.
func statsOf(t *testing.T, rdb redis.Cmdable, q string) map[string]string {
	t.Helper()
	h, err := rdb.HGetAll(ctx, "resque:poolctl:stats:"+q).Result()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// bucketSum adds up the run buckets of every class (or of class, if
// given) of a stats hash: the number of jobs timed.
func bucketSum(t *testing.T, h map[string]string, class ...string) int {
	t.Helper()
	n := 0
	for f, v := range h {
		stat, c, b := ParseStatField(f)
		if stat != "run" || b < 0 || (len(class) > 0 && c != class[0]) {
			continue
		}
		i, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("field %q = %q, not a number", f, v)
		}
		n += i
	}
	return n
}

func reserveOne(t *testing.T, c *Client, id, q string) *Job {
	t.Helper()
	j, err := c.Reserve(ctx, id, []string{q}, time.Now())
	if err != nil || j == nil {
		t.Fatalf("reserve from %s: %v, %v", q, j, err)
	}
	return j
}

func TestBucketBoundaries(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {time.Microsecond, 0}, {time.Millisecond, 0}, {time.Millisecond + 1, 1},
		{3 * time.Millisecond, 2}, {250 * time.Millisecond, 8}, {1500 * time.Millisecond, 10},
		{time.Hour, 20}, {time.Hour + 1, 21}, {100 * time.Hour, 21},
	} {
		if got := Bucket(c.d); got != c.want {
			t.Errorf("Bucket(%s) = %d, want %d", c.d, got, c.want)
		}
	}
	if NumBuckets != 22 {
		t.Errorf("NumBuckets = %d, want 22", NumBuckets)
	}
}

// The exact fields a success, a failure and an unclassed job leave.
func TestAckAndFailWriteTheStatsHash(t *testing.T) {
	c, rdb := newClient(t)
	id := "h:1:foo"
	_ = c.Enqueue(ctx, "foo", []byte(`{"class":"Mod::Job","args":[1]}`), []byte(`{"class":"Mod::Job","args":[2]}`), []byte(`garbage`))

	// A success without enqueued_at: no wait fields.
	a := reserveOne(t, c, id, "foo")
	if err := c.Ack(ctx, id, a, Timing{Class: "Mod::Job", Run: 3*time.Millisecond + 400*time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"processed": "1", "run_us Mod::Job": "3000", "run_b2 Mod::Job": "1"}
	if got := statsOf(t, rdb, "foo"); !reflect.DeepEqual(got, want) {
		t.Errorf("after a success: %v\nwant %v", got, want)
	}

	// A failure with a wait.
	b := reserveOne(t, c, id, "foo")
	if err := c.Fail(ctx, id, b, Timing{Class: "Mod::Job", Run: 1500 * time.Millisecond, Wait: 250 * time.Millisecond, Waited: true},
		Failure{Exception: "E", Error: "e"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{
		"processed": "2", "failed": "1",
		"run_us Mod::Job": "1503000", "run_b2 Mod::Job": "1", "run_b10 Mod::Job": "1",
		"failed Mod::Job": "1",
		"wait_us":         "250000", "wait_b8": "1",
	}
	if got := statsOf(t, rdb, "foo"); !reflect.DeepEqual(got, want) {
		t.Errorf("after a failure: %v\nwant %v", got, want)
	}

	// No usable class; a zero wait (counted) and a negative run (clamped).
	g := reserveOne(t, c, id, "foo")
	if err := c.Fail(ctx, id, g, Timing{Run: -time.Second, Waited: true}, Failure{Exception: "E", Error: "e"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	want["processed"], want["failed"] = "3", "2"
	want["run_us (unknown)"], want["run_b0 (unknown)"], want["failed (unknown)"] = "0", "1", "1"
	want["wait_b0"] = "1"
	if got := statsOf(t, rdb, "foo"); !reflect.DeepEqual(got, want) {
		t.Errorf("after an unclassed failure: %v\nwant %v", got, want)
	}
	if n := bucketSum(t, statsOf(t, rdb, "foo")); n != 3 {
		t.Errorf("run buckets sum to %d, want processed = 3", n)
	}
	// Resque's own counters are unchanged by all this.
	if p, f := rdb.Get(ctx, "resque:stat:processed").Val(), rdb.Get(ctx, "resque:stat:failed").Val(); p != "3" || f != "2" {
		t.Errorf("stat:processed %s, stat:failed %s; want 3, 2", p, f)
	}
}

// The busy path records the done job's timing in its own queue's hash,
// and a retry of the same call (or a plain Ack after it) adds nothing.
func TestAckReserveRecordsOnce(t *testing.T) {
	c, rdb := newClient(t)
	id := "h:2:hi,lo"
	same := []byte(`{"class":"A","args":[]}`)
	_ = c.Enqueue(ctx, "hi", same)
	_ = c.Enqueue(ctx, "lo", same, same)
	first := reserveOne(t, c, id, "hi")
	tm := Timing{Class: "A", Run: 7 * time.Millisecond, Wait: 2 * time.Second, Waited: true}
	second, err := c.AckReserve(ctx, id, first, tm, []string{"hi", "lo"}, time.Now())
	if err != nil || second == nil || second.Queue != "lo" {
		t.Fatalf("AckReserve = %+v, %v", second, err)
	}
	for i := 0; i < 2; i++ {
		if err := c.Ack(ctx, id, first, tm); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"processed": "1", "run_us A": "7000", "run_b3 A": "1", "wait_us": "2000000", "wait_b10": "1"}
	if got := statsOf(t, rdb, "hi"); !reflect.DeepEqual(got, want) {
		t.Errorf("hi after one ack and two retries: %v\nwant %v", got, want)
	}
	if got := statsOf(t, rdb, "lo"); len(got) != 0 {
		t.Errorf("lo has stats before any of its jobs finished: %v", got)
	}
	// The second job (byte-identical) is still in flight, then acks once.
	if err := c.Ack(ctx, id, second, Timing{Class: "A"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(ctx, id, second, Timing{Class: "A"}); err != nil {
		t.Fatal(err)
	}
	if got := statsOf(t, rdb, "lo"); got["processed"] != "1" || got["run_b0 A"] != "1" {
		t.Errorf("lo = %v, want processed 1 and one job in run_b0", got)
	}
	// A retried AckReserve of either job adds nothing (its reserve half
	// takes the third job, byte-identical, which stays unacknowledged).
	for _, j := range []*Job{first, second} {
		if _, err := c.AckReserve(ctx, id, j, tm, []string{"hi", "lo"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if hi, lo := statsOf(t, rdb, "hi")["processed"], statsOf(t, rdb, "lo")["processed"]; hi != "1" || lo != "1" {
		t.Errorf("processed after retried AckReserves: hi %s, lo %s; want 1, 1", hi, lo)
	}
}

// stallingClient is a client whose replies are lost when the server is
// frozen: it gives up after 300 ms and never retries by itself.
func stallingClient(t *testing.T, srv *redistest.Server) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 300 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// A frozen Redis: the ack's reply is lost, the script runs when Redis
// resumes, and the worker's retry must count nothing more, for Ack, Fail
// and AckReserve alike, with byte-identical payloads queued behind.
func TestLostAckRepliesCountOnce(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	c := New(stallingClient(t, srv), "")
	id := "h:3:foo"
	same := []byte(`{"class":"Same","args":[]}`)
	_ = New(rdb, "").Enqueue(ctx, "foo", same, same, same, same)
	tm := Timing{Class: "Same", Run: 30 * time.Millisecond}
	// Loaded, so the frozen call's EVALSHA does run after the thaw (an
	// unloaded script's would answer NOSCRIPT and change nothing).
	if err := c.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}

	// lose runs call against a frozen Redis, waits for its script to run
	// once Redis resumes, then runs retry, as the worker does.
	lose := func(what string, call func() error, landed func() bool, retry func() error) {
		t.Helper()
		if err := srv.Freeze(); err != nil {
			t.Fatal(err)
		}
		err := call()
		if err := srv.Thaw(); err != nil {
			t.Fatal(err)
		}
		if err == nil {
			t.Fatalf("%s against a frozen Redis succeeded; the test needs a lost reply", what)
		}
		testutil.Eventually(t, 5*time.Second, what+"'s script to run after the thaw", landed)
		if err := retry(); err != nil {
			t.Fatalf("retried %s: %v", what, err)
		}
	}
	inflight := func() int64 { return rdb.LLen(ctx, "resque:poolctl:inflight:"+id+":foo").Val() }

	j1 := reserveOne(t, c, id, "foo")
	ack1 := func() error { return c.Ack(ctx, id, j1, tm) }
	lose("Ack", ack1, func() bool { return inflight() == 0 }, ack1)

	// The busy path: the worker retries the ack half, then puts back the
	// job the lost call may have reserved (it cannot know its token).
	j2 := reserveOne(t, c, id, "foo")
	lose("AckReserve", func() error {
		_, err := c.AckReserve(ctx, id, j2, tm, []string{"foo"}, time.Now())
		return err
	}, func() bool { return rdb.LLen(ctx, "resque:queue:foo").Val() == 1 },
		func() error { return c.Ack(ctx, id, j2, tm) })
	if n, err := c.Requeue(ctx, id); err != nil || n != 1 {
		t.Fatalf("Requeue = %d, %v; want the job the lost AckReserve took", n, err)
	}

	j3 := reserveOne(t, c, id, "foo")
	fail3 := func() error { return c.Fail(ctx, id, j3, tm, Failure{Exception: "E", Error: "e"}, time.Now()) }
	lose("Fail", fail3, func() bool { return rdb.Get(ctx, "resque:stat:failed").Val() == "1" }, fail3)

	want := map[string]string{"processed": "3", "failed": "1", "failed Same": "1", "run_us Same": "90000", "run_b5 Same": "3"}
	if got := statsOf(t, rdb, "foo"); !reflect.DeepEqual(got, want) {
		t.Errorf("after three acks with lost replies, each retried: %v\nwant %v", got, want)
	}
	if p := rdb.Get(ctx, "resque:stat:processed").Val(); p != "3" {
		t.Errorf("stat:processed = %s, want 3", p)
	}
	if n := rdb.LLen(ctx, "resque:queue:foo").Val() + inflight(); n != 1 {
		t.Errorf("%d identical jobs left in the queue and in flight, want 1", n)
	}
}

// Queue names with ':', '/' and non-ASCII characters each get their own
// hash, and class names keep their spaces and '::'.
func TestStatsHashNamesForAnyQueueAndClass(t *testing.T) {
	c, rdb := newClient(t)
	class := "My Mod::Some  Job"
	queues := []string{"a", "a:b", "reports/daily", "ünï:cødé/✓ 队列"}
	for i, q := range queues {
		_ = c.Enqueue(ctx, q, []byte(`{"class":"x","args":[]}`))
		id := WorkerID("h", 10+i, []string{q})
		j := reserveOne(t, c, id, q)
		if err := c.Ack(ctx, id, j, Timing{Class: class, Run: time.Duration(i+1) * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	for i, q := range queues {
		key := "resque:poolctl:stats:" + q
		if k := c.Keys().Stats(q); k != key {
			t.Errorf("Keys.Stats(%q) = %q, want %q", q, k, key)
		}
		b := Bucket(time.Duration(i+1) * time.Second)
		want := map[string]string{
			"processed":                             "1",
			"run_us " + class:                       strconv.Itoa((i + 1) * 1e6),
			"run_b" + strconv.Itoa(b) + " " + class: "1",
		}
		if got := statsOf(t, rdb, q); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v\nwant %v", key, got, want)
		}
		for f := range want {
			stat, cl, bucket := ParseStatField(f)
			switch {
			case f == "processed" && (stat != "processed" || cl != "" || bucket != -1),
				strings.HasPrefix(f, "run_us") && (stat != "run_us" || cl != class || bucket != -1),
				strings.HasPrefix(f, "run_b") && (stat != "run" || cl != class || bucket != b):
				t.Errorf("ParseStatField(%q) = %q, %q, %d", f, stat, cl, bucket)
			}
		}
	}
	keys := rdb.Keys(ctx, "resque:poolctl:stats:*").Val()
	if len(keys) != len(queues) {
		t.Errorf("stats keys = %q, want one per queue", keys)
	}
}

// An unusable class (too long, not UTF-8) is recorded as (unknown); a huge
// run time lands in the overflow bucket with its microseconds intact.
func TestStatsUnusableClassAndHugeDurations(t *testing.T) {
	c, rdb := newClient(t)
	id := "h:4:foo"
	for _, cl := range []string{strings.Repeat("K", MaxClassBytes+1), "bad\xff", ""} {
		_ = c.Enqueue(ctx, "foo", []byte(`{"class":"x","args":[]}`))
		j := reserveOne(t, c, id, "foo")
		if err := c.Ack(ctx, id, j, Timing{Class: cl, Run: 1000 * time.Hour, Wait: 2000 * time.Hour, Waited: true}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{
		"processed": "3", "run_us (unknown)": strconv.FormatInt(3*1000*3600*1e6, 10), "run_b21 (unknown)": "3",
		"wait_us": strconv.FormatInt(3*2000*3600*1e6, 10), "wait_b21": "3",
	}
	if got := statsOf(t, rdb, "foo"); !reflect.DeepEqual(got, want) {
		t.Errorf("%v\nwant %v", got, want)
	}
	if got := (Timing{Class: strings.Repeat("K", MaxClassBytes)}).RecordedClass(); len(got) != MaxClassBytes {
		t.Errorf("a class of exactly MaxClassBytes is recorded as %q", got)
	}
}

// A worker dies holding a job; its job is requeued (as the master does
// when it reaps it), another worker runs it, and the dead worker's late
// acknowledgement (a retry in flight when it died) adds nothing: the job
// is counted once.
func TestRequeuedJobCountedOnceWhenItFinishes(t *testing.T) {
	c, rdb := newClient(t)
	dead, live := "h:5:foo", "h:6:foo"
	_ = c.Enqueue(ctx, "foo", []byte(`{"class":"Crashy","args":[]}`))
	j := reserveOne(t, c, dead, "foo")
	if n, err := c.Unregister(ctx, dead); err != nil || n != 1 {
		t.Fatalf("Unregister = %d, %v; want the job requeued", n, err)
	}
	again := reserveOne(t, c, live, "foo")
	if string(again.Payload) != string(j.Payload) {
		t.Fatalf("reserved %s, want the requeued job", again.Payload)
	}
	if err := c.Ack(ctx, dead, j, Timing{Class: "Crashy", Run: time.Second}); err != nil {
		t.Fatal(err)
	}
	if got := statsOf(t, rdb, "foo"); len(got) != 0 {
		t.Errorf("a dead worker's late ack of a requeued job recorded %v", got)
	}
	if err := c.Fail(ctx, live, again, Timing{Class: "Crashy", Run: 40 * time.Millisecond}, Failure{Exception: "E", Error: "e"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(ctx, dead, j, Timing{Class: "Crashy", Run: time.Second}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"processed": "1", "failed": "1", "failed Crashy": "1", "run_us Crashy": "40000", "run_b5 Crashy": "1"}
	if got := statsOf(t, rdb, "foo"); !reflect.DeepEqual(got, want) {
		t.Errorf("%v\nwant %v", got, want)
	}
}

func TestEnqueuedAtFormatParseAndWait(t *testing.T) {
	at := time.Date(2026, 11, 22, 8, 58, 20, 123456789, time.UTC)
	if got := FormatEnqueuedAt(at); got != "1795337900.123456" {
		t.Errorf("FormatEnqueuedAt = %s, want 1795337900.123456", got)
	}
	if got := FormatEnqueuedAt(time.Unix(-1, 500)); got != "-1.000000" {
		t.Errorf("FormatEnqueuedAt before the epoch = %s", got)
	}
	for _, c := range []struct {
		raw  string
		want time.Time
		ok   bool
	}{
		{"1795337900.123456", time.Unix(1795337900, 123456000), true},
		{"1795337900", time.Unix(1795337900, 0), true},
		{" 1795337900.5 ", time.Unix(1795337900, 5e8), true},
		{"1.7953379e9", time.Unix(1795337900, 0), true},
		{`"1795337900"`, time.Time{}, false},
		{"null", time.Time{}, false},
		{"true", time.Time{}, false},
		{"0", time.Time{}, false},
		{"-5", time.Time{}, false},
		{"1e400", time.Time{}, false},
		{"1e300", time.Time{}, false},
		{"1795337900123", time.Time{}, false},          // milliseconds
		{"4102444800", time.Unix(4102444800, 0), true}, // 2100: far, not absurd
		{"[1]", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, ok := ParseEnqueuedAt([]byte(c.raw))
		if ok != c.ok || (ok && got.Sub(c.want).Abs() > time.Microsecond) {
			t.Errorf("ParseEnqueuedAt(%s) = %v, %v; want %v, %v", c.raw, got, ok, c.want, c.ok)
		}
	}
	now := at.Add(time.Minute)
	for _, c := range []struct {
		enq, reserved time.Time
		want          time.Duration
		ok            bool
	}{
		{at.Add(-3 * time.Second), at, 3 * time.Second, true},
		{at.Add(time.Second), at, 0, true},       // after the reservation, before now: clock skew
		{now, at, 0, true},                       // exactly now
		{now.Add(time.Nanosecond), at, 0, false}, // in the future: ignored
	} {
		got, ok := QueueWait(c.enq, c.reserved, now)
		if got != c.want || ok != c.ok {
			t.Errorf("QueueWait(%v, %v) = %v, %v; want %v, %v", c.enq, c.reserved, got, ok, c.want, c.ok)
		}
	}
}
