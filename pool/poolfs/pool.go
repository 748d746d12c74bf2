package poolfs

import (
	"os"
	"strconv"
	"strings"

	"github.com/poolctl/poolctl/internal/procid"
)

// EmbeddedRedis is the redis: setting (and the --redis value) that asks
// for a master's private Redis, which only that master can reach.
const EmbeddedRedis = "embedded"

// Pool is a handle on one pool's runtime directory for shells and tools:
// the reading side of the protocol in docs/protocol.md.
type Pool struct {
	Paths Paths
}

// Open returns the handle of the pool called name under BaseDir.
func Open(name string) Pool { return At(BaseDir(), name) }

// At returns the handle of the pool called name under base.
func At(base, name string) Pool { return Pool{Paths: PathsFor(base, name)} }

// Name is the pool's name.
func (p Pool) Name() string { return p.Paths.Name }

// Running reports whether a master holds the pool's lock now.
func (p Pool) Running() bool { return MasterAlive(p.Paths) }

// MasterPID is the pid of the master running the pool: it holds the lock,
// and names itself in the pid file (or, while that is being re-created,
// in the state file).
func (p Pool) MasterPID() (int, bool) {
	if !p.Running() {
		return 0, false
	}
	if b, err := os.ReadFile(p.Paths.Pid); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			return pid, true
		}
	}
	if st, err := ReadState(p.Paths.State); err == nil && st.PID > 0 && procid.Alive(st.PID, "") {
		return st.PID, true
	}
	return 0, false
}

// State reads the state file; live says whether the master it describes
// is the one running the pool now (a state file outlives a SIGKILLed
// master).
func (p Pool) State() (st *State, live bool, err error) {
	st, err = ReadState(p.Paths.State)
	if err != nil {
		return nil, false, err
	}
	pid, ok := p.MasterPID()
	return st, ok && pid == st.PID, nil
}

// RedisURL is the full Redis URL (password included) the running master
// published for local clients, or "" when there is none.
func (p Pool) RedisURL() string {
	b, err := os.ReadFile(p.Paths.RedisURL)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Running lists the pools under base whose master runs now.
func Running(base string) ([]Pool, error) {
	names, err := ListPools(base)
	if err != nil {
		return nil, err
	}
	var out []Pool
	for _, n := range names {
		if p := At(base, n); p.Running() {
			out = append(out, p)
		}
	}
	return out, nil
}
