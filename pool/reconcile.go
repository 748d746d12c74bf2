package pool

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/spec"
)

// fastStopBound caps how long INT/TERM wait before killing stragglers.
const fastStopBound = 5 * time.Second

// stopMode is how far the master is in shutting down. A later mode
// overrides an earlier one (INT after QUIT), never the reverse.
type stopMode int

const (
	notStopping  stopMode = iota
	gracefulStop          // QUIT: workers finish their current job
	fastStop              // INT, TERM: workers stop now
)

// reload re-reads the config file on HUP and makes it the desired state,
// or keeps the current one (and publishes the error) when it cannot.
// loadConfig reads the configuration file and puts the overrides file's
// worker counts on top; it returns the overrides too.
func loadConfig(opts Options) (*spec.Config, spec.Spec, error) {
	cfg, err := spec.LoadConfig(opts.ConfigPath, opts.Env)
	if err != nil || opts.Overrides == "" {
		return cfg, nil, err
	}
	b, err := os.ReadFile(opts.Overrides)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("overrides: %w", err)
	}
	over, err := spec.Parse(string(b))
	if err != nil {
		return nil, nil, fmt.Errorf("overrides %s: %w", opts.Overrides, err)
	}
	cfg.Workers = cfg.Workers.Merge(over)
	return cfg, over, nil
}

func (m *Master) reload() {
	cfg, over, err := loadConfig(m.opts)
	if err == nil {
		cfg.Namespace, _ = redisconn.EffectiveNamespace(m.redisURL, cfg.Namespace)
	}
	// Settings fixed at start (the janitor that recovers dead workers' jobs
	// runs on them) refuse the whole reload: applying the rest would leave
	// workers and their recovery on different Redis keys.
	switch {
	case err != nil:
	case m.opts.RedisURL == "" && cfg.Redis != m.cfg.Redis:
		err = errors.New("the redis: setting cannot change while the pool runs; restart the pool")
	case cfg.Namespace != m.cfg.Namespace:
		err = fmt.Errorf("the namespace: setting cannot change while the pool runs (%q -> %q); restart the pool to change it", m.cfg.Namespace, cfg.Namespace)
	}
	if err != nil {
		m.lastError = err.Error()
		m.log.Printf("reload failed, keeping the current configuration: %v", err)
		m.dirty = true
		return
	}
	m.lastError = ""
	old := m.cfg.Workers
	m.cfg, m.overrides = cfg, over
	m.readAutoscaleOff()
	m.paused = false
	m.applyConfig(cfg)
	m.log.Printf("reloaded configuration: %s -> %s", old.Describe(), cfg.Workers.Describe())
	m.rollChanged()
}

// applyConfig makes cfg the desired state. Queue lists whose count and
// launch settings are unchanged keep their processes; every FATAL or
// backoff is cleared.
func (m *Master) applyConfig(cfg *spec.Config) {
	m.remoteControl.Store(cfg.RemoteControl)
	jobs, _ := json.Marshal(cfg.Jobs)
	seen := map[string]bool{}
	m.order = m.order[:0]
	for _, e := range cfg.Workers {
		if e.Count <= 0 {
			continue
		}
		seen[e.Queues] = true
		m.order = append(m.order, e.Queues)
		g := m.groups[e.Queues]
		if g == nil {
			g = &group{queues: e.Queues}
			m.groups[e.Queues] = g
		}
		g.desired = e.Count
		m.applyAutoscale(g, cfg.Groups[e.Queues].Autoscale, e.Count)
		g.argv = cfg.WorkerArgv(e.Queues)
		g.builtin = g.argv == nil
		if g.builtin {
			prefix := m.opts.WorkerCommand
			if len(prefix) == 0 {
				prefix = []string{m.opts.Executable, "work"}
			}
			g.argv = append(append([]string{}, prefix...), "--queues", e.Queues)
		}
		g.path, g.lookErr = exec.LookPath(g.argv[0])
		if g.builtin {
			// The executable stays g.path; only the process title changes.
			g.argv[0] = BuiltinWorkerArgv0
		}
		// Everything that reaches the worker's argv or environment: a
		// change means its workers must be replaced.
		gs := cfg.Group(e.Queues)
		g.jobTimeout = *gs.JobTimeout
		g.startAfter = *gs.StartSecs
		g.recycle = recycleSettings{maxRSS: gs.MaxRSS, maxJobs: gs.MaxJobs, maxLifetime: gs.MaxLifetime}
		fp, _ := json.Marshal([]any{g.argv, m.redisURL, cfg.Namespace, string(jobs), g.jobTimeout.String(), g.recycle.maxJobs, cfg.ReplyTTL.String()})
		g.fingerprint = string(fp)
		g.failures, g.fatal, g.reason, g.backoffUntil = 0, false, "", time.Time{}
		if g.timer != nil {
			g.timer.Stop()
			g.timer = nil
		}
	}
	for q, g := range m.groups {
		if !seen[q] {
			if g.timer != nil {
				g.timer.Stop()
			}
			delete(m.groups, q)
		}
	}
	m.dirty = true
}

