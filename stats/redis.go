package stats

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolctl/poolctl/queue"
)

// redisReading is what one sample reads from Redis.
type redisReading struct {
	known   []string // the queues set, for expanding globs next time
	queues  []queueReading
	workers map[int]workerReading // by pid, built-in workers only
}

type queueReading struct {
	name              string
	depth             int64
	processed, failed int64
	timing            Histogram
	classes           map[string]*ClassSample
	waitUS, waitN     int64
}

type workerReading struct {
	job, queue string
	runAt      time.Time
	done       int64
}

// workerRef is a built-in worker whose Resque records are read.
type workerRef struct {
	pid int
	id  string
}

// readRedis reads every figure of one sample in one pipelined round trip:
// the queues set (globs are expanded against the set read by the previous
// sample, so a new queue shows one interval late), and per queue its
// length and stats hash, per built-in worker its current job and count.
func readRedis(ctx context.Context, q *queue.Client, names []string, workers []workerRef) (*redisReading, error) {
	k := q.Keys()
	pipe := q.Redis().Pipeline()
	known := pipe.SMembers(ctx, k.Queues())
	lens := make([]*redis.IntCmd, len(names))
	hashes := make([]*redis.MapStringStringCmd, len(names))
	for i, n := range names {
		lens[i] = pipe.LLen(ctx, k.Queue(n))
		hashes[i] = pipe.HGetAll(ctx, k.Stats(n))
	}
	// Two MGETs rather than two GETs per worker: a tenth of the client's
	// work for a hundred workers.
	var jobs, done *redis.SliceCmd
	if len(workers) > 0 {
		jk, dk := make([]string, len(workers)), make([]string, len(workers))
		for i, w := range workers {
			jk[i], dk[i] = k.Worker(w.id), k.ProcessedBy(w.id)
		}
		jobs, done = pipe.MGet(ctx, jk...), pipe.MGet(ctx, dk...)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, err
	}
	r := &redisReading{known: known.Val(), workers: make(map[int]workerReading, len(workers))}
	for i, n := range names {
		qr := parseStats(n, hashes[i].Val())
		qr.depth = lens[i].Val()
		r.queues = append(r.queues, qr)
	}
	for i, w := range workers {
		wr := workerReading{}
		if v, ok := done.Val()[i].(string); ok {
			wr.done, _ = strconv.ParseInt(v, 10, 64)
		}
		if rec, ok := jobs.Val()[i].(string); ok && rec != "" {
			wr.job, wr.queue, wr.runAt = parseWorkerRecord(rec)
		}
		r.workers[w.pid] = wr
	}
	return r, nil
}

// parseStats decodes a queue's stats hash (queue/stats.go).
func parseStats(name string, h map[string]string) queueReading {
	qr := queueReading{name: name, classes: map[string]*ClassSample{}}
	qr.timing.Counts = make([]int64, queue.NumBuckets)
	class := func(c string) *ClassSample {
		cs := qr.classes[c]
		if cs == nil {
			cs = &ClassSample{Class: c, Timing: Histogram{Counts: make([]int64, queue.NumBuckets)}}
			qr.classes[c] = cs
		}
		return cs
	}
	for field, v := range h {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		stat, c, bucket := queue.ParseStatField(field)
		switch {
		case c == "" && stat == queue.StatProcessed:
			qr.processed = n
		case c == "" && stat == queue.StatFailed:
			qr.failed = n
		case c == "" && stat == queue.StatWaitUS:
			qr.waitUS = n
		case c == "" && stat == "wait" && bucket >= 0:
			qr.waitN += n
		case c != "" && stat == "run" && bucket >= 0:
			cs := class(c)
			cs.Timing.Counts[bucket] += n
			cs.Timing.Count += n
			qr.timing.Counts[bucket] += n
			qr.timing.Count += n
		case c != "" && stat == queue.StatRunUS:
			s := float64(n) / 1e6
			class(c).Timing.Sum += s
			qr.timing.Sum += s
		case c != "" && stat == queue.StatFailed:
			class(c).Failed += n
		}
	}
	return qr
}

// parseWorkerRecord reads Resque's worker:ID record: {"queue", "run_at",
// "payload": {"class", ...}} (the payload may be a JSON string when it
// was not strict JSON).
func parseWorkerRecord(rec string) (class, queueName string, runAt time.Time) {
	var w struct {
		Queue   string          `json:"queue"`
		RunAt   string          `json:"run_at"`
		Payload json.RawMessage `json:"payload"`
	}
	if json.Unmarshal([]byte(rec), &w) != nil {
		return "?", "", time.Time{}
	}
	var p struct {
		Class string `json:"class"`
	}
	if len(w.Payload) > 0 && w.Payload[0] == '{' && json.Unmarshal(w.Payload, &p) == nil && p.Class != "" {
		class = p.Class
	} else {
		class = "(unknown)"
	}
	runAt, _ = time.Parse(time.RFC3339, strings.Replace(w.RunAt, " ", "T", 1))
	return class, w.Queue, runAt
}
