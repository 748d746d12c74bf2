package pool

import "github.com/poolctl/poolctl/pool/poolfs"

// workerState is where a worker process is in its life; its values are
// the words the state file carries.
type workerState string

const (
	workerStarting workerState = poolfs.WorkerStarting
	workerRunning  workerState = poolfs.WorkerRunning
	workerStopping workerState = poolfs.WorkerStopping
)

// groupState is what the master does about a queue list's missing
// workers: start them (ok), wait (backoff), or nothing until a reload
// (fatal). Its values are the words the state file carries.
type groupState string

const (
	groupOK      groupState = poolfs.GroupOK
	groupBackoff groupState = poolfs.GroupBackoff
	groupFatal   groupState = poolfs.GroupFatal
)

// The runtime directory's types live in package poolfs, the one home of
// the shell<->master protocol (docs/protocol.md); these aliases keep the
// master's code short.
type (
	// Paths is poolfs.Paths.
	Paths = poolfs.Paths
	// State is poolfs.State.
	State = poolfs.State
	// GroupState is poolfs.GroupState.
	GroupState = poolfs.GroupState
	// WorkerState is poolfs.WorkerState.
	WorkerState = poolfs.WorkerState
)

// State file words, from poolfs.
const (
	WorkerStarting = poolfs.WorkerStarting
	WorkerRunning  = poolfs.WorkerRunning
	WorkerStopping = poolfs.WorkerStopping
	GroupOK        = poolfs.GroupOK
	GroupBackoff   = poolfs.GroupBackoff
	GroupFatal     = poolfs.GroupFatal
	MasterRunning  = poolfs.MasterRunning
	MasterPaused   = poolfs.MasterPaused
	MasterStopping = poolfs.MasterStopping
)
