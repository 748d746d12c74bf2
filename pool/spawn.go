package pool

import (
	"github.com/poolctl/poolctl/internal/procid"

	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/internal/workerenv"
)

// BuiltinWorkerArgv0 is the argv[0] of built-in workers, so that `ps`
// shows e.g. "poolctl-worker[resque:work] --queues foo". Ruby Resque's
// prune_dead_workers takes a worker of its host whose pid is not listed by
// `ps -A -o pid,command | grep -E "[r]esque:work|[r]esque:\sStarting|[r]esque-[0-9]"`
// for dead and unregisters it; this title keeps poolctl's workers listed.
const BuiltinWorkerArgv0 = "poolctl-worker[resque:work]"

// spawn starts one worker for g and returns it, nil when it could not
// start (g then backs off or is FATAL).
func (m *Master) spawn(g *group) *worker {
	w, err := m.startProcess(g)
	if err != nil {
		m.dirty = true
		reason := fmt.Sprintf("cannot start worker for queues %s: %v", g.queues, err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.ENOEXEC) {
			// Permanent: retrying cannot help until the config changes.
			g.fatal, g.reason = true, reason
			m.log.Printf("FATAL: %s; not retrying until reload or config change", reason)
			return nil
		}
		m.failedStart(g, reason)
		return nil
	}
	m.workers[w.pid] = w
	m.halted = false // a new worker, which a halted master must stop
	g.spawns++
	m.dirty = true
	m.log.Printf("Starting worker[%d] queues: %s", w.pid, g.queues)
	if g.paused {
		m.armPauseCheck() // pause it as soon as it catches USR2
	}
	pid := w.pid
	w.promote = time.AfterFunc(g.startAfter, func() {
		m.post(func() {
			if cur := m.workers[pid]; cur == w && w.state == workerStarting {
				w.state = workerRunning
				if !w.builtin {
					w.ready = true // a command is ready once it lived start_secs
				}
				if g := m.groups[w.queues]; g != nil && g.fingerprint == w.fingerprint {
					g.failures, g.reason = 0, ""
				}
				m.dirty = true
			}
		})
	})
	return w
}

func (m *Master) workerEnv(g *group) []string {
	jobs, _ := json.Marshal(m.cfg.Jobs)
	// Drop inherited values of the variables set here: with duplicates,
	// which one a child sees depends on its runtime.
	env := make([]string, 0, len(os.Environ())+8)
	for _, kv := range os.Environ() {
		switch key, _, _ := strings.Cut(kv, "="); key {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID":
			continue // systemd speaks to the master; a worker must not answer for it
		case workerenv.Queues, workerenv.Queue, workerenv.Namespace, workerenv.Pool, workerenv.MasterPID, workerenv.Jobs, workerenv.JobTimeout, workerenv.RedisURL, workerenv.HeartbeatInterval, workerenv.MaxJobs, workerenv.ReplyTTL, workerenv.ReadyFD:
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
		workerenv.JobTimeout+"="+g.jobTimeout.String(),
		workerenv.HeartbeatInterval+"="+m.cfg.HeartbeatInterval.String(),
	)
	if m.cfg.ReplyTTL > 0 {
		env = append(env, workerenv.ReplyTTL+"="+m.cfg.ReplyTTL.String())
	}
	if g.recycle.maxJobs > 0 {
		env = append(env, workerenv.MaxJobs+"="+strconv.Itoa(g.recycle.maxJobs))
	}
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
	env, files := m.workerEnv(g), []*os.File{devnull, w, w}
	var readyR, readyW *os.File
	if g.builtin {
		// Built-in workers say on this pipe when they are registered.
		if readyR, readyW, err = os.Pipe(); err != nil {
			r.Close()
			w.Close()
			devnull.Close()
			return nil, fmt.Errorf("pipe: %w", err)
		}
		env = append(env, workerenv.ReadyFD+"="+strconv.Itoa(len(files)))
		files = append(files, readyW)
	}
	proc, err := os.StartProcess(g.path, g.argv, &os.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig},
	})
	devnull.Close()
	w.Close()
	if readyW != nil {
		readyW.Close()
	}
	if err != nil {
		r.Close()
		if readyR != nil {
			readyR.Close()
		}
		return nil, err
	}
	pid := proc.Pid
	// We reap with wait4 ourselves; release the os.Process handle. Until
	// then the pid is ours (at worst a zombie), so its identity is too.
	_ = proc.Release()
	identity := ""
	if id, err := procid.Of(pid); err == nil {
		identity = id.String()
	}
	m.pumps.Add(1)
	go func() {
		defer m.pumps.Done()
		m.log.pump(pid, r)
		r.Close()
	}()
	wk := &worker{
		pid:         pid,
		queues:      g.queues,
		fingerprint: g.fingerprint,
		builtin:     g.builtin,
		started:     time.Now(),
		identity:    identity,
		state:       workerStarting,
		restarts:    g.restarts,
	}
	if readyR != nil {
		go m.awaitReady(wk, readyR)
	}
	return wk, nil
}
