// Package pool is the pool master: a reconciler that keeps one OS process
// per configured worker slot running, and nothing else.
//
// Desired state is the config file; actual state is the master's live
// children. On every event (a child exits, a signal arrives, a timer fires)
// the master moves actual toward desired: it spawns what is missing, stops
// what is surplus (oldest first) and backs off queue lists whose workers
// crash at start. One goroutine owns all state, so there are no locks around
// it; slow work (Redis clean-up) happens on other goroutines.
package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/internal/workerenv"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/spec"
)

// Janitor tidies up after built-in workers (requeueing their in-flight jobs
// and removing their registrations). The master calls it from its own
// goroutines, never from the event loop.
type Janitor interface {
	// WorkerExited is called after a built-in worker that started at
	// started was reaped. It must not block: the clean-up runs in the
	// background, and Close waits for it.
	WorkerExited(pid int, queues string, started time.Time)
	// Close releases the janitor's resources.
	Close() error
}

// Options configures a master.
type Options struct {
	ConfigPath string
	Env        string // environment section of the config file
	Paths      Paths  // runtime directory and files
	LogPath    string // "" = stdout
	PidFile    string // "" = Paths.Pid
	Executable string // binary for built-in workers; "" = this executable
	// WorkerCommand is the argv prefix of a built-in worker, to which
	// "--queues LIST" is appended; nil = Executable "work".
	WorkerCommand []string
	RedisURL      string // overrides the config's redis: setting
	// ShellPID is the interactive shell that started the master, if any;
	// the master logs when it goes away (the pool keeps running).
	ShellPID int
	// Janitor, when set, is told about every reaped built-in worker.
	Janitor func(redisURL string, cfg *spec.Config, log *Logger) (Janitor, error)
	// RedisResolver, when set, decides the Redis from the configured URL
	// (e.g. by starting a private server when none is configured). The
	// master calls it once, before any worker starts, on its own goroutine,
	// which keeps its OS thread for life (so a child's parent-death signal
	// stays armed), with the pool's files and its log.
	RedisResolver func(ctx context.Context, configured string, paths Paths, logf func(format string, args ...any)) (Redis, error)
}

// Redis is the Redis a RedisResolver chose.
type Redis struct {
	URL string
	// PID is a private redis-server the resolver started as a child of the
	// master, 0 if none: the master reaps it and logs when it dies.
	PID int
	// Stop stops what the resolver started, if anything; the master calls
	// it when every worker is gone.
	Stop func()
}

// BuiltinWorkerArgv0 is the argv[0] of built-in workers, so that `ps`
// shows e.g. "poolctl-worker[resque:work] --queues foo". Ruby Resque's
// prune_dead_workers takes a worker of its host whose pid is not listed by
// `ps -A -o pid,command | grep -E "[r]esque:work|[r]esque:\sStarting|[r]esque-[0-9]"`
// for dead and unregisters it; this title keeps poolctl's workers listed.
const BuiltinWorkerArgv0 = "poolctl-worker[resque:work]"

// claimCheckInterval is how often the master checks that its lock file (and
// runtime directory) are still there, besides every state write.
const claimCheckInterval = time.Second

// fastStopBound caps how long INT/TERM wait before killing stragglers.
const fastStopBound = 5 * time.Second

// shutdown modes
const (
	notStopping = iota
	gracefulStop
	fastStop
)

type worker struct {
	pid         int
	queues      string
	fingerprint string
	builtin     bool
	started     time.Time
	state       string
	restarts    int
	stopTimer   *time.Timer
	promote     *time.Timer
}

type group struct {
	queues       string
	desired      int
	argv         []string
	path         string // argv[0] resolved through PATH
	lookErr      error  // why argv[0] cannot be run, if it cannot
	builtin      bool
	fingerprint  string
	failures     int
	restarts     int
	backoffUntil time.Time
	fatal        bool
	reason       string
	timer        *time.Timer
	lastExit     string
}

