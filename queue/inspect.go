package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Summary is a snapshot of the queues and workers of one namespace.
type Summary struct {
	Queues    map[string]int64 `json:"queues"`    // name -> depth
	Processed int64            `json:"processed"` // total successes
	Failed    int64            `json:"failed"`    // total failures
	FailedLen int64            `json:"failed_records"`
	Workers   []WorkerInfo     `json:"workers"`
}

// WorkerInfo is one registered worker and what it is doing.
type WorkerInfo struct {
	ID        string      `json:"id"`
	Host      string      `json:"host"`
	PID       int         `json:"pid"`
	Queues    string      `json:"queues"`
	Started   string      `json:"started,omitempty"`
	Heartbeat string      `json:"heartbeat,omitempty"`
	Job       *RunningJob `json:"job,omitempty"`
}

// RunningJob is a worker's current job, as Resque records it.
type RunningJob struct {
	Queue   string          `json:"queue"`
	RunAt   string          `json:"run_at"`
	Payload json.RawMessage `json:"payload"`
}

// Class returns the job class of the payload, or "" when it has none.
func (j *RunningJob) Class() string {
	var p struct {
		Class string `json:"class"`
	}
	if json.Unmarshal(j.Payload, &p) == nil {
		return p.Class
	}
	return ""
}

// Summarize reads queue depths, stats and registered workers with a
// handful of round trips, whatever the number of queues and workers.
func (c *Client) Summarize(ctx context.Context) (*Summary, error) {
	names, err := c.QueueNames(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := c.rdb.SMembers(ctx, c.keys.Workers()).Result()
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	sort.Strings(ids)
	pipe := c.rdb.Pipeline()
	depths := make([]*redis.IntCmd, len(names))
	for i, q := range names {
		depths[i] = pipe.LLen(ctx, c.keys.Queue(q))
	}
	processed := pipe.Get(ctx, c.keys.Processed())
	failed := pipe.Get(ctx, c.keys.Failed())
	failedLen := pipe.LLen(ctx, c.keys.FailedList())
	heartbeats := pipe.HGetAll(ctx, c.keys.Heartbeat())
	records := make([]*redis.StringCmd, len(ids))
	started := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		records[i] = pipe.Get(ctx, c.keys.Worker(id))
		started[i] = pipe.Get(ctx, c.keys.WorkerStarted(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("read queue summary: %w", err)
	}
	s := &Summary{Queues: map[string]int64{}, Workers: []WorkerInfo{}}
	for i, q := range names {
		s.Queues[q] = depths[i].Val()
	}
	s.Processed, _ = strconv.ParseInt(processed.Val(), 10, 64)
	s.Failed, _ = strconv.ParseInt(failed.Val(), 10, 64)
	s.FailedLen = failedLen.Val()
	hb := heartbeats.Val()
	for i, id := range ids {
		host, pid, queues, err := ParseWorkerID(id)
		if err != nil {
			continue // not a worker id we understand; leave it alone
		}
		w := WorkerInfo{ID: id, Host: host, PID: pid, Queues: queues, Started: started[i].Val(), Heartbeat: hb[id]}
		if rec := records[i].Val(); rec != "" {
			var j RunningJob
			if json.Unmarshal([]byte(rec), &j) == nil {
				w.Job = &j
			}
		}
		s.Workers = append(s.Workers, w)
	}
	return s, nil
}

// WorkersOn counts registered workers per queue name (a worker of "a,b"
// counts for a and for b; "*" counts under "*").
func (s *Summary) WorkersOn() map[string]int {
	out := map[string]int{}
	for _, w := range s.Workers {
		for _, q := range strings.Split(w.Queues, ",") {
			out[q]++
		}
	}
	return out
}
