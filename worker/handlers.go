package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// JobError is a job failure with Resque's exception name.
type JobError struct {
	Exception string
	Message   string
	Backtrace []string
	// ExitStatus is a command job's exit status, when it exited (rather
	// than being killed by a signal or failing to start).
	ExitStatus *int
}

func (e *JobError) Error() string { return e.Message }

// Built-in job classes. They run in the worker process (no fork per job),
// so throughput measures the pool, not process creation.
const (
	ClassNoop  = "Poolctl::Noop"
	ClassSleep = "Poolctl::Sleep" // args: [milliseconds]
	ClassFail  = "Poolctl::Fail"  // args: [message] (optional)
	ClassCpu   = "Poolctl::Cpu"   // args: [milliseconds]
)

// JobInfo is what a handler learns about the job it runs.
type JobInfo struct {
	ID    string
	Class string
	Queue string
	Args  json.RawMessage
}

// handler runs one job.
type handler struct {
	// check rejects args the class cannot run, before the job is reported
	// started; nil accepts any.
	check func(args json.RawMessage) error
	// run runs the job; it returns nil on success.
	run func(ctx context.Context, job JobInfo) error
}

// checkMilliseconds accepts [milliseconds].
func checkMilliseconds(args json.RawMessage) error {
	_, err := intArg(args)
	return err
}

// builtinHandler is the handler of a built-in class; ok is false for
// any other class.
func builtinHandler(class string) (h handler, ok bool) {
	switch class {
	case ClassNoop:
		return handler{run: func(context.Context, JobInfo) error { return nil }}, true
	case ClassSleep:
		return handler{check: checkMilliseconds, run: func(ctx context.Context, job JobInfo) error {
			ms, err := intArg(job.Args)
			if err != nil {
				return err
			}
			t := time.NewTimer(time.Duration(ms) * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}}, true
	case ClassFail:
		return handler{run: func(_ context.Context, job JobInfo) error {
			msg := "Poolctl::Fail always fails"
			var args []any
			if json.Unmarshal(job.Args, &args) == nil && len(args) > 0 {
				msg = fmt.Sprint(args[0])
			}
			return &JobError{Exception: "Poolctl::Failure", Message: msg}
		}}, true
	case ClassCpu:
		return handler{check: checkMilliseconds, run: func(ctx context.Context, job JobInfo) error {
			ms, err := intArg(job.Args)
			if err != nil {
				return err
			}
			// Burn ms of CPU time, not of wall time: on a saturated host
			// the job takes longer, as real CPU-bound work does (which is
			// what load tests and the autoscaler's no-gain rule measure).
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			budget := time.Duration(ms) * time.Millisecond
			start := threadCPU()
			x := uint64(1)
			for threadCPU()-start < budget {
				for i := 0; i < 10000; i++ {
					x = x*6364136223846793005 + 1442695040888963407
				}
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
			}
			_ = x
			return nil
		}}, true
	}
	return handler{}, false
}

func intArg(args json.RawMessage) (int64, error) {
	var a []json.Number
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil || len(a) == 0 {
		return 0, &JobError{Exception: "ArgumentError", Message: fmt.Sprintf("expected [milliseconds], got %s", truncate(string(args), 40))}
	}
	f, err := a[0].Float64()
	if err != nil || f < 0 || f > 24*3600*1000 {
		return 0, &JobError{Exception: "ArgumentError", Message: fmt.Sprintf("milliseconds must be a number from 0 to 86400000, got %s", a[0])}
	}
	return int64(f), nil
}

// stderrTailBytes is how much of a command job's stderr goes into its
// failure record.
const stderrTailBytes = 4096

// maxEnvArgsBytes is the largest args (a JSON array) that a command job
// also gets in $POOLCTL_ARGS. Linux refuses to exec with any environment
// string over 128 KiB (MAX_ARG_STRLEN), and payloads may reach 1 MiB
// (MaxPayloadBytes); half the kernel's limit leaves room for the name and
// for the rest of the environment. Bigger args are on stdin only.
const maxEnvArgsBytes = 64 << 10

// commandHandler runs argv for a configured job class. The job's args are
// on stdin, and in POOLCTL_ARGS up to maxEnvArgsBytes. The command runs
// in its own process group, which is killed when ctx ends (TERM, USR1,
// timeout) and when the command's main process ends (its exit status
// alone decides the outcome; background children it left are killed),
// and dies with the worker (parent-death signal from a locked thread). In
// a worker process (Command), which adopts orphans, processes that left
// the group (daemons) are ended too once the job is over. The last
// stdoutTailBytes of the job's stdout are kept in out, for its reply.
func commandHandler(argv []string, stdout, stderr io.Writer, out *tailBuffer) handler {
	return handler{run: func(ctx context.Context, job JobInfo) error {
		// Pdeathsig is tied to the forking thread: keep it alive for the
		// life of the child.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()

		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(environWithout("POOLCTL_ARGS"),
			"POOLCTL_CLASS="+job.Class,
			"POOLCTL_QUEUE="+job.Queue,
			"POOLCTL_JOB_ID="+job.ID,
		)
		if len(job.Args) <= maxEnvArgsBytes {
			cmd.Env = append(cmd.Env, "POOLCTL_ARGS="+string(job.Args))
		}
		tail := &tailBuffer{max: stderrTailBytes}
		outLines, errLines := newJobLines(stdout, job.ID, time.Now), newJobLines(stderr, job.ID, time.Now)
		defer outLines.Flush()
		defer errLines.Flush()
		var outW io.Writer = outLines
		if out != nil {
			outW = io.MultiWriter(outLines, out)
		}
		jio, err := newJobIO(cmd, job.Args, outW, io.MultiWriter(errLines, tail))
		if err != nil {
			return fmt.Errorf("run %s: %w", argv[0], err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			jio.closeAll()
			return &JobError{Exception: "Poolctl::CommandFailed", Message: fmt.Sprintf("cannot run %s: %v", argv[0], err)}
		}
		jio.started()
		err = waitJob(ctx, cmd)
		// Then what escaped the group (a double-forked daemon), adopted
		// by the worker, before its output pipes are drained.
		if _, rerr := reapLeftovers(); rerr != nil {
			fmt.Fprintf(stderr, "worker: ending what job %s left behind: %v\n", job.ID, rerr)
		}
		jio.finish(pipeDrainTimeout)
		// The command's own exit decides, even when the job was cancelled
		// (TERM, USR1, timeout) after it ended, while its output drained:
		// only a process our kill ended counts as cancelled.
		var exitErr *exec.ExitError
		if ctx.Err() != nil && errors.As(err, &exitErr) && exitErr.ProcessState != nil {
			if ws, ok := exitErr.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return context.Cause(ctx)
			}
		}
		if err == nil {
			return nil
		}
		if errors.As(err, &exitErr) {
			lines := tail.lines()
			msg := fmt.Sprintf("%s %s", argv[0], describeExit(exitErr.ProcessState))
			if len(lines) > 0 {
				msg += ": " + lines[len(lines)-1]
			}
			je := &JobError{Exception: "Poolctl::CommandFailed", Message: msg, Backtrace: lines}
			if code := exitErr.ProcessState.ExitCode(); code >= 0 {
				je.ExitStatus = &code
			}
			return je
		}
		return &JobError{Exception: "Poolctl::CommandFailed", Message: fmt.Sprintf("cannot run %s: %v", argv[0], err)}
	}}
}

// environWithout is this process's environment less the variable name,
// so that a job never sees a value the worker inherited in its place.
func environWithout(name string) []string {
	env := os.Environ()
	kept := env[:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			kept = append(kept, kv)
		}
	}
	return kept
}