// Master is a running pool master. Its methods run on its event loop
// goroutine, which owns all of its state.
type Master struct {
	opts     Options
	log      *Logger
	lock     *poolLock
	cfg      *spec.Config
	redisURL string
	janitor  Janitor

	groups  map[string]*group
	order   []string
	workers map[int]*worker
	// other children (e.g. an embedded redis-server) and what to do when
	// they exit.
	others map[int]func(status string)

	calls     chan func()
	done      chan struct{} // closed when Run returns
	stopping  int
	paused    bool
	dirty     bool
	started   time.Time
	lastError string
	orphanDue bool
	// orphanRound counts the scans of the current orphan clean-up, and
	// orphansKilled holds the orphans it has killed (logged once each).
	orphanRound   int
	orphansKilled map[int]bool
	stateErr      bool
	lockErr       bool // the last attempt to re-take the lock file failed
}

// Run loads the config and runs the master until it is told to stop (by
// QUIT, INT or TERM, or by cancelling ctx, which acts as TERM). It returns
// nil after an orderly shutdown with every child reaped.
func Run(ctx context.Context, opts Options) (err error) {
	// Parent-death signals of spawned workers fire when the *thread* that
	// forked them exits; keep this goroutine on one thread for its life.
	runtime.LockOSThread()

	if opts.PidFile == "" {
		opts.PidFile = opts.Paths.Pid
	}
	if opts.Executable == "" {
		if opts.Executable, err = os.Executable(); err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
	}
	if err := opts.Paths.Ensure(); err != nil {
		return err
	}
	lock, err := lockPool(opts.Paths)
	if err != nil {
		return err
	}
	defer lock.release()

	cfg, err := spec.LoadConfig(opts.ConfigPath, opts.Env)
	if err != nil {
		return fmt.Errorf("master cannot start: %w", err)
	}
	log, err := NewLogger(opts.LogPath, os.Getpid())
	if err != nil {
		return fmt.Errorf("master cannot start: %w", err)
	}
	defer log.Close()

	m := &Master{
		opts:    opts,
		log:     log,
		lock:    lock,
		cfg:     cfg,
		groups:  map[string]*group{},
		workers: map[int]*worker{},
		others:  map[int]func(string){},
		calls:   make(chan func(), 1024),
		done:    make(chan struct{}),
		started: time.Now(),

		orphansKilled: map[int]bool{},
	}
	return m.run(ctx)
}

