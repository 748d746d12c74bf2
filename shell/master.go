package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/internal/redact"
	"github.com/poolctl/poolctl/logtail"
	"github.com/poolctl/poolctl/pool/poolfs"
)

const (
	readyMarker   = "started manager"
	stoppedMarker = "manager stopped"
)

type leaveMode int

const (
	stay leaveMode = iota
	leaveExit
	leaveDetach
)

// child is a master process this shell started.
type child struct {
	pid   int
	paths poolfs.Paths
	done  chan struct{} // closed once it has been reaped
	err   error         // its exit status, valid after done
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// masterLife is what a session knows of the pool's master: the one it
// started, what it asked of it, and how to restart it.
type masterLife struct {
	owned *child       // the master this shell started, if any (current pool only)
	watch *masterWatch // announces a master that dies; nil outside Run
	// What wait waits for after this shell asked for a change: the spec
	// the master should run once it has reloaded (expecting: "" is a
	// valid spec, no workers), or a pause (WINCH).
	expectSpec   string
	expecting    bool
	expectPaused bool
	hupAt        time.Time // when this shell last asked for a reload
	usr2At       time.Time // when this shell paused the workers (USR2); zero after CONT
	// poolRedis is the Redis the attached pool's master ran against (from
	// the runtime directory's redis.url, mode 0600; poolfs.EmbeddedRedis
	// for its private one), so that a restart from this shell uses it
	// again.
	poolRedis string
}

// expect records that the master is to run spec once it has applied
// what it was told (a reload, a start).
func (m *masterLife) expect(spec string) {
	m.expectSpec, m.expecting, m.expectPaused = spec, true, false
}

// forget drops what the session knew of the previous pool's master.
func (m *masterLife) forget() {
	m.owned = nil
	m.expectSpec, m.expecting, m.expectPaused = "", false, false
	m.usr2At = time.Time{}
	m.poolRedis = ""
}

// errNotRunning is the condition of a pool whose master is not running.
var errNotRunning = errors.New("the master is not running (use start)")

func (s *Session) requireMaster() (int, error) {
	pid, ok := s.pool().MasterPID()
	if !ok {
		return 0, fmt.Errorf("pool %s: %w", s.paths.Name, errNotRunning)
	}
	return pid, nil
}

func (s *Session) executable() (string, error) {
	if s.opts.Executable != "" {
		return s.opts.Executable, nil
	}
	return os.Executable()
}

// startMaster starts the pool's master as a child of this shell in a
// session of its own (so neither Ctrl-C nor a terminal hangup reaches it).
// With wait it echoes the log until the master reports it is ready, exits,
// or startTimeout passes.
func (s *Session) startMaster(ctx context.Context, wait bool) error {
	unlock, err := s.lockStart(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if pid, ok := s.pool().MasterPID(); ok {
		return fmt.Errorf("pool %q is already running (master pid %d); use attach %s", s.paths.Name, pid, s.paths.Name)
	}
	if s.brokenConfig != nil {
		// Starting from what the master ran would drop its command,
		// timeouts and the rest of its file.
		return fmt.Errorf("pool %q: its config file %s does not load (%v): fix it, then start", s.paths.Name, s.configPath, s.brokenConfig)
	}
	switch {
	case s.userFile != "" && (!s.opts.Attach || s.overridesPath != ""):
		// Run from the user's file, the shell's changes on top of it in
		// the overrides file: a HUP then re-reads the user's file.
		s.configPath, s.overridesPath = s.userFile, s.paths.Overrides
	case s.configPath != s.paths.Config:
		// An attached pool that has stopped: run it from our copy.
		s.configPath = s.paths.Config
	}
	if err := s.rebase(); err != nil {
		return err
	}
	if err := s.writeConfig(); err != nil {
		return err
	}
	exe, err := s.executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	outPath := filepath.Join(s.paths.Dir, "master.out")
	outFile, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer outFile.Close()
	from := fileSize(s.logPath)
	args := []string{"master", "-c", s.configPath, "--name", s.paths.Name, "--log", s.logPath}
	if s.ownsUserFile() {
		args = append(args, "--overrides", s.overridesPath)
	}

	if s.opts.Env != "" {
		args = append(args, "--env", s.opts.Env)
	}
	cmd := exec.Command(exe, args...)
	// The Redis URL travels in the environment, never in argv, where ps
	// would show its password to every user.
	cmd.Env = append(os.Environ(), "POOLCTL_SHELL_PID="+strconv.Itoa(os.Getpid()))
	redisURL := s.opts.Redis
	if redisURL == "" && s.poolRedis != "" {
		// A pool this shell attached to restarts on the Redis it ran
		// against, where its jobs are.
		redisURL = s.poolRedis
		fmt.Fprintf(s.info, "using the Redis the pool ran against: %s\n", redact.URL(redisURL))
	}
	if redisURL != "" {
		cmd.Env = append(withoutEnv(cmd.Env, "REDIS_URL"), "REDIS_URL="+redisURL)
	}
	cmd.Stdout, cmd.Stderr = outFile, outFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start master: %w", err)
	}
	s.usr2At = time.Time{}
	c := &child{pid: cmd.Process.Pid, paths: s.paths, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	s.owned = c
	s.expect(s.cfg.Workers.String())
	s.hupAt = time.Time{}
	if !wait {
		// Keep the start lock until the master holds the pool's lock, so
		// no other shell takes the pool for stopped meanwhile.
		for end := time.Now().Add(5 * time.Second); !s.pool().Running() && !c.exited() && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		s.log.SetOffset(from)
		fmt.Fprintf(s.info, "started master %d (not waiting for it)\n", c.pid)
		return nil
	}
	off, seen, err := s.echoLog(ctx, from, readyMarker, c.done, startTimeout)
	s.log.SetOffset(off)
	switch {
	case seen:
		return nil
	case c.exited():
		return fmt.Errorf("master exited during start-up (%v)%s", c.err, masterOutput(outPath))
	case err != nil:
		return fmt.Errorf("stopped waiting for the master to start (it keeps starting): %w", err)
	default:
		return fmt.Errorf("master %d did not report %q within %v; see log.tail", c.pid, readyMarker, startTimeout)
	}
}

// masterOutput formats what the master wrote to its stdout/stderr.
func masterOutput(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return ":\n" + strings.TrimRight(string(b), "\n")
}

// stopMaster sends QUIT (graceful stop) to the master. With show it echoes
// the shutdown log until the master says it stopped and waits for it to
// exit.
func (s *Session) stopMaster(ctx context.Context, show bool) error {
	pid, err := s.requireMaster()
	if err != nil {
		return err
	}
	from := logEnd(s.logPath)
	s.watch.expectExit()
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		return fmt.Errorf("signal master %d: %w", pid, err)
	}
	// A master stopped by SIGSTOP would hold its QUIT for ever, and the
	// pool with it.
	_ = syscall.Kill(pid, syscall.SIGCONT)
	if !show {
		fmt.Fprintf(s.info, "sent QUIT to master %d (graceful stop)\n", pid)
		return nil
	}
	gone := s.goneChan(pid)
	timeout := s.cfg.TermTimeout + stopGrace
	off, _, err := s.echoLog(ctx, from, stoppedMarker, gone, timeout)
	s.log.SetOffset(off)
	if err != nil {
		return fmt.Errorf("stopped waiting; the master keeps stopping: %w", err)
	}
	// The marker is the master's last line; wait for the process itself.
	select {
	case <-gone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopped waiting; the master keeps stopping: %w", ctx.Err())
	case <-time.After(timeout):
		return fmt.Errorf("master %d has not exited after %v", pid, timeout)
	}
}

// goneChan returns a channel closed when master pid has exited: the child's
// reaper when this shell started it, else a poll of the pool lock.
func (s *Session) goneChan(pid int) <-chan struct{} {
	if s.owned != nil && s.owned.pid == pid {
		return s.owned.done
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for deadline := time.Now().Add(24 * time.Hour); time.Now().Before(deadline); time.Sleep(pollInterval) {
			if !s.pool().Running() {
				return
			}
		}
	}()
	return ch
}

// echoLog copies complete log lines from offset from to the output until a
// line contains marker, done is closed, ctx ends or timeout passes. It
// returns the offset after the last line copied and whether the marker was
// seen. Only ctx ending is an error.
func (s *Session) echoLog(ctx context.Context, from int64, marker string, done <-chan struct{}, timeout time.Duration) (int64, bool, error) {
	mw := &markerWriter{w: s.info, marker: []byte(marker)}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	off := from
	read := func() {
		if n, err := logtail.ReadRange(s.logPath, off, -1, mw); err == nil || n > off {
			off = n
		}
	}
	for {
		read()
		if mw.seen {
			return off, true, nil
		}
		select {
		case <-done:
			read()
			return off, mw.seen, nil
		case <-ctx.Done():
			return off, false, ctx.Err()
		case <-deadline.C:
			return off, false, nil
		case <-tick.C:
		}
	}
}

type markerWriter struct {
	w      io.Writer
	marker []byte
	seen   bool
}

func (m *markerWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, m.marker) {
		m.seen = true
	}
	return m.w.Write(p)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logEnd is the offset after the last complete line of the log.
func logEnd(path string) int64 {
	c := logtail.NewCursor(path)
	if c.FastForward() != nil {
		return 0
	}
	return c.Offset()
}

// withoutEnv drops every KEY=... entry from env.
func withoutEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// lockStart takes the pool's start lock (see docs/protocol.md), waiting
// while another shell starts the pool, until ctx ends or startTimeout
// passes.
func (s *Session) lockStart(ctx context.Context) (unlock func(), err error) {
	if err := s.paths.Ensure(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.paths.StartLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start lock: %w", err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("start lock %s: %w", s.paths.StartLock, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
