package poolfs

import (
	"os"
	"strconv"
	"syscall"
	"testing"
)

// A pool whose lock is held by this process looks like a running master
// to the handle; one whose state file outlived its master does not.
func TestHandleTellsALiveMasterFromAStaleStateFile(t *testing.T) {
	base := t.TempDir()
	p := At(base, "demo")
	if err := p.Paths.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := WriteState(p.Paths.State, &State{Name: "demo", PID: os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	if _, live, err := p.State(); err != nil || live {
		t.Fatalf("State() live = %v, %v; want a state file without a master not live", live, err)
	}
	if pools, _ := Running(base); len(pools) != 0 {
		t.Errorf("Running = %v, want none", pools)
	}

	// Take the lock as a master does, and publish the pid and Redis URL.
	f, err := os.OpenFile(p.Paths.Lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// flock locks belong to open files: the probe's own open conflicts
	// with this one even within one process.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(p.Paths.Pid, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	_ = WriteFileAtomic(p.Paths.RedisURL, []byte("redis://:pw@127.0.0.1:1/0\n"))
	pid, ok := p.MasterPID()
	if !ok || pid != os.Getpid() {
		t.Errorf("MasterPID = %d, %v; want %d", pid, ok, os.Getpid())
	}
	if _, live, _ := p.State(); !live {
		t.Errorf("State() not live with the master holding the lock")
	}
	if got := p.RedisURL(); got != "redis://:pw@127.0.0.1:1/0" {
		t.Errorf("RedisURL = %q", got)
	}
	if pools, _ := Running(base); len(pools) != 1 || pools[0].Name() != "demo" {
		t.Errorf("Running = %v, want demo", pools)
	}
}
