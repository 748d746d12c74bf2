package testutil

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/proc"
)

// Proc is a process a test watches, identified by pid and start time
// (pids are reused).
type Proc struct {
	PID   int
	start uint64
}

// ProcOf returns the process pid now is; ok is false when there is none.
func ProcOf(pid int) (p Proc, ok bool) {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return Proc{PID: pid}, false
	}
	return Proc{PID: pid, start: st.StartTicks}, true
}

// stat reads the process if it is still the one watched.
func (p Proc) stat() (proc.Stat, bool) {
	st, err := proc.ReadStat(p.PID)
	if err != nil || st.StartTicks != p.start {
		return proc.Stat{}, false
	}
	return st, true
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
	p, ok := ProcOf(pid)
	if !ok {
		return p // already gone: nothing to clean up
	}
	KillAtCleanup(t, p)
	return p
}

// KillAtCleanup SIGKILLs p when the test ends if it is still that process.
func KillAtCleanup(t testing.TB, p Proc) {
	t.Cleanup(func() {
		if _, ok := p.stat(); ok {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
	})
}

// Dead reports whether the process no longer runs: gone, or a zombie
// waiting for whoever is its parent now.
func (p Proc) Dead() bool {
	st, ok := p.stat()
	return !ok || st.Dead()
}

// Gone reports whether the process has ended and been reaped.
func (p Proc) Gone() bool {
	_, ok := p.stat()
	return !ok
}

// Parent is the process's parent pid now (0 when it is gone).
func (p Proc) Parent() int {
	st, _ := p.stat()
	return st.PPID
}

// String names the process and its current state, for failure messages.
func (p Proc) String() string {
	st, ok := p.stat()
	if !ok {
		return fmt.Sprintf("pid %d (gone)", p.PID)
	}
	return fmt.Sprintf("pid %d (state %c, parent %d)", p.PID, st.State, st.PPID)
}

// LiveChildren lists the running (not zombie) children of pid, by pid.
func LiveChildren(t testing.TB, pid int) []Proc {
	t.Helper()
	kids, err := proc.Children(pid)
	if err != nil {
		t.Fatal(err)
	}
	var out []Proc
	for _, k := range kids {
		if !k.Dead() {
			out = append(out, Proc{PID: k.PID, start: k.StartTicks})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}
