package shell

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
)

// ParseTimeout accepts seconds ("10", "2.5") or a Go duration ("1m30s").
func ParseTimeout(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > 1e6 || math.IsNaN(f) {
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
		pid, alive := s.pool().MasterPID()
		if !alive && (s.owned == nil || s.owned.exited()) {
			return fmt.Errorf("wait: pool %s: %w", s.paths.Name, errNotRunning)
		}
		if alive && processStopped(pid) {
			// A master stopped by SIGSTOP settles nothing: what its state
			// file says is frozen.
			return fmt.Errorf("wait: the master (pid %d) is stopped by SIGSTOP or SIGTSTP; kill! CONT resumes it", pid)
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
					if !st.WorkersPausedAt.IsZero() {
						fmt.Fprintf(s.info, "paused in %.1fs: %d workers paused by USR2 (kill! CONT resumes them)\n", time.Since(start).Seconds(), len(st.Workers))
						return nil
					}
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
