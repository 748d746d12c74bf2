package pool

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// lockPool takes the pool's lock file so that only one master runs per
// pool name. The kernel drops the lock when the master dies, however it
// dies, so a SIGKILLed master never blocks its successor.
func lockPool(p Paths) (unlock func(), err error) {
	f, err := os.OpenFile(p.Lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	// Shells probe the lock briefly (MasterAlive); retry for a moment so a
	// probe racing our start does not look like a running master.
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	for deadline := time.Now().Add(time.Second); err == syscall.EWOULDBLOCK && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			pid := "unknown"
			if b, rerr := os.ReadFile(p.Pid); rerr == nil {
				pid = strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("pool %q is already running (master pid %s)", p.Name, pid)
		}
		return nil, fmt.Errorf("lock %s: %w", p.Lock, err)
	}
	return func() { f.Close() }, nil
}

// MasterAlive reports whether a master holds the pool's lock right now.
func MasterAlive(p Paths) bool {
	f, err := os.OpenFile(p.Lock, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	// A shared probe: concurrent probes never block each other.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return err == syscall.EWOULDBLOCK
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
