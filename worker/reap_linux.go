package worker

import (
	"github.com/poolctl/poolctl/internal/proc"

	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Bounds of one sweep for leftovers: killing a process may orphan its
// children (adopted by this process, they show up in the next round), and
// a process stuck in the kernel may take a while to die.
const (
	maxSweepRounds = 20
	sweepTimeout   = 5 * time.Second
)

// waitExited blocks until the child pid has ended, without reaping it: as
// long as it is an unreaped zombie, its pid still names its process group
// and cannot be reused, so signalling -pid reaches only what is left of
// the job.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		return nil
	}
}

// becomeSubreaper makes this process a child subreaper: descendants
// orphaned by the death of their parent (a job's double-forked daemon)
// are reparented to it rather than to init, so the worker can end them.
func becomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become a child subreaper: %w", err)
	}
	return nil
}

// isSubreaper reports whether this process is a child subreaper.
func isSubreaper() (bool, error) {
	var v int32
	if _, _, errno := syscall.Syscall6(syscall.SYS_PRCTL, unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&v)), 0, 0, 0, 0); errno != 0 {
		return false, fmt.Errorf("ask whether this process is a child subreaper: %w", errno)
	}
	return v != 0, nil
}

// reapLeftovers ends whatever command jobs left behind, when this process
// is a child subreaper (Command makes it one): it kills every child of the
// process, its process group first, and reaps it, round after round until
// no child is left. Adopted orphans show up as children only in a
// subreaper; and there, while no job runs, every child is a leftover. In
// any other process (a library user's, a test's) it does nothing, because
// children there may be someone else's.
//
// Call it only when no child is being waited for: the reaping would race
// with that wait. It returns how many processes it ended.
func reapLeftovers() (int, error) {
	if ok, err := isSubreaper(); err != nil || !ok {
		return 0, err
	}
	if !hasChildren() {
		return 0, nil // the usual case: no /proc scan (a hundred workers stop at once)
	}
	self, ownGroup := os.Getpid(), syscall.Getpgrp()
	deadline := time.Now().Add(sweepTimeout)
	ended := 0
	for round := 0; round < maxSweepRounds; round++ {
		kids, err := proc.Children(self)
		if err != nil {
			return ended, err
		}
		if len(kids) == 0 {
			return ended, nil
		}
		for _, k := range kids {
			// An unreaped child keeps its pid and its group id from being
			// reused, so both name what they named when listed.
			if k.PGID > 1 && k.PGID != ownGroup {
				_ = syscall.Kill(-k.PGID, syscall.SIGKILL)
			}
			_ = syscall.Kill(k.PID, syscall.SIGKILL)
		}
		for _, k := range kids {
			reaped, err := reapBy(k.PID, deadline)
			if err != nil {
				return ended, err
			}
			if reaped {
				ended++
			}
		}
	}
	kids, err := proc.Children(self)
	if err == nil && len(kids) > 0 {
		err = fmt.Errorf("%d processes left by jobs are still alive after %d rounds of killing", len(kids), maxSweepRounds)
	}
	return ended, err
}

// hasChildren reports whether this process has any child, live or a
// zombie, without reaping one (waitid with WNOWAIT): ECHILD means none.
func hasChildren() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err != unix.ECHILD
}

// reapBy waits for the killed child pid to end and reaps it, polling until
// deadline. It reports false when pid was not (or no longer) a child.
func reapBy(pid int, deadline time.Time) (bool, error) {
	pause := time.Millisecond
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("reap pid %d: %w", pid, err)
		case got == pid:
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("pid %d did not die within %s of SIGKILL", pid, sweepTimeout)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}
