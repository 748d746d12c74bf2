package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/poolctl/poolctl/autoscale"
	"github.com/poolctl/poolctl/embedredis"
	"github.com/poolctl/poolctl/fleet"
	"github.com/poolctl/poolctl/internal/procid"
	"github.com/poolctl/poolctl/metrics"
	"github.com/poolctl/poolctl/pool"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/recycle"
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
	host := fs.String("host", "", "the host part of the pool's fleet id HOST/NAME (default: $POOLCTL_HOST, then the host name)")
	fleetHeartbeat := fs.Duration("fleet-heartbeat", fleet.HeartbeatInterval, "how often the master refreshes its fleet registry entry")
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics and /healthz on `ADDR` (HOST:PORT; a bare :PORT binds 127.0.0.1 only; default: the config's metrics:)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *metricsAddr != "" {
		if _, err := spec.MetricsListenAddr(*metricsAddr); err != nil {
			return fmt.Errorf("%w: --metrics: %v", errUsage, err)
		}
	}
	if *configPath == "" {
		return fmt.Errorf("%w: master needs -c FILE", errUsage)
	}
	if *fleetHeartbeat <= 0 {
		return fmt.Errorf("%w: --fleet-heartbeat must be positive, got %s", errUsage, *fleetHeartbeat)
	}
	fleetHost, err := fleetHost(*host)
	if err != nil {
		return err
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
		Cockpit:       cockpitFor(*metricsAddr, fleetOptions{host: fleetHost, configPath: abs, heartbeat: *fleetHeartbeat}),
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

// cockpitFor returns newCockpit with the metrics address addr
// (--metrics) in place of the config's metrics:, when addr is set, and
// the pool's fleet membership.
func cockpitFor(addr string, fo fleetOptions) func(string, *spec.Config, pool.Paths, *pool.Logger, pool.Control) (pool.Cockpit, error) {
	return func(url string, cfg *spec.Config, paths pool.Paths, log *pool.Logger, ctl pool.Control) (pool.Cockpit, error) {
		if addr != "" {
			c := *cfg
			c.Metrics = addr
			cfg = &c
		}
		return newCockpit(url, cfg, paths, log, ctl, fo)
	}
}

// newCockpit starts the master's sampler (package stats), which publishes
// the pool's figures in the runtime directory every sample_interval, and,
// when cfg.Metrics is set, the Prometheus server over its samples
// (package metrics). A metrics address that cannot be served is an error:
// the master stops with it.
func newCockpit(url string, cfg *spec.Config, paths pool.Paths, log *pool.Logger, ctl pool.Control, fo fleetOptions) (pool.Cockpit, error) {
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
	if cfg.Metrics != "" {
		srv, err := metrics.NewServer(cfg.Metrics, c.sampler, metrics.WithLogf(log.Printf))
		if err != nil {
			if c.rdb != nil {
				_ = c.rdb.Close()
			}
			return nil, err
		}
		c.metrics = srv
		log.Printf("serving metrics on http://%s/metrics", srv.Addr())
	}
	c.sampler.Start()
	// The autoscaler decides on each new sample (autoscaled queue lists
	// only; it does nothing in a pool without them).
	c.scaler = autoscale.NewScaler(c.sampler, ctl, cfg.SampleInterval/4)
	c.scaler.Start()
	// The recycler replaces workers past their queue list's max_rss or
	// max_lifetime (nothing in a pool without them).
	c.recycler = recycle.New(c.sampler, ctl, cfg.SampleInterval/4)
	c.recycler.Start()
	// The fleet registry entry and control listener (issue 14): a pool
	// that cannot join the fleet still runs, and says why.
	fo.replyTTL = cfg.ReplyTTL
	if url != "" {
		f, err := startFleetMember(url, cfg.Namespace, paths, fo, c.sampler, ctl.Remote(), log.Printf)
		if err != nil {
			log.Printf("warning: fleet registry and control messages disabled: %v", err)
		} else {
			c.fleet = f
		}
	}
	return c, nil
}

// cockpit adapts the sampler and the metrics server, when one is
// configured, to pool.Cockpit.
type cockpit struct {
	sampler  *stats.Sampler
	rdb      interface{ Close() error }
	metrics  *metrics.Server // nil when off
	scaler   *autoscale.Scaler
	recycler *recycle.Recycler
	fleet    *fleetMember // nil when the pool could not join the fleet
}

func (c *cockpit) Observe(s *pool.State) {
	c.sampler.Observe(s)
	if c.fleet != nil {
		c.fleet.Observe(s)
	}
}

// MetricsAddr is the address the metrics server listens on (its real
// port when port 0 was asked), "" when off.
func (c *cockpit) MetricsAddr() string {
	if c.metrics == nil {
		return ""
	}
	return c.metrics.Addr()
}

func (c *cockpit) Close() error {
	var errs []error
	if c.fleet != nil {
		// First: the listener must not take a command it cannot answer.
		errs = append(errs, c.fleet.Close())
	}
	if c.metrics != nil {
		errs = append(errs, c.metrics.Close())
	}
	c.scaler.Stop()
	c.recycler.Stop()
	c.sampler.Stop()
	if c.rdb != nil {
		errs = append(errs, c.rdb.Close())
	}
	return errors.Join(errs...)
}
