package queue

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// failN records n failures of queue foo, payload {"class":"A","args":[i]}.
func failN(t *testing.T, c *Client, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		_ = c.Enqueue(ctx, "foo", []byte(fmt.Sprintf(`{"class":"A","args":[%d]}`, i)))
		j, err := c.Reserve(ctx, "h:1:foo", []string{"foo"}, time.Now())
		if err != nil || j == nil {
			t.Fatalf("Reserve = %v, %v", j, err)
		}
		if err := c.Fail(ctx, "h:1:foo", j, Timing{}, Failure{Exception: "E", Error: "e"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// As Resque's Failure.requeue: the record stays, with retried_at.
func TestRetryKeepsTheRecordAndSetsRetriedAt(t *testing.T) {
	c, rdb := newClient(t)
	failN(t, c, 2)
	// A field poolctl does not know survives the rewrite.
	raw := rdb.LIndex(ctx, "resque:failed", 1).Val()
	var m map[string]json.RawMessage
	_ = json.Unmarshal([]byte(raw), &m)
	m["hostname"] = json.RawMessage(`"ruby-box"`)
	b, _ := json.Marshal(m)
	rdb.LSet(ctx, "resque:failed", 1, b)

	at := time.Date(2026, 11, 22, 8, 58, 20, 0, time.UTC)
	if err := c.RetryFailed(ctx, 1, RetryKeep, at); err != nil {
		t.Fatal(err)
	}
	if n := rdb.LLen(ctx, "resque:failed").Val(); n != 2 {
		t.Fatalf("failed list holds %d records after a retry, want both kept", n)
	}
	recs, _ := c.FailedRecords(ctx, 0, 10)
	if recs[0].RetriedAt != "" || recs[1].RetriedAt != "2026/11/22 08:58:20" {
		t.Errorf("retried_at = %q, %q; want only record 1 marked, Resque's format", recs[0].RetriedAt, recs[1].RetriedAt)
	}
	_ = json.Unmarshal([]byte(rdb.LIndex(ctx, "resque:failed", 1).Val()), &m)
	if string(m["hostname"]) != `"ruby-box"` {
		t.Errorf("unknown field lost by the retry: %v", m)
	}
	if got := rdb.LRange(ctx, "resque:queue:foo", 0, -1).Val(); len(got) != 1 || got[0] != `{"class":"A","args":[1]}` {
		t.Errorf("queue foo = %v, want the retried payload", got)
	}
}

// On a live pool the retried jobs fail again at once and append new
// records while the retry runs: retry --all must retry exactly the
// records present when it started, in either mode.
func TestRetryAllRetriesOnlyTheRecordsPresentAtStart(t *testing.T) {
	for _, mode := range []RetryMode{RetryKeep, RetryRemove} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			c, rdb := newClient(t)
			failN(t, c, 20)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // a worker whose every job fails
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					j, err := c.Reserve(ctx, "h:2:foo", []string{"foo"}, time.Now())
					if err != nil || j == nil {
						time.Sleep(time.Millisecond)
						continue
					}
					_ = c.Fail(ctx, "h:2:foo", j, Timing{}, Failure{Exception: "E", Error: "again"}, time.Now())
				}
			}()
			n, err := c.RetryAllFailed(ctx, mode, time.Now())
			close(stop)
			wg.Wait()
			if err != nil || n != 20 {
				t.Fatalf("RetryAllFailed = %d, %v; want exactly the 20 records present at start", n, err)
			}
			if got, _ := rdb.Get(ctx, "resque:stat:failed:h:2:foo").Int(); got > 20 {
				t.Errorf("the failing worker saw %d failures: more retries than records", got)
			}
		})
	}
}
