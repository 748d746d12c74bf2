package worker

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
)

// A command job that exits 0 succeeds even when a background child still
// holds its stdout and stderr; the leftover is killed when the job's main
// process ends. A non-zero exit stays a failure with the stderr tail.
func TestCommandJobLeftoversAreKilledAndDoNotDecideTheOutcome(t *testing.T) {
	dir := t.TempDir()
	okPID, failPID := filepath.Join(dir, "ok"), filepath.Join(dir, "fail")
	h := newHarness(t, Config{Queues: []string{"foo"}, Jobs: map[string][]string{
		"Leaves":         {"sh", "-c", `sleep 300 & echo $! > "$1"; exit 0`, "sh", okPID},
		"LeavesAndFails": {"sh", "-c", `sleep 300 & echo $! > "$1"; echo 'out of cheese' >&2; exit 3`, "sh", failPID},
	}})

	h.push("foo", `{"class":"Leaves","args":[]}`)
	leftover := watchPIDFile(t, okPID)
	h.eventually("the first job's outcome", func() bool { return h.stat("resque:stat:processed") != "" || h.stat("resque:stat:failed") != "" })
	if got := h.stat("resque:stat:processed"); got != "1" {
		t.Errorf("processed = %q, want 1 (exit 0 is success); failures: %+v", got, h.failures())
	}
	testutil.Eventually(t, 5*time.Second, "the leftover "+leftover.String()+" killed", leftover.dead)

	h.push("foo", `{"class":"LeavesAndFails","args":[]}`)
	leftover = watchPIDFile(t, failPID)
	h.eventually("the second job's failure", func() bool { return h.stat("resque:stat:failed") == "1" })
	if r := h.failures()[0]; r.Exception != "Poolctl::CommandFailed" || r.Error != "sh exited with status 3: out of cheese" {
		t.Errorf("failure = %s: %q", r.Exception, r.Error)
	}
	testutil.Eventually(t, 5*time.Second, "the leftover "+leftover.String()+" killed", leftover.dead)
}
