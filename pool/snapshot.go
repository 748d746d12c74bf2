package pool

import (
	"errors"
	"maps"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/poolctl/poolctl/internal/redact"
	"github.com/poolctl/poolctl/pool/poolfs"
)

// claimCheckInterval is how often the master checks that its lock file (and
// runtime directory) are still there, besides every state write.
const claimCheckInterval = time.Second

// keepClaim re-creates the lock file, and the runtime directory with the
// files the master owns there, when something removed them, and takes the
// lock again, so that shells still find the pool (the abstract socket
// keeps the master unique meanwhile).
func (m *Master) keepClaim() {
	p := m.opts.Paths
	_, dirErr := os.Stat(p.Dir)
	recreated, err := m.lock.refresh()
	if err != nil {
		if !m.lockErr {
			m.log.Printf("cannot re-create the lock file %s: %v (shells may think the pool is stopped; retrying)", p.Lock, err)
		}
		m.lockErr = true
		return
	}
	m.lockErr = false
	if !recreated {
		return
	}
	if errors.Is(dirErr, os.ErrNotExist) {
		m.log.Printf("runtime directory %s was removed: recreated it", p.Dir)
	} else {
		m.log.Printf("lock file %s was removed or replaced: recreated it", p.Lock)
	}
	if _, err := os.Stat(m.opts.PidFile); errors.Is(err, os.ErrNotExist) {
		if err := poolfs.WriteFileAtomic(m.opts.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
			m.log.Printf("cannot re-create the pid file: %v", err)
		}
	}
	if _, err := os.Stat(p.RedisURL); m.redisURL != "" && errors.Is(err, os.ErrNotExist) {
		if err := poolfs.WriteFileAtomic(p.RedisURL, []byte(m.redisURL+"\n")); err != nil {
			m.log.Printf("cannot re-create %s: %v", p.RedisURL, err)
		}
	}
	m.dirty = true // and the state file
}

// flushState publishes the state file when something changed.
func (m *Master) flushState() {
	if !m.dirty {
		return
	}
	m.keepClaim()
	m.dirty = false
	snap := m.snapshot()
	m.notify.status(statusLine(snap))
	if m.cockpit != nil {
		m.cockpit.Observe(snap)
	}
	err := poolfs.WriteState(m.opts.Paths.State, snap)
	if errors.Is(err, os.ErrNotExist) {
		// Someone removed the runtime directory under a running pool:
		// recreate it so shells can find the pool again.
		if err = m.opts.Paths.Ensure(); err == nil {
			m.log.Printf("runtime directory %s was removed: recreated it", m.opts.Paths.Dir)
			_ = poolfs.WriteFileAtomic(m.opts.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"))
			if m.redisURL != "" {
				_ = poolfs.WriteFileAtomic(m.opts.Paths.RedisURL, []byte(m.redisURL+"\n"))
			}
			err = poolfs.WriteState(m.opts.Paths.State, m.snapshot())
		}
	}
	if err != nil {
		if !m.stateErr {
			m.log.Printf("cannot write state file: %v", err)
		}
		m.stateErr = true
		return
	}
	if m.stateErr {
		m.stateErr = false
		m.log.Printf("state file written again")
	}
}

// snapshot is the State the master publishes: its settings, every queue
// list of the config in force and every live worker.
func (m *Master) snapshot() *State {
	now := time.Now()
	s := &State{
		Name:            m.opts.Paths.Name,
		PID:             os.Getpid(),
		Status:          MasterRunning,
		StartedAt:       m.started,
		UpdatedAt:       now,
		ConfigPath:      m.opts.ConfigPath,
		Env:             m.opts.Env,
		LogPath:         m.log.Path(),
		Redis:           redact.URL(m.redisURL),
		Namespace:       m.cfg.Namespace,
		Spec:            m.cfg.Workers.String(),
		Overrides:       m.overrides.UpdateString(),
		OverridesPath:   m.opts.Overrides,
		Error:           m.lastError,
		Metrics:         m.metricsAddr,
		Limits:          publishedLimits(m.cfg.Limits),
		WorkersPausedAt: m.workersPausedAt,
		RestartRefused:  m.restartRefused,
		Groups:          []GroupState{},
		Workers:         []WorkerState{},
	}
	if m.roll != nil {
		pub := m.roll.pub
		s.Restart = &pub
	}
	switch {
	case m.stopping != notStopping:
		s.Status = MasterStopping
	case m.paused:
		s.Status = MasterPaused
	}
	liveCount := map[string]int{}
	for _, w := range m.workers {
		g := m.groups[w.queues]
		// Live as plan counts: a rolling restart's old workers are, its
		// replacements are not until ready.
		if w.state != workerStopping && g != nil && (w.roll == rollOld || (w.roll == rollNone && g.fingerprint == w.fingerprint)) {
			liveCount[w.queues]++
		}
		ws := WorkerState{PID: w.pid, Queues: w.queues, State: string(w.state), StartedAt: w.started, Identity: w.identity, Builtin: w.builtin, Restarts: w.restarts,
			Ready: w.ready, Roll: w.roll.String(), Paused: w.paused}
		if g != nil {
			ws.LastExit = g.lastExit
		}
		s.Workers = append(s.Workers, ws)
	}
	sort.Slice(s.Workers, func(i, j int) bool { return s.Workers[i].PID < s.Workers[j].PID })
	for _, q := range m.order {
		g := m.groups[q]
		st := g.state(now)
		gs := GroupState{Queues: q, Desired: g.desired, Live: liveCount[q], State: string(st), Failures: g.failures, Reason: g.reason, Spawns: g.spawns, Restarts: g.restarts,
			Autoscale: g.autoscale.published(), Recycle: g.recycle.published(), Recycled: maps.Clone(g.recycled), Paused: g.paused}
		if st == groupBackoff {
			gs.BackoffUntil = g.backoffUntil
		}
		s.Groups = append(s.Groups, gs)
	}
	return s
}
