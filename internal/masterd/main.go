// Package masterd is the pool master's command: its flags and the wiring
// of package pool to Redis, the recoverer, the cockpit (sampler, metrics,
// autoscaler, recycler) and the fleet. It is shared by `poolctl master`
// and the lean poolctl-master binary, which poolctl execs when it sits
// beside it: the master then carries none of the shell's dependencies
// (go-prompt, bubbletea, lipgloss, tune), their init work or their pages.
package masterd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/poolctl/poolctl/fleet"
	"github.com/poolctl/poolctl/pool"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/spec"
)

// ErrUsage marks a command-line mistake (exit status 2).
var ErrUsage = errors.New("usage error")

// Options are what the binary running the master supplies besides its
// arguments.
type Options struct {
	// Version is the version the master reports in its fleet entry.
	Version string
	// Executable is the binary whose "work" sub-command runs built-in
	// workers when no poolctl-worker sits beside this executable; "" =
	// this executable (`poolctl work`).
	Executable string
}

// Main runs the master with the arguments of `poolctl master` (args
// excludes "master") until it is told to stop; flag errors go to stderr.
// Errors of the command line wrap ErrUsage.
func Main(ctx context.Context, args []string, stderr io.Writer, o Options) error {
	fs := flag.NewFlagSet("poolctl master", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if *metricsAddr != "" {
		if _, err := spec.MetricsListenAddr(*metricsAddr); err != nil {
			return fmt.Errorf("%w: --metrics: %v", ErrUsage, err)
		}
	}
	if *configPath == "" {
		return fmt.Errorf("%w: master needs -c FILE", ErrUsage)
	}
	if *fleetHeartbeat <= 0 {
		return fmt.Errorf("%w: --fleet-heartbeat must be positive, got %s", ErrUsage, *fleetHeartbeat)
	}
	fleetHost, err := fleetHost(*host)
	if err != nil {
		return err
	}
	where := "--redis"
	if *redisURL == "" {
		*redisURL, where = os.Getenv("REDIS_URL"), "REDIS_URL"
	}
	if err := ValidateRedisURL(where, *redisURL); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	if *name == "" {
		*name = poolfs.DefaultPoolName()
	}
	if err := poolfs.ValidatePoolName(*name); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
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
		PrepareRedis:  queue.LoadScriptsAt, // once per pool, not per worker
		Janitor:       newRecoverer,
		Cockpit:       cockpitFor(*metricsAddr, fleetOptions{host: fleetHost, configPath: abs, heartbeat: *fleetHeartbeat, version: o.Version}),
	}
	if pid, err := strconv.Atoi(os.Getenv("POOLCTL_SHELL_PID")); err == nil {
		opts.ShellPID = pid
	}
	opts.Executable = o.Executable
	opts.WorkerCommand = leanWorker()
	return pool.Run(ctx, opts)
}

// leanWorker returns the poolctl-worker binary beside this executable, if
// there is one: it runs built-in workers with a third less start-up CPU
// and memory than `poolctl work`.
func leanWorker() []string {
	if lean := Beside("poolctl-worker"); lean != "" {
		return []string{lean}
	}
	return nil
}

// Beside returns the path of the binary called name in this executable's
// directory when there is one (a regular, executable file), else "".
func Beside(name string) string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	return binaryIn(filepath.Dir(self), name)
}

// binaryIn returns dir/name if it is a regular, executable file (after
// symbolic links), else "".
func binaryIn(dir, name string) string {
	p := filepath.Join(dir, name)
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return p
	}
	return ""
}

// ValidateRedisURL checks a Redis URL given by the user (where names the
// flag or variable) before anything starts: a URL that is not one would
// only make every worker crash-loop. "" and "embedded" (a private Redis)
// are valid. The error wraps ErrUsage.
func ValidateRedisURL(where, url string) error {
	if url == "" || url == poolfs.EmbeddedRedis {
		return nil
	}
	if err := redisconn.Validate(url); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUsage, where, err)
	}
	return nil
}
