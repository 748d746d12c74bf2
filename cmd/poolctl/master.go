package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/poolctl/poolctl/embedredis"
	"github.com/poolctl/poolctl/internal/procid"
	"github.com/poolctl/poolctl/pool"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/spec"
	"github.com/poolctl/poolctl/stats"
)

func runMaster(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	fs := newFlagSet("master", stderr)
	configPath := fs.String("c", "", "config file (YAML) `FILE`")
	overrides := fs.String("overrides", "", "a `FILE` holding a spec string of worker counts put on top of the config file at every load (0 removes a queue list)")
	pidFile := fs.String("pidfile", "", "pid file (default: in the pool's runtime directory)")
	logPath := fs.String("log", "", "log file (default: standard output)")
	name := fs.String("name", "", "pool name (default: the current directory's name)")
	env := fs.String("env", "", "environment section of the config (default: $POOLCTL_ENV, $RACK_ENV, $RAILS_ENV)")
	redisURL := fs.String("redis", "", "Redis `URL` (default: $REDIS_URL, then the config's redis:)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath == "" {
		return fmt.Errorf("%w: master needs -c FILE", errUsage)
	}
	where := "--redis"
	if *redisURL == "" {
		*redisURL, where = os.Getenv("REDIS_URL"), "REDIS_URL"
	}
	if err := validateRedisURL(where, *redisURL); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *name == "" {
		*name = poolfs.DefaultPoolName()
	}
	if err := poolfs.ValidatePoolName(*name); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *env == "" {
		*env = spec.EnvFromEnvironment(os.Getenv)
	}
	abs, err := filepath.Abs(*configPath)
	if err != nil {
		return fmt.Errorf("config path: %w", err)
	}
	opts := pool.Options{
		ConfigPath: abs,
		Overrides:  *overrides,
		Env:        *env,
		Paths:      poolfs.PathsFor(poolfs.BaseDir(), *name),
		LogPath:    *logPath,
		PidFile:    *pidFile,
		RedisURL:   *redisURL,

		RedisResolver: resolveRedis,
		Janitor:       newRecoverer,
		Cockpit:       newCockpit,
	}
	if pid, err := strconv.Atoi(os.Getenv("POOLCTL_SHELL_PID")); err == nil {
		opts.ShellPID = pid
	}
	opts.WorkerCommand = leanWorker()
	return pool.Run(ctx, opts)
}

// resolveRedis gives the master its Redis: the configured URL, or, when
// none is configured or it is "embedded", one that embedredis finds or
// starts in the pool's runtime directory. The master reaps a private
// redis-server (Redis.PID) and stops it last.
func resolveRedis(ctx context.Context, configured string, paths pool.Paths, logf func(string, ...any)) (pool.Redis, error) {
	if configured != "" && configured != poolfs.EmbeddedRedis {
		return pool.Redis{URL: configured}, nil
	}
	srv, err := embedredis.Start(ctx, embedredis.Options{
		Dir:     paths.Dir,
		Socket:  paths.Redis,
		Private: configured == poolfs.EmbeddedRedis,
		Logf:    logf,
	})
	if err != nil {
		return pool.Redis{}, err
	}
	return pool.Redis{URL: srv.URL, PID: srv.PID, Stop: srv.Stop}, nil
}

// leanWorker returns the poolctl-worker binary beside this executable, if
// there is one: it runs built-in workers with a third less start-up CPU
// and memory than `poolctl work`.
func leanWorker() []string {
	self, err := os.Executable()
	if err != nil {
		return nil
	}
	lean := filepath.Join(filepath.Dir(self), "poolctl-worker")
	if fi, err := os.Stat(lean); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return []string{lean}
	}
	return nil
}

// newRecoverer connects the master to Redis for returning the jobs of dead
// built-in workers to their queues: queue.Recoverer runs its own passes
// (at start and every recovery_interval) and cleans up after each worker
// the master reaps.
func newRecoverer(url string, cfg *spec.Config, log *pool.Logger) (pool.Janitor, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("host name: %w", err)
	}
	rdb, err := redisconn.Open(url, redisconn.Options{Name: "poolctl-master", PoolSize: 4})
	if err != nil {
		return nil, err
	}
	r := queue.NewRecoverer(queue.New(rdb, cfg.Namespace), queue.RecovererOptions{
		Host:            host,
		Alive:           procid.Alive,
		Logf:            log.Printf,
		Interval:        cfg.RecoveryInterval,
		HeartbeatExpiry: cfg.HeartbeatExpiry,
	})
	r.Start()
	return &masterRecoverer{Recoverer: r, rdb: rdb}, nil
}

// masterRecoverer adapts a queue.Recoverer to pool.Janitor.
type masterRecoverer struct {
	*queue.Recoverer
	rdb interface{ Close() error }
}

func (m *masterRecoverer) WorkerExited(pid int, queues string, _ time.Time) {
	m.Recoverer.WorkerExited(pid, queues)
}

func (m *masterRecoverer) Close() error {
	m.Stop()
	return m.rdb.Close()
}

// newCockpit starts the master's sampler (package stats), which publishes
// the pool's figures in the runtime directory every sample_interval.
func newCockpit(url string, cfg *spec.Config, paths pool.Paths, log *pool.Logger) (pool.Cockpit, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("host name: %w", err)
	}
	c := &cockpit{}
	opts := stats.SamplerOptions{
		Pool:         paths.Name,
		Host:         host,
		Interval:     cfg.SampleInterval,
		StalledAfter: cfg.StalledAfter,
		Path:         paths.Sample,
		Logf:         log.Printf,
	}
	if url != "" {
		rdb, err := redisconn.Open(url, redisconn.Options{Name: "poolctl-sampler", PoolSize: 1, NoRetry: true, ReadTimeout: time.Second})
		if err != nil {
			return nil, err
		}
		c.rdb = rdb
		opts.Queue = queue.New(rdb, cfg.Namespace)
	}
	c.sampler = stats.NewSampler(opts)
	c.sampler.Start()
	return c, nil
}

// cockpit adapts the sampler (and the metrics server, when one is
// configured) to pool.Cockpit.
type cockpit struct {
	sampler *stats.Sampler
	rdb     interface{ Close() error }
	metrics string
}

func (c *cockpit) Observe(s *pool.State) { c.sampler.Observe(s) }
func (c *cockpit) MetricsAddr() string   { return c.metrics }

func (c *cockpit) Close() error {
	c.sampler.Stop()
	if c.rdb != nil {
		return c.rdb.Close()
	}
	return nil
}
