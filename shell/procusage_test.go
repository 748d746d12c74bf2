package shell

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// startGroup starts argv in a process group of its own and kills the
// group (by the leader's pid) when the test ends.
func startGroup(t *testing.T, argv ...string) int {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return pid
}

// A worker's usage includes its descendants: an idle shell whose child
// spins shows CPU (from the second measurement on, the first being the
// baseline) and the memory of both; a pid that is not the parent's child
// is left out.
func TestProcUsageSumsDescendantsAndSkipsStrangers(t *testing.T) {
	root := startGroup(t, "sh", "-c", `sh -c 'while :; do :; done' & wait`)
	idle := startGroup(t, "sleep", "1000")
	u := newProcUsage()
	first, err := u.of(os.Getpid(), []int{root, idle})
	if err != nil {
		t.Fatal(err)
	}
	if first[root].CPUPercent != 0 {
		t.Errorf("first measurement CPU = %v, want 0 (no baseline yet)", first[root].CPUPercent)
	}
	if first[idle].RSSBytes == 0 {
		t.Errorf("sleep's RSS = 0, want its resident memory")
	}
	deadline := time.Now().Add(10 * time.Second)
	var got map[int]usage
	for {
		time.Sleep(50 * time.Millisecond) // a measurement window, not a synchronisation
		if got, err = u.of(os.Getpid(), []int{root, idle}); err != nil {
			t.Fatal(err)
		}
		if got[root].CPUPercent > 0 || time.Now().After(deadline) {
			break
		}
	}
	if got[root].CPUPercent <= 0 {
		t.Errorf("root whose child spins: CPU = %v, want > 0 (descendants count)", got[root].CPUPercent)
	}
	if got[root].RSSBytes <= got[idle].RSSBytes {
		t.Errorf("root (sh + spinning sh) RSS %d not above one sleep's %d: the child's memory is missing", got[root].RSSBytes, got[idle].RSSBytes)
	}
	if got[idle].CPUPercent > 50 {
		t.Errorf("sleep CPU = %v, want ~0", got[idle].CPUPercent)
	}
	stranger, err := u.of(1, []int{root})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := stranger[root]; ok {
		t.Errorf("pid %d reported as a child of pid 1", root)
	}
}
