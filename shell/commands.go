package shell

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/poolctl/poolctl/pstree"
)

// Command is one entry of the shell's command table. Dispatch, help and
// completion are all generated from the table.
type Command struct {
	Name    string
	Aliases []string
	Args    string // synopsis of the arguments, e.g. "[N]"
	Summary string // one line
	Help    string // long help with examples
	MinArgs int
	MaxArgs int     // -1 = no limit
	Arg     argKind // what completion offers for the arguments
	// StopsScript: when it fails, a script stops there (the lines after a
	// failed start or attach would act on another pool, or on none).
	StopsScript bool
	Run         func(ctx context.Context, s *Session, args []string) error
}

type argKind int

const (
	argNone argKind = iota
	argQueues
	argSignal
	argCommand
	argPool
	argStatusFlags
	argQueueNames // queue names, as they are (progress)
	argAutoscale
	argFleet
)

// Usage is the command's synopsis, e.g. "log.tail [N]".
func (c *Command) Usage() string {
	if c.Args == "" {
		return c.Name
	}
	return c.Name + " " + c.Args
}

// UsageError is a command called with the wrong arguments.
type UsageError struct {
	Cmd    *Command
	Reason string
}

func (e *UsageError) Error() string {
	return fmt.Sprintf("%s: %s (usage: %s)", e.Cmd.Name, e.Reason, e.Cmd.Usage())
}

// StopScriptError is the failure of a command after which a script must
// not go on (Command.StopsScript).
type StopScriptError struct {
	Cmd string // the command's name
	Err error
}

func (e *StopScriptError) Error() string { return e.Err.Error() }

// Unwrap returns the command's error.
func (e *StopScriptError) Unwrap() error { return e.Err }

// ErrUnknownCommand is wrapped by the error for a name not in the table.
var ErrUnknownCommand = errors.New("unknown command")

var table []*Command

func init() { table = buildTable() }

// Commands returns the command table, in help order.
func Commands() []*Command { return table }

