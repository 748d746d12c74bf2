package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/queue"
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
	leftover := testutil.WatchPIDFile(t, okPID)
	h.eventually("the first job's outcome", func() bool { return h.stat("resque:stat:processed") != "" || h.stat("resque:stat:failed") != "" })
	if got := h.stat("resque:stat:processed"); got != "1" {
		t.Errorf("processed = %q, want 1 (exit 0 is success); failures: %v", got, failureTexts(h.failures()))
	}
	testutil.Eventually(t, 5*time.Second, fmt.Sprintf("the leftover pid %d killed", leftover.PID), leftover.Dead)

	h.push("foo", `{"class":"LeavesAndFails","args":[]}`)
	leftover = testutil.WatchPIDFile(t, failPID)
	h.eventually("the second job's failure", func() bool { return h.stat("resque:stat:failed") == "1" })
	if r := h.failures()[0]; r.Exception != "Poolctl::CommandFailed" || r.Error != "sh exited with status 3: out of cheese" {
		t.Errorf("failure = %s: %q", r.Exception, r.Error)
	}
	testutil.Eventually(t, 5*time.Second, fmt.Sprintf("the leftover pid %d killed", leftover.PID), leftover.Dead)
}

// Args too big for one environment string (Linux caps each at 128 KiB)
// arrive on stdin only; small ones are in POOLCTL_ARGS as well.
func TestCommandJobWithHugeArgsGetsThemOnStdin(t *testing.T) {
	// Whatever the worker inherited must not pass for the job's args.
	t.Setenv("POOLCTL_ARGS", "inherited")
	dir := t.TempDir()
	count, env := filepath.Join(dir, "count"), filepath.Join(dir, "env")
	h := newHarness(t, Config{Queues: []string{"foo"}, Jobs: map[string][]string{
		"Count": {"sh", "-c", `wc -c > "$1"; printf '%s' "${POOLCTL_ARGS-unset}" > "$2"`, "sh", count, env},
	}})
	huge := `["` + strings.Repeat("x", 900<<10) + `"]`
	h.push("foo", `{"class":"Count","args":`+huge+`}`)
	h.eventually("the big job's outcome", func() bool { return h.stat("resque:stat:processed") != "" || h.stat("resque:stat:failed") != "" })
	if got := h.stat("resque:stat:processed"); got != "1" {
		t.Fatalf("processed = %q, want 1; failures: %v", got, failureTexts(h.failures()))
	}
	if got, _ := os.ReadFile(count); strings.TrimSpace(string(got)) != strconv.Itoa(len(huge)) {
		t.Errorf("the job read %q bytes on stdin, want %d", strings.TrimSpace(string(got)), len(huge))
	}
	if got, _ := os.ReadFile(env); string(got) != "unset" {
		t.Errorf("POOLCTL_ARGS = %.40q, want it unset for big args", got)
	}

	h.push("foo", `{"class":"Count","args":[1,"two"]}`)
	h.eventually("the small job", func() bool { return h.stat("resque:stat:processed") == "2" })
	if got, _ := os.ReadFile(env); string(got) != `[1,"two"]` {
		t.Errorf("POOLCTL_ARGS = %q, want the small job's args", got)
	}
}

func failureTexts(recs []queue.FailureRecord) []string {
	var s []string
	for _, r := range recs {
		s = append(s, r.Exception+": "+r.Error)
	}
	return s
}