func (m *Master) run(ctx context.Context) error {
	defer close(m.done)
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGINT, syscall.SIGTERM,
		syscall.SIGWINCH, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCONT, syscall.SIGCHLD)
	defer signal.Stop(sigs)

	if err := becomeSubreaper(); err != nil {
		m.log.Printf("warning: %v; orphaned job processes will be adopted by init", err)
	}
	if err := WriteFileAtomic(m.opts.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
		return fmt.Errorf("master cannot start: %w", err)
	}
	defer os.Remove(m.opts.PidFile)
	defer os.Remove(m.opts.Paths.State)

	m.log.Printf("starting manager for pool %s (config %s)", m.opts.Paths.Name, m.opts.ConfigPath)
	url := m.opts.RedisURL
	if url == "" {
		url = m.cfg.Redis
	}
	if m.opts.RedisResolver != nil {
		r, err := m.opts.RedisResolver(ctx, url, m.opts.Paths, m.log.Printf)
		if err != nil {
			m.log.Printf("cannot set up Redis: %v", err)
			return fmt.Errorf("master cannot start: %w", err)
		}
		url = r.URL
		if r.PID > 0 {
			pid := r.PID
			m.others[pid] = func(status string) {
				m.log.Printf("private redis-server[%d] exited (%s): workers cannot reach Redis until the pool restarts", pid, status)
			}
		}
		if r.Stop != nil {
			defer r.Stop()
		}
	}
	m.redisURL = url
	if url != "" {
		if err := WriteFileAtomic(m.opts.Paths.RedisURL, []byte(url+"\n")); err != nil {
			m.log.Printf("warning: %v", err)
		}
		defer os.Remove(m.opts.Paths.RedisURL)
	}
	if m.opts.ShellPID > 0 {
		go m.watchShell()
	}
	if m.opts.Janitor != nil && url != "" {
		j, err := m.opts.Janitor(url, m.cfg, m.log)
		if err != nil {
			m.log.Printf("warning: Redis clean-up disabled: %v", err)
		} else {
			m.janitor = j
			defer j.Close()
		}
	}
	m.applyConfig(m.cfg)
	m.log.Printf("started manager: %s", m.cfg.Workers.Describe())
	m.reconcile()
	m.flushState()

	claimCheck := time.NewTicker(claimCheckInterval)
	defer claimCheck.Stop()
	ctxDone := ctx.Done()
	for {
		select {
		case sig := <-sigs:
			m.handleSignal(sig.(syscall.Signal))
		case fn := <-m.calls:
			fn()
		case <-claimCheck.C:
			m.keepClaim()
		case <-ctxDone:
			ctxDone = nil
			m.beginStop(fastStop, "context cancelled")
		}
		m.reconcile()
		m.flushState()
		if m.stopping != notStopping && len(m.workers) == 0 {
			break
		}
	}
	m.sweepOrphans()
	m.log.Printf("manager stopped: all workers reaped")
	return nil
}

// watchShell logs once when the shell that started the master is gone, so
// an operator whose terminal closed knows the pool is still running.
func (m *Master) watchShell() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
		}
		if syscall.Kill(m.opts.ShellPID, 0) == syscall.ESRCH {
			m.post(func() {
				m.log.Printf("shell (pid %d) is gone; the pool keeps running: re-attach with `poolctl attach %s`", m.opts.ShellPID, m.opts.Paths.Name)
			})
			return
		}
	}
}

// post runs fn on the event loop (or drops it once the loop is gone).
func (m *Master) post(fn func()) {
	select {
	case m.calls <- fn:
	case <-m.done:
	}
}

func (m *Master) handleSignal(sig syscall.Signal) {
	switch sig {
	case syscall.SIGCHLD:
		m.reapAll()
	case syscall.SIGHUP:
		m.log.Printf("HUP: reloading configuration and reopening the log")
		if err := m.log.Reopen(); err != nil {
			m.log.Printf("cannot reopen log: %v (still writing to the old file)", err)
		}
		m.reload()
	case syscall.SIGQUIT:
		m.beginStop(gracefulStop, "QUIT")
	case syscall.SIGINT, syscall.SIGTERM:
		if m.stopping == fastStop {
			m.log.Printf("%s again: killing every worker now", signalName(sig))
			for _, w := range m.workers {
				_ = signalGroup(w.pid, syscall.SIGKILL)
			}
			return
		}
		m.beginStop(fastStop, signalName(sig))
	case syscall.SIGWINCH:
		if m.stopping != notStopping {
			return
		}
		m.log.Printf("WINCH: stopping all workers gracefully; the master stays until HUP")
		m.paused = true
		m.dirty = true
	case syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCONT:
		m.log.Printf("%s: forwarding to %d workers", signalName(sig), len(m.workers))
		for _, w := range m.workers {
			_ = signalGroup(w.pid, sig)
		}
	}
}

func (m *Master) reload() {
	cfg, err := spec.LoadConfig(m.opts.ConfigPath, m.opts.Env)
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
	m.cfg = cfg
	m.paused = false
	m.applyConfig(cfg)
	m.log.Printf("reloaded configuration: %s -> %s", old.Describe(), cfg.Workers.Describe())
}

