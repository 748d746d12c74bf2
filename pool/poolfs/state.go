package poolfs

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Worker states as published in the state file.
const (
	WorkerStarting = "starting" // spawned less than start_secs ago
	WorkerRunning  = "running"
	WorkerStopping = "stopping" // told to stop, not yet reaped
)

// Group states: a queue list is ok, backing off after failed starts, or
// fatal (no more spawns until a reload or config change).
const (
	GroupOK      = "ok"
	GroupBackoff = "backoff"
	GroupFatal   = "fatal"
)

// Master states.
const (
	MasterRunning  = "running"
	MasterPaused   = "paused" // after WINCH: no workers until the next HUP
	MasterStopping = "stopping"
)

// State is what the master publishes for shells and tools. It is written to
// a temporary file and renamed over the state file, so a reader never sees
// a partial document.
type State struct {
	Name       string    `json:"name"`
	PID        int       `json:"pid"`
	Status     string    `json:"status"`
	StartedAt  time.Time `json:"started_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	ConfigPath string    `json:"config_path"`
	Env        string    `json:"env,omitempty"` // environment section of the config in force
	LogPath    string    `json:"log_path,omitempty"`
	Redis      string    `json:"redis"` // password redacted
	Namespace  string    `json:"namespace"`
	Spec       string    `json:"spec"` // canonical spec string of the config in force
	// Overrides is the overrides file's spec put on top of the config
	// file (see Paths.Overrides); "" when none.
	Overrides string `json:"overrides,omitempty"`
	// OverridesPath is the overrides file the master reads at every load
	// (--overrides), "" when none: a shell attaching to the pool changes
	// counts there, leaving the config file the user's.
	OverridesPath string        `json:"overrides_path,omitempty"`
	Groups        []GroupState  `json:"groups"`
	Workers       []WorkerState `json:"workers"`
	Error         string        `json:"error,omitempty"` // last reload error, if the config file could not be applied
	// WorkersPausedAt is when USR2 was last forwarded to the workers, zero
	// after CONT: the workers started before it are paused (Resque's
	// USR2), whoever sent the signal.
	WorkersPausedAt time.Time `json:"workers_paused_at,omitzero"`
	// Limits are the machine limits autoscaling keeps within (absent
	// when none is set).
	Limits *Limits `json:"limits,omitempty"`
	// Metrics is the address /metrics is served on, "" when off.
	Metrics string `json:"metrics,omitempty"`
	// Restart is the rolling restart under way, else the last one (nil
	// when there was none); RestartRefused the last request refused.
	Restart        *RestartState   `json:"restart,omitempty"`
	RestartRefused *RestartRefusal `json:"restart_refused,omitempty"`
}

// GroupState is one queue list of the configuration in force.
type GroupState struct {
	Queues       string    `json:"queues"`
	Desired      int       `json:"desired"`
	Live         int       `json:"live"` // workers of the current command, not stopping
	State        string    `json:"state"`
	Failures     int       `json:"failures"` // consecutive failed starts
	BackoffUntil time.Time `json:"backoff_until,omitzero"`
	Reason       string    `json:"reason,omitempty"` // why it is backing off or fatal
	// Autoscale is the queue list's autoscaling, nil when it has none.
	Autoscale *AutoscaleState `json:"autoscale,omitempty"`
	Spawns    int             `json:"spawns"`   // workers started for this queue list since the master started
	Restarts  int             `json:"restarts"` // workers that exited unasked and were replaced
	// Recycle is the queue list's recycling limits, nil when it has none.
	Recycle *RecycleSettings `json:"recycle,omitempty"`
	// Recycled counts the workers recycled since the master started, by
	// kind (rss, jobs, lifetime); absent when none was.
	Recycled map[string]int `json:"recycled,omitempty"`
	// Paused is set while the queue list is paused (fleet pause, or USR2
	// to the master): its workers, those started later too, get USR2.
	Paused bool `json:"paused,omitempty"`
}

// RecycleSettings are a queue list's worker recycling limits (0 = none).
type RecycleSettings struct {
	MaxRSS      uint64  `json:"max_rss_bytes,omitempty"`
	MaxJobs     int     `json:"max_jobs,omitempty"`
	MaxLifetime float64 `json:"max_lifetime_seconds,omitempty"`
}

// WorkerState is one live worker process.
type WorkerState struct {
	PID       int       `json:"pid"`
	Queues    string    `json:"queues"`
	State     string    `json:"state"`
	StartedAt time.Time `json:"started_at"`
	// Identity is the process's boot id and start ticks (internal/procid):
	// with it a tool can tell this worker from a later process that
	// reuses its pid, whatever the clock did.
	Identity string `json:"identity,omitempty"`
	Builtin  bool   `json:"builtin,omitempty"` // a built-in worker, registered in Redis as HOST:PID:QUEUES
	Restarts int    `json:"restarts"`          // workers of this queue list replaced so far
	LastExit string `json:"last_exit,omitempty"`
	// Paused is set when the master paused the worker (USR2) for a
	// pause of its queue list (fleet pause, or USR2 to the master).
	Paused bool `json:"paused,omitempty"`
	// Ready: a built-in worker has registered in Redis, a command has
	// lived past start_secs.
	Ready bool `json:"ready,omitempty"`
	// Roll is the worker's part in a rolling restart: "old" (to be
	// replaced) or "new" (a replacement not yet ready); "" when none.
	Roll string `json:"roll,omitempty"`
}

// Settled reports whether the live workers match the configuration: every
// queue list has as many live, started workers as desired (or is fatal),
// nothing is left stopping and no rolling restart runs.
func (s *State) Settled() bool {
	if s.Restart != nil && s.Restart.State == RestartRunning {
		return false
	}
	if s.Status == MasterPaused {
		return len(s.Workers) == 0
	}
	for _, g := range s.Groups {
		if g.State == GroupFatal {
			continue
		}
		if g.Live != g.Desired {
			return false
		}
	}
	for _, w := range s.Workers {
		if w.State == WorkerStopping {
			return false
		}
	}
	return true
}

// WriteState atomically replaces path with s (mode 0600).
func WriteState(path string, s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return WriteFileAtomic(path, append(data, '\n'))
}

// ReadState reads a state file.
func ReadState(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode state %s: %w", path, err)
	}
	return &s, nil
}

// WriteFileAtomic writes data to a temporary file beside path (mode 0600)
// and renames it over path, so readers see the old or the new content.
func WriteFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}

// Autoscale modes of a group.
const (
	AutoscaleOn  = "on"
	AutoscaleOff = "off" // pinned to its configured count
)

// AutoscaleState is an autoscaled queue list's mode, bounds and last
// decision.
type AutoscaleState struct {
	Mode       string  `json:"mode"`
	Min        int     `json:"min"`
	Max        int     `json:"max"`
	TargetWait float64 `json:"target_wait_seconds"`
	DownAfter  float64 `json:"down_after_seconds"`
	// Configured is the count the config gives (used when off).
	Configured int `json:"configured"`
	// Reason is the autoscaler's last reported decision, with its inputs.
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// Limits are the config's limits: in force.
type Limits struct {
	MaxWorkers    int     `json:"max_workers,omitempty"`
	MaxCPU        float64 `json:"max_cpu_percent,omitempty"`
	MinFreeMemory uint64  `json:"min_free_memory_bytes,omitempty"`
	MaxWorkerRSS  uint64  `json:"max_worker_rss_bytes,omitempty"`
}
