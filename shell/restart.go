package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/c-bata/go-prompt"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/spec"
)

// argRestart: completion offers the pool's queue lists and --batch.
const argRestart argKind = 115

// restartAckTimeout bounds how long a restart waits for the master to
// take its request (a master predating rolling restarts never does).
var restartAckTimeout = 10 * time.Second

const restartHelp = `Replaces the workers of the named queue lists (default: all) without a dip:
for each one it starts a replacement, waits until it is ready (a built-in
worker registered in Redis, another command alive past start_secs), then
sends QUIT to an old worker (TERM after term_timeout, KILL after as long
again). --batch N (default 1) replaces N at a time. The number of ready
workers never drops below the configured count. Progress goes to standard
error; it returns when the roll ends, printing how many were replaced.

A replacement that exits or is not ready in time stops the roll with an
error (exit status 1 in a script); the workers not yet replaced keep
running. Only one restart runs at a time. Ctrl-C stops watching, not the
roll (status shows it). A HUP that changes a queue list's command rolls
its workers the same way.

restart! stops every worker of the queue lists at once and starts new
ones (a dip; for when the old workers must not run beside new ones).

Examples:
  restart
  restart --batch 2
  restart mail reports,default
  restart!`

// restartCommand is the table's row of restart, or of restart! (now).
func restartCommand(now bool) *Command {
	c := &Command{
		Name: "restart", Args: "[QUEUES ...] [--batch N]", MaxArgs: -1, Arg: argRestart,
		Summary: "replace the workers one batch at a time, without a dip (rolling restart)",
		Help:    restartHelp,
	}
	if now {
		c.Name, c.Args = "restart!", "[QUEUES ...]"
		c.Summary = "replace the workers all at once (QUIT all, start all)"
	}
	c.Run = func(ctx context.Context, s *Session, args []string) error {
		req, err := parseRestartArgs(args, now)
		if err != nil {
			return &UsageError{c, err.Error()}
		}
		if _, err := s.requireMaster(); err != nil {
			return err
		}
		return Restart(ctx, s.pool(), req, s.out, s.info)
	}
	return c
}

// parseRestartArgs reads [QUEUES ...] [--batch N] (flags anywhere).
func parseRestartArgs(args []string, now bool) (poolfs.RestartRequest, error) {
	req := poolfs.RestartRequest{Batch: 1, Now: now}
	for i := 0; i < len(args); i++ {
		a := args[i]
		val, hasVal := "", false
		if name, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			a, val, hasVal = name, v, true
		}
		switch a {
		case "--batch", "-batch":
			if now {
				return req, errors.New("restart! replaces all at once: --batch does not apply")
			}
			if !hasVal {
				if i+1 >= len(args) {
					return req, errors.New("--batch needs a number")
				}
				i++
				val = args[i]
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return req, fmt.Errorf("--batch %q: want a whole number of at least 1", val)
			}
			req.Batch = n
		default:
			if strings.HasPrefix(a, "-") {
				return req, fmt.Errorf("unknown flag %s", a)
			}
			names := strings.Split(a, ",")
			for j, n := range names {
				names[j] = strings.TrimSpace(n)
				if err := spec.ValidateQueueName(names[j]); err != nil {
					return req, fmt.Errorf("queue list %q: %v", a, err)
				}
			}
			req.Queues = append(req.Queues, strings.Join(names, ","))
		}
	}
	return req, nil
}

