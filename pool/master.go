// Package pool is the pool master: a reconciler that keeps one OS process
// per configured worker slot running, and nothing else.
//
// Desired state is the config file; actual state is the master's live
// children. On every event (a child exits, a signal arrives, a timer fires)
// the master moves actual toward desired: it spawns what is missing, stops
// what is surplus (oldest first) and backs off queue lists whose workers
// crash at start. One goroutine owns all state, so there are no locks around
// it; slow work (Redis clean-up) happens on other goroutines.
//
// The files follow the concerns: master.go the loop and signals,
// plan.go the reconcile decision (a pure function of desired state,
// actual state and the clock), reconcile.go applying it (reload, stop,
// backoff), spawn.go starting workers, reap.go reaping them and
// orphans, snapshot.go the state file and the runtime-directory claim.
package pool

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
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

// Cockpit watches the pool for its operator: it samples queues, workers
// and the host (package stats) and may serve /metrics. The master starts
// it once its Redis is known and hands it every state it publishes.
type Cockpit interface {
	// Observe receives each state the master publishes. It must not
	// block, and must not modify s (the master never does after the call).
	Observe(s *State)
	// MetricsAddr is the address /metrics is served on, "" when none.
	MetricsAddr() string
	// Close stops the cockpit and releases its resources.
	Close() error
}

// Options configures a master.
type Options struct {
	ConfigPath string
	Env        string // environment section of the config file
	// Overrides, when set, is a file holding a spec string of worker
	// counts put on top of ConfigPath's at every load (a count of 0
	// removes a queue list): a shell's changes, so that ConfigPath stays
	// the user's own file and a HUP re-reads it. A missing file means no
	// overrides.
	Overrides  string
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
	// PrepareRedis, when set, is called once with the pool's Redis before
	// the first worker starts, to do there what would otherwise be done
	// by every worker (queue.LoadScriptsAt: load the scripts, so no worker
	// sends their bodies). It is bounded to a second; a failure is logged
	// and changes nothing else (the workers then do it themselves).
	PrepareRedis func(ctx context.Context, redisURL string) error
	// Cockpit, when set, is started once Redis is known (cfg is the
	// configuration at start: its sample_interval, stalled_after and
	// metrics settings apply until the master restarts).
	// ctl lets it act on the pool (the autoscaler).
	Cockpit func(redisURL string, cfg *spec.Config, paths Paths, log *Logger, ctl Control) (Cockpit, error)
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

// A worker is a live worker process, a child of the master.
type worker struct {
	pid         int
	queues      string
	fingerprint string
	builtin     bool
	started     time.Time
	identity    string // internal/procid: tells this process from a later one with its pid
	state       workerState
	restarts    int
	stopTimer   *time.Timer
	promote     *time.Timer
	paused      bool // sent USR2 for a pause of its queue list
	pauseGaveUp bool // running, and does not catch USR2: left unpaused
	// ready: registered in Redis (built-in) or alive past start_secs
	// (command); a rolling restart waits for it.
	ready bool
	// obeysSignals: a built-in worker said on its readiness pipe that it
	// obeys Resque's signals (before that, a Go worker drops USR2).
	obeysSignals bool
	roll         rollRole // its part in a rolling restart
}

// A group is one queue list of the configuration in force and what the
// master knows of its recent starts.
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
	spawns       int           // workers started, all told
	jobTimeout   time.Duration // the group's job_timeout (its own, else the config's)
	startAfter   time.Duration // the group's start_secs (its own, else the config's)
	recycle      recycleSettings
	recycled     map[string]int // recycles by kind (rss, jobs, lifetime) since the master started
	autoscale    autoscaleState
	backoffUntil time.Time
	fatal        bool
	reason       string
	timer        *time.Timer
	lastExit     string
	paused       bool // its workers, later ones too, are paused (USR2)
}

// state tells what the master does about g's missing workers at now.
func (g *group) state(now time.Time) groupState {
	switch {
	case g.fatal:
		return groupFatal
	case now.Before(g.backoffUntil):
		return groupBackoff
	}
	return groupOK
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
	cockpit  Cockpit
	// metricsAddr is where the cockpit serves /metrics, "" when it does not.
	metricsAddr string
	notify      *notifier

	groups  map[string]*group
	order   []string
	workers map[int]*worker
	// other children (e.g. an embedded redis-server) and what to do when
	// they exit.
	others map[int]func(status string)

	calls     chan func()
	done      chan struct{} // closed when Run returns
	stopping  stopMode
	paused    bool
	overrides spec.Spec // the overrides file's counts in force, if any
	// workersPausedAt is when USR2 was last forwarded to the workers
	// (zero after CONT): workers started before it are paused.
	workersPausedAt time.Time
	dirty           bool
	started         time.Time
	lastError       string
	orphanDue       bool
	// orphanRound counts the scans of the current orphan clean-up, and
	// orphansKilled holds the orphans it has killed (logged once each).
	orphanRound   int
	orphansKilled map[int]bool
	stateErr      bool
	stateWrites   stateThrottle
	// autoscaleOff holds the autoscaled queue lists a shell pinned
	// (Paths.AutoscaleOff), read at every load.
	autoscaleOff map[string]bool
	lockErr      bool // the last attempt to re-take the lock file failed
	// remoteControl is the config's remote_control as of the last load,
	// read by the control listener's goroutine.
	remoteControl atomic.Bool
	// pauseTimer re-checks the workers of paused queue lists that do not
	// catch USR2 yet, nil when none is waiting.
	pauseTimer *time.Timer
	// roll is the rolling restart under way, else the last one (nil when
	// none); restartRefused the last restart request refused.
	roll           *roll
	restartRefused *poolfs.RestartRefusal
	// plans counts the reconcile decisions made, for a test that a stop
	// does not make one per reap.
	plans int
	// halted: the master is paused or stopping and has stopped every
	// worker, so a plan has nothing to decide until a worker starts.
	halted bool
	// pumps are the goroutines copying workers' output into the log.
	pumps sync.WaitGroup
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

	cfg, over, err := loadConfig(opts)
	if err != nil {
		return fmt.Errorf("master cannot start: %w", err)
	}
	log, err := NewLogger(opts.LogPath, os.Getpid())
	if err != nil {
		return fmt.Errorf("master cannot start: %w", err)
	}
	defer log.Close()

	m := &Master{
		opts:      opts,
		log:       log,
		lock:      lock,
		cfg:       cfg,
		overrides: over,
		groups:    map[string]*group{},
		workers:   map[int]*worker{},
		others:    map[int]func(string){},
		calls:     make(chan func(), 1024),
		done:      make(chan struct{}),
		started:   time.Now(),
		notify:    newNotifier(log.Printf),

		orphansKilled: map[int]bool{},
	}
	// Known before the control listener starts (with the cockpit, before
	// the first applyConfig): a command waiting for this master must not
	// be refused for want of it.
	m.remoteControl.Store(cfg.RemoteControl)
	return m.run(ctx)
}

