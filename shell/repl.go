package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/term"
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
	r := newREPL(ctx, s)
	defer r.close()
	if r.tty != nil {
		// Every way out of here, a panic included, leaves the terminal as
		// we found it.
		defer func() {
			_ = term.Restore(int(r.tty.Fd()), r.saved)
			if p := recover(); p != nil {
				err = fmt.Errorf("internal error: %v\n%s", p, debug.Stack())
			}
		}()
	}
	return r.run()
}

// repl reads and runs the commands of one session: at a terminal through
// go-prompt, in a script line by line. It owns the shell's signals:
// SIGHUP (terminal gone) and SIGTERM stop what runs and leave the pool
// running; SIGINT cancels only the running command (each command runs
// under its own signal.NotifyContext), and ends a script; at the prompt
// it is just a key.
type repl struct {
	s       *Session
	ctx     context.Context // the caller's; leaving runs under it
	root    context.Context // cancelled by SIGHUP, SIGTERM or lost output
	cancel  context.CancelFunc
	tty     *os.File    // the terminal, nil in a script
	saved   *term.State // the terminal's state before the shell
	results io.Writer   // where command results go
	guard   *outputGuard
	sigs    chan os.Signal

	hangup          atomic.Value // the os.Signal that ends the shell
	interruptedIdle atomic.Bool  // SIGINT ended a script between commands
	idleInts        atomic.Bool  // SIGINT interrupts the script's reader

	readerMu sync.Mutex
	reader   LineReader

	failed int // failed lines of a script
}

// newREPL opens the terminal (when there is one), guards a script's
// standard output and starts listening to signals.
func newREPL(ctx context.Context, s *Session) *repl {
	r := &repl{s: s, ctx: ctx, results: s.opts.Stdout}
	r.root, r.cancel = context.WithCancel(ctx)
	if tty := openTTY(s.opts); tty != nil {
		if saved, err := term.GetState(int(tty.Fd())); err == nil {
			r.tty, r.saved = tty, saved
		} else {
			tty.Close()
		}
	}
	s.interactive = r.tty != nil
	var outputGone <-chan struct{} // nil (never ready) at a terminal
	if !s.interactive {
		// In a script, notice when standard output goes away (poolctl ...
		// | head -1): stop the pool this shell started instead of dying of
		// SIGPIPE and leaving it running.
		r.guard = newOutputGuard(s.opts.Stdout)
		r.results = r.guard
		s.out = r.guard
		s.info = s.errw
		outputGone = r.guard.Gone()
	}
	r.sigs = make(chan os.Signal, 2)
	// SIGINT is always notified: the shell never dies of it between
	// commands. With SIGPIPE notified, a write to a closed pipe fails
	// with EPIPE instead of killing the process.
	caught := []os.Signal{syscall.SIGHUP, syscall.SIGTERM, os.Interrupt}
	if !s.interactive {
		caught = append(caught, syscall.SIGPIPE)
	}
	signal.Notify(r.sigs, caught...)
	go r.handleSignals(outputGone)
	return r
}

// close stops listening to signals and releases the terminal.
func (r *repl) close() {
	if !r.s.interactive {
		// The last words (to a stderr that may be a closed pipe too)
		// must fail with EPIPE, not kill the shell with SIGPIPE.
		signal.Ignore(syscall.SIGPIPE)
	}
	signal.Stop(r.sigs)
	r.cancel()
	if r.guard != nil {
		r.guard.Close()
	}
	if r.tty != nil {
		r.tty.Close()
	}
}

func (r *repl) handleSignals(outputGone <-chan struct{}) {
	for {
		select {
		case sig := <-r.sigs:
			switch sig {
			case syscall.SIGHUP, syscall.SIGTERM:
				r.hangup.Store(sig)
				r.stopReading()
				return
			case os.Interrupt:
				// While a script waits for its next line, SIGINT ends it
				// (during a command, the command's own context catches
				// it).
				if r.idleInts.Load() {
					r.interruptedIdle.Store(true)
					r.interruptReader()
				}
			}
		case <-outputGone:
			// Stop what runs and read no more: the pool is stopped on
			// the way out.
			r.stopReading()
			return
		case <-r.root.Done():
			return
		}
	}
}

// stopReading cancels what runs and ends the reading of commands.
func (r *repl) stopReading() {
	r.cancel()
	r.interruptReader()
}

func (r *repl) interruptReader() {
	r.readerMu.Lock()
	defer r.readerMu.Unlock()
	if r.reader != nil {
		r.reader.Interrupt()
	}
}

// report counts a failed line of a script and says what failed.
func (r *repl) report(where string, err error) {
	s := r.s
	if !s.interactive {
		// Only a script reports failed lines by its exit status; a
		// typo at the prompt is just a typo.
		r.failed++
	}
	if s.interactive || where == "" {
		fmt.Fprintf(s.errw, "poolctl: %v\n", err)
	} else {
		fmt.Fprintf(s.errw, "poolctl: %s: %v\n", where, err)
	}
}

// runCmd runs fn under a context that SIGINT cancels; interrupted says
// SIGINT did.
func (r *repl) runCmd(fn func(ctx context.Context) error) (err error, interrupted bool) {
	cctx, stop := signal.NotifyContext(r.root, os.Interrupt)
	defer stop()
	err = fn(cctx)
	return err, cctx.Err() != nil && r.root.Err() == nil
}

