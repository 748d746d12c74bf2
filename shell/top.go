package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/internal/procid"
	"github.com/poolctl/poolctl/logtail"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/shell/topview"
	"github.com/poolctl/poolctl/stats"
)

// topCommand is the top row of the command table.
func topCommand() *Command {
	return &Command{
		Name: "top", Args: "[--json] [--interval D] [--count N]", MaxArgs: -1, Arg: argStatusFlags,
		Summary: "watch the pool live: queues, rates, ETAs, workers, log",
		Help: `At a terminal, a full-screen view refreshed every --interval (default 1s):
the pool, its master and uptime, the host's load, CPU and free memory, Redis;
per queue its depth, jobs in and out per second, state (draining with the
time to empty, growing: won't drain, stalled, empty), p50/p95 job time,
failures per minute and a sparkline of its depth; per queue list its
workers (pid, state, current job and how long it has run, jobs done, CPU%,
RSS); the last lines of the log. The figures are the master's samples
(sample.json): top never asks Redis itself. A sample older than three
sample intervals is shown as such, not as current figures.

Keys: up/down select a queue list; + and - change its count by one, as
config QUEUES=N does (- stops at 1: config QUEUES=0 removes a queue list);
p pauses the selected list's workers (USR2; those still starting once
they run), or resumes them (CONT) when some are paused; r reloads (as reload); q, Esc or Ctrl-C return to the
prompt.

In a script, or with --json, prints the master's sample as one JSON object
per line (JSON Lines; schema in the README) each time a new one arrives,
checking every --interval, until Ctrl-C, or --count N frames. Notes on a
missing or stale sample go to standard error.

Examples:
  top
  top --interval 2s
  top --json --count 3`,
		Run: cmdTop,
	}
}

// topOptions are top's flags.
type topOptions struct {
	json     bool
	interval time.Duration
	count    int // 0 = no limit
}

// errTopHelp is the outcome of top -h.
var errTopHelp = errors.New("help requested")

// minTopInterval bounds --interval from below: a file read and a redraw
// more often would only burn CPU.
const minTopInterval = 10 * time.Millisecond

// parseTopArgs reads top's flags (--json, --interval D, --count N; also
// with one dash, and as --flag=value) wherever they are, and returns the
// other arguments.
func parseTopArgs(args []string) (o topOptions, rest []string, err error) {
	o.interval = time.Second
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return o, append(rest, args[i+1:]...), nil
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		flag := "--" + name
		value := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", flag)
			}
			i++
			return args[i], nil
		}
		switch name {
		case "h", "help":
			return o, nil, errTopHelp
		case "json":
			o.json = true
			if hasVal {
				b, perr := strconv.ParseBool(val)
				if perr != nil {
					return o, nil, fmt.Errorf("--json=%s: not true or false", val)
				}
				o.json = b
			}
		case "interval":
			v, verr := value()
			if verr != nil {
				return o, nil, verr
			}
			d, perr := ParseTimeout(v)
			if perr != nil || d <= 0 {
				return o, nil, fmt.Errorf("--interval %q: not a positive duration (seconds, or a duration such as 500ms or 2s)", v)
			}
			if d < minTopInterval {
				return o, nil, fmt.Errorf("--interval %q: shorter than %v", v, minTopInterval)
			}
			o.interval = d
		case "count":
			v, verr := value()
			if verr != nil {
				return o, nil, verr
			}
			n, perr := strconv.Atoi(v)
			if perr != nil || n < 1 {
				return o, nil, fmt.Errorf("--count %q: not a positive integer", v)
			}
			o.count = n
		default:
			bare, _, _ := strings.Cut(a, "=")
			return o, nil, fmt.Errorf("unknown flag %q (top takes --json, --interval D, --count N)", bare)
		}
	}
	return o, rest, nil
}

func cmdTop(ctx context.Context, s *Session, args []string) error {
	o, rest, err := parseTopArgs(args)
	if errors.Is(err, errTopHelp) {
		fmt.Fprint(s.out, HelpText(Lookup("top")))
		return nil
	}
	if err != nil {
		return &UsageError{Lookup("top"), err.Error()}
	}
	if len(rest) > 0 {
		return &UsageError{Lookup("top"), fmt.Sprintf("unexpected argument %q (top shows this shell's pool; attach NAME switches pools)", rest[0])}
	}
	if _, err := s.requireMaster(); err != nil {
		return err
	}
	if s.interactive && !o.json {
		return s.topScreen(ctx, o)
	}
	return s.topJSON(ctx, o)
}

