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
	"github.com/poolctl/poolctl/pool"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/spec"
)

func runMaster(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	fs := newFlagSet("master", stderr)
	configPath := fs.String("c", "", "config file (YAML) `FILE`")
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
		*name = pool.DefaultPoolName()
	}
	if err := pool.ValidatePoolName(*name); err != nil {
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
		Env:        *env,
		Paths:      pool.PathsFor(pool.BaseDir(), *name),
		LogPath:    *logPath,
		PidFile:    *pidFile,
		RedisURL:   *redisURL,

		RedisResolver: embedredis.Resolve,
		Janitor:       newJanitor,
	}
	if pid, err := strconv.Atoi(os.Getenv("POOLCTL_SHELL_PID")); err == nil {
		opts.ShellPID = pid
	}
	opts.WorkerCommand = leanWorker()
	return pool.Run(ctx, opts)
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

// recoveryInterval is how often the master looks for dead workers of its
// host in Redis (it always does at start).
const recoveryInterval = 30 * time.Second

// newJanitor connects the master to Redis for cleaning up after dead
// built-in workers: at start and periodically it unregisters this host's
// dead workers and requeues their in-flight jobs.
func newJanitor(url, namespace string, log *pool.Logger) (pool.Janitor, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("host name: %w", err)
	}
	rdb, err := redisconn.Open(url, redisconn.Options{Name: "poolctl-master", PoolSize: 4})
	if err != nil {
		return nil, err
	}
	j := queue.NewJanitor(queue.New(rdb, namespace), host, log.Printf)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(recoveryInterval)
		defer t.Stop()
		logged := false
		for {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			err := j.Recover(rctx, pool.ProcessAlive)
			rcancel()
			if err != nil && ctx.Err() == nil && !logged {
				log.Printf("cannot check Redis for dead workers yet: %v", err)
				logged = true
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return &masterJanitor{Janitor: j, rdb: rdb, cancel: cancel, done: done}, nil
}

type masterJanitor struct {
	*queue.Janitor
	rdb    interface{ Close() error }
	cancel context.CancelFunc
	done   chan struct{}
}

func (m *masterJanitor) Close() error {
	m.cancel()
	<-m.done
	m.Janitor.Close()
	return m.rdb.Close()
}