// applyConfig makes cfg the desired state. Queue lists whose count and
// launch settings are unchanged keep their processes; every FATAL or
// backoff is cleared.
func (m *Master) applyConfig(cfg *spec.Config) {
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
		fp, _ := json.Marshal([]any{g.argv, m.redisURL, cfg.Namespace, string(jobs), cfg.JobTimeout.String()})
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

func (m *Master) beginStop(mode int, why string) {
	if m.stopping >= mode {
		return
	}
	m.stopping = mode
	m.dirty = true
	sig, bound, kind := syscall.SIGQUIT, m.cfg.TermTimeout, "graceful"
	if mode == fastStop {
		sig, kind = syscall.SIGTERM, "fast"
		bound = min(m.cfg.TermTimeout, fastStopBound)
	}
	m.log.Printf("%s: %s shutdown of %d workers (killing any left after %s)", why, kind, len(m.workers), bound)
	for _, w := range m.workers {
		m.stopWorker(w, sig, bound, true)
	}
}

// stopWorker signals w's process group and arranges a SIGKILL after bound.
// force re-signals a worker that is already stopping (escalation).
func (m *Master) stopWorker(w *worker, sig syscall.Signal, bound time.Duration, force bool) {
	if w.state == WorkerStopping && !force {
		return
	}
	if sig == syscall.SIGQUIT && w.state == WorkerStarting {
		// A process that has just been exec'd may not have installed its
		// QUIT handler yet (a Go program dumps its stack and exits 2 on
		// an early QUIT); a worker that young has little to finish, so
		// stop it with TERM.
		sig = syscall.SIGTERM
	}
	w.state = WorkerStopping
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

// reconcile moves the live workers toward the desired counts.
func (m *Master) reconcile() {
	now := time.Now()
	live := map[string][]*worker{}
	for _, w := range m.workers {
		if w.state == WorkerStopping {
			continue
		}
		g := m.groups[w.queues]
		if g == nil || g.fingerprint != w.fingerprint || m.paused || m.stopping != notStopping {
			// Removed, changed or paused: stop gracefully.
			m.stopWorker(w, syscall.SIGQUIT, m.cfg.TermTimeout, false)
			continue
		}
		live[w.queues] = append(live[w.queues], w)
	}
	if m.paused || m.stopping != notStopping {
		return
	}
	for _, q := range m.order {
		g := m.groups[q]
		ws := live[q]
		if n := len(ws) - g.desired; n > 0 {
			sort.Slice(ws, func(i, j int) bool { return ws[i].started.Before(ws[j].started) })
			for _, w := range ws[:n] {
				m.stopWorker(w, syscall.SIGQUIT, m.cfg.TermTimeout, false)
			}
			continue
		}
		missing := g.desired - len(ws)
		if missing <= 0 || g.fatal {
			continue
		}
		if now.Before(g.backoffUntil) {
			m.armBackoff(g)
			continue
		}
		if g.failures > 0 {
			// Crash-looping: probe with one worker; the rest follow once
			// it has survived start_secs.
			if len(ws) > 0 {
				continue
			}
			missing = 1
		}
		for i := 0; i < missing && !g.fatal; i++ {
			failures := g.failures
			m.spawn(g)
			if g.failures > failures {
				break // a failed spawn backs off; do not burn the retries now
			}
		}
	}
}

func (m *Master) armBackoff(g *group) {
	if g.timer != nil {
		return
	}
	g.timer = time.AfterFunc(time.Until(g.backoffUntil), func() {
		m.post(func() { g.timer = nil })
	})
}

func (m *Master) spawn(g *group) {
	w, err := m.startProcess(g)
	if err != nil {
		m.dirty = true
		reason := fmt.Sprintf("cannot start worker for queues %s: %v", g.queues, err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.ENOEXEC) {
			// Permanent: retrying cannot help until the config changes.
			g.fatal, g.reason = true, reason
			m.log.Printf("FATAL: %s; not retrying until reload or config change", reason)
			return
		}
		m.failedStart(g, reason)
		return
	}
	m.workers[w.pid] = w
	m.dirty = true
	m.log.Printf("Starting worker[%d] queues: %s", w.pid, g.queues)
	pid := w.pid
	w.promote = time.AfterFunc(m.cfg.StartSecs, func() {
		m.post(func() {
			if cur := m.workers[pid]; cur == w && w.state == WorkerStarting {
				w.state = WorkerRunning
				if g := m.groups[w.queues]; g != nil && g.fingerprint == w.fingerprint {
					g.failures, g.reason = 0, ""
				}
				m.dirty = true
			}
		})
	})
}

func (m *Master) workerEnv(g *group) []string {
	jobs, _ := json.Marshal(m.cfg.Jobs)
	// Drop inherited values of the variables set here: with duplicates,
	// which one a child sees depends on its runtime.
	env := make([]string, 0, len(os.Environ())+8)
	for _, kv := range os.Environ() {
		switch key, _, _ := strings.Cut(kv, "="); key {
		case workerenv.Queues, workerenv.Queue, workerenv.Namespace, workerenv.Pool, workerenv.MasterPID, workerenv.Jobs, workerenv.JobTimeout, workerenv.RedisURL, workerenv.HeartbeatInterval:
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		workerenv.Queues+"="+g.queues,
		workerenv.Queue+"="+g.queues,
		workerenv.Namespace+"="+m.cfg.Namespace,
		workerenv.Pool+"="+m.opts.Paths.Name,
		workerenv.MasterPID+"="+strconv.Itoa(os.Getpid()),
		workerenv.Jobs+"="+string(jobs),
		workerenv.JobTimeout+"="+m.cfg.JobTimeout.String(),
		workerenv.HeartbeatInterval+"="+m.cfg.HeartbeatInterval.String(),
	)
	if m.redisURL != "" {
		env = append(env, workerenv.RedisURL+"="+m.redisURL)
	}
	return env
}

func (m *Master) startProcess(g *group) (*worker, error) {
	if g.lookErr != nil {
		return nil, g.lookErr
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	// Built-in workers get TERM when the master dies, so they can requeue
	// their job; other commands get KILL, which nothing can ignore.
	deathSig := syscall.SIGKILL
	if g.builtin {
		deathSig = syscall.SIGTERM
	}
	proc, err := os.StartProcess(g.path, g.argv, &os.ProcAttr{
		Env:   m.workerEnv(g),
		Files: []*os.File{devnull, w, w},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig},
	})
	devnull.Close()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	pid := proc.Pid
	// We reap with wait4 ourselves; release the os.Process handle.
	_ = proc.Release()
	go func() {
		m.log.pump(pid, r)
		r.Close()
	}()
	return &worker{
		pid:         pid,
		queues:      g.queues,
		fingerprint: g.fingerprint,
		builtin:     g.builtin,
		started:     time.Now(),
		state:       WorkerStarting,
		restarts:    g.restarts,
	}, nil
}

// reapAll collects every exited child without blocking.
func (m *Master) reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		m.onExit(pid, ws)
	}
}

func (m *Master) onExit(pid int, ws syscall.WaitStatus) {
	status := exitStatus(ws)
	if fn, ok := m.others[pid]; ok {
		delete(m.others, pid)
		fn(status)
		return
	}
	w := m.workers[pid]
	if w == nil {
		return // an orphan we adopted as subreaper: reaped, nothing more to do
	}
	delete(m.workers, pid)
	m.dirty = true
	if w.stopTimer != nil {
		w.stopTimer.Stop()
	}
	if w.promote != nil {
		w.promote.Stop()
	}
	// Whatever the worker left in its process group goes with it.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	m.scheduleOrphanScan()
	m.log.Printf("Reaped worker[%d] (status: %s) queues: %s", pid, status, w.queues)
	// A built-in worker that exits 0 has unregistered itself and requeued
	// anything it held; any other end needs the janitor.
	if w.builtin && m.janitor != nil && !(ws.Exited() && ws.ExitStatus() == 0) {
		m.janitor.WorkerExited(pid, w.queues, w.started)
	}
	if w.state == WorkerStopping || m.stopping != notStopping {
		return
	}
	g := m.groups[w.queues]
	if g == nil || g.fingerprint != w.fingerprint {
		return
	}
	g.restarts++
	g.lastExit = status
	ran := time.Since(w.started)
	if ran < m.cfg.StartSecs {
		m.failedStart(g, fmt.Sprintf("worker[%d] exited after %s (%s)", pid, ran.Round(time.Millisecond), status))
		return
	}
	g.failures = 0
}

// failedStart counts one failed start of g and decides between a backoff
// and FATAL.
func (m *Master) failedStart(g *group, reason string) {
	g.failures++
	g.reason = reason
	if g.failures >= m.cfg.StartRetries {
		g.fatal = true
		m.log.Printf("FATAL: queues %s: %d consecutive failed starts (last: %s); not restarting until reload or config change", g.queues, g.failures, reason)
		return
	}
	delay := 250 * time.Millisecond << min(g.failures-1, 16)
	delay = min(delay, m.cfg.BackoffMax)
	g.backoffUntil = time.Now().Add(delay)
	m.log.Printf("queues %s: failed start %d of %d: %s; next try in %s", g.queues, g.failures, m.cfg.StartRetries, reason, delay)
}

// Orphan clean-up. Killing an adopted orphan can orphan its own children
// (in other sessions or groups), which the kernel then hands to the master
// too: a clean-up therefore rescans after every kill, until a scan finds
// nothing, within these bounds.
const (
	orphanScanDelay   = 50 * time.Millisecond // after a worker exit, and between rounds
	orphanRounds      = 20                    // scans per clean-up at most
	finalSweepTimeout = 5 * time.Second       // how long a stopping master waits for orphans to die
)

// scheduleOrphanScan arranges a clean-up of adopted orphans shortly after a
// burst of worker exits, instead of one scan per exit. A scan that finds
// orphans schedules another round, so that processes adopted only when
// those die are found too.
func (m *Master) scheduleOrphanScan() {
	m.orphanRound = 0 // a clean-up under way starts its count again
	if m.orphanDue {
		return
	}
	m.orphanDue = true
	m.orphansKilled = map[int]bool{}
	m.armOrphanScan()
}

func (m *Master) armOrphanScan() {
	time.AfterFunc(orphanScanDelay, func() {
		m.post(func() {
			m.reapAll()
			m.orphanRound++
			if m.killOrphans() > 0 && m.orphanRound < orphanRounds {
				m.armOrphanScan()
				return
			}
			if m.orphanRound >= orphanRounds {
				m.log.Printf("orphaned processes keep appearing after %d rounds of clean-up; scanning again after the next worker exit", orphanRounds)
			}
			m.orphanDue = false
		})
	})
}

// killOrphans kills the children of the master that it did not start (job
// processes and daemons of workers, reparented here because the master is
// a subreaper) together with their process groups. It returns how many
// such children are still there, dying or not yet reaped; 0 means the
// scan found none.
func (m *Master) killOrphans() int {
	kids, err := ownChildren()
	if err != nil {
		m.log.Printf("cannot look for orphaned processes: %v", err)
		return 0
	}
	ownGroup := syscall.Getpgrp()
	found := 0
	for _, pid := range kids {
		if _, ok := m.workers[pid]; ok {
			continue
		}
		if _, ok := m.others[pid]; ok {
			continue
		}
		found++
		pgid, zombie, ok := procGroup(pid)
		if !ok || zombie {
			continue // gone, or dead and waiting for reapAll
		}
		if !m.orphansKilled[pid] {
			m.orphansKilled[pid] = true
			m.log.Printf("killing orphaned process %d (left behind by a dead worker)", pid)
		}
		// Its whole group, unless that group is the master's own or a live
		// worker's (a worker's double-forked child stays in the worker's
		// group): those lose only this process.
		if _, isWorker := m.workers[pgid]; pgid > 1 && pgid != ownGroup && !isWorker {
			if _, isOther := m.others[pgid]; !isOther {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return found
}

// sweepOrphans is the clean-up of a stopping master: it kills adopted
// orphans and reaps them, round after round, until a scan finds none (or
// the bounds are reached), so that nothing of the pool survives the master
// and nothing is left a zombie.
func (m *Master) sweepOrphans() {
	deadline := time.Now().Add(finalSweepTimeout)
	m.orphansKilled = map[int]bool{}
	for round := 1; ; round++ {
		m.reapAll()
		left := m.killOrphans()
		if left == 0 {
			return
		}
		if round >= orphanRounds*10 || time.Now().After(deadline) {
			m.log.Printf("%d orphaned processes still not gone after %s; leaving them to init", left, finalSweepTimeout)
			return
		}
		// Give the killed processes a moment to die before reaping them.
		time.Sleep(orphanScanDelay / 5)
	}
}

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
		if err := WriteFileAtomic(m.opts.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
			m.log.Printf("cannot re-create the pid file: %v", err)
		}
	}
	if _, err := os.Stat(p.RedisURL); m.redisURL != "" && errors.Is(err, os.ErrNotExist) {
		if err := WriteFileAtomic(p.RedisURL, []byte(m.redisURL+"\n")); err != nil {
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
	err := WriteState(m.opts.Paths.State, m.snapshot())
	if errors.Is(err, os.ErrNotExist) {
		// Someone removed the runtime directory under a running pool:
		// recreate it so shells can find the pool again.
		if err = m.opts.Paths.Ensure(); err == nil {
			m.log.Printf("runtime directory %s was removed: recreated it", m.opts.Paths.Dir)
			_ = WriteFileAtomic(m.opts.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"))
			if m.redisURL != "" {
				_ = WriteFileAtomic(m.opts.Paths.RedisURL, []byte(m.redisURL+"\n"))
			}
			err = WriteState(m.opts.Paths.State, m.snapshot())
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

func (m *Master) snapshot() *State {
	s := &State{
		Name:       m.opts.Paths.Name,
		PID:        os.Getpid(),
		Status:     MasterRunning,
		StartedAt:  m.started,
		UpdatedAt:  time.Now(),
		ConfigPath: m.opts.ConfigPath,
		Env:        m.opts.Env,
		LogPath:    m.log.Path(),
		Redis:      redisconn.Redact(m.redisURL),
		Namespace:  m.cfg.Namespace,
		Spec:       m.cfg.Workers.String(),
		Error:      m.lastError,
		Groups:     []GroupState{},
		Workers:    []WorkerState{},
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
		if w.state != WorkerStopping && g != nil && g.fingerprint == w.fingerprint {
			liveCount[w.queues]++
		}
		ws := WorkerState{PID: w.pid, Queues: w.queues, State: w.state, StartedAt: w.started, Restarts: w.restarts}
		if g != nil {
			ws.LastExit = g.lastExit
		}
		s.Workers = append(s.Workers, ws)
	}
	sort.Slice(s.Workers, func(i, j int) bool { return s.Workers[i].PID < s.Workers[j].PID })
	for _, q := range m.order {
		g := m.groups[q]
		gs := GroupState{Queues: q, Desired: g.desired, Live: liveCount[q], State: GroupOK, Failures: g.failures, Reason: g.reason}
		switch {
		case g.fatal:
			gs.State = GroupFatal
		case time.Now().Before(g.backoffUntil):
			gs.State, gs.BackoffUntil = GroupBackoff, g.backoffUntil
		}
		s.Groups = append(s.Groups, gs)
	}
	return s
}
