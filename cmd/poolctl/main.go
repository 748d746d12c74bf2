// Command poolctl is an interactive pool manager for Resque-compatible
// queue workers. This file only parses flags and dispatches sub-commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/poolctl/poolctl/internal/cli"
	"github.com/poolctl/poolctl/internal/masterd"
	"github.com/poolctl/poolctl/shell"
	"github.com/poolctl/poolctl/worker"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage error")

func main() {
	cli.QuietRedis()
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"master", "run the pool master in the foreground: poolctl master -c FILE", runMaster},
		{"work", "run one built-in worker: poolctl work --queues foo,bar", runWork},
		{"enqueue", "push jobs: poolctl enqueue [-n COUNT] [-q] [--wait [--timeout D] [--json]] QUEUE CLASS [ARG...] [-- ARG...]", runEnqueue},
		{"queues", "show queue depths, stats and workers", runQueues},
		{"failed", "list, retry or clear failure records: poolctl failed [list|retry N|retry --all|clear]", runFailed},
		{"progress", "follow a batch until its queues drain: poolctl progress [--name NAME] [--json] [--timeout D] [QUEUE...]", runProgress},
		{"attach", "attach a shell to a running pool: poolctl attach [NAME]", runAttach},
		{"top", "watch a running pool live: poolctl top [NAME] [--json] [--interval D] [--count N]", runTop},
		{"list", "list the pools running on this host", runList},
		{"fleet", "every pool on this Redis: poolctl fleet [list|top|ping|status|config|reload|stop|pause|resume|autoscale] [HOST/NAME] [ARGS] [--json]", runFleet},
		{"restart", "replace a running pool's workers without a dip: poolctl restart NAME [QUEUES...] [--batch N] [--now]", runRestart},
		{"export", "print a service definition for a pool: poolctl export systemd|supervisord [-c FILE] [--name NAME] [--user USER] [--template]", runExport},
		{"version", "print the version", func(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "poolctl", version)
			return nil
		}},
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		for _, c := range commands() {
			if c.name == args[0] {
				return exitCode(c.run(ctx, args[1:], stdin, stdout, stderr), stderr)
			}
		}
		if args[0] == "--version" || args[0] == "-version" {
			fmt.Fprintln(stdout, "poolctl", version)
			return 0
		}
		if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			usage(stdout)
			return 0
		}
	}
	// No sub-command: the interactive shell, e.g. `poolctl foo=2:bar=4`.
	return exitCode(runShell(ctx, args, stdin, stdout, stderr), stderr)
}

// exitCode prints err and maps it to poolctl's exit status (cli.ExitCode):
// 2 for usage errors, the worker's and progress's included; progress's
// own statuses (a timeout is 3).
func exitCode(err error, stderr io.Writer) int {
	return cli.ExitCode(err, "poolctl", stderr, errUsage, masterd.ErrUsage, worker.ErrUsage, shell.ErrProgressUsage)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: poolctl [SPEC] [-c FILE] [shell flags]   (the interactive shell)")
	fmt.Fprintln(w, "       poolctl COMMAND [flags]")
	fmt.Fprintln(w, "\nThe shell takes SPEC (or $WORKERS, or -c FILE); `poolctl SPEC -h` lists its flags,")
	fmt.Fprintln(w, "and NO_START=1 (or true/yes/on) starts it without a master.")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("poolctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