// Lookup finds a command by name or alias.
func Lookup(name string) *Command {
	for _, c := range table {
		if c.Name == name {
			return c
		}
		for _, a := range c.Aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

// Exec runs one command line. Blank lines and lines starting with '#'
// do nothing.
func (s *Session) Exec(ctx context.Context, line string) error {
	t := strings.TrimSpace(line)
	if t == "" || strings.HasPrefix(t, "#") {
		return nil
	}
	words, err := Split(t)
	if err != nil {
		return err
	}
	c := Lookup(words[0])
	if c == nil {
		return fmt.Errorf("%w %q; type help for the list of commands", ErrUnknownCommand, words[0])
	}
	args := words[1:]
	if len(args) < c.MinArgs {
		return &UsageError{c, "missing argument"}
	}
	if c.MaxArgs >= 0 && len(args) > c.MaxArgs {
		return &UsageError{c, "too many arguments"}
	}
	if err := c.Run(ctx, s, args); err != nil {
		if c.StopsScript {
			return &StopScriptError{Cmd: c.Name, Err: err}
		}
		return err
	}
	return nil
}

// printsValue is the Run of a command that prints one value of the
// session.
func printsValue(value func(s *Session) any) func(context.Context, *Session, []string) error {
	return func(_ context.Context, s *Session, _ []string) error {
		fmt.Fprintln(s.out, value(s))
		return nil
	}
}

func buildTable() []*Command {
	return []*Command{
		{
			Name: "config", Args: "[--save] [QUEUES=COUNT ...]", MaxArgs: -1, Arg: argQueues,
			Summary: "show the worker counts, or change them and reload the master",
			Help: `Without arguments, prints the pool's worker spec (queue list = count).

With arguments, merges the given entries into the configuration: a new
queue list is added, an existing one gets the new count, and a count of 0
removes it. Each argument may hold several entries separated by ':'.
If the master is running, the config file is rewritten and the master
reloads it (SIGHUP); unchanged workers keep running. With -c FILE, FILE
stays the source of truth: it is re-read, and these changes are kept on
top of it as overrides (status shows them); FILE itself is not changed,
unless you ask: --save writes the configuration with the overrides into
FILE and clears them. It does so only when FILE loses nothing by it
(poolctl's layout, no comments, no environments: sections, no anchors);
otherwise it says why and changes nothing. Invalid input changes
nothing and says which entry is wrong. Prints the resulting spec.

It returns once the master runs the new configuration (at most a few
seconds; wait waits longer), so a status that follows shows it.

Examples:
  config
  config foo=2 baz,quux=7
  config foo=0:bar=4`,
			Run: cmdConfig,
		},
		{
			Name: "config_path", Summary: "print the path of the config file the master reads", MaxArgs: 0,
			Help: "Prints the config file of the pool (written by this shell and re-read by the master on reload).",
			Run:  printsValue(func(s *Session) any { return s.configPath }),
		},
		{
			Name: "write_config", Summary: "write the configuration to the config file (no reload)", MaxArgs: 0,
			Help: "Writes the shell's configuration to the config file without signalling the master;\nuse reload to apply it.",
			Run: func(_ context.Context, s *Session, _ []string) error {
				if err := s.writeConfig(); err != nil {
					return err
				}
				fmt.Fprintf(s.info, "wrote %s\n", s.configPath)
				return nil
			},
		},
		{
			Name: "reload", Summary: "rewrite the config file and tell the master to reload it (SIGHUP)", MaxArgs: 0,
			Help: "Rewrites the config file and sends SIGHUP to the master, which re-reads it, reopens\nits log and applies only the difference. With -c FILE, FILE is re-read first (the shell's\nconfig changes stay on top of it). Use wait to block until the workers match.",
			Run: func(ctx context.Context, s *Session, _ []string) error {
				s.syncOverrides()
				pid, err := s.reload()
				if err != nil {
					return err
				}
				fmt.Fprintf(s.info, "Reloading master %d configuration\n", pid)
				return s.awaitApplied(ctx, pid)
			},
		},
		{
			Name: "start", StopsScript: true, Summary: "start the master and show its start-up log", MaxArgs: 0,
			Help: "Writes the config file and starts the master in its own session (Ctrl-C and a\nterminal hangup never reach it), echoing the log until it reports \"started manager\".\nIn a script, a failed start ends the script (exit status 1).",
			Run:  func(ctx context.Context, s *Session, _ []string) error { return s.startMaster(ctx, true) },
		},
		{
			Name: "start!", StopsScript: true, Summary: "start the master without waiting for it", MaxArgs: 0,
			Help: "Like start, but returns at once; see log.tail_to_eof or wait.",
			Run:  func(ctx context.Context, s *Session, _ []string) error { return s.startMaster(ctx, false) },
		},
		{
			Name: "stop", Summary: "stop the pool gracefully (QUIT) and show the shutdown log", MaxArgs: 0,
			Help: "Sends QUIT to the master: workers finish their current job, then the master exits.\nEchoes the log until \"manager stopped\" and waits for the master to exit.",
			Run:  func(ctx context.Context, s *Session, _ []string) error { return s.stopMaster(ctx, true) },
		},
		{
			Name: "stop!", Summary: "stop the pool gracefully (QUIT) without waiting", MaxArgs: 0,
			Help: "Sends QUIT to the master and returns at once.",
			Run:  func(ctx context.Context, s *Session, _ []string) error { return s.stopMaster(ctx, false) },
		},
		{
			Name: "kill!", Args: "[SIGNAL]", MaxArgs: 1, Arg: argSignal,
			Summary: "send a signal to the master (default TERM)",
			Help: `Sends SIGNAL (a name such as TERM, SIGUSR1, hup, or a number) to the master.
Master signals: HUP reload, QUIT graceful stop, INT/TERM fast stop, WINCH stop
all workers but keep the master, USR1/USR2/CONT forwarded to the workers.

Examples:
  kill!
  kill! USR2
  kill! 9`,
			Run: cmdKill,
		},
		{
			Name: "pid", Summary: "print the master's pid", MaxArgs: 0,
			Help: "Prints the pid of the running master; an error if it is not running.",
			Run: func(_ context.Context, s *Session, _ []string) error {
				pid, err := s.requireMaster()
				if err != nil {
					return err
				}
				fmt.Fprintln(s.out, pid)
				return nil
			},
		},
		{
			Name: "status", Args: "[--json]", MaxArgs: 1, Arg: argStatusFlags,
			Summary: "show the master, its workers, queue depths and stats",
			Help: `Shows whether the master runs, its pid and configuration, one line per worker
(pid, queues, state such as "Waiting for foo" or "Processing Archive since 12s",
uptime, restarts, CPU% and RSS including its job processes), queue lists that
back off or are FATAL, then queue depths and processed/failed counts from Redis
(if Redis cannot be reached it says so and shows the rest).

With --json, prints one JSON object instead (schema in the package
documentation and README: state, pid, config, workers, queues, processed,
failed, ...).

Examples:
  status
  status --json`,
			Run: cmdStatus,
		},
		topCommand(),
		autoscaleCommand(),
		fleetCommand(),
		{
			Name: "pstree", Summary: "show the process tree under the master with CPU and memory", MaxArgs: 0,
			Help: "Shows every process under the master, grandchildren (job processes) included,\nwith command line, CPU% since the previous sample and resident memory.",
			Run:  cmdPstree,
		},
		tuneCommand(),
		restartCommand(false),
		restartCommand(true),
		{
			Name: "log", Summary: "show the whole log (in $PAGER at a terminal)", MaxArgs: 0,
			Help: "At a terminal, opens the log in $PAGER (default less); in a script, prints it.",
			Run:  cmdLog,
		},
		{
			Name: "log_path", Summary: "print the log file's path", MaxArgs: 0,
			Help: "Prints the path of the pool log.",
			Run:  printsValue(func(s *Session) any { return s.logPath }),
		},
		{
			Name: "has_log?", Summary: "print true if the log file exists, else false", MaxArgs: 0,
			Help: "Prints true or false.",
			Run: printsValue(func(s *Session) any {
				_, err := os.Stat(s.logPath)
				return err == nil
			}),
		},
		{
			Name: "log.tail", Args: "[N]", MaxArgs: 1,
			Summary: "print the last N lines of the log (default 10), then follow it",
			Help: `Prints the last N lines (default 10). At a terminal it then follows the log,
across rotation, until Ctrl-C, which returns to the prompt. In a script it
does not follow.

Examples:
  log.tail
  log.tail 50`,
			Run: cmdLogTail,
		},
		{
			Name: "log.tail_until", Args: "REGEXP [TIMEOUT]", MinArgs: 1, MaxArgs: 2,
			Summary: "follow the log from the cursor until a line matches REGEXP",
			Help: `Prints the log from the cursor (see log.ff, log.rew) and follows it until a
line matches REGEXP (Go syntax), or TIMEOUT (seconds or a duration) passes,
which is an error; without TIMEOUT, or with 0, there is none. Ctrl-C stops it.

Examples:
  log.tail_until 'started manager'
  log.tail_until 'worker.*exited' 30s`,
			Run: cmdTailUntil,
		},
		{
			Name: "log.tail_to_eof", Summary: "print the log from the cursor to its current end", MaxArgs: 0,
			Help: "Prints the complete lines from the cursor to the current end of the log and moves\nthe cursor there; returns at once.",
			Run: func(_ context.Context, s *Session, _ []string) error {
				return s.log.ToEOF(s.out)
			},
		},
		{
			Name: "log.ff", Summary: "move the log cursor to the end of the log", MaxArgs: 0,
			Help: "Fast-forwards the cursor, so log.tail_to_eof prints only lines written from now on.",
			Run: func(_ context.Context, s *Session, _ []string) error {
				s.logToEnd()
				return nil
			},
		},
		{
			Name: "log.rew", Aliases: []string{"log.rewind"}, Summary: "move the log cursor to the start of the log", MaxArgs: 0,
			Help: "Rewinds the cursor, so log.tail_to_eof prints the log from its first line.",
			Run: func(_ context.Context, s *Session, _ []string) error {
				s.log.Rewind()
				return nil
			},
		},
		{
			Name: "wait", Args: "[TIMEOUT]", MaxArgs: 1,
			Summary: "wait until the live workers match the configuration",
			Help: `Blocks until the master has applied the configuration, every queue list has
as many live workers as configured (or is FATAL), and no worker is still
starting (within start_secs), then prints a one-line summary. TIMEOUT is seconds or a duration (default 60s); running out of time
is an error, and so is a queue list left FATAL, so a script exits with status 1.
After config or reload it first waits for the master to run the new
configuration, whatever it is (no workers included). After kill! WINCH, or
on a paused master, it waits until no worker is left and says "paused".

Examples:
  config foo=8
  wait
  wait 2m`,
			Run: cmdWait,
		},
		{
			Name: "progress", Aliases: []string{"batch"}, Args: "[--json] [--timeout D] [QUEUE ...]", MaxArgs: -1, Arg: argQueueNames,
			Summary: "follow a batch until its queues drain: a bar per queue, rate, ETA, then a summary",
			Help: `Marks what the named queues (default: every queue the pool serves) hold now,
queued plus in flight, as a batch, then shows per queue done/total, %, the
rate jobs finish at and the ETA, from the samples the master publishes
(every sample_interval). At a terminal the bars are redrawn in place; in a
script one line per sample goes to standard error. Jobs enqueued during the
batch grow its total, and it says so. The ETA is shown only while a queue
drains; otherwise its state says why there is none (stalled, growing: will
not drain). It ends when every queue has nothing queued and nothing in
flight, and prints a summary: duration, jobs done, failed, throughput,
p50/p95/p99 job time, peak workers. --json prints the summary as one JSON
object (queues, total, done, failed, enqueued, drained, duration_seconds,
throughput, job_seconds {p50, p95, p99}, peak_workers).

Ctrl-C stops watching and returns to the prompt; the batch runs on. In a
script, progress is how one waits for a batch: it fails (the script exits
1) when jobs of the batch failed, when --timeout D (seconds or a duration)
runs out first (the summary so far is printed, with drained false), or
when a queue is not one the pool serves. poolctl progress gives these
exit statuses: 0 drained, 1 drained with failed jobs, 2 usage, 3 timeout.

Examples:
  progress
  progress --json --timeout 10m reports mail
  batch`,
			Run: cmdProgress,
		},
		{
			Name: "help", Args: "[COMMAND]", MaxArgs: 1, Arg: argCommand,
			Summary: "list the commands, or explain one",
			Help:    "Examples:\n  help\n  help log.tail",
			Run:     cmdHelp,
		},
		{
			Name: "exit", Aliases: []string{"quit"}, MaxArgs: 0,
			Summary: "stop the pool this shell started (gracefully) and leave",
			Help: `Leaves the shell. If this shell started the master, the pool is stopped
gracefully first, showing the shutdown log. A shell that attached to a pool
leaves it running (use stop first to stop it). Ctrl-D and the end of a script
do the same as exit.`,
			Run: func(_ context.Context, s *Session, _ []string) error {
				s.leave = leaveExit
				return nil
			},
		},
		{
			Name: "detach", MaxArgs: 0,
			Summary: "leave the shell and keep the pool running",
			Help:    "Leaves the shell without stopping the pool; re-attach later with: poolctl attach NAME",
			Run: func(_ context.Context, s *Session, _ []string) error {
				s.leave = leaveDetach
				return nil
			},
		},
		{
			Name: "attach", StopsScript: true, Args: "NAME", MinArgs: 1, MaxArgs: 1, Arg: argPool,
			Summary: "switch this shell to another running pool",
			Help: `Connects the shell to the pool NAME running on this host (poolctl list shows
them). A pool this shell started keeps running; exit from an attached pool
leaves it running.

Example:
  attach reports`,
			Run: func(_ context.Context, s *Session, args []string) error {
				prev := s.paths.Name
				owned := s.owned != nil && !s.owned.exited()
				if err := s.attach(args[0]); err != nil {
					return err
				}
				if owned && prev != args[0] {
					fmt.Fprintf(s.info, "pool %s keeps running; re-attach with: attach %s\n", prev, prev)
				}
				return nil
			},
		},
	}
}

func cmdPstree(ctx context.Context, s *Session, _ []string) error {
	pid, err := s.requireMaster()
	if err != nil {
		return err
	}
	tree, err := s.sampler.Tree(ctx, int32(pid))
	if err != nil {
		return err
	}
	fmt.Fprint(s.out, pstree.Format(tree))
	return nil
}
