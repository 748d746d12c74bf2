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
	holdLock(t, p)
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

// holdLock takes the pool's lock as a running master does, until the
// test ends.
func holdLock(t *testing.T, p Pool) {
	t.Helper()
	if err := p.Paths.Ensure(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p.Paths.Lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	// flock locks belong to open files: the probe's own open conflicts
	// with this one even within one process.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
}

// The Redis URL precedence shared by the shell and the client commands,
// and the setting a restart uses.
func TestRedisFor(t *testing.T) {
	base := t.TempDir()
	stopped, running, private := At(base, "stopped"), At(base, "running"), At(base, "private")
	for _, p := range []Pool{running, private} {
		holdLock(t, p)
	}
	// A stopped pool's redis.url (its master was SIGKILLed) is not used.
	for p, u := range map[Pool]string{stopped: "redis://stale:1/0", running: "redis://pool:1/0", private: "unix://" + private.Paths.Redis} {
		if err := p.Paths.Ensure(); err != nil {
			t.Fatal(err)
		}
		if err := WriteFileAtomic(p.Paths.RedisURL, []byte(u+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	const flag, env, cfg = "redis://flag:1/0", "redis://env:1/0", "redis://cfg:1/0"
	tests := []struct {
		pool               Pool
		explicit, env, cfg string
		want               string
		fromPool           bool
	}{
		{running, flag, env, cfg, flag, false},
		{running, "", env, cfg, "redis://pool:1/0", true},
		{running, EmbeddedRedis, env, cfg, "redis://pool:1/0", true},
		{stopped, "", env, cfg, env, false},
		{stopped, "", "", cfg, cfg, false},
		{stopped, "", "", "", "", false},
		{stopped, EmbeddedRedis, env, cfg, "", false},
		{stopped, "", EmbeddedRedis, cfg, "", false},
		{stopped, "", "", EmbeddedRedis, "", false},
		{stopped, "", env, EmbeddedRedis, env, false},
	}
	for _, tt := range tests {
		got, fromPool := tt.pool.RedisFor(tt.explicit, tt.env, tt.cfg)
		if got != tt.want || fromPool != tt.fromPool {
			t.Errorf("%s.RedisFor(%q, %q, %q) = %q, %v; want %q, %v", tt.pool.Name(), tt.explicit, tt.env, tt.cfg, got, fromPool, tt.want, tt.fromPool)
		}
	}
	for p, want := range map[Pool]string{running: "redis://pool:1/0", private: EmbeddedRedis, At(base, "none"): ""} {
		if got := p.RedisSetting(); got != want {
			t.Errorf("%s.RedisSetting() = %q, want %q", p.Name(), got, want)
		}
	}
}
