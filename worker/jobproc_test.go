package worker

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
)

// testProc is a process a test watches, identified by pid and start time
// (pids are reused).
type testProc struct {
	pid   int
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

// watchPIDFile waits for a job to write a pid into path and returns that
// process. Cleanup kills it if a failing test left it behind, after
// checking that the pid still names the same process.
func watchPIDFile(t *testing.T, path string) testProc {
	t.Helper()
	var pid int
	testutil.Eventually(t, 10*time.Second, "a pid in "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	_, start, ok := procStat(pid)
	if !ok {
		// Already gone: nothing to watch or clean up.
		return testProc{pid: pid}
	}
	p := testProc{pid: pid, start: start}
	t.Cleanup(func() {
		if _, s, ok := procStat(p.pid); ok && s == p.start {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})
	return p
}

// dead reports whether the process no longer runs: gone, or a zombie
// waiting for whoever is its parent now.
func (p testProc) dead() bool {
	state, start, ok := procStat(p.pid)
	return !ok || start != p.start || state == 'Z'
}

// gone reports whether the process has ended and been reaped.
func (p testProc) gone() bool {
	_, start, ok := procStat(p.pid)
	return !ok || start != p.start
}

func (p testProc) String() string {
	state, _, _ := procStat(p.pid)
	return fmt.Sprintf("pid %d (state %c)", p.pid, state)
}
