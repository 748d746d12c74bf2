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

// RedisSetting is the Redis a master restarting this pool should use:
// EmbeddedRedis when the running master published the URL of its private
// redis-server (which dies with it), else the URL it published, "" when
// none is published.
func (p Pool) RedisSetting() string {
	u := p.RedisURL()
	if u != "" && u == "unix://"+p.Paths.Redis {
		return EmbeddedRedis
	}
	return u
}

// RedisFor picks the Redis URL that a client of the pool (the shell,
// poolctl enqueue, queues and failed) talks to. The first that applies
// wins:
//
//  1. explicit, the --redis flag, unless it is EmbeddedRedis;
//  2. the URL published by the pool's running master (redis.url), where
//     its workers are;
//  3. env, $REDIS_URL, unless it is EmbeddedRedis;
//  4. config, the config file's redis: setting, unless it is
//     EmbeddedRedis (the master gives --redis and $REDIS_URL precedence
//     over it too).
//
// EmbeddedRedis names a master's private Redis, which only a running
// master has: when explicit, env or config says so, what comes after it
// is not tried. "" means none applies (callers pick their own last
// resort); fromPool says the URL is the running master's.
func (p Pool) RedisFor(explicit, env, config string) (url string, fromPool bool) {
	if explicit != "" && explicit != EmbeddedRedis {
		return explicit, false
	}
	if p.Running() {
		if u := p.RedisURL(); u != "" {
			return u, true
		}
	}
	for _, u := range []string{explicit, env, config} {
		switch u {
		case "":
		case EmbeddedRedis:
			return "", false
		default:
			return u, false
		}
	}
	return "", false
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