// RunTop is `poolctl top [NAME] [flags]`: the shell's top command on the
// running pool NAME (default: the only pool running on this host). A
// reader of its output that goes away (| head -1) ends it quietly, with
// success.
func RunTop(ctx context.Context, opts Options, args []string) error {
	o, rest, err := parseTopArgs(args)
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if errors.Is(err, errTopHelp) {
		fmt.Fprint(opts.Stdout, "usage: poolctl top [NAME] [--json] [--interval D] [--count N]\n\n"+HelpText(Lookup("top")))
		return nil
	}
	if err != nil {
		return &UsageError{Lookup("top"), err.Error()}
	}
	switch len(rest) {
	case 0:
		if opts.Name, err = DefaultAttachName(); err != nil {
			return err
		}
	case 1:
		opts.Name = rest[0]
	default:
		return &UsageError{Lookup("top"), fmt.Sprintf("one pool name, not %d arguments", len(rest))}
	}
	opts.Attach = true
	s, err := NewSession(opts)
	if err != nil {
		return err
	}
	defer s.Close()
	if tty := openTTY(opts); tty != nil {
		s.interactive = true
		tty.Close()
	}
	// "attached to pool ..." says nothing here (its warnings go to
	// standard error).
	s.info = io.Discard
	if err := s.attach(opts.Name); err != nil {
		return err
	}
	if s.interactive && !o.json {
		return s.topScreen(ctx, o)
	}
	// With SIGPIPE notified, a write to a pipe whose reader is gone fails
	// with EPIPE instead of killing the process.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)
	guard := newOutputGuard(opts.Stdout)
	defer guard.Close()
	s.out = guard
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-guard.Gone():
			cancel()
		case <-ctx.Done():
		}
	}()
	err = s.topJSON(ctx, o)
	if guard.Err() != nil {
		return nil // the reader has what it wanted
	}
	return err
}

// topData is one reading of the runtime directory.
type topData struct {
	masterPID int           // 0: no master runs
	state     *poolfs.State // the running master's
	sample    *stats.Sample // nil: none (yet), or an earlier master's
	raw       []byte        // the sample file as read
	sampleErr string        // why the sample file did not decode
	log       []string      // the log's last lines
}

// readTopData reads what the master publishes: its pid, state, sample and
// the last logN lines of the log at logPath.
func readTopData(p poolfs.Pool, logPath string, logN int) topData {
	var d topData
	if pid, ok := p.MasterPID(); ok {
		d.masterPID = pid
		if st, err := poolfs.ReadState(p.Paths.State); err == nil && st.PID == pid {
			d.state = st
		}
	}
	// Ask the master to publish (it does only while someone reads), then
	// read once and decode that: the file may be replaced between two
	// reads.
	stats.Want(p.Paths.Sample)
	raw, err := os.ReadFile(p.Paths.Sample)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		d.sampleErr = err.Error()
	default:
		var s stats.Sample
		if err := json.Unmarshal(raw, &s); err != nil {
			d.sampleErr = fmt.Sprintf("decode %s: %v", p.Paths.Sample, err)
		} else if d.masterPID == 0 || s.Master.PID == 0 || s.Master.PID == d.masterPID {
			d.sample, d.raw = &s, raw
		}
	}
	if logN > 0 && logPath != "" {
		d.log = lastLogLines(logPath, logN)
	}
	return d
}

