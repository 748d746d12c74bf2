package pool

import (
	"github.com/poolctl/poolctl/internal/proc"

	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// becomeSubreaper makes orphaned descendants (a dead worker's job
// processes) reparent to the master instead of init, so the master can
// stop and reap them.
func becomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	return nil
}

// ownChildren lists this process's children from
// /proc/self/task/*/children (one small file per thread), falling back to
// a scan of all of /proc where the kernel lacks those files.
func ownChildren() ([]int, error) {
	tasks, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil || len(tasks) == 0 {
		return childrenOf(os.Getpid())
	}
	var kids []int
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread exited
			}
			return childrenOf(os.Getpid())
		}
		for _, field := range bytes.Fields(b) {
			if pid, err := strconv.Atoi(string(field)); err == nil {
				kids = append(kids, pid)
			}
		}
	}
	return kids, nil
}

// childrenOf lists the pids whose parent is ppid, from one pass over /proc.
func childrenOf(ppid int) ([]int, error) {
	kids, err := proc.Children(ppid)
	if err != nil {
		return nil, err
	}
	pids := make([]int, len(kids))
	for i, k := range kids {
		pids[i] = k.PID
	}
	return pids, nil
}

// signalGroup sends sig to the process group led by pid, falling back to
// the process itself when it has no group of its own.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if err == syscall.ESRCH {
		err = syscall.Kill(pid, sig)
	}
	return err
}

// exitStatus describes a wait status the way resque-pool's log does.
func exitStatus(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return "exit " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		return "signal " + signalName(ws.Signal())
	default:
		return fmt.Sprintf("status %#x", uint32(ws))
	}
}

// signalName is SIGNAME without the SIG prefix, e.g. "KILL".
func signalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n[3:]
	}
	return strconv.Itoa(int(sig))
}

// procGroup reads the process group of pid from /proc/PID/stat and
// whether pid is a zombie; ok is false when pid is gone.
func procGroup(pid int) (pgid int, zombie, ok bool) {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0, false, false
	}
	return st.PGID, st.Dead(), true
}