// chatter sends a script's output to standard error (on) or back to
// standard output: in a script, stdout carries only command results (so
// `status --json` can be piped to a JSON tool); start-up and shutdown
// chatter go to stderr.
func (r *repl) chatter(on bool) {
	if r.s.interactive {
		return
	}
	if on {
		r.s.out = r.s.errw
	} else {
		r.s.out = r.results
	}
}

func (r *repl) run() error {
	s := r.s
	r.chatter(true)
	if err := r.startUp(); err != nil {
		return err
	}
	r.chatter(false)

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

	lr := r.openReader()
	defer lr.Close()
	r.loop(lr)
	return r.leave()
}

// startUp starts the pool, or attaches to it, and shows its status.
func (r *repl) startUp() error {
	s := r.s
	switch {
	case s.opts.Attach:
		if err := s.attach(s.opts.Name); err != nil {
			return err
		}
	case !s.opts.NoStart:
		err, interrupted := r.runCmd(func(c context.Context) error { return s.startMaster(c, true) })
		if err != nil {
			r.report("start", err)
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
	if r.root.Err() == nil {
		s.printStatus(s.collectStatus(r.root))
	}
	return nil
}

// openReader returns the reader of commands: go-prompt at a terminal, a
// line scanner in a script.
func (r *repl) openReader() LineReader {
	s := r.s
	var lr LineReader
	if r.tty != nil {
		pr := newPromptReader(r.tty, r.saved, s, loadHistory(historyPath()))
		s.watch.setRedraw(pr.parser.requestRedraw)
		lr = pr
	} else {
		in := s.opts.Stdin
		if in == nil {
			in = eofReader{}
		}
		lr = newScanReader(in)
	}
	r.readerMu.Lock()
	r.reader = lr
	r.readerMu.Unlock()
	if r.root.Err() != nil {
		lr.Interrupt()
	}
	r.idleInts.Store(!s.interactive)
	return lr
}

// loop runs lines until exit, detach, the end of input or a signal.
func (r *repl) loop(lr LineReader) {
	s := r.s
	for s.leave == stay {
		line, err := lr.ReadLine()
		if err == io.EOF {
			if r.interruptedIdle.Load() {
				r.report(fmt.Sprintf("line %d", lr.LineNo()+1), errors.New("interrupted"))
			}
			s.leave = leaveExit
			return
		}
		if err != nil {
			r.report(fmt.Sprintf("line %d", lr.LineNo()), err)
			s.leave = leaveExit
			return
		}
		r.execLine(line, lr.LineNo())
		if r.root.Err() != nil {
			return
		}
	}
}

// execLine runs one line and reports how it failed.
func (r *repl) execLine(line string, n int) {
	s := r.s
	where := fmt.Sprintf("line %d", n)
	err, interrupted := r.runCmd(func(c context.Context) error { return s.Exec(c, line) })
	s.syncWatch()
	if interrupted && s.interactive && err == nil {
		fmt.Fprintln(s.out) // the terminal echoed ^C; start the prompt on a new line
	}
	if err != nil {
		switch {
		case interrupted && s.interactive && errors.Is(err, context.Canceled):
			fmt.Fprintln(s.errw, "interrupted")
		case errors.Is(err, context.Canceled) && r.root.Err() != nil:
			// The output went away (or a signal came): said on the way out.
		case errors.Is(err, context.Canceled):
			r.report(where, errors.New("interrupted"))
		default:
			r.report(where, err)
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
			r.report(where, errors.New("interrupted"))
		}
		s.leave = leaveExit
	}
}

// leave stops or leaves the pool and returns Run's result.
func (r *repl) leave() error {
	s := r.s
	sig, hung := r.hangup.Load().(os.Signal)
	var outErr error
	if r.guard != nil {
		outErr = r.guard.Err()
	}
	switch {
	case hung:
		s.leave = leaveDetach
	case outErr != nil && r.root.Err() != nil:
		s.leave = leaveExit // the script was cut short: stop the pool
	}
	r.chatter(true)
	r.leavePool()
	if s.interactive {
		fmt.Fprintln(s.info, "Bye!")
	}
	if hung {
		return fmt.Errorf("stopped by signal %v", sig)
	}
	if r.guard != nil {
		if err := r.guard.Err(); err != nil {
			return fmt.Errorf("standard output closed (%w): script stopped", err)
		}
	}
	if r.failed > 0 {
		return &CommandsFailedError{N: r.failed}
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// leavePool stops the pool this shell started (exit) or leaves it running
// (detach, attached pools, signals).
func (r *repl) leavePool() {
	s := r.s
	pid, alive := s.pool().MasterPID()
	ours := s.owned != nil && s.owned.paths == s.paths && s.owned.pid == pid
	switch {
	case !alive:
		if s.owned != nil && s.owned.paths == s.paths && !s.owned.exited() {
			// Started but not (yet) holding its lock: stop it anyway.
			_ = syscall.Kill(s.owned.pid, syscall.SIGQUIT)
		}
	case s.leave == leaveExit && ours:
		// Not under root, which is cancelled when the output went away.
		ctx, stop := signal.NotifyContext(r.ctx, os.Interrupt)
		defer stop()
		if err := s.stopMaster(ctx, true); err != nil {
			r.report("exit", err)
		}
	default:
		fmt.Fprintf(s.info, "pool %s keeps running (master pid %d); re-attach with: poolctl attach %s\n", s.paths.Name, pid, s.paths.Name)
	}
}
