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

// The runtime directory's types and functions live in package poolfs,
// the one client of the shell<->master protocol; these names keep the
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

// PathsFor is poolfs.PathsFor.
func PathsFor(base, name string) Paths { return poolfs.PathsFor(base, name) }

// BaseDir is poolfs.BaseDir.
func BaseDir() string { return poolfs.BaseDir() }

// DefaultPoolName is poolfs.DefaultPoolName.
func DefaultPoolName() string { return poolfs.DefaultPoolName() }

// ValidatePoolName is poolfs.ValidatePoolName.
func ValidatePoolName(name string) error { return poolfs.ValidatePoolName(name) }

// ListPools is poolfs.ListPools.
func ListPools(base string) ([]string, error) { return poolfs.ListPools(base) }

// ReadState is poolfs.ReadState.
func ReadState(path string) (*State, error) { return poolfs.ReadState(path) }

// WriteState is poolfs.WriteState.
func WriteState(path string, s *State) error { return poolfs.WriteState(path, s) }

// WriteFileAtomic is poolfs.WriteFileAtomic.
func WriteFileAtomic(path string, data []byte) error { return poolfs.WriteFileAtomic(path, data) }

// MasterAlive is poolfs.MasterAlive.
func MasterAlive(p Paths) bool { return poolfs.MasterAlive(p) }
