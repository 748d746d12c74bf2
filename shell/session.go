package shell

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/poolctl/poolctl/logtail"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/pstree"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/spec"
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

// Session is one shell: the pool it talks to and the configuration it
// manages. Its state is grouped by concern, each in a file of its own:
// the configuration and its file (configSync, config.go), the master's
// life (masterLife, master.go), the Redis connection (redisClients,
// redis.go) and the completion cache (queueNameCache, complete.go).
type Session struct {
	opts      Options
	out, errw io.Writer
	// info gets confirmations, progress and logs (config's new spec,
	// wait's summary, the start and stop logs): standard output at a
	// terminal, standard error in a script, whose standard output carries
	// only command results.
	info        io.Writer
	interactive bool // at a terminal: log.tail follows, log pages

	paths   poolfs.Paths // the pool's runtime directory
	logPath string
	// log is the cursor of log.tail_to_eof, log.ff and log.rew; start,
	// stop and log.tail move it past what they showed.
	log     *logtail.Cursor
	sampler *pstree.Sampler
	leave   leaveMode

	configSync
	masterLife
	redis  redisClients
	queues queueNameCache
	top    topMemory // the pauses top sent (top.go)
	// fleetSeen are the pool ids the last fleet command listed, for
	// completion (which must not wait for Redis).
	fleetSeen []string
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
	s.pins = map[string]bool{} // a pool this shell starts starts unpinned
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
			s.overrides = spec.MergeOverrides(nil, upd)
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
			return nil, fmt.Errorf("log file: %w", err)
		}
		s.setLog(abs)
	}
	return s, nil
}

// setPool points the session at the pool called name.
func (s *Session) setPool(name string) {
	s.paths = poolfs.Open(name).Paths
	s.configPath = s.paths.Config
	s.setLog(s.paths.Log)
	s.forget()
	s.userFile, s.overrides, s.overridesPath = "", nil, "" // another pool: not this shell's -c file
	s.pins = nil                                           // its pins are read from its runtime directory
}

// setLog points the session at the log file path, its cursor at the
// start.
func (s *Session) setLog(path string) {
	s.logPath = path
	s.log = logtail.NewCursor(path)
}

// logToEnd moves the log cursor after the log's last complete line (to
// its start when there is no log).
func (s *Session) logToEnd() {
	if s.log.FastForward() != nil {
		s.log.Rewind()
	}
}

// pool is the handle on the runtime directory of the pool the session
// talks to.
func (s *Session) pool() poolfs.Pool { return poolfs.Pool{Paths: s.paths} }

// attach points the session at a running pool and loads its configuration.
func (s *Session) attach(name string) error {
	if err := poolfs.ValidatePoolName(name); err != nil {
		return err
	}
	p := poolfs.Open(name)
	if !p.Running() {
		return fmt.Errorf("pool %q is not running (poolctl list shows the running pools)", name)
	}
	// A master that is just starting holds the lock a moment before it
	// writes its first state file.
	st, err := poolfs.ReadState(p.Paths.State)
	for deadline := time.Now().Add(2 * time.Second); errors.Is(err, os.ErrNotExist) && time.Now().Before(deadline) && p.Running(); {
		time.Sleep(20 * time.Millisecond)
		st, err = poolfs.ReadState(p.Paths.State)
	}
	if err != nil {
		return fmt.Errorf("pool %q: %w", name, err)
	}
	s.setPool(name)
	s.poolRedis = p.RedisSetting()
	if st.ConfigPath != "" {
		s.configPath = st.ConfigPath
	}
	if st.LogPath != "" {
		s.setLog(st.LogPath)
	}
	if s.opts.Env == "" {
		s.opts.Env = st.Env // read the file as the master does
	}
	if st.OverridesPath != "" {
		// The master runs from the user's file with overrides: change
		// counts as its starting shell did, in the overrides file.
		s.userFile, s.overridesPath = s.configPath, st.OverridesPath
		if o, perr := spec.Parse(st.Overrides); perr == nil {
			s.overrides = o
		}
	}
	cfg, err := spec.LoadConfig(s.configPath, s.opts.Env)
	if err == nil && s.overridesPath != "" {
		cfg.Workers = cfg.Workers.Merge(s.overrides)
	}
	if err != nil {
		// The master keeps running what it last read: attach, show that,
		// and say why the file is not shown.
		fmt.Fprintf(s.errw, "poolctl: warning: pool %s: %v; showing what the master runs (%s)\n", name, err, orNone(st.Spec))
		s.brokenConfig = err
		c := spec.DefaultConfig()
		if w, perr := spec.Parse(st.Spec); perr == nil {
			c.Workers = w
		}
		if st.Namespace != "" {
			c.Namespace = st.Namespace
		}
		cfg = &c
	}
	if err == nil {
		s.brokenConfig = nil
	}
	s.cfg = cfg
	s.stampConfig()
	s.logToEnd()
	fmt.Fprintf(s.info, "attached to pool %s (master pid %d, config %s)\n", name, st.PID, s.configPath)
	return nil
}
