package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/logtail"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/pstree"
	"github.com/poolctl/poolctl/spec"
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

// signals that kill! accepts by name.
var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM, "CONT": syscall.SIGCONT,
	"STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP, "WINCH": syscall.SIGWINCH, "ALRM": syscall.SIGALRM,
	"TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU,
}

func signalNames() []string {
	names := make([]string, 0, len(signals))
	for n := range signals {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseSignal accepts TERM, SIGTERM, term or 15.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal number %d out of range 1-64", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q (use a number or one of %s)", s, strings.Join(signalNames(), " "))
}

// ParseTimeout accepts seconds ("10", "2.5") or a Go duration ("1m30s").
func ParseTimeout(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > 1e6 {
			return 0, fmt.Errorf("timeout %q out of range", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid timeout %q (seconds, or a duration such as 1m30s)", s)
	}
	return d, nil
}

// DefaultWait is the timeout of wait without an argument.
const DefaultWait = 60 * time.Second

func buildTable() []*Command {
	return []*Command{
		{
			Name: "config", Args: "[QUEUES=COUNT ...]", MaxArgs: -1, Arg: argQueues,
			Summary: "show the worker counts, or change them and reload the master",
			Help: `Without arguments, prints the pool's worker spec (queue list = count).

With arguments, merges the given entries into the configuration: a new
queue list is added, an existing one gets the new count, and a count of 0
removes it. Each argument may hold several entries separated by ':'.
If the master is running, the config file is rewritten and the master
reloads it (SIGHUP); unchanged workers keep running. With -c FILE, FILE
stays the source of truth: it is re-read, and these changes are kept on
top of it as overrides (status shows them); FILE itself is not changed. Invalid input changes
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
			Run: func(_ context.Context, s *Session, _ []string) error {
				fmt.Fprintln(s.out, s.configPath)
				return nil
			},
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
		{
			Name: "pstree", Summary: "show the process tree under the master with CPU and memory", MaxArgs: 0,
			Help: "Shows every process under the master, grandchildren (job processes) included,\nwith command line, CPU% since the previous sample and resident memory.",
			Run:  cmdPstree,
		},
		{
			Name: "log", Summary: "show the whole log (in $PAGER at a terminal)", MaxArgs: 0,
			Help: "At a terminal, opens the log in $PAGER (default less); in a script, prints it.",
			Run:  cmdLog,
		},
		{
			Name: "log_path", Summary: "print the log file's path", MaxArgs: 0,
			Help: "Prints the path of the pool log.",
			Run: func(_ context.Context, s *Session, _ []string) error {
				fmt.Fprintln(s.out, s.logPath)
				return nil
			},
		},
		{
			Name: "has_log?", Summary: "print true if the log file exists, else false", MaxArgs: 0,
			Help: "Prints true or false.",
			Run: func(_ context.Context, s *Session, _ []string) error {
				_, err := os.Stat(s.logPath)
				fmt.Fprintln(s.out, err == nil)
				return nil
			},
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
				return s.toEOF()
			},
		},
		{
			Name: "log.ff", Summary: "move the log cursor to the end of the log", MaxArgs: 0,
			Help: "Fast-forwards the cursor, so log.tail_to_eof prints only lines written from now on.",
			Run: func(_ context.Context, s *Session, _ []string) error {
				s.logOff = logEnd(s.logPath)
				return nil
			},
		},
		{
			Name: "log.rew", Aliases: []string{"log.rewind"}, Summary: "move the log cursor to the start of the log", MaxArgs: 0,
			Help: "Rewinds the cursor, so log.tail_to_eof prints the log from its first line.",
			Run: func(_ context.Context, s *Session, _ []string) error {
				s.logOff = 0
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

func cmdConfig(ctx context.Context, s *Session, args []string) error {
	s.refreshConfig()
	if len(args) == 0 {
		fmt.Fprintln(s.out, s.cfg.Workers.Describe())
		return nil
	}
	upd, err := spec.ParseArgs(args)
	if err != nil {
		return err
	}
	if _, running := s.pool().MasterPID(); running && s.foreignConfig() {
		return fmt.Errorf("config: the master reads %s, a config file poolctl did not write (it may hold comments and environment sections), so the shell does not change it: edit it and use reload", s.configPath)
	}
	next := *s.cfg
	next.Workers = s.cfg.Workers.Merge(upd)
	if err := next.Validate(); err != nil {
		return err
	}
	prev, prevOverrides := s.cfg, s.overrides
	s.cfg = &next
	if s.userFile != "" {
		s.overrides = mergeOverrides(s.overrides, upd)
	}
	if _, ok := s.pool().MasterPID(); ok {
		pid, err := s.reload()
		if err != nil {
			s.cfg, s.overrides = prev, prevOverrides
			return err
		}
		fmt.Fprintf(s.info, "%s\nReloading master %d configuration\n", s.cfg.Workers.Describe(), pid)
		return s.awaitApplied(ctx, pid)
	}
	fmt.Fprintf(s.info, "%s\n", s.cfg.Workers.Describe())
	return nil
}

func cmdKill(_ context.Context, s *Session, args []string) error {
	sig := syscall.SIGTERM
	if len(args) == 1 {
		var err error
		if sig, err = ParseSignal(args[0]); err != nil {
			return err
		}
	}
	pid, err := s.requireMaster()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal master %d: %w", pid, err)
	}
	switch sig {
	case syscall.SIGWINCH:
		s.expectPaused, s.expecting = true, false // what wait waits for now
	case syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGINT, syscall.SIGKILL:
		s.watch.expectExit() // asked for: no news when it exits
	case syscall.SIGUSR2:
		s.usr2At = time.Now() // the master forwards it: workers pause
	case syscall.SIGCONT:
		s.usr2At = time.Time{} // forwarded too: workers resume
	}
	fmt.Fprintf(s.info, "sent %s to master %d\n", sigName(sig), pid)
	if s.owned != nil && s.owned.pid == pid {
		select {
		case <-s.owned.done:
			fmt.Fprintf(s.info, "master %d exited (%v)\n", pid, s.owned.err)
		case <-time.After(time.Second):
		}
	} else if sig == syscall.SIGKILL {
		// Not our child: wait until its lock is released, so that a start
		// that follows finds the pool stopped.
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(pollInterval / 5) {
			if !s.pool().Running() {
				fmt.Fprintf(s.info, "master %d exited\n", pid)
				break
			}
		}
	}
	return nil
}

func sigName(sig syscall.Signal) string {
	for n, v := range signals {
		if v == sig {
			return "SIG" + n
		}
	}
	return "signal " + strconv.Itoa(int(sig))
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

func cmdLog(ctx context.Context, s *Session, _ []string) error {
	if s.interactive {
		pager := os.Getenv("PAGER")
		if pager == "" {
			pager = "less"
		}
		if path, err := exec.LookPath(pager); err == nil {
			cmd := exec.CommandContext(ctx, path, s.logPath)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			return cmd.Run()
		}
	}
	f, err := os.Open(s.logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(s.out, f)
	return err
}

func cmdLogTail(ctx context.Context, s *Session, args []string) error {
	n := 10
	if len(args) == 1 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 0 {
			return fmt.Errorf("log.tail: N must be a non-negative integer, not %q", args[0])
		}
		n = v
	}
	if n > 0 && logEnd(s.logPath) != fileSize(s.logPath) {
		n++ // the last line is still being written: show n complete ones
	}
	off, err := logtail.LastLinesOffset(s.logPath, n)
	if err != nil {
		return err
	}
	end, err := logtail.ReadRange(s.logPath, off, -1, s.out)
	if err != nil {
		return err
	}
	s.logOff = end
	if !s.interactive {
		return nil
	}
	cw := &countWriter{w: s.out}
	err = logtail.Follow(ctx, s.logPath, end, cw, nil)
	s.logOff = logEnd(s.logPath)
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C: back to the prompt
	}
	return err
}

func cmdTailUntil(ctx context.Context, s *Session, args []string) error {
	re, err := regexp.Compile(args[0])
	if err != nil {
		return fmt.Errorf("log.tail_until: invalid REGEXP: %v", err)
	}
	var timeout time.Duration
	if len(args) == 2 {
		if timeout, err = ParseTimeout(args[1]); err != nil {
			return err
		}
	}
	if len(args) == 2 && timeout == 0 {
		fmt.Fprintln(s.info, "log.tail_until: TIMEOUT 0: no timeout; following until a line matches (Ctrl-C stops)")
	}
	fctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// Without a master nothing will write the line: stop once the log
	// has been read to its end, instead of following forever.
	fctx, stopFollow := context.WithCancelCause(fctx)
	defer stopFollow(nil)
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for gone := 0; ; {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
			}
			if _, alive := s.pool().MasterPID(); alive {
				gone = 0
				continue
			}
			// Twice in a row: the follower has had time to read the rest.
			if gone++; gone >= 2 {
				stopFollow(errNotRunning)
				return
			}
		}
	}()
	cw := &countWriter{w: s.out}
	err = logtail.Follow(fctx, s.logPath, s.logOff, cw, func(line string) bool { return re.MatchString(line) })
	if context.Cause(fctx) == errNotRunning && ctx.Err() == nil {
		err = errNotRunning
	}
	s.logOff += cw.n
	if end := fileSize(s.logPath); s.logOff > end {
		s.logOff = logEnd(s.logPath)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNotRunning):
		return fmt.Errorf("log.tail_until: no line matched %q, and no master is running to write more", args[0])
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Errorf("log.tail_until: no line matched %q within %v", args[0], timeout)
	default:
		return err
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *Session) toEOF() error {
	if fileSize(s.logPath) < s.logOff {
		s.logOff = 0 // truncated or rotated
	}
	end, err := logtail.ReadRange(s.logPath, s.logOff, -1, s.out)
	if err != nil {
		return err
	}
	s.logOff = end
	return nil
}

func cmdWait(ctx context.Context, s *Session, args []string) error {
	timeout := DefaultWait
	if len(args) == 1 {
		var err error
		if timeout, err = ParseTimeout(args[0]); err != nil {
			return err
		}
	}
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last *poolfs.State
	for {
		_, alive := s.pool().MasterPID()
		if !alive && (s.owned == nil || s.owned.exited()) {
			return fmt.Errorf("wait: pool %s: %w", s.paths.Name, errNotRunning)
		}
		if alive {
			if st, live, err := s.pool().State(); err == nil && live {
				last = st
				if s.expecting && st.Spec == s.expectSpec {
					s.expecting = false // applied; later waits need not check again
				}
				if s.expectPaused && st.Status == poolfs.MasterPaused {
					s.expectPaused = false
				}
				if !s.expecting && !s.expectPaused && st.Status == poolfs.MasterPaused && st.Settled() {
					fmt.Fprintf(s.info, "paused in %.1fs: 0 workers running; the master runs none until reload (configured: %s)\n", time.Since(start).Seconds(), orNone(st.Spec))
					return nil
				}
				if !s.expecting && !s.expectPaused && st.Status != poolfs.MasterStopping && st.Settled() && !anyStarting(st) {
					fmt.Fprintln(s.info, settledSummary(st, time.Since(start)))
					if fatal := fatalGroups(st); fatal != "" {
						return fmt.Errorf("wait: FATAL: %s (no more workers start for it until a reload or config change)", fatal)
					}
					return nil
				}
				if s.expecting && st.Error != "" && st.UpdatedAt.After(s.hupAt) && !s.hupAt.IsZero() {
					return fmt.Errorf("wait: the master rejected the configuration: %s", st.Error)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("wait: timed out after %v: %s", timeout, s.progress(last))
		case <-tick.C:
		}
	}
}

// anyStarting reports whether a worker is still within its start_secs
// probation: wait lets it prove it stays up before calling the pool settled.
func anyStarting(st *poolfs.State) bool {
	for _, w := range st.Workers {
		if w.State == poolfs.WorkerStarting {
			return true
		}
	}
	return false
}

func settledSummary(st *poolfs.State, took time.Duration) string {
	live := 0
	for _, g := range st.Groups {
		live += g.Live
	}
	msg := fmt.Sprintf("settled in %.1fs: %d worker%s running (%s)", took.Seconds(), live, plural(live), orNone(st.Spec))
	if fatal := fatalGroups(st); fatal != "" {
		msg += "; FATAL: " + fatal
	}
	return msg
}

// fatalGroups lists the FATAL queue lists of st with their reasons, "" when
// there are none.
func fatalGroups(st *poolfs.State) string {
	var fatal []string
	for _, g := range st.Groups {
		if g.State == poolfs.GroupFatal {
			fatal = append(fatal, fmt.Sprintf("%s (%s)", g.Queues, g.Reason))
		}
	}
	return strings.Join(fatal, ", ")
}

func (s *Session) progress(st *poolfs.State) string {
	if st == nil {
		return "the master has not published its state"
	}
	if s.expectPaused && st.Status != poolfs.MasterPaused {
		return fmt.Sprintf("the master has not paused yet (state %s, %d workers)", st.Status, len(st.Workers))
	}
	if s.expecting && st.Spec != s.expectSpec {
		msg := fmt.Sprintf("the master still runs %s, not %s", orNone(st.Spec), orNone(s.expectSpec))
		if st.Error != "" {
			msg += "; last reload error: " + st.Error
		}
		return msg
	}
	var parts []string
	for _, g := range st.Groups {
		parts = append(parts, fmt.Sprintf("%s %d/%d %s", g.Queues, g.Live, g.Desired, g.State))
	}
	stopping, starting := 0, 0
	for _, w := range st.Workers {
		switch w.State {
		case poolfs.WorkerStopping:
			stopping++
		case poolfs.WorkerStarting:
			starting++
		}
	}
	if starting > 0 {
		parts = append(parts, fmt.Sprintf("%d starting", starting))
	}
	if stopping > 0 {
		parts = append(parts, fmt.Sprintf("%d stopping", stopping))
	}
	return "live/desired: " + strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "no workers"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func cmdHelp(_ context.Context, s *Session, args []string) error {
	if len(args) == 1 {
		c := Lookup(args[0])
		if c == nil {
			return fmt.Errorf("help: %w %q; type help for the list of commands", ErrUnknownCommand, args[0])
		}
		fmt.Fprint(s.out, HelpText(c))
		return nil
	}
	fmt.Fprint(s.out, HelpIndex())
	return nil
}

// HelpText is the long help of one command.
func HelpText(c *Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n", c.Usage())
	if len(c.Aliases) > 0 {
		fmt.Fprintf(&b, "aliases: %s\n", strings.Join(c.Aliases, ", "))
	}
	fmt.Fprintf(&b, "\n%s.\n", c.Summary)
	if c.Help != "" {
		fmt.Fprintf(&b, "\n%s\n", c.Help)
	}
	return b.String()
}

// HelpIndex lists every command with its summary.
func HelpIndex() string {
	var b strings.Builder
	b.WriteString("commands (help COMMAND for details):\n")
	width := 0
	for _, c := range table {
		width = max(width, len(c.Usage()))
	}
	for _, c := range table {
		name := c.Usage()
		fmt.Fprintf(&b, "  %-*s  %s", width, name, c.Summary)
		if len(c.Aliases) > 0 {
			fmt.Fprintf(&b, " (also: %s)", strings.Join(c.Aliases, ", "))
		}
		b.WriteByte('\n')
	}
	b.WriteString("\nQuote arguments with '...' or \"...\". A # that starts a word begins a comment.\n")
	b.WriteString(StartupHelp)
	return b.String()
}

// StartupHelp documents how the shell is started; shown by help and by
// poolctl --help of the shell.
const StartupHelp = `
Starting the shell:
  poolctl [SPEC ...] [-c FILE] [--redis URL] [--name NAME] [--log FILE]
          [--env ENV] [--no-start] [--no-prompt]
  SPEC defaults to $WORKERS. NO_START=1 (or true/yes/on) is --no-start;
  NO_START=0/false/no/off or empty starts the master; any other value is an
  error. Commands are read from standard input when it is not a terminal
  (or with --no-prompt): errors go to standard error as "line N: ...", and
  the exit status is 1 if any command failed.
`