// waitJob waits for a started command job, whose process group is its
// main process's pid, and reaps it. The group is killed when ctx ends
// first, and in any case once the main process has ended: whatever it
// left in its group goes with it. Every kill happens before the main
// process is reaped, while its pid cannot name anything else.
func waitJob(ctx context.Context, cmd *exec.Cmd) error {
	pgid := cmd.Process.Pid
	killGroup := func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }
	exited := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
			killGroup()
		case <-exited:
		}
	}()
	err := waitExited(pgid)
	close(exited)
	<-watched
	if err == nil {
		killGroup()
	}
	// If waitExited failed the group was not killed: reaping first and
	// killing by a pid that may be reused would be worse.
	return cmd.Wait()
}

func describeExit(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + strconv.Itoa(int(ws.Signal())) + " (" + ws.Signal().String() + ")"
	}
	return "exited with status " + strconv.Itoa(ps.ExitCode())
}

// stdoutTailBytes is how much of a command job's stdout is kept for its
// completed reply's data.
const stdoutTailBytes = 64 << 10

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	total int64 // bytes written, kept or not
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(len(p))
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimRight(string(t.buf), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// threadCPU is the CPU time the calling OS thread has used.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rusageThread is RUSAGE_THREAD (Linux): the calling thread's usage.
const rusageThread = 1

// contents returns what the buffer holds and whether that is everything
// written to it.
func (t *tailBuffer) contents() (b []byte, whole bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...), t.total == int64(len(t.buf))
}
