package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/poolctl/poolctl/pool/poolfs"
)

// CommandsFailedError is returned by Run when commands of a script (its
// start-up included) failed; the caller exits with status 1. At a
// terminal failed commands are reported but not counted.
type CommandsFailedError struct{ N int }

func (e *CommandsFailedError) Error() string {
	return fmt.Sprintf("%d command%s failed", e.N, plural(e.N))
}

// Run is the shell: it starts (or attaches to) the pool, then reads
// commands from the terminal or from stdin until exit, detach or the end
// of input.
func Run(ctx context.Context, opts Options) (err error) {
	s, err := NewSession(opts)
	if err != nil {
		return err
	}
	defer s.Close()

	tty := openTTY(opts)
	var saved *term.State
	if tty != nil {
		defer tty.Close()
		if saved, err = term.GetState(int(tty.Fd())); err != nil {
			tty.Close()
			tty = nil
		}
	}
	if tty != nil {
		// Every way out of here, a panic included, leaves the terminal as
		// we found it.
		defer func() {
			_ = term.Restore(int(tty.Fd()), saved)
			if r := recover(); r != nil {
				err = fmt.Errorf("internal error: %v\n%s", r, debug.Stack())
			}
		}()
	}
	s.interactive = tty != nil
	results := opts.Stdout
	var guard *outputGuard
	if !s.interactive {
		// In a script, notice when standard output goes away (poolctl ...
		// | head -1): stop the pool this shell started instead of dying of
		// SIGPIPE and leaving it running. With SIGPIPE notified, a write
		// to a closed pipe fails with EPIPE instead of killing the process.
		pipes := make(chan os.Signal, 1)
		signal.Notify(pipes, syscall.SIGPIPE)
		defer signal.Stop(pipes)
		guard = newOutputGuard(opts.Stdout)
		defer guard.Close()
		results = guard
		s.out = guard
		s.info = s.errw
	}

	// SIGHUP (terminal gone) and SIGTERM: stop what runs, leave the pool
	// running and go. SIGINT cancels only the running command (and ends a
	// script); at the prompt it is just a key.
	var hangup atomic.Value
	var interruptedIdle atomic.Bool // SIGINT ended a script between commands
	var (
		readerMu sync.Mutex
		reader   LineReader
	)
	rootCtx, cancelRoot := context.WithCancel(ctx)
	defer cancelRoot()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ints := make(chan os.Signal, 1)
	signal.Notify(ints, os.Interrupt) // never die of SIGINT between commands
	defer signal.Stop(ints)
	var outputGone <-chan struct{} // nil (never ready) at a terminal
	if guard != nil {
		outputGone = guard.Gone()
	}
	go func() {
		select {
		case sig := <-sigs:
			hangup.Store(sig)
		case <-outputGone:
			// Stop what runs and read no more: the pool is stopped below.
		case <-rootCtx.Done():
			return
		}
		cancelRoot()
		readerMu.Lock()
		if reader != nil {
			reader.Interrupt()
		}
		readerMu.Unlock()
	}()

	failed := 0
	report := func(where string, err error) {
		if !s.interactive {
			// Only a script reports failed lines by its exit status; a
			// typo at the prompt is just a typo.
			failed++
		}
		if s.interactive || where == "" {
			fmt.Fprintf(s.errw, "poolctl: %v\n", err)
		} else {
			fmt.Fprintf(s.errw, "poolctl: %s: %v\n", where, err)
		}
	}
	runCmd := func(fn func(ctx context.Context) error) (err error, interrupted bool) {
		cctx, stop := signal.NotifyContext(rootCtx, os.Interrupt)
		defer stop()
		err = fn(cctx)
		return err, cctx.Err() != nil && rootCtx.Err() == nil
	}

	// In a script, stdout carries only command results (so `status --json`
	// can be piped to a JSON tool); start-up and shutdown chatter go to
	// stderr.
	chatter := func(on bool) {
		if s.interactive {
			return
		}
		if on {
			s.out = s.errw
		} else {
			s.out = results
		}
	}
	chatter(true)
	// Start-up.
	switch {
	case opts.Attach:
		if err := s.attach(opts.Name); err != nil {
			return err
		}
	case !opts.NoStart:
		err, interrupted := runCmd(func(c context.Context) error { return s.startMaster(c, true) })
		if err != nil {
			report("start", err)
			if !s.interactive {
				// The script was written for a pool of its own: run none
				// of it against another one, or against none.
				fmt.Fprintln(s.errw, "poolctl: start failed: script stopped")
				s.leave = leaveExit
			}
		}
		if interrupted && !s.interactive {
			s.leave = leaveExit // Ctrl-C ends a script, even during start-up
		}
	}
	if rootCtx.Err() == nil {
		s.printStatus(s.collectStatus(rootCtx))
	}
	chatter(false)

	// Announce at once a master that dies under the prompt or during a
	// command.
	s.watch = newMasterWatch(func(msg string) {
		if s.interactive {
			fmt.Fprintf(s.errw, "\r\n%s\r\n", msg)
		} else {
			fmt.Fprintf(s.errw, "poolctl: %s\n", msg)
		}
	})
	defer s.watch.Close()
	s.syncWatch()

	var r LineReader
	if tty != nil {
		pr := newPromptReader(tty, saved, s, loadHistory(historyPath()))
		s.watch.setRedraw(pr.parser.requestRedraw)
		r = pr
	} else {
		in := opts.Stdin
		if in == nil {
			in = eofReader{}
		}
		r = newScanReader(in)
	}
	readerMu.Lock()
	reader = r
	readerMu.Unlock()
	defer r.Close()
	if rootCtx.Err() != nil {
		r.Interrupt()
	}
	if !s.interactive {
		// SIGINT while a script waits for its next line ends the script
		// (during a command, the command's own context catches it).
		stopIdleInt := make(chan struct{})
		defer close(stopIdleInt)
		idleInts := make(chan os.Signal, 1)
		signal.Notify(idleInts, os.Interrupt)
		defer signal.Stop(idleInts)
		go func() {
			select {
			case <-idleInts:
				interruptedIdle.Store(true)
				r.Interrupt()
			case <-stopIdleInt:
			}
		}()
	}

	for s.leave == stay {
		line, err := r.ReadLine()
		if err == io.EOF {
			if interruptedIdle.Load() {
				report(fmt.Sprintf("line %d", r.LineNo()+1), errors.New("interrupted"))
			}
			s.leave = leaveExit
			break
		}
		if err != nil {
			report(fmt.Sprintf("line %d", r.LineNo()), err)
			s.leave = leaveExit
			break
		}
		err, interrupted := runCmd(func(c context.Context) error { return s.Exec(c, line) })
		s.syncWatch()
		if interrupted && s.interactive && err == nil {
			fmt.Fprintln(s.out) // the terminal echoed ^C; start the prompt on a new line
		}
		if err != nil {
			switch {
			case interrupted && s.interactive && errors.Is(err, context.Canceled):
				fmt.Fprintln(s.errw, "interrupted")
			case errors.Is(err, context.Canceled) && rootCtx.Err() != nil:
				// The output went away (or a signal came): said below.
			case errors.Is(err, context.Canceled):
				report(fmt.Sprintf("line %d", r.LineNo()), errors.New("interrupted"))
			default:
				report(fmt.Sprintf("line %d", r.LineNo()), err)
			}
		}
		var stop *StopScriptError
		if err != nil && !s.interactive && errors.As(err, &stop) {
			fmt.Fprintf(s.errw, "poolctl: %s failed: script stopped\n", stop.Cmd)
			s.leave = leaveExit
		}
		if interrupted && !s.interactive {
			// Ctrl-C in a script ends the script (as at the end of input).
			if err == nil {
				report(fmt.Sprintf("line %d", r.LineNo()), errors.New("interrupted"))
			}
			s.leave = leaveExit
		}
		if rootCtx.Err() != nil {
			break
		}
	}
	sig, hung := hangup.Load().(os.Signal)
	var outErr error
	if guard != nil {
		outErr = guard.Err()
	}
	switch {
	case hung:
		s.leave = leaveDetach
	case outErr != nil && rootCtx.Err() != nil:
		s.leave = leaveExit // the script was cut short: stop the pool
	}
	chatter(true)
	s.leaveNow(func(fn func(ctx context.Context) error) error {
		// Not under rootCtx, which is cancelled when the output went away.
		cctx, stop := signal.NotifyContext(ctx, os.Interrupt)
		defer stop()
		return fn(cctx)
	}, report)
	if s.interactive {
		fmt.Fprintln(s.info, "Bye!")
	}
	if hung {
		return fmt.Errorf("stopped by signal %v", sig)
	}
	if guard != nil {
		if err := guard.Err(); err != nil {
			return fmt.Errorf("standard output closed (%w): script stopped", err)
		}
	}
	if failed > 0 {
		return &CommandsFailedError{N: failed}
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// leaveNow stops the pool this shell started (exit) or leaves it running
// (detach, attached pools, signals).
func (s *Session) leaveNow(run func(func(ctx context.Context) error) error, report func(string, error)) {
	pid, alive := s.pool().MasterPID()
	ours := s.owned != nil && s.owned.paths == s.paths && s.owned.pid == pid
	switch {
	case !alive:
		if s.owned != nil && s.owned.paths == s.paths && !s.owned.exited() {
			// Started but not (yet) holding its lock: stop it anyway.
			_ = syscall.Kill(s.owned.pid, syscall.SIGQUIT)
		}
	case s.leave == leaveExit && ours:
		if err := run(func(ctx context.Context) error { return s.stopMaster(ctx, true) }); err != nil {
			report("exit", err)
		}
	default:
		fmt.Fprintf(s.info, "pool %s keeps running (master pid %d); re-attach with: poolctl attach %s\n", s.paths.Name, pid, s.paths.Name)
	}
}

// PoolInfo is one running pool, as listed by poolctl list.
type PoolInfo struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Spec    string `json:"spec"`
	Workers int    `json:"workers"`
	Status  string `json:"status"`
	Log     string `json:"log,omitempty"`
}

// runningPools describes the pools whose master runs now.
func runningPools() []PoolInfo {
	pools, _ := poolfs.Running(poolfs.BaseDir())
	var out []PoolInfo
	for _, p := range pools {
		info := PoolInfo{Name: p.Name(), Status: poolfs.MasterRunning}
		if st, _, err := p.State(); err == nil {
			info.PID, info.Spec, info.Workers, info.Log = st.PID, st.Spec, len(st.Workers), st.LogPath
			if st.Status != "" {
				info.Status = st.Status
			}
		}
		out = append(out, info)
	}
	return out
}

// List prints the pools running on this host (poolctl list).
func List(w io.Writer, asJSON bool) error {
	pools := runningPools()
	if asJSON {
		if pools == nil {
			pools = []PoolInfo{}
		}
		b, err := json.Marshal(pools)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	if len(pools) == 0 {
		_, err := fmt.Fprintln(w, "no pools are running")
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tSTATUS\tWORKERS\tSPEC")
	for _, p := range pools {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", p.Name, p.PID, p.Status, p.Workers, orNone(p.Spec))
	}
	return tw.Flush()
}

// DefaultAttachName picks the pool to attach to when none is named: the
// only running one.
func DefaultAttachName() (string, error) {
	pools := runningPools()
	switch len(pools) {
	case 0:
		return "", errors.New("no pool is running on this host")
	case 1:
		return pools[0].Name, nil
	default:
		names := ""
		for i, p := range pools {
			if i > 0 {
				names += ", "
			}
			names += p.Name
		}
		return "", fmt.Errorf("several pools are running (%s); name one: poolctl attach NAME", names)
	}
}