// Restart asks the pool's master for the rolling restart req and
// follows it to its end: progress lines go to info, the result to out.
// It fails when the master refuses the request, the roll fails or the
// master exits meanwhile.
func Restart(ctx context.Context, p poolfs.Pool, req poolfs.RestartRequest, out, info io.Writer) error {
	pid, ok := p.MasterPID()
	if !ok {
		return fmt.Errorf("pool %s: %w", p.Name(), errNotRunning)
	}
	if st, live, err := p.State(); err == nil && live && st.Restart != nil && st.Restart.State == poolfs.RestartRunning {
		return fmt.Errorf("pool %s: a restart is already running (%d of %d replaced); wait for it to end", p.Name(), st.Restart.Replaced, st.Restart.Total)
	}
	req.ID = fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	if err := poolfs.WriteRestartRequest(p.Paths.RestartRequest, req); err != nil {
		return fmt.Errorf("pool %s: %w", p.Name(), err)
	}
	if err := syscall.Kill(pid, syscall.SIGPWR); err != nil {
		_ = os.Remove(p.Paths.RestartRequest)
		return fmt.Errorf("pool %s: signal master %d: %w", p.Name(), pid, err)
	}
	ackBy := time.Now().Add(restartAckTimeout)
	seen := -1
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(info, "stopped watching; the restart goes on (status shows it)\n")
			return ctx.Err()
		case <-t.C:
		}
		st, live, err := p.State()
		if err != nil || !live {
			if _, ok := p.MasterPID(); !ok {
				return fmt.Errorf("pool %s: the master exited during the restart", p.Name())
			}
			continue
		}
		if f := st.RestartRefused; f != nil && f.ID == req.ID {
			return fmt.Errorf("pool %s: restart refused: %s", p.Name(), f.Error)
		}
		r := st.Restart
		if r == nil || r.ID != req.ID {
			if time.Now().After(ackBy) {
				_ = os.Remove(p.Paths.RestartRequest)
				return fmt.Errorf("pool %s: the master (pid %d) did not take the restart request within %s", p.Name(), pid, restartAckTimeout)
			}
			continue
		}
		if r.State == poolfs.RestartRunning && r.Replaced != seen {
			seen = r.Replaced
			fmt.Fprintf(info, "restart: %d of %d replaced (batch %d)\n", r.Replaced, r.Total, r.Batch)
		}
		switch r.State {
		case poolfs.RestartFailed:
			return fmt.Errorf("pool %s: restart failed: %s (%d of %d replaced; the others keep running)", p.Name(), r.Error, r.Replaced, r.Total)
		case poolfs.RestartDone:
			if req.Now {
				// restart! ends when the new workers run (or cannot).
				done, err := replacedAll(st, r.Queues)
				if err != nil {
					return fmt.Errorf("pool %s: restart!: %w", p.Name(), err)
				}
				if !done {
					continue
				}
			}
			fmt.Fprintf(out, "restarted %d worker%s (queues %s)\n", r.Replaced, plural(r.Replaced), strings.Join(r.Queues, " "))
			return nil
		}
	}
}

// RunRestart is `poolctl restart NAME [QUEUES ...] [--batch N] [--now]`:
// the shell's restart on a running pool.
func RunRestart(ctx context.Context, opts Options, args []string) error {
	c := Lookup("restart")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(opts.Stdout, "usage: poolctl restart NAME [QUEUES ...] [--batch N] [--now]\n\n"+HelpText(c)+"\n\n--now is restart!.\n")
		return nil
	}
	now := false
	var rest []string
	for _, a := range args {
		if a == "--now" || a == "-now" {
			now = true
			continue
		}
		rest = append(rest, a)
	}
	if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
		return &UsageError{c, "the pool NAME comes first"}
	}
	if err := poolfs.ValidatePoolName(rest[0]); err != nil {
		return &UsageError{c, err.Error()}
	}
	req, err := parseRestartArgs(rest[1:], now)
	if err != nil {
		return &UsageError{c, err.Error()}
	}
	return Restart(ctx, poolfs.Open(rest[0]), req, opts.Stdout, opts.Stderr)
}

// restartSuggestions are the queue lists of the configuration and
// restart's flag.
func (s *Session) restartSuggestions() []prompt.Suggest {
	out := []prompt.Suggest{{Text: "--batch", Description: "how many to replace at a time (default 1)"}}
	s.refreshConfig()
	for _, e := range s.cfg.Workers {
		out = append(out, prompt.Suggest{Text: e.Queues, Description: fmt.Sprintf("%d worker%s", e.Count, plural(e.Count))})
	}
	return out
}

// restartStatusLine is status's line for a rolling restart: one under
// way, or the last one when it failed ("" otherwise).
func restartStatusLine(r *poolfs.RestartState) string {
	if r == nil {
		return ""
	}
	switch r.State {
	case poolfs.RestartRunning:
		return fmt.Sprintf("restart (%s) running: %d of %d replaced, batch %d, queues %s",
			r.Reason, r.Replaced, r.Total, r.Batch, strings.Join(r.Queues, " "))
	case poolfs.RestartFailed:
		return fmt.Sprintf("last restart (%s) failed: %s (%d of %d replaced)", r.Reason, r.Error, r.Replaced, r.Total)
	}
	return ""
}

// rollText marks a worker's part in a rolling restart in status.
func rollText(roll string) string {
	switch roll {
	case "old":
		return " (to be replaced)"
	case "new":
		return " (replacement, not ready)"
	}
	return ""
}

// replacedAll reports whether the queue lists of a restart! run their
// new workers: as many live as desired, none starting or stopping. A list
// short of workers that backs off or is FATAL is an error.
func replacedAll(st *poolfs.State, queues []string) (bool, error) {
	for _, g := range st.Groups {
		if !slices.Contains(queues, g.Queues) {
			continue
		}
		if g.State != poolfs.GroupOK && g.Live < g.Desired {
			return false, fmt.Errorf("queues %s: %s: %s", g.Queues, g.State, g.Reason)
		}
		if g.Live != g.Desired {
			return false, nil
		}
	}
	for _, w := range st.Workers {
		if slices.Contains(queues, w.Queues) && w.State != poolfs.WorkerRunning {
			return false, nil
		}
	}
	return true, nil
}
