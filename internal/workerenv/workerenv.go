// Package workerenv names the environment variables through which a pool
// master configures the workers it spawns: the contract between package
// pool and the built-in worker's command.
package workerenv

// Variables the master sets for every worker.
const (
	Queues     = "QUEUES"            // comma-separated queue list
	Queue      = "QUEUE"             // same, for Resque-style workers
	RedisURL   = "REDIS_URL"         // Redis URL (never passed in argv)
	Namespace  = "POOLCTL_NAMESPACE" // Redis key namespace
	Pool       = "POOLCTL_POOL"      // pool name
	MasterPID  = "POOLCTL_MASTER_PID"
	Jobs       = "POOLCTL_JOBS"        // JSON object: job class -> argv
	JobTimeout = "POOLCTL_JOB_TIMEOUT" // Go duration, "0s" = none
	// HeartbeatInterval is how often a built-in worker heartbeats (Go
	// duration); unset means the worker's default.
	HeartbeatInterval = "POOLCTL_HEARTBEAT_INTERVAL"
	// MaxJobs is the group's max_jobs: a worker should exit cleanly
	// (status 0) after finishing this many jobs, and the master starts a
	// replacement. Set only for groups with max_jobs.
	MaxJobs = "POOLCTL_MAX_JOBS"
	// ReadyFD is the number of an inherited file descriptor (a pipe) on
	// which the built-in worker tells its master how far its start has
	// come: ReadySignals, then ReadyRegistered, one line each, and then
	// it closes it. Set only for built-in workers.
	ReadyFD = "POOLCTL_READY_FD"
	// ReplyTTL is the config's reply_ttl (Go duration): how long a job's
	// reply list lives after its last reply (docs/messages.md). Unset
	// means queue.DefaultReplyTTL.
	ReplyTTL = "POOLCTL_REPLY_TTL"
)

// Lines of the readiness pipe (ReadyFD), in the order a worker writes them.
const (
	// ReadySignals: the worker obeys Resque's signals from now on. Until
	// then a Go worker drops USR2 (or dies of it, before its runtime is
	// up), although /proc shows a handler for it from its first
	// instruction; so the master sends a starting worker USR2 (pause)
	// only after this line.
	ReadySignals = "signals"
	// ReadyRegistered: the worker is registered in Redis and about to take
	// jobs; rolling restarts wait for it.
	ReadyRegistered = "ready"
)
