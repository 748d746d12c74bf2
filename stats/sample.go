// Package stats is the pool's cockpit data: the master's sampler (one
// pipelined Redis round trip and one /proc scan per interval), the figures
// it derives (rates, ETAs, queue states, job-time percentiles) and the
// Sample that shells, `top`, `progress` and /metrics read.
//
// A Sample is published in the pool's runtime directory (sample.json,
// replaced atomically; see docs/protocol.md). Its JSON is the schema of
// `top --json` frames.
package stats

import (
	"time"
)

// Queue states.
const (
	QueueEmpty    = "empty"    // nothing queued, nothing in flight
	QueueDraining = "draining" // jobs leave faster than they arrive (ETA known)
	QueueStalled  = "stalled"  // jobs queued and none finished for a while
	QueueGrowing  = "growing"  // jobs arrive faster than they leave: will not drain
	QueueBusy     = "busy"     // jobs queued or running, rates balanced or not yet known
)

// Sample is the pool at one instant.
type Sample struct {
	TS       time.Time `json:"ts"`
	Pool     string    `json:"pool"`
	Interval float64   `json:"interval_seconds"` // sampling interval
	// RedisError is why this sample has no fresh Redis figures ("" when
	// it has them); queue figures then carry the last known values.
	RedisError string           `json:"redis_error,omitempty"`
	Host       HostSample       `json:"host"`
	Master     ProcSample       `json:"master"`
	Queues     []QueueSample    `json:"queues"`
	Workers    []WorkerSample   `json:"workers"`
	Classes    []ClassSample    `json:"classes,omitempty"`
	History    map[string][]int `json:"depth_history,omitempty"` // queue → depth, oldest first, one per interval
}

// HostSample is the machine's load.
type HostSample struct {
	Load1        float64 `json:"load1"`
	Load5        float64 `json:"load5"`
	Load15       float64 `json:"load15"`
	CPUPercent   float64 `json:"cpu_percent"` // busy share of all CPUs since the last sample
	CPUs         int     `json:"cpus"`
	MemFreeBytes uint64  `json:"mem_free_bytes"` // MemAvailable
	MemTotal     uint64  `json:"mem_total_bytes"`
}

// ProcSample is one process's resource use.
type ProcSample struct {
	PID        int     `json:"pid"`
	CPUPercent float64 `json:"cpu_percent"` // of one CPU, since the last sample
	CPUSeconds float64 `json:"cpu_seconds"` // since start
	RSSBytes   uint64  `json:"rss_bytes"`
}

// QueueSample is one queue the pool serves ("*" and globs expanded).
type QueueSample struct {
	Name      string  `json:"name"`
	Depth     int64   `json:"depth"`     // LLEN
	InFlight  int64   `json:"in_flight"` // jobs this pool's workers are running
	Processed int64   `json:"processed"` // all-time, every host (successes and failures)
	Failed    int64   `json:"failed"`    // all-time, every host
	InRate    float64 `json:"in_rate"`   // jobs/s arriving, 10 s average
	OutRate   float64 `json:"out_rate"`  // jobs/s finishing, 10 s average
	// InRateSustained is the arrival rate expected to go on: the 10 s
	// average capped by the median of the last few intervals, so a batch
	// enqueued at once does not read as a steady producer (ETAs and the
	// autoscaler use it).
	InRateSustained float64 `json:"in_rate_sustained"`
	InRate1m        float64 `json:"in_rate_1m"`
	OutRate1m       float64 `json:"out_rate_1m"`
	// FailRate1m is failures per minute over the last minute.
	FailRate1m float64 `json:"failures_per_minute"`
	State      string  `json:"state"`
	// ETASeconds is the time to empty at the current rates, set only
	// when the queue is draining.
	ETASeconds *float64 `json:"eta_seconds"`
	// JobSeconds is job run time (every class) over the last minute, or
	// all-time when no job finished in the last minute.
	JobSeconds Quantiles `json:"job_seconds"`
	// WaitSeconds is how long jobs wait in the queue: measured from
	// enqueued_at stamps when producers set them, else estimated as
	// depth / out rate (Estimated true).
	WaitSeconds *Wait `json:"wait_seconds,omitempty"`
	// Timing is the all-time run-time histogram of this queue's jobs
	// (every class), for tools that subtract two samples.
	Timing Histogram `json:"timing"`
}

// Wait is a queue's wait time.
type Wait struct {
	Seconds   float64 `json:"seconds"`
	Estimated bool    `json:"estimated"`
}

// Quantiles are job-time percentiles in seconds, null when no job ran.
type Quantiles struct {
	P50 *float64 `json:"p50"`
	P95 *float64 `json:"p95"`
	P99 *float64 `json:"p99"`
}

// ClassSample is one job class's all-time figures over the pool's queues.
type ClassSample struct {
	Class  string    `json:"class"`
	Failed int64     `json:"failed"`
	Timing Histogram `json:"timing"`
}

// WorkerSample is one worker process of the pool.
type WorkerSample struct {
	PID    int    `json:"pid"`
	Queues string `json:"queues"`
	State  string `json:"state"` // the master's: starting, running, stopping
	// Job is the class of the job it runs, "" when idle; JobQueue its
	// queue and JobSeconds how long it has run.
	Job        string  `json:"job"`
	JobQueue   string  `json:"job_queue,omitempty"`
	JobSeconds float64 `json:"job_seconds"`
	JobsDone   int64   `json:"jobs_done"` // since the worker started (Resque's stat:processed:ID)
	// CPUPercent and RSSBytes cover the worker and its job processes.
	CPUPercent float64 `json:"cpu_percent"`
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSBytes   uint64  `json:"rss_bytes"`
	Procs      int     `json:"procs"` // processes in the worker's tree
}