// lastLogLines returns the last n complete lines of the log at path,
// without their line ends; none when it cannot be read.
func lastLogLines(path string, n int) []string {
	off, err := logtail.LastLinesOffset(path, n+1) // +1: the last may be unfinished
	if err != nil {
		return nil
	}
	var b bytes.Buffer
	if _, err := logtail.ReadRange(path, off, -1, &b); err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// topJSON prints each new sample of the master as one line of JSON,
// checking every interval, until ctx ends or count frames are out. Why
// there is no current sample goes to standard error, once per change.
func (s *Session) topJSON(ctx context.Context, o topOptions) error {
	var last time.Time
	frames := 0
	said := ""
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	since := time.Now()
	stop := keepWanting(s.paths.Sample, o.interval)
	defer stop()
	for {
		d := readTopData(s.pool(), "", 0)
		if d.masterPID == 0 {
			return fmt.Errorf("top: pool %s: %w", s.paths.Name, errNotRunning)
		}
		fresh, why := topview.Freshness(d.sample, d.masterPID, time.Now(), since)
		if d.sampleErr != "" {
			fresh, why = false, "sample unreadable: "+d.sampleErr
		}
		if fresh && d.sample.TS.After(last) {
			var line bytes.Buffer
			if err := json.Compact(&line, d.raw); err != nil {
				return fmt.Errorf("top: sample: %w", err)
			}
			line.WriteByte('\n')
			if _, err := s.out.Write(line.Bytes()); err != nil {
				return fmt.Errorf("top: %w", err)
			}
			last = d.sample.TS
			if frames++; o.count > 0 && frames >= o.count {
				return nil
			}
		}
		if why != said && why != "" {
			fmt.Fprintf(s.errw, "top: %s\n", why)
		}
		said = why
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// keepWanting keeps the master publishing the sample at path while top
// waits longer than stats.WantedFor between reads (every read asks too);
// stop ends it.
func keepWanting(path string, interval time.Duration) (stop func()) {
	every := stats.WantedFor / 3
	if interval < every {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				stats.Want(path)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// pauseMark is a pause (USR2) or resume (CONT) top sent to one worker.
// The master knows only of pauses it forwarded to every worker
// (workers_paused_at), so the shell remembers the ones it sent itself.
type pauseMark struct {
	paused   bool
	identity string // the worker's, so a later process with its pid is not taken for it
	// masterPausedAt is the state's workers_paused_at when the mark was
	// made: once it changes, a pause or resume of every worker came after
	// the mark, and decides.
	masterPausedAt time.Time
}

// topMemory is what top remembers between runs in one shell.
type topMemory struct {
	marks map[int]pauseMark // by worker pid
}

// workerPaused says whether worker w of state st is paused: by top's own
// last signal to it, else by a USR2 the master forwarded to every worker
// started before it.
func workerPaused(w poolfs.WorkerState, st *poolfs.State, marks map[int]pauseMark) bool {
	if m, ok := marks[w.PID]; ok && m.identity == w.Identity && m.masterPausedAt.Equal(st.WorkersPausedAt) {
		return m.paused
	}
	return !st.WorkersPausedAt.IsZero() && w.StartedAt.Before(st.WorkersPausedAt)
}

// pausedWorkers is the set of paused workers of st.
func pausedWorkers(st *poolfs.State, marks map[int]pauseMark) map[int]bool {
	out := map[int]bool{}
	if st == nil {
		return out
	}
	for _, w := range st.Workers {
		if workerPaused(w, st, marks) {
			out[w.PID] = true
		}
	}
	return out
}

// topAction is what a key asks of the session.
type topAction struct {
	key  string // "+", "-", "p" or "r"
	list string // the selected queue list
}

// topAct does what a key of top's screen asks, through the shell's own
// commands, and says what happened in one line.
func (s *Session) topAct(ctx context.Context, a topAction) (string, error) {
	switch a.key {
	case "+":
		return s.topScale(ctx, a.list, 1)
	case "-":
		return s.topScale(ctx, a.list, -1)
	case "p":
		return s.topPause(ctx, a.list)
	case "r":
		return s.captured(ctx, func(ctx context.Context) error { return Lookup("reload").Run(ctx, s, nil) })
	}
	return "", fmt.Errorf("unknown key %q", a.key)
}

// topScale changes the count of queue list by delta, as config
// QUEUES=N does (it is that command that runs). A count is not taken
// below 1 from here: 0 removes the queue list.
func (s *Session) topScale(ctx context.Context, list string, delta int) (string, error) {
	if list == "" {
		return "", errors.New("no queue list selected")
	}
	s.refreshConfig()
	cur := -1
	for _, e := range s.cfg.Workers {
		if e.Queues == list {
			cur = e.Count
		}
	}
	if cur < 0 {
		return "", fmt.Errorf("%s is not in this shell's configuration (%s)", list, s.cfg.Workers.Describe())
	}
	n := cur + delta
	if n < 1 {
		return "", fmt.Errorf("%s has %d worker%s: - stops at 1 (config %s=0 removes the queue list)", list, cur, plural(cur), list)
	}
	arg := list + "=" + strconv.Itoa(n)
	return s.captured(ctx, func(ctx context.Context) error { return cmdConfig(ctx, s, []string{arg}) })
}

// startingWait bounds how long p waits for workers that are starting.
var startingWait = 10 * time.Second

// catches reports whether process pid has a handler for sig (SigCgt in
// /proc/PID/status); false when it cannot tell.
func catches(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}

// obeysUSR2 reports whether worker w pauses on USR2 rather than dying of
// it or dropping it. /proc shows a Go worker's handler from its first
// instruction, yet it drops USR2 until its main asks for it, so a
// built-in worker is trusted once it registered in Redis (after that).
func obeysUSR2(w poolfs.WorkerState) bool {
	if w.Builtin {
		return w.Ready
	}
	return catches(w.PID, syscall.SIGUSR2)
}

// topPause pauses the workers of queue list (USR2), or resumes them
// (CONT) when some of them are paused. A USR2 must not reach a worker
// before it handles it: a process that does not catch USR2 dies of it
// (a worker that is still starting, or a command that ignores Resque's
// signals), and a Go worker that has not yet asked for it drops it. So p
// waits for the list's starting workers to obey USR2 (obeysUSR2), and
// leaves alone, and names, those that never do.
func (s *Session) topPause(ctx context.Context, list string) (string, error) {
	var st *poolfs.State
	var targets []poolfs.WorkerState
	for deadline := time.Now().Add(startingWait); ; {
		x, live, err := s.pool().State()
		if err != nil || !live {
			return "", fmt.Errorf("pool %s: %w", s.paths.Name, errNotRunning)
		}
		st, targets = x, nil
		notReady := false
		for _, w := range st.Workers {
			if w.Queues == list && w.State != poolfs.WorkerStopping {
				targets = append(targets, w)
				notReady = notReady || w.State == poolfs.WorkerStarting || !obeysUSR2(w)
			}
		}
		if !notReady || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(pollInterval):
		}
	}
	if s.top.marks == nil {
		s.top.marks = map[int]pauseMark{}
	}
	alive := map[int]bool{}
	for _, w := range st.Workers {
		alive[w.PID] = true
	}
	anyPaused := false
	for _, w := range targets {
		anyPaused = anyPaused || workerPaused(w, st, s.top.marks)
	}
	for pid := range s.top.marks {
		if !alive[pid] {
			delete(s.top.marks, pid) // gone: forget it
		}
	}
	if len(targets) == 0 {
		return "", fmt.Errorf("%s has no running workers", list)
	}
	sig, verb := syscall.SIGUSR2, "paused"
	if anyPaused {
		sig, verb = syscall.SIGCONT, "resumed"
	}
	var pids []string
	var failed []string
	for _, w := range targets {
		if !procid.Alive(w.PID, w.Identity) {
			continue // exited since the state was written
		}
		if sig == syscall.SIGUSR2 && !obeysUSR2(w) {
			why := "does not catch USR2 (it would die of it)"
			if w.Builtin {
				why = "has not registered yet (it would drop USR2)"
			}
			failed = append(failed, fmt.Sprintf("%d %s", w.PID, why))
			continue
		}
		if err := syscall.Kill(w.PID, sig); err != nil {
			failed = append(failed, fmt.Sprintf("%d: %v", w.PID, err))
			continue
		}
		s.top.marks[w.PID] = pauseMark{paused: sig == syscall.SIGUSR2, identity: w.Identity, masterPausedAt: st.WorkersPausedAt}
		pids = append(pids, strconv.Itoa(w.PID))
	}
	msg := fmt.Sprintf("%s %d worker%s of %s (%s to %s)", verb, len(pids), plural(len(pids)), list, sigName(sig), strings.Join(pids, " "))
	if len(failed) > 0 {
		return msg, fmt.Errorf("%s; not signalled: %s", msg, strings.Join(failed, "; "))
	}
	return msg, nil
}

// marksCopy is a copy of top's pause marks for the screen.
func (s *Session) marksCopy() map[int]pauseMark {
	out := make(map[int]pauseMark, len(s.top.marks))
	for k, v := range s.top.marks {
		out[k] = v
	}
	return out
}

// captured runs fn, a shell command, with what it prints collected
// instead of shown, and returns that as one line.
func (s *Session) captured(ctx context.Context, fn func(context.Context) error) (string, error) {
	var b bytes.Buffer
	out, info := s.out, s.info
	s.out, s.info = &b, &b
	defer func() { s.out, s.info = out, info }()
	err := fn(ctx)
	var parts []string
	for _, l := range strings.Split(b.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " · "), err
}
