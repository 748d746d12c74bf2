package pool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

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
	d, err := os.Open("/proc")
	if err != nil {
		return nil, fmt.Errorf("scan /proc: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("scan /proc: %w", err)
	}
	var kids []int
	buf := make([]byte, 512)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if p, ok := readPPID(pid, buf); ok && p == ppid {
			kids = append(kids, pid)
		}
	}
	return kids, nil
}

// readPPID reads the parent pid from /proc/PID/stat. The command name may
// contain spaces and parentheses, so parse after the last ')'.
func readPPID(pid int, buf []byte) (int, bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	n, _ := f.Read(buf)
	f.Close()
	b := buf[:n]
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	return ppid, err == nil
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

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcessAlive reports whether pid is a live (non-zombie) process that
// started no later than notAfter (plus a little slack for clock
// granularity): a pid reused by a younger process does not count.
func ProcessAlive(pid int, notAfter time.Time) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 || f[0][0] == 'Z' || f[0][0] == 'X' {
		return false
	}
	ticks, err := strconv.ParseInt(string(f[19]), 10, 64)
	boot, berr := bootTime()
	if err != nil || berr != nil {
		return true // cannot tell its age: trust the pid
	}
	started := boot.Add(time.Duration(ticks) * time.Second / clockTicks)
	return !started.After(notAfter.Add(2 * time.Second))
}

func bootTime() (time.Time, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			sec, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("no btime in /proc/stat")
}

// procGroup reads the process group of pid from /proc/PID/stat and
// whether pid is a zombie; ok is false when pid is gone.
func procGroup(pid int) (pgid int, zombie, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 {
		return 0, false, false
	}
	pgid, err = strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, false, false
	}
	return pgid, f[0][0] == 'Z' || f[0][0] == 'X', true
}
