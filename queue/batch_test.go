package queue

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
)

// takeBatch acknowledges first and reserves up to most jobs from queues.
func takeBatch(t *testing.T, c *Client, id string, first *Job, queues []string, most int) []*Job {
	t.Helper()
	jobs, err := c.AckReserveBatch(ctx, id, first, Timing{Class: "Same"}, queues, most, time.Now())
	if err != nil {
		t.Fatalf("AckReserveBatch: %v", err)
	}
	return jobs
}

// A deep first queue gives a batch of byte-identical payloads, each with
// its own token; acknowledging them in order through FinishAll, each
// moving the reservation on, finishes each exactly once, even when every
// call is sent again (a lost reply), and leaves nothing in flight.
func TestBatchOfIdenticalPayloadsAcksEachOnce(t *testing.T) {
	c, rdb := newClient(t)
	id := "h:1:foo"
	same := []byte(`{"class":"Same","args":[]}`)
	jobs := make([][]byte, 400)
	for i := range jobs {
		jobs[i] = same
	}
	_ = c.Enqueue(ctx, "foo", jobs...)
	first := reserveOne(t, c, id, "foo")
	batch := takeBatch(t, c, id, first, []string{"foo"}, 16)
	if len(batch) != 16 {
		t.Fatalf("batch of %d from a queue 399 deep, want 16", len(batch))
	}
	seen := map[string]bool{}
	for _, j := range batch {
		if seen[j.Token] || j.Queue != "foo" || string(j.Payload) != string(same) {
			t.Fatalf("batch job %+v: tokens must differ, payloads arrive intact", j)
		}
		seen[j.Token] = true
	}
	inflight := func() int64 { return rdb.LLen(ctx, "resque:poolctl:inflight:"+id+":foo").Val() }
	if n := inflight(); n != 16 {
		t.Fatalf("in flight %d, want the batch of 16", n)
	}
	var done []Finished
	for i, j := range batch[:15] {
		done = append(done, Finished{Job: j, Timing: Timing{Class: "Same"}, Next: batch[i+1], At: time.Now()})
	}
	for round := 0; round < 3; round++ { // the first send and two replays
		if err := c.FinishAll(ctx, id, done); err != nil {
			t.Fatal(err)
		}
		if p := rdb.Get(ctx, "resque:stat:processed").Val(); p != "16" {
			t.Fatalf("round %d: processed %s, want 16 (the first job, then 15 of the batch, each once)", round, p)
		}
		if n := inflight(); n != 1 {
			t.Fatalf("round %d: in flight %d, want the batch's last job alone", round, n)
		}
	}
	// The record shows the last job, started by the last FinishAll.
	var rec struct {
		Queue   string          `json:"queue"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal([]byte(rdb.Get(ctx, "resque:worker:"+id).Val()), &rec); err != nil || rec.Queue != "foo" || string(rec.Payload) != string(same) {
		t.Fatalf("worker record %q (%v), want the running job embedded raw", rdb.Get(ctx, "resque:worker:"+id).Val(), err)
	}
	// An out-of-order or stale acknowledgement changes nothing.
	if err := c.FinishAll(ctx, id, []Finished{{Job: batch[3], Timing: Timing{Class: "Same"}}}); err != nil {
		t.Fatal(err)
	}
	if p := rdb.Get(ctx, "resque:stat:processed").Val(); p != "16" {
		t.Fatalf("a stale ack counted: processed %s", p)
	}
	// The last job, acknowledged by the next AckReserveBatch.
	next := takeBatch(t, c, id, batch[15], []string{"foo"}, 16)
	if len(next) != 16 || rdb.Get(ctx, "resque:stat:processed").Val() != "17" {
		t.Fatalf("next batch %d, processed %s; want 16, 17", len(next), rdb.Get(ctx, "resque:stat:processed").Val())
	}
	if q := rdb.LLen(ctx, "resque:queue:foo").Val(); q != 400-17-16 {
		t.Fatalf("queue holds %d, want %d: a job was lost or duplicated", q, 400-17-16)
	}
}

// Batches come from the worker's highest-priority queue only, and only
// while it is deep: a job pushed to a higher queue never waits behind a
// batch of a lower one, and a shallow queue is left to other workers.
func TestBatchesKeepStrictPriorityAndShallowQueuesSingle(t *testing.T) {
	c, _ := newClient(t)
	id := "h:2:hi,lo"
	p := []byte(`{"class":"Same","args":[]}`)
	many := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = p
		}
		return out
	}
	_ = c.Enqueue(ctx, "lo", many(500)...)
	first := reserveOne(t, c, id, "lo")
	if got := takeBatch(t, c, id, first, []string{"hi", "lo"}, 16); len(got) != 1 || got[0].Queue != "lo" {
		t.Fatalf("from a deep lower queue: %d jobs, want 1", len(got))
	} else {
		first = got[0]
	}
	_ = c.Enqueue(ctx, "hi", many(10)...)
	got := takeBatch(t, c, id, first, []string{"hi", "lo"}, 16)
	if len(got) != 2 || got[0].Queue != "hi" {
		t.Fatalf("from hi, 10 deep: %d jobs from %s, want 2 (one, plus one per 8 still queued)", len(got), got[0].Queue)
	}
	if strings.HasSuffix(got[0].Token, ".1") == false || !strings.HasSuffix(got[1].Token, ".2") {
		t.Fatalf("batch tokens %q, %q", got[0].Token, got[1].Token)
	}
}

// A Redis restarted empty has no scripts: FinishAll loads its script and
// sends again; a Redis frozen past the client's timeout loses the reply,
// and the replay after the thaw counts nothing twice.
func TestFinishAllSurvivesNoScriptAndLostReplies(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	c := New(stallingClient(t, srv), "")
	id := "h:3:foo"
	same := []byte(`{"class":"Same","args":[]}`)
	jobs := make([][]byte, 200)
	for i := range jobs {
		jobs[i] = same
	}
	_ = New(rdb, "").Enqueue(ctx, "foo", jobs...)
	first := reserveOne(t, c, id, "foo")
	batch := takeBatch(t, c, id, first, []string{"foo"}, 8)
	if len(batch) != 8 {
		t.Fatalf("batch of %d, want 8", len(batch))
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	step := func(i int) []Finished {
		return []Finished{{Job: batch[i], Timing: Timing{Class: "Same"}, Next: batch[i+1], At: time.Now()}}
	}
	if err := c.FinishAll(ctx, id, step(0)); err != nil {
		t.Fatalf("after SCRIPT FLUSH: %v", err)
	}
	if err := srv.Freeze(); err != nil {
		t.Fatal(err)
	}
	err := c.FinishAll(ctx, id, append(step(1), step(2)...))
	if terr := srv.Thaw(); terr != nil {
		t.Fatal(terr)
	}
	if err == nil {
		t.Fatal("FinishAll against a frozen Redis succeeded; the test needs a lost reply")
	}
	testutil.Eventually(t, 5*time.Second, "the frozen pipeline to run after the thaw", func() bool {
		return rdb.Get(ctx, "resque:stat:processed").Val() == "4"
	})
	if err := c.FinishAll(ctx, id, append(step(1), step(2)...)); err != nil {
		t.Fatal(err)
	}
	if p := rdb.Get(ctx, "resque:stat:processed").Val(); p != "4" {
		t.Fatalf("processed %s after the replay, want 4 (first, then batch 0..2)", p)
	}
	if n, err := c.Requeue(ctx, id); err != nil || n != 5 {
		t.Fatalf("Requeue = %d, %v; want the 5 unfinished jobs of the batch back", n, err)
	}
	if q := rdb.LLen(ctx, "resque:queue:foo").Val(); q != 200-4 {
		t.Fatalf("queue %d, want %d", q, 200-4)
	}
}
