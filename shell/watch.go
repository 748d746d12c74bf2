package shell

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// watchInterval is how often the shell checks that the master it talks to
// is still there.
const watchInterval = 100 * time.Millisecond

// masterWatch announces at once a master that dies while the shell does
// not expect it to ("master 8830 died: signal KILL"), at the prompt and
// during any command (a log.tail that follows included). The main
// goroutine tells it which master to watch (set) and when a stop is on its
// way (expectExit); its own goroutine polls.
type masterWatch struct {
	mu       sync.Mutex
	pid      int    // the master watched; 0 = none
	child    *child // set when this shell started it: its exit status is known
	expected bool   // this shell asked it to stop
	announce func(msg string)
	redraw   func() // redraws the prompt after an announcement, if any
	stop     chan struct{}
	done     chan struct{}
}

func newMasterWatch(announce func(msg string)) *masterWatch {
	w := &masterWatch{announce: announce, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// set watches master pid (0: none); c is the child when this shell
// started it.
func (w *masterWatch) set(pid int, c *child) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if pid != w.pid {
		w.pid, w.child, w.expected = pid, c, false
	}
}

// expectExit says the watched master was asked to stop: its exit is no
// news.
func (w *masterWatch) expectExit() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.expected = true
	w.mu.Unlock()
}

func (w *masterWatch) setRedraw(fn func()) {
	w.mu.Lock()
	w.redraw = fn
	w.mu.Unlock()
}

// Close stops the watcher.
func (w *masterWatch) Close() {
	close(w.stop)
	<-w.done
}

func (w *masterWatch) run() {
	defer close(w.done)
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		pid, c, expected, redraw := w.pid, w.child, w.expected, w.redraw
		w.mu.Unlock()
		if pid == 0 {
			continue
		}
		how := ""
		if c != nil {
			select {
			case <-c.done:
				how = "died: " + exitText(c.err)
			default:
			}
		} else if !processAlive(pid) {
			how = "exited"
		}
		if how == "" {
			continue
		}
		w.mu.Lock()
		if w.pid == pid {
			w.pid, w.child = 0, nil
		}
		w.mu.Unlock()
		if !expected {
			w.announce(fmt.Sprintf("master %d %s", pid, how))
			if redraw != nil {
				redraw()
			}
		}
	}
}

// exitText describes how a child ended: "signal KILL", "exit status 1".
func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "signal " + strings.TrimPrefix(sigName(ws.Signal()), "SIG")
		}
		return fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// syncWatch points the watcher at the pool's current master.
func (s *Session) syncWatch() {
	pid, ok := s.pool().MasterPID()
	if !ok {
		pid = 0
	}
	var c *child
	if s.owned != nil && s.owned.pid == pid {
		c = s.owned
	}
	s.watch.set(pid, c)
}
