package shell

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/internal/proc"
)

// procUsage measures what status shows per worker: the CPU and resident
// memory of each worker process with all its descendants. It reads one
// /proc/PID/stat per process (parent, CPU ticks, start time and RSS are
// all there), where a pstree snapshot asks gopsutil for five files per
// process of the tree and two per other process: with 1,000 workers that
// was most of `status --json`'s 200–400 ms.
//
// CPU% is the rate since the previous measurement of the same process
// (pid and start time), 100 meaning one full core, 0 the first time a
// process is seen (as pstree's). It is safe for concurrent use.
type procUsage struct {
	mu       sync.Mutex
	prev     map[usageKey]cpuSample
	pageSize uint64
	// stats keeps the stat files of the processes it read open between
	// passes: a re-read is one pread instead of open, fcntl, fstat, read,
	// read and close (os.ReadFile), which were 60% of a status of 1,000
	// workers. An open stat file never reports a later process with the
	// same pid.
	stats proc.Reader
}

// usageKey tells a process from a later one with its pid.
type usageKey struct {
	pid   int
	start uint64
}

type cpuSample struct {
	ticks uint64
	at    time.Time
}

// usage is one worker's share of the machine: its own and its
// descendants'.
type usage struct {
	CPUPercent float64
	RSSBytes   uint64
}

func newProcUsage() *procUsage {
	u := &procUsage{prev: map[usageKey]cpuSample{}, pageSize: uint64(os.Getpagesize())}
	// Leave most of the descriptors to the rest of the shell.
	u.stats.MaxOpen = 2048
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur/4 < uint64(u.stats.MaxOpen) {
		u.stats.MaxOpen = max(int(lim.Cur/4), 1)
	}
	return u
}

// of returns the usage of each of pids that is a live child of parent (a
// pid whose process is gone, or now belongs to someone else, is left
// out), from one pass over /proc.
func (u *procUsage) of(parent int, pids []int) (map[int]usage, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	stats := make(map[int]proc.Stat, len(names))
	children := make(map[int][]int, len(pids))
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		st, err := u.stats.Stat(pid)
		if err != nil {
			// A file kept open fails once its process is gone; the pid
			// may be a new process's by now.
			if st, err = u.stats.Stat(pid); err != nil {
				continue // exited meanwhile
			}
		}
		stats[pid] = st
		if st.PPID != pid {
			children[st.PPID] = append(children[st.PPID], pid)
		}
	}

	u.stats.Sweep() // close the files of processes that are gone
	seen := make(map[usageKey]cpuSample, len(pids))
	out := make(map[int]usage, len(pids))
	for _, root := range pids {
		if st, ok := stats[root]; !ok || st.PPID != parent {
			continue
		}
		var sum usage
		stack := []int{root}
		for len(stack) > 0 {
			pid := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			st := stats[pid]
			key := usageKey{pid: pid, start: st.StartTicks}
			if _, dup := seen[key]; dup {
				continue // defensive: a cycle would mean a corrupt scan
			}
			cur := cpuSample{ticks: st.CPUTicks, at: now}
			seen[key] = cur
			if p, ok := u.prev[key]; ok && now.After(p.at) && cur.ticks >= p.ticks {
				sum.CPUPercent += float64(cur.ticks-p.ticks) / proc.ClockTicks / now.Sub(p.at).Seconds() * 100
			}
			sum.RSSBytes += st.RSSPages * u.pageSize
			stack = append(stack, children[pid]...)
		}
		out[root] = sum
	}
	// Keep only what this pass saw: the map follows the pool, not every
	// process that ever ran.
	u.prev = seen
	return out, nil
}
