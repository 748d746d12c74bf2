package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/poolctl/poolctl/internal/masterd"
	"github.com/poolctl/poolctl/shell"
	"github.com/poolctl/poolctl/spec"
)

// runShell is `poolctl [SPEC ...] [flags]`: the interactive shell.
func runShell(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("poolctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := shell.Options{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	fs.StringVar(&opts.ConfigFile, "c", "", "start from the config `FILE` (YAML); SPEC arguments are merged into it")
	fs.StringVar(&opts.Redis, "redis", "", "Redis `URL` for the pool (default: $REDIS_URL, then the config's redis:)")
	fs.StringVar(&opts.Name, "name", "", "pool `NAME` (default: the current directory's name)")
	fs.StringVar(&opts.Log, "log", "", "pool log `FILE` (default: pool.log in the pool's runtime directory)")
	fs.StringVar(&opts.Env, "env", "", "environment section of the config file (default: $POOLCTL_ENV, $RACK_ENV, $RAILS_ENV)")
	fs.BoolVar(&opts.NoStart, "no-start", false, "do not start the master (also NO_START=1/true/yes/on)")
	fs.BoolVar(&opts.NoPrompt, "no-prompt", false, "read commands line by line from standard input, even at a terminal")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: poolctl [SPEC ...] [flags]   e.g. poolctl foo=2:bar,baz=1")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), shell.StartupHelp)
	}
	specs, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(specs) == 0 {
		if w := strings.TrimSpace(os.Getenv("WORKERS")); w != "" {
			specs = []string{w}
		}
	}
	opts.Specs = specs
	if opts.Env != "" && opts.ConfigFile == "" {
		// A named section must exist, and without a file there is none.
		return fmt.Errorf("%w: --env %s names a section of a config file: give the file with -c FILE", errUsage, opts.Env)
	}
	if err := selectEnv(&opts); err != nil {
		return err
	}
	if err := masterd.ValidateRedisURL("--redis", opts.Redis); err != nil {
		return err
	}
	if opts.Redis == "" {
		// The master reads REDIS_URL when no --redis is given.
		if err := masterd.ValidateRedisURL("REDIS_URL", os.Getenv("REDIS_URL")); err != nil {
			return err
		}
	}
	if !opts.NoStart {
		ns, err := noStart(os.Getenv("NO_START"))
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		opts.NoStart = ns
	}
	return shell.Run(ctx, opts)
}

// noStart interprets NO_START: 1/true/yes/on mean "do not start", 0/false/
// no/off or empty mean "start"; anything else is a mistake worth reporting
// (the original treated any value, even "0", as true).
func noStart(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "", "0", "false", "no", "off":
		return false, nil
	default:
		return false, fmt.Errorf("NO_START=%q: use 1/true/yes/on or 0/false/no/off", v)
	}
}

// parseInterleaved parses flags that may come before or after positional
// arguments (`poolctl foo=1 --redis URL`).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// runAttach is `poolctl attach [NAME]`: a shell on a running pool. Leaving
// it (exit, detach, end of input) leaves the pool running.
func runAttach(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("attach", stderr)
	opts := shell.Options{Stdin: stdin, Stdout: stdout, Stderr: stderr, Attach: true}
	fs.StringVar(&opts.Env, "env", "", "environment section of the config file")
	fs.BoolVar(&opts.NoPrompt, "no-prompt", false, "read commands line by line from standard input, even at a terminal")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	switch len(rest) {
	case 0:
		if opts.Name, err = shell.DefaultAttachName(); err != nil {
			return err
		}
	case 1:
		opts.Name = rest[0]
	default:
		return fmt.Errorf("%w: attach takes one pool name", errUsage)
	}
	return shell.Run(ctx, opts)
}

// runList is `poolctl list [--json]`.
func runList(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("list", stderr)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: list takes no arguments", errUsage)
	}
	return shell.List(stdout, *asJSON)
}

// selectEnv picks the config file's environment section: --env, else
// $POOLCTL_ENV, $RACK_ENV or $RAILS_ENV. A section named by --env or
// POOLCTL_ENV must exist; RACK_ENV and RAILS_ENV are set for whole
// applications, so they select a section only where the file has one (as
// in resque-pool).
func selectEnv(opts *shell.Options) error {
	where, optional := "--env", false
	if opts.Env == "" {
		for _, name := range []string{"POOLCTL_ENV", "RACK_ENV", "RAILS_ENV"} {
			if v := os.Getenv(name); v != "" {
				opts.Env, where, optional = v, name+"="+v, name != "POOLCTL_ENV"
				break
			}
		}
	} else {
		where += " " + opts.Env
	}
	if opts.Env == "" || opts.ConfigFile == "" {
		return nil
	}
	names, err := spec.Environments(opts.ConfigFile)
	if err != nil {
		return err // the file does not load: the same error the shell would give
	}
	for _, n := range names {
		if n == opts.Env {
			return nil
		}
	}
	if optional {
		opts.Env = ""
		return nil
	}
	has := "it has none"
	if len(names) > 0 {
		has = "it has: " + strings.Join(names, ", ")
	}
	return fmt.Errorf("%w: %s: %s has no environment section %q (%s)", errUsage, where, opts.ConfigFile, opts.Env, has)
}

// runTop is `poolctl top [NAME] [flags]`: the shell's top command on a
// running pool, full-screen at a terminal, JSON Lines otherwise.
func runTop(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	err := shell.RunTop(ctx, shell.Options{Stdin: stdin, Stdout: stdout, Stderr: stderr}, args)
	var ue *shell.UsageError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return err
}
