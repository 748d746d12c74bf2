package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/poolctl/poolctl/pool"
	"github.com/poolctl/poolctl/spec"
)

func runMaster(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	fs := newFlagSet("master", stderr)
	configPath := fs.String("c", "", "config file (YAML) `FILE`")
	pidFile := fs.String("pidfile", "", "pid file (default: in the pool's runtime directory)")
	logPath := fs.String("log", "", "log file (default: standard output)")
	name := fs.String("name", "", "pool name (default: the current directory's name)")
	env := fs.String("env", "", "environment section of the config (default: $POOLCTL_ENV, $RACK_ENV, $RAILS_ENV)")
	redisURL := fs.String("redis", os.Getenv("REDIS_URL"), "Redis `URL` (default: $REDIS_URL, then the config's redis:)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath == "" {
		return fmt.Errorf("%w: master needs -c FILE", errUsage)
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
	}
	if pid, err := strconv.Atoi(os.Getenv("POOLCTL_SHELL_PID")); err == nil {
		opts.ShellPID = pid
	}
	return pool.Run(ctx, opts)
}
