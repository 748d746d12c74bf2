package pool

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"golang.org/x/sys/unix"
)

// countStateWrites counts the atomic replacements (renames onto it) of
// the state file at path until the test ends; inotify misses none.
func countStateWrites(t *testing.T, path string) *atomic.Int64 {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		t.Fatalf("inotify watch: %v", err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends Read
	n := &atomic.Int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			k, err := f.Read(buf)
			if err != nil {
				return
			}
			for b := buf[:k]; len(b) >= unix.SizeofInotifyEvent; {
				end := unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(b[12:16]))
				if end > len(b) {
					break
				}
				if string(bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00")) == filepath.Base(path) {
					n.Add(1)
				}
				b = b[end:]
			}
		}
	}()
	t.Cleanup(func() { f.Close(); <-done })
	return n
}

// A burst of changes (300 spawns, then their 300 promotions to running)
// is published in a bounded number of state writes, and the last state
// (everyone running) is always written. Every state that shows the new
// spec lists all of its workers (the shell's config and wait rely on it).
func TestBurstOfChangesIsWrittenInBoundedStateWrites(t *testing.T) {
	const n = 300
	cfg := "workers: {}\ncommand: [\"sleep\", \"1000\"]\nstart_secs: 0.3\nterm_timeout: 5s\n"
	tm := startMaster(t, cfg)
	writes := countStateWrites(t, tm.paths.State)
	tm.writeConfig("workers:\n  foo: 300\ncommand: [\"sleep\", \"1000\"]\nstart_secs: 0.3\nterm_timeout: 5s\n")
	t0 := time.Now()
	tm.signal(syscall.SIGHUP)
	var el time.Duration
	waitStateWithin(t, tm, 30*time.Second, "300 workers running", func(s *State) bool {
		if s.Spec == "foo=300" && len(s.Workers) != n {
			t.Fatalf("a state with the new spec lists %d workers, want all %d", len(s.Workers), n)
		}
		for _, w := range s.Workers {
			if w.State != WorkerRunning {
				return false
			}
		}
		el = time.Since(t0)
		return len(s.Workers) == n
	})
	// Let the watcher catch up with the write just read.
	deadline := time.Now().Add(2 * time.Second)
	for writes.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got := writes.Load()
	// At most one write per interval while the burst lasts, plus the first
	// and the last of it.
	limit := int64(el/stateWriteInterval) + 3
	t.Logf("%d state writes in %s for %d spawns and %d promotions (limit %d)", got, el.Round(time.Millisecond), n, n, limit)
	if got > limit {
		t.Errorf("%d state writes in %s, want at most %d (one per %s)", got, el, limit, stateWriteInterval)
	}
}

// waitStateWithin polls the state file until cond holds, failing
// the test after timeout.
func waitStateWithin(t *testing.T, tm *testMaster, timeout time.Duration, what string, cond func(*State) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if s, err := poolfs.ReadState(tm.paths.State); err == nil && cond(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-tm.Done():
			t.Fatalf("master exited while waiting for %s: %v", what, tm.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// The throttle on its own, on a simulated clock: a change every
// millisecond for a second is written at most once per interval, the
// first at once, and the last no later than one interval after it; a
// change after a quiet interval is written at once.
func TestStateThrottleBoundsWritesAndWritesTheLast(t *testing.T) {
	const interval = 50 * time.Millisecond
	var th stateThrottle
	t0 := time.Unix(1000, 0)
	var writes []time.Time
	var wakeAt time.Time
	pending := false
	flush := func(now time.Time) {
		if !pending {
			return
		}
		write, wait := th.next(now, interval)
		if write {
			writes, pending = append(writes, now), false
			return
		}
		if wait > 0 {
			if !wakeAt.IsZero() {
				t.Fatalf("at %s: a second wake-up scheduled while one is pending", now.Sub(t0))
			}
			wakeAt = now.Add(wait)
		}
	}
	wake := func(now time.Time) {
		if !wakeAt.IsZero() && !now.Before(wakeAt) {
			wakeAt = time.Time{}
			th.armed = false
			flush(now)
		}
	}
	var last time.Time
	for ms := 0; ms < 1000; ms++ {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		wake(now)
		pending, last = true, now
		flush(now)
	}
	for ms := 1000; ms < 1200; ms++ {
		wake(t0.Add(time.Duration(ms) * time.Millisecond))
	}
	if pending {
		t.Fatal("the last change of the burst was never written")
	}
	if !writes[0].Equal(t0) {
		t.Errorf("first write at +%s, want at once", writes[0].Sub(t0))
	}
	if end := writes[len(writes)-1]; end.Before(last) || end.Sub(last) > interval {
		t.Errorf("last write at +%s, last change at +%s: want within %s after it", end.Sub(t0), last.Sub(t0), interval)
	}
	if max := int(time.Second/interval) + 2; len(writes) > max {
		t.Errorf("%d writes for 1000 changes in 1s, want at most %d", len(writes), max)
	}
	for i := 1; i < len(writes); i++ {
		if d := writes[i].Sub(writes[i-1]); d < interval {
			t.Errorf("writes %d and %d only %s apart, want ≥ %s", i-1, i, d, interval)
		}
	}
	// Quiet, then one change: written at once.
	now := writes[len(writes)-1].Add(time.Second)
	pending = true
	flush(now)
	if pending || !writes[len(writes)-1].Equal(now) {
		t.Error("a change after a quiet interval was not written at once")
	}
}
