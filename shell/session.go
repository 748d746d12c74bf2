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
	"sync"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/internal/redact"
	"github.com/poolctl/poolctl/logtail"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/pstree"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/spec"
	"github.com/redis/go-redis/v9"
)

// Options configures a shell.
type Options struct {
	Specs      []string // positional spec arguments ("foo=2:bar=4", "baz=1")
	ConfigFile string   // -c FILE: start from this config file
	Redis      string   // --redis URL, passed to the master
	Name       string   // pool name; "" = poolfs.DefaultPoolName()
	Log        string   // pool log file; "" = Paths.Log
	Env        string   // environment section of the config file
	NoStart    bool     // do not start the master
	NoPrompt   bool     // read commands as from a pipe even at a terminal
	Attach     bool     // attach to the running pool Name instead of starting one
	Executable string   // binary to run as "poolctl master"; "" = os.Executable()

	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Timeouts of the start/stop dialogues; variables so tests can shorten
// them.
var (
	startTimeout   = 30 * time.Second // until "started manager"
	stopGrace      = 30 * time.Second // on top of the config's term_timeout
	summaryTimeout = 2 * time.Second  // Redis round trips of status
	pollInterval   = 50 * time.Millisecond
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

// Session is one shell: the pool it talks to and the configuration it
// manages.
type Session struct {
	opts      Options
	out, errw io.Writer
	// info gets confirmations, progress and logs (config's new spec,
	// wait's summary, the start and stop logs): standard output at a
	// terminal, standard error in a script, whose standard output carries
	// only command results.
	info        io.Writer
	interactive bool // at a terminal: log.tail follows, log pages

	paths poolfs.Paths
	cfg   *spec.Config
	// userFile is the config file given with -c: the source of truth,
	// re-read by reload and start. overrides are the worker counts set
	// from the shell (SPEC arguments, config), kept on top of it; counts
	// of 0 (a queue list removed) included.
	userFile   string
	overrides  spec.Spec
	configPath string // the file the master reads
	cfgStamp   time.Time
	logPath    string
	// What wait waits for after this shell asked for a change: the spec
	// the master should run once it has reloaded (expecting: "" is a
	// valid spec, no workers), or a pause (WINCH).
	expectSpec   string
	expecting    bool
	expectPaused bool
	hupAt        time.Time // when this shell last asked for a reload
	usr2At       time.Time // when this shell paused the workers (USR2); zero after CONT
	// poolRedis is the Redis the attached pool's master ran against (from
	// the runtime directory's redis.url, mode 0600; poolfs.EmbeddedRedis for its
	// private one), so that a restart from this shell uses it again.
	poolRedis string

	owned   *child // the master this shell started, if any (current pool only)
	logOff  int64  // log cursor of log.tail_to_eof, log.ff, log.rew
	sampler *pstree.Sampler
	leave   leaveMode
	watch   *masterWatch // announces a master that dies; nil outside Run

	mu         sync.Mutex
	rdb        redis.UniversalClient
	rdbURL     string
	queueSeen  []string // queue names from Redis, for completion
	queueAt    time.Time
	refreshing bool
}

// NewSession prepares a session from opts without starting anything.
func NewSession(opts Options) (*Session, error) {
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if opts.Name == "" {
		opts.Name = poolfs.DefaultPoolName()
	}
	if err := poolfs.ValidatePoolName(opts.Name); err != nil {
		return nil, err
	}
	s := &Session{
		opts:    opts,
		out:     opts.Stdout,
		errw:    opts.Stderr,
		info:    opts.Stdout,
		sampler: pstree.NewSampler(),
	}
	s.setPool(opts.Name)
	if opts.Attach {
		return s, nil
	}
	cfg := spec.DefaultConfig()
	if opts.ConfigFile != "" {
		c, err := spec.LoadConfig(opts.ConfigFile, opts.Env)
		if err != nil {
			return nil, err
		}
		cfg = *c
		if s.userFile, err = filepath.Abs(opts.ConfigFile); err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
	}
	if len(opts.Specs) > 0 {
		upd, err := spec.ParseArgs(opts.Specs)
		if err != nil {
			return nil, err
		}
		cfg.Workers = cfg.Workers.Merge(upd)
		if s.userFile != "" {
			s.overrides = mergeOverrides(nil, upd)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Redis != "" && cfg.Redis != poolfs.EmbeddedRedis {
		if err := redisconn.Validate(cfg.Redis); err != nil {
			return nil, fmt.Errorf("%s: redis: %w", opts.ConfigFile, err)
		}
	}
	s.cfg = &cfg
	if opts.Log != "" {
		abs, err := filepath.Abs(opts.Log)
		if err != nil {
			return nil, err
		}
		s.logPath = abs
	}
	return s, nil
}

// setPool points the session at the pool called name.
func (s *Session) setPool(name string) {
	s.paths = poolfs.Open(name).Paths
	s.configPath = s.paths.Config
	s.logPath = s.paths.Log
	s.owned = nil
	s.logOff = 0
	s.expectSpec, s.expecting, s.expectPaused = "", false, false
	s.usr2At = time.Time{}
	s.poolRedis = ""
	s.userFile, s.overrides = "", nil // another pool: not this shell's -c file
}

// pool is the handle on the runtime directory of the pool the session
// talks to.
func (s *Session) pool() poolfs.Pool { return poolfs.Pool{Paths: s.paths} }

// errNotRunning is the condition of a pool whose master is not running.
var errNotRunning = errors.New("the master is not running (use start)")

func (s *Session) requireMaster() (int, error) {
	pid, ok := s.pool().MasterPID()
	if !ok {
		return 0, fmt.Errorf("pool %s: %w", s.paths.Name, errNotRunning)
	}
	return pid, nil
}

// attach points the session at a running pool and loads its configuration.
func (s *Session) attach(name string) error {
	if err := poolfs.ValidatePoolName(name); err != nil {
		return err
	}
	p := poolfs.Open(name)
	if !p.Running() {
		return fmt.Errorf("pool %q is not running (poolctl list shows the running pools)", name)
	}
	st, err := poolfs.ReadState(p.Paths.State)
	if err != nil {
		return fmt.Errorf("pool %q: %w", name, err)
	}
	s.setPool(name)
	s.poolRedis = p.RedisSetting()
	if st.ConfigPath != "" {
		s.configPath = st.ConfigPath
	}
	if st.LogPath != "" {
		s.logPath = st.LogPath
	}
	if s.opts.Env == "" {
		s.opts.Env = st.Env // read the file as the master does
	}
	cfg, err := spec.LoadConfig(s.configPath, s.opts.Env)
	if err != nil {
		// The master keeps running what it last read: attach, show that,
		// and say why the file is not shown.
		fmt.Fprintf(s.errw, "poolctl: warning: pool %s: %v; showing what the master runs (%s)\n", name, err, orNone(st.Spec))
		c := spec.DefaultConfig()
		if w, perr := spec.Parse(st.Spec); perr == nil {
			c.Workers = w
		}
		if st.Namespace != "" {
			c.Namespace = st.Namespace
		}
		cfg = &c
	}
	s.cfg = cfg
	s.stampConfig()
	s.logOff = logEnd(s.logPath)
	fmt.Fprintf(s.info, "attached to pool %s (master pid %d, config %s)\n", name, st.PID, s.configPath)
	return nil
}

func (s *Session) stampConfig() {
	if fi, err := os.Stat(s.configPath); err == nil {
		s.cfgStamp = fi.ModTime()
	}
}

// refreshConfig re-reads the config file when someone else (another
// shell, an editor) changed it since this shell last wrote or read it, so
// that merges start from what the master is told to run.
func (s *Session) refreshConfig() {
	fi, err := os.Stat(s.configPath)
	if err != nil || !fi.ModTime().After(s.cfgStamp) {
		return
	}
	if _, ok := s.pool().MasterPID(); !ok && s.configPath == s.paths.Config {
		return // our own file of a stopped pool: the shell's copy rules
	}
	cfg, err := spec.LoadConfig(s.configPath, s.opts.Env)
	if err != nil {
		return
	}
	s.cfg = cfg
	s.cfgStamp = fi.ModTime()
}

// writeConfig writes the shell's configuration to the master's config
// file.
func (s *Session) writeConfig() error {
	if s.foreignConfig() {
		return fmt.Errorf("the master reads %s, a config file poolctl did not write (it may hold comments and environment sections), so the shell does not rewrite it: edit it and use reload", s.configPath)
	}
	data, err := s.cfg.Marshal()
	if err != nil {
		return err
	}
	if s.configPath == s.paths.Config {
		if err := s.paths.Ensure(); err != nil {
			return err
		}
	}
	if err := poolfs.WriteFileAtomic(s.configPath, data); err != nil {
		return err
	}
	s.stampConfig()
	return nil
}

// foreignConfig reports whether the master reads a config file other
// than the pool's own copy (a master started by hand with -c FILE).
func (s *Session) foreignConfig() bool { return s.configPath != s.paths.Config }

// reload writes the config file and sends SIGHUP to the master.
func (s *Session) reload() (int, error) {
	pid, err := s.requireMaster()
	if err != nil {
		return 0, err
	}
	if s.foreignConfig() {
		// Someone else's file: re-read it, never rewrite it.
		cfg, err := spec.LoadConfig(s.configPath, s.opts.Env)
		if err != nil {
			return 0, err
		}
		s.cfg = cfg
		s.stampConfig()
	} else {
		if err := s.rebase(); err != nil {
			return 0, err
		}
		if err := s.writeConfig(); err != nil {
			return 0, err
		}
	}
	s.expectSpec, s.expecting, s.expectPaused = s.cfg.Workers.String(), true, false
	s.hupAt = time.Now()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return 0, fmt.Errorf("signal master %d: %w", pid, err)
	}
	return pid, nil
}

// applyTimeout bounds how long config and reload wait for the master to
// publish the state that includes the change.
var applyTimeout = 3 * time.Second

// awaitApplied waits, after a reload, until the master publishes a state
// whose spec is the one asked for (the master spawns the new workers
// before it publishes), so that the status that follows is not the table
// from before the change. A master that has not applied it within
// applyTimeout is reported, not an error: wait waits longer. A reload the
// master rejected is an error.
func (s *Session) awaitApplied(ctx context.Context, pid int) error {
	deadline := time.NewTimer(applyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval / 5)
	defer tick.Stop()
	for {
		if st, err := poolfs.ReadState(s.paths.State); err == nil && st.PID == pid {
			if st.Spec == s.expectSpec {
				s.expecting = false
				return nil
			}
			if st.Error != "" && st.UpdatedAt.After(s.hupAt) {
				return fmt.Errorf("the master rejected the configuration: %s", st.Error)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			fmt.Fprintf(s.info, "the master has not applied it yet (after %v); wait waits for it\n", applyTimeout)
			return nil
		case <-tick.C:
		}
	}
}

// rebase re-reads the -c file, the source of truth, and puts the shell's
// overrides on top of it, so that edits of the file reach the master on
// reload and start. A file that no longer loads changes nothing.
func (s *Session) rebase() error {
	if s.userFile == "" || s.opts.Attach {
		return nil
	}
	c, err := spec.LoadConfig(s.userFile, s.opts.Env)
	if err != nil {
		return fmt.Errorf("re-read %s: %w", s.userFile, err)
	}
	c.Workers = c.Workers.Merge(s.overrides)
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%s with the shell's overrides: %w", s.userFile, err)
	}
	s.cfg = c
	return nil
}

// mergeOverrides sets the entries of upd in o, keeping counts of 0 (they
// remove a queue list of the file).
func mergeOverrides(o, upd spec.Spec) spec.Spec {
	out := append(spec.Spec(nil), o...)
next:
	for _, e := range upd {
		for i := range out {
			if out[i].Queues == e.Queues {
				out[i].Count = e.Count
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// formatOverrides formats overrides as a spec string, counts of 0
// included ("foo=0:bar=2").
func formatOverrides(o spec.Spec) string {
	parts := make([]string, len(o))
	for i, e := range o {
		parts[i] = fmt.Sprintf("%s=%d", e.Queues, e.Count)
	}
	return strings.Join(parts, ":")
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
	if pid, ok := s.pool().MasterPID(); ok {
		return fmt.Errorf("pool %q is already running (master pid %d); use attach %s", s.paths.Name, pid, s.paths.Name)
	}
	if s.configPath != s.paths.Config {
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
	s.expectSpec, s.expecting, s.expectPaused = s.cfg.Workers.String(), true, false
	s.hupAt = time.Time{}
	if !wait {
		s.logOff = from
		fmt.Fprintf(s.info, "started master %d (not waiting for it)\n", c.pid)
		return nil
	}
	off, seen, err := s.echoLog(ctx, from, readyMarker, c.done, startTimeout)
	s.logOff = off
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
	if !show {
		fmt.Fprintf(s.info, "sent QUIT to master %d (graceful stop)\n", pid)
		return nil
	}
	gone := s.goneChan(pid)
	timeout := s.cfg.TermTimeout + stopGrace
	off, _, err := s.echoLog(ctx, from, stoppedMarker, gone, timeout)
	s.logOff = off
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

// redisURL is the Redis URL this shell reads queue data from, by the
// precedence of poolfs.Pool.RedisFor: --redis, the running master's,
// $REDIS_URL, the config's redis:; "" when none.
func (s *Session) redisURL() string {
	cfgRedis := ""
	if s.cfg != nil {
		cfgRedis = s.cfg.Redis
	}
	url, _ := s.pool().RedisFor(s.opts.Redis, os.Getenv("REDIS_URL"), cfgRedis)
	return url
}

func (s *Session) namespace() string {
	if s.cfg != nil && s.cfg.Namespace != "" {
		return s.cfg.Namespace
	}
	return queue.DefaultNamespace
}

// queueClient returns a client for the pool's Redis, reusing the
// connection while the URL stays the same.
func (s *Session) queueClient() (*queue.Client, string, error) {
	url := s.redisURL()
	if url == "" {
		return nil, "", errors.New("no Redis configured")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rdb == nil || s.rdbURL != url {
		if s.rdb != nil {
			s.rdb.Close()
		}
		// go-redis ignores context deadlines on reads; bound them here so
		// status never waits longer than summaryTimeout for Redis.
		rdb, err := redisconn.Open(url, redisconn.Options{Name: "poolctl-shell", PoolSize: 2, ReadTimeout: summaryTimeout, DialTimeout: summaryTimeout})
		if err != nil {
			return nil, url, err
		}
		s.rdb, s.rdbURL = rdb, url
	}
	return queue.New(s.rdb, s.namespace()), url, nil
}

// Close releases the session's connections.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rdb != nil {
		s.rdb.Close()
		s.rdb = nil
	}
}

// queueNames lists queue names for completion: the configuration's, plus
// Redis's refreshed in the background at most every 10 s (completion runs
// on every key press and must never wait for the network).
func (s *Session) queueNames() []string {
	seen := map[string]bool{}
	var names []string
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if s.cfg != nil {
		for _, e := range s.cfg.Workers {
			for _, q := range e.QueueNames() {
				add(q)
			}
		}
	}
	s.mu.Lock()
	for _, q := range s.queueSeen {
		add(q)
	}
	stale := !s.refreshing && time.Since(s.queueAt) > 10*time.Second
	if stale {
		s.refreshing = true
	}
	s.mu.Unlock()
	if stale {
		// Read the session's settings here, on the caller's goroutine; the
		// refresh uses a client of its own so it never touches state that
		// commands change.
		url, ns := s.redisURL(), s.namespace()
		go func() {
			var got []string
			if url != "" {
				if rdb, err := redisconn.Open(url, redisconn.Options{Name: "poolctl-shell-complete", PoolSize: 1, ReadTimeout: summaryTimeout, DialTimeout: summaryTimeout}); err == nil {
					ctx, cancel := context.WithTimeout(context.Background(), summaryTimeout)
					got, _ = queue.New(rdb, ns).QueueNames(ctx)
					cancel()
					rdb.Close()
				}
			}
			s.mu.Lock()
			if got != nil {
				s.queueSeen = got
			}
			s.queueAt = time.Now()
			s.refreshing = false
			s.mu.Unlock()
		}()
	}
	return names
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
