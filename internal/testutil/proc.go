package testutil

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proc is a process a test watches, identified by pid and start time
// (pids are reused).
type Proc struct {
	PID   int
	start string
}

// procStat returns a process's state letter and start time from
// /proc/PID/stat; ok is false when there is no such process.
func procStat(pid int) (state byte, start string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", false
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'. After it: state (field 3) ... starttime (field 22).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, "", false
	}
	return f[0][0], f[19], true
}

// WatchPIDFile waits up to 10 s for a process to write its pid and a
// newline into path, and returns that process. Cleanup SIGKILLs it if the
// test left it behind, after checking that the pid still names the same
// process.
func WatchPIDFile(t testing.TB, path string) Proc {
	t.Helper()
	var pid int
	Eventually(t, 10*time.Second, "a pid in "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	_, start, ok := procStat(pid)
	if !ok {
		return Proc{PID: pid} // already gone: nothing to clean up
	}
	p := Proc{PID: pid, start: start}
	t.Cleanup(func() {
		if _, s, ok := procStat(p.PID); ok && s == p.start {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
	})
	return p
}

// Dead reports whether the process no longer runs: gone, or a zombie
// waiting for whoever is its parent now.
func (p Proc) Dead() bool {
	state, start, ok := procStat(p.PID)
	return !ok || start != p.start || state == 'Z'
}

// Gone reports whether the process has ended and been reaped.
func (p Proc) Gone() bool {
	_, start, ok := procStat(p.PID)
	return !ok || start != p.start
}

// String names the process and its current state, for failure messages.
func (p Proc) String() string {
	state, start, ok := procStat(p.PID)
	if !ok || start != p.start {
		return fmt.Sprintf("pid %d (gone)", p.PID)
	}
	return fmt.Sprintf("pid %d (state %c)", p.PID, state)
}
