package pool

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poolLock is a running master's claim on its pool. It has two parts (see
// docs/protocol.md, "Exclusivity: one master per pool"):
//
//   - a Linux abstract unix socket named after the user and the runtime
//     directory, bound for the master's life: nothing on disk can delete
//     it, the kernel releases it when the master dies however it dies, and
//     a second master's bind fails. This is what makes the master unique.
//   - an exclusive flock on master.lock, which shells probe (poolfs.MasterAlive)
//     to tell whether the pool runs. A master re-creates and re-takes it
//     when the file is removed or replaced (refresh).
//
// Its methods other than release are called from the event loop only.
type poolLock struct {
	paths    Paths
	ln       *net.UnixListener
	accepted sync.WaitGroup
	file     *os.File
	dev, ino uint64 // identity of the locked file
}

// claimSocketName is the abstract socket name (Go's "@" prefix) that stands
// for the pool in paths: it derives from the user id and the absolute,
// symlink-free runtime directory, so two masters on the same directory
// meet there whichever way they name it.
func claimSocketName(p Paths) (string, error) {
	dir, err := filepath.Abs(p.Dir)
	if err != nil {
		return "", fmt.Errorf("runtime directory %s: %w", p.Dir, err)
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	sum := sha256.Sum256([]byte(dir))
	return fmt.Sprintf("@poolctl/%d/%x", os.Getuid(), sum[:16]), nil
}

// lockPool claims the pool for this process, so that only one master runs
// per pool. p.Dir must exist.
func lockPool(p Paths) (*poolLock, error) {
	name, err := claimSocketName(p)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, claimHolderError(p, name)
		}
		return nil, fmt.Errorf("claim pool %q (abstract unix socket %q): %w", p.Name, name, err)
	}
	l := &poolLock{paths: p, ln: ln}
	// Accept and drop connections: a second master connects to learn our
	// pid (SO_PEERCRED), and must not fill the backlog.
	l.accepted.Add(1)
	go func() {
		defer l.accepted.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by release
			}
			c.Close()
		}
	}()
	if err := l.lockFile(true); err != nil {
		l.release()
		return nil, err
	}
	return l, nil
}

// claimHolderError says which process holds the pool's socket: its pid
// from the socket's peer credentials, else from the pid file.
func claimHolderError(p Paths, name string) error {
	pid := "unknown"
	if b, err := os.ReadFile(p.Pid); err == nil {
		pid = strings.TrimSpace(string(b))
	}
	c, err := net.DialTimeout("unix", name, time.Second)
	if err == nil {
		defer c.Close()
		var cred *unix.Ucred
		if raw, err := c.(*net.UnixConn).SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) {
				cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
			})
		}
		if cred != nil {
			if int(cred.Uid) != os.Getuid() {
				return fmt.Errorf("pool %q cannot start: its abstract unix socket %q is held by pid %d of uid %d, not by a master of yours", p.Name, name, cred.Pid, cred.Uid)
			}
			pid = strconv.Itoa(int(cred.Pid))
		}
	}
	return fmt.Errorf("pool %q is already running (master pid %s)", p.Name, pid)
}

// lockFile opens (creating it if needed) and flocks the lock file. At
// start it retries for a moment, since a shell's probe (poolfs.MasterAlive) may
// hold the file shortly.
func (l *poolLock) lockFile(atStart bool) error {
	p := l.paths
	f, err := os.OpenFile(p.Lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open lock file: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	for deadline := time.Now().Add(time.Second); atStart && err == syscall.EWOULDBLOCK && time.Now().Before(deadline); {
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
			if atStart {
				return fmt.Errorf("pool %q is already running (master pid %s)", p.Name, pid)
			}
			return fmt.Errorf("lock file %s is locked by another process (pid file says %s)", p.Lock, pid)
		}
		return fmt.Errorf("lock %s: %w", p.Lock, err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return fmt.Errorf("stat lock file %s: %w", p.Lock, err)
	}
	if l.file != nil {
		l.file.Close()
	}
	l.file, l.dev, l.ino = f, uint64(st.Dev), uint64(st.Ino)
	return nil
}

// refresh makes sure the lock file on disk is the one this master holds:
// when it was removed (an age-based /tmp cleaner, rm -rf of the runtime
// directory) or replaced, it re-creates the directory and the file and
// takes the lock again, so shells see the master alive. It reports
// whether it did.
func (l *poolLock) refresh() (bool, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(l.paths.Lock, &st); err == nil && uint64(st.Dev) == l.dev && uint64(st.Ino) == l.ino {
		return false, nil
	}
	if err := l.paths.Ensure(); err != nil {
		return false, err
	}
	if err := l.lockFile(false); err != nil {
		return false, err
	}
	return true, nil
}

// release gives the pool up: the socket name is free again and the lock
// file unlocked. It waits for the accepting goroutine.
func (l *poolLock) release() {
	l.ln.Close()
	l.accepted.Wait()
	if l.file != nil {
		l.file.Close()
	}
}
