// Package queue speaks Resque's Redis wire format: queues, worker
// registration and heartbeats, processed/failed stats and failure records,
// plus poolctl's reliable fetch (per-worker in-flight lists) on top.
//
// Keys, for namespace "resque:" (the default):
//
//	resque:queues                       SET of queue names
//	resque:queue:NAME                   LIST of JSON payloads, RPUSH in, LPOP-side out
//	resque:workers                      SET of worker ids (HOST:PID:QUEUES)
//	resque:worker:ID                    the job a worker is running (JSON)
//	resque:worker:ID:started            when the worker started
//	resque:workers:heartbeat            HASH id -> ISO-8601 time
//	resque:stat:processed[:ID]          successes
//	resque:stat:failed[:ID]             failures
//	resque:failed                       LIST of failure records
//	resque:poolctl:inflight:ID:QUEUE    LIST: jobs taken from QUEUE, not yet acknowledged
//	resque:poolctl:inflight-index:ID    SET of the queues ID has in-flight lists for
//	resque:poolctl:reservation:ID       the token of ID's current reservation
//	resque:poolctl:identity:ID          ID's process identity on its host (boot id and start ticks)
//	resque:poolctl:stats:QUEUE          HASH of QUEUE's counters and job timings (stats.go)
//	resque:poolctl:notify:QUEUE         LIST of wake-up tokens for idle workers of QUEUE (notify.go)
//	resque:poolctl:notify-any           LIST of wake-up tokens for idle `*` workers (notify.go)
//	resque:poolctl:idle-poll:QUEUES     the idle workers of queue list QUEUES poll for foreign jobs (notify.go)
//	resque:poolctl:wake:ID              LIST: a token that ends worker ID's idle wait (a pause; notify.go)
//	resque:REPLY_TO                     LIST of a job's status replies, when its payload names reply_to (reply.go)
//	resque:poolctl:attempts:REPLY_TO    HASH correlation id -> attempts counted (reply.go)
//
// The resque:poolctl: keys are poolctl's own (Resque ignores them): a job
// moves atomically from its queue to the worker's in-flight list and
// leaves it only when its success or failure has been recorded, so a
// worker that dies loses nothing; its jobs go back to the head of their
// queues.
package queue

import "strings"

// DefaultNamespace is Resque's key prefix.
const DefaultNamespace = "resque:"

// Keys builds key names for one namespace.
type Keys struct{ ns string }

// NewKeys returns the key builder for namespace ns ("" means the default).
// A namespace without a trailing ':' gets one, as redis-namespace does.
func NewKeys(ns string) Keys {
	if ns == "" {
		ns = DefaultNamespace
	}
	if !strings.HasSuffix(ns, ":") {
		ns += ":"
	}
	return Keys{ns: ns}
}

// Namespace is the prefix, with its trailing colon.
func (k Keys) Namespace() string { return k.ns }

// Queues is the set of known queue names.
func (k Keys) Queues() string { return k.ns + "queues" }

// Queue is the list holding a queue's payloads.
func (k Keys) Queue(name string) string { return k.ns + "queue:" + name }

// Workers is the set of registered worker ids.
func (k Keys) Workers() string { return k.ns + "workers" }

// Worker holds the job a worker is running.
func (k Keys) Worker(id string) string { return k.ns + "worker:" + id }

// WorkerStarted holds a worker's start time.
func (k Keys) WorkerStarted(id string) string { return k.ns + "worker:" + id + ":started" }

// Heartbeat is the hash of worker heartbeats.
func (k Keys) Heartbeat() string { return k.ns + "workers:heartbeat" }

// Processed is the total success counter; ProcessedBy is one worker's.
func (k Keys) Processed() string { return k.ns + "stat:processed" }

// ProcessedBy is one worker's success counter.
func (k Keys) ProcessedBy(id string) string { return k.ns + "stat:processed:" + id }

// Failed is the total failure counter.
func (k Keys) Failed() string { return k.ns + "stat:failed" }

// FailedBy is one worker's failure counter.
func (k Keys) FailedBy(id string) string { return k.ns + "stat:failed:" + id }

// FailedList is the list of failure records.
func (k Keys) FailedList() string { return k.ns + "failed" }

// InFlight is the list of jobs worker id took from queue and has not
// acknowledged.
func (k Keys) InFlight(id, queue string) string { return k.ns + "poolctl:inflight:" + id + ":" + queue }

// InFlightIndex is the set of queues worker id has in-flight lists for.
func (k Keys) InFlightIndex(id string) string { return k.ns + "poolctl:inflight-index:" + id }

// Reservation holds the token of worker id's current reservation.
func (k Keys) Reservation(id string) string { return k.ns + "poolctl:reservation:" + id }

// Identity holds worker id's process identity on its host: a value that
// tells the process apart from a later one with the same pid and that no
// clock step changes (see internal/procid).
func (k Keys) Identity(id string) string { return k.ns + "poolctl:identity:" + id }

// NotifyQueue is the list of wake-up tokens for idle workers of queue.
func (k Keys) NotifyQueue(queue string) string { return k.ns + "poolctl:notify:" + queue }

// NotifyAny is the list of wake-up tokens for idle workers whose queue
// list contains "*": every push to any queue adds one.
func (k Keys) NotifyAny() string { return k.ns + "poolctl:notify-any" }

// IdlePoll is held (with a TTL) by the idle worker of queue list
// queueList (as given, comma-joined) that polls its queues now.
func (k Keys) IdlePoll(queueList string) string { return k.ns + "poolctl:idle-poll:" + queueList }

// WorkerWake is the list a token is pushed to to end worker id's own
// idle wait at once (on a pause).
func (k Keys) WorkerWake(id string) string { return k.ns + "poolctl:wake:" + id }
