// Package fleet makes every pool that shares a Redis visible and steerable
// from anywhere: a registry of masters, each refreshing its entry every
// HeartbeatInterval, and control messages, taken by a master from its own
// list (so a command sent while it restarts waits for it) and from a
// broadcast channel, and answered on the requester's reply list.
//
// Keys, for namespace "resque:":
//
//	resque:poolctl:pools              HASH  HOST/NAME -> Entry (JSON)
//	resque:poolctl:control:HOST/NAME  LIST  Command (JSON), RPUSH in, BLMOVE out to
//	resque:poolctl:taken:HOST/NAME    LIST  the Command being served (at most one but
//	                                        after a stall), removed once answered
//	resque:poolctl:control            pub/sub channel of fleet-wide Commands
//	resque:REPLY_TO                   LIST  Reply (JSON), with a TTL (queue.PushReply)
//
// The protocol is documented for other languages in docs/fleet.md.
package fleet

import (
	"context"
	"encoding/json"
	"time"
)

// Timings of the registry.
const (
	// HeartbeatInterval is how often a master refreshes its entry.
	HeartbeatInterval = 2 * time.Second
	// StaleAfter is how long an entry may go without a heartbeat before
	// it is shown as stale.
	StaleAfter = 10 * time.Second
	// PruneAfter is how long a stale entry stays listed before a listing
	// removes it.
	PruneAfter = 24 * time.Hour
)

// RegistryKey is the hash of every pool's Entry, by pool id.
func RegistryKey(ns string) string { return ns + "poolctl:pools" }

// ControlKey is the list pool id takes its commands from.
func ControlKey(ns, id string) string { return ns + "poolctl:control:" + id }

// TakenKey is the list a command of pool id sits on while the pool serves
// it, so that none is lost between the pop and the answer.
func TakenKey(ns, id string) string { return ns + "poolctl:taken:" + id }

// BroadcastChannel is the channel of fleet-wide commands.
func BroadcastChannel(ns string) string { return ns + "poolctl:control" }

// PoolID names a pool across the fleet: HOST/NAME.
func PoolID(host, name string) string { return host + "/" + name }

// Entry is what a master publishes of itself in the registry.
type Entry struct {
	ID        string    `json:"id"` // HOST/NAME
	Host      string    `json:"host"`
	Name      string    `json:"name"`
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Config    string    `json:"config,omitempty"` // the config file the master reads
	// State is the master's: running, paused, stopping.
	State string `json:"state"`
	// RemoteControl says whether the pool takes mutating verbs.
	RemoteControl bool    `json:"remote_control"`
	Groups        []Group `json:"groups"`
	// Cockpit holds the pool's latest cockpit figures, nil when it has
	// none yet.
	Cockpit   *Cockpit  `json:"cockpit,omitempty"`
	Heartbeat time.Time `json:"heartbeat"`
}

// Group is one queue list of a registered pool.
type Group struct {
	Queues  string `json:"queues"`
	Desired int    `json:"desired"`
	Live    int    `json:"live"`
}

// Cockpit is a pool's summary from its latest sample, for `fleet top`.
type Cockpit struct {
	Queued   int64   `json:"queued"`
	InFlight int64   `json:"in_flight"`
	InRate   float64 `json:"in_rate"`  // jobs/s, 10 s average
	OutRate  float64 `json:"out_rate"` // jobs/s, 10 s average
	Busy     int     `json:"busy"`     // workers running a job
	Workers  int     `json:"workers"`
	Failed   int64   `json:"failed"` // failures since the master started sampling
}

// Listed is a registry entry as a listing sees it.
type Listed struct {
	Entry
	// Age is the time since the entry's heartbeat, by the Redis server's
	// clock (hosts' clocks may disagree).
	Age   time.Duration `json:"-"`
	Stale bool          `json:"stale"`
}

// Verbs a Command may carry.
const (
	VerbPing      = "ping"
	VerbStatus    = "status"
	VerbConfig    = "config"    // args: spec words, e.g. ["foo=4", "bar=0"]
	VerbReload    = "reload"    //
	VerbPause     = "pause"     // args: queue lists; none = all
	VerbResume    = "resume"    // args: queue lists; none = all
	VerbStop      = "stop"      // graceful (QUIT)
	VerbAutoscale = "autoscale" // args: ["on"|"off", queue lists...]
)

// ReadOnly reports whether verb changes nothing (always allowed; the
// others need remote_control: true).
func ReadOnly(verb string) bool { return verb == VerbPing || verb == VerbStatus }

// Command is a control message. Either Verb (poolctl's shape) or Operation
// (Vumi's supervisor shape: start_worker, stop_worker) is set.
type Command struct {
	ID      string   `json:"id"`
	ReplyTo string   `json:"reply_to"`
	Verb    string   `json:"verb,omitempty"`
	Args    []string `json:"args,omitempty"`
	// ExpiresAt is when an unserved command is dropped and answered
	// "expired"; zero means never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`

	// Vumi's shape: start_worker sets the count of queue list Queues (1
	// when Count is absent); stop_worker sets it to 0. WorkerName labels
	// the change in the log and reply; WorkerClass and WorkerConfig may
	// only name what the pool's own config names (never a command line).
	Operation    string          `json:"operation,omitempty"`
	WorkerName   string          `json:"worker_name,omitempty"`
	WorkerClass  string          `json:"worker_class,omitempty"`
	WorkerConfig json.RawMessage `json:"worker_config,omitempty"`
	Queues       string          `json:"queues,omitempty"`
	Count        *int            `json:"count,omitempty"`
}

// Reply statuses.
const (
	StatusOK      = "ok"
	StatusError   = "error"
	StatusExpired = "expired"
)

// Reply answers one Command on its reply_to list.
type Reply struct {
	ID     string          `json:"id"`
	Pool   string          `json:"pool"` // HOST/NAME of the answering master
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	// Elapsed is, on the requester's side, the time from publishing the
	// command to receiving this reply (set by Client.Broadcast; not sent).
	Elapsed time.Duration `json:"-"`
}

// Executor carries out the verbs on a master. The listener calls its
// methods one at a time (never two at once, though not always from the
// same goroutine), with a context bounded by ListenerOptions.ExecTimeout;
// each returns a JSON-encodable result. The listener has already checked
// expiry and RemoteControl.
type Executor interface {
	Status(ctx context.Context) (any, error)
	Config(ctx context.Context, words []string) (any, error)
	Reload(ctx context.Context) (any, error)
	Pause(ctx context.Context, queues []string) (any, error)
	Resume(ctx context.Context, queues []string) (any, error)
	Stop(ctx context.Context) (any, error)
	Autoscale(ctx context.Context, on bool, queues []string) (any, error)
	// RemoteControl reports whether the pool's config allows mutating
	// verbs (remote_control: true); read at each command, so a HUP that
	// changes it applies to the next one.
	RemoteControl() bool
}