func (m *Master) beginStop(mode stopMode, why string) {
	if m.stopping >= mode {
		return
	}
	m.stopping = mode
	m.dirty = true
	m.notify.stopping()
	sig, bound, kind := syscall.SIGQUIT, m.cfg.TermTimeout, "graceful"
	if mode == fastStop {
		sig, kind = syscall.SIGTERM, "fast"
		bound = min(m.cfg.TermTimeout, fastStopBound)
	}
	m.log.Printf("%s: %s shutdown of %s (killing any left after %s)", why, kind, countOf(len(m.workers), "worker"), bound)
	for _, w := range m.workers {
		m.stopWorker(w, sig, bound, true)
	}
}

// stopWorker signals w's process group and arranges a SIGKILL after bound.
// force re-signals a worker that is already stopping (escalation).
func (m *Master) stopWorker(w *worker, sig syscall.Signal, bound time.Duration, force bool) {
	if w.state == workerStopping && !force {
		return
	}
	if sig == syscall.SIGQUIT && (w.state == workerStarting || w.builtin && !w.obeysSignals) {
		// A process that has just been exec'd may not have installed its
		// QUIT handler yet (a Go program dumps its stack and exits 2 on
		// an early QUIT; a built-in worker says when it has); a worker
		// that young has little to finish, so stop it with TERM.
		sig = syscall.SIGTERM
	}
	w.state = workerStopping
	m.dirty = true
	if err := signalGroup(w.pid, sig); err != nil && err != syscall.ESRCH {
		m.log.Printf("cannot signal worker[%d]: %v", w.pid, err)
	}
	if w.stopTimer != nil {
		w.stopTimer.Stop()
	}
	pid := w.pid
	w.stopTimer = time.AfterFunc(bound, func() {
		m.post(func() {
			if cur := m.workers[pid]; cur == w {
				m.log.Printf("worker[%d] still running %s after %s: sending KILL", pid, signalName(sig), bound)
				_ = signalGroup(pid, syscall.SIGKILL)
			}
		})
	})
}

// reconcile moves the live workers toward the desired counts: it asks
// plan what to do and does it.
func (m *Master) reconcile() {
	m.advanceRoll()
	halt := m.paused || m.stopping != notStopping
	if halt && m.halted {
		// Halted, plan only stops the workers not stopping yet, and the
		// last plan stopped them all: nothing to decide until one starts.
		// Planning anyway on each reap made a stop of n workers O(n²).
		return
	}
	m.plans++
	acts := plan(world{
		order:    m.order,
		groups:   m.groups,
		workers:  m.workers,
		paused:   m.paused,
		stopping: m.stopping,
		now:      time.Now(),
	})
	for _, a := range acts {
		m.apply(a)
	}
	m.halted = halt
}

// apply carries out one action of plan or backoff.
func (m *Master) apply(a action) {
	g := m.groups[a.queues]
	switch a.kind {
	case actStop:
		if w := m.workers[a.pid]; w != nil {
			m.stopWorker(w, a.sig, m.cfg.TermTimeout, false)
		}
	case actSpawn:
		for i := 0; i < a.n && !g.fatal; i++ {
			failures := g.failures
			m.spawn(g)
			if g.failures > failures {
				break // a failed spawn backs off; do not burn the retries now
			}
		}
	case actBackoff:
		g.backoffUntil = a.until
		m.armBackoff(g)
	case actFatal:
		g.fatal = true
	}
}

// armBackoff wakes the event loop when g's backoff ends (one timer per
// group: one already armed stays).
func (m *Master) armBackoff(g *group) {
	if g.timer != nil {
		return
	}
	g.timer = time.AfterFunc(time.Until(g.backoffUntil), func() {
		m.post(func() { g.timer = nil })
	})
}

// failedStart counts one failed start of g and backs it off or, after
// start_retries of them in a row, makes it FATAL.
func (m *Master) failedStart(g *group, reason string) {
	g.failures++
	g.reason = reason
	now := time.Now()
	a := backoff(g.queues, g.failures, m.cfg.StartRetries, m.cfg.BackoffMax, now)
	m.apply(a)
	if a.kind == actFatal {
		m.log.Printf("FATAL: queues %s: %d consecutive failed starts (last: %s); not restarting until reload or config change", g.queues, g.failures, reason)
		return
	}
	m.log.Printf("queues %s: failed start %d of %d: %s; next try in %s", g.queues, g.failures, m.cfg.StartRetries, reason, a.until.Sub(now))
}
