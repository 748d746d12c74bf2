package poolfs

import (
	"os"
	"syscall"
)

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