func (m *Master) run(ctx context.Context) error {
	defer close(m.done)
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGINT, syscall.SIGTERM,
		syscall.SIGWINCH, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCONT, syscall.SIGCHLD, syscall.SIGPWR)
	defer signal.Stop(sigs)

	if err := becomeSubreaper(); err != nil {
		m.log.Printf("warning: %v; orphaned job processes will be adopted by init", err)
	}
	if err := poolfs.WriteFileAtomic(m.opts.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
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
	// The namespace in force is decided once, for the workers (through
	// their environment), the janitor, the sampler and the state file.
	ns, note := redisconn.EffectiveNamespace(url, m.cfg.Namespace)
	if note != "" {
		m.log.Printf("%s", note)
	}
	m.cfg.Namespace = ns
	if url != "" {
		if err := poolfs.WriteFileAtomic(m.opts.Paths.RedisURL, []byte(url+"\n")); err != nil {
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
	if m.opts.PrepareRedis != nil && url != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := m.opts.PrepareRedis(ctx, url); err != nil {
			m.log.Printf("warning: preparing Redis for the workers: %v (each worker does it itself)", err)
		}
		cancel()
	}
	if m.opts.Cockpit != nil {
		// A cockpit that cannot start (e.g. its metrics address is
		// taken) stops the master: a service whose metrics silently
		// vanish is worse than one that says why it will not start.
		c, err := m.opts.Cockpit(url, m.cfg, m.opts.Paths, m.log, m)
		if err != nil {
			m.log.Printf("cannot start the cockpit: %v", err)
			return fmt.Errorf("master cannot start: %w", err)
		}
		m.cockpit, m.metricsAddr = c, c.MetricsAddr()
		defer c.Close()
	}
	m.readAutoscaleOff()
	m.applyConfig(m.cfg)
	m.log.Printf("started manager: %s", m.cfg.Workers.Describe())
	m.reconcile()
	m.flushState()
	m.notify.ready()

	var watchdog <-chan time.Time
	if m.notify.watchdog > 0 {
		t := time.NewTicker(m.notify.watchdog)
		defer t.Stop()
		watchdog = t.C
	}

	claimCheck := time.NewTicker(claimCheckInterval)
	defer claimCheck.Stop()
	ctxDone := ctx.Done()
	for {
		select {
		case sig := <-sigs:
			m.handleSignal(sig.(syscall.Signal))
		case fn := <-m.calls:
			fn()
			m.runQueued()
		case <-claimCheck.C:
			m.keepClaim()
		case <-watchdog:
			m.notify.ping()
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
	m.drainOutput()
	m.log.Printf("manager stopped: all workers reaped")
	return nil
}

// runQueued runs the calls already queued (a burst of promotion or stop
// timers firing together) so that the loop reconciles and publishes once
// for all of them rather than once each, which made a burst of n workers
// cost n plans and n state writes over n workers.
func (m *Master) runQueued() {
	for range cap(m.calls) {
		select {
		case fn := <-m.calls:
			fn()
		default:
			return
		}
	}
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
		m.notify.reloading()
		defer m.notify.ready()
		if err := m.log.Reopen(); err != nil {
			m.log.Printf("cannot reopen log: %v (still writing to the old file)", err)
		}
		m.reload()
	case syscall.SIGPWR:
		m.takeRestartRequest() // a shell's rolling restart (restart.go)
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
	case syscall.SIGUSR2:
		// Not forwarded as it came: a worker still starting would drop
		// it or die of it, and a job's processes would die of it.
		m.log.Printf("USR2: pausing %s", countOf(len(m.workers), "worker"))
		m.workersPausedAt, m.dirty = time.Now(), true
		m.pauseAll(true)
	case syscall.SIGUSR1, syscall.SIGCONT:
		m.log.Printf("%s: forwarding to %s", signalName(sig), countOf(len(m.workers), "worker"))
		for _, w := range m.workers {
			if sig == syscall.SIGUSR1 && w.builtin && !w.obeysSignals {
				continue // still starting, so no job to kill; USR1 would kill it
			}
			_ = signalGroup(w.pid, sig)
		}
		if sig == syscall.SIGCONT {
			m.workersPausedAt, m.dirty = time.Time{}, true
			m.pauseAll(false)
		}
	}
}
