package stats

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"github.com/poolctl/poolctl/internal/proc"
)

// hostReader reads the machine's load from /proc, keeping the previous
// CPU counters so that CPU busy % covers the time since the last read.
type hostReader struct {
	prevBusy, prevTotal uint64
}

// read returns the host's load now.
func (h *hostReader) read() (HostSample, error) {
	hs := HostSample{CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := bytes.Fields(b)
		if len(f) >= 3 {
			hs.Load1, _ = strconv.ParseFloat(string(f[0]), 64)
			hs.Load5, _ = strconv.ParseFloat(string(f[1]), 64)
			hs.Load15, _ = strconv.ParseFloat(string(f[2]), 64)
		}
	} else {
		return hs, fmt.Errorf("read load average: %w", err)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := bytes.Cut(b, []byte("\n"))
		if f := bytes.Fields(line); len(f) >= 5 && string(f[0]) == "cpu" {
			var total, idle uint64
			for i, v := range f[1:] {
				n, _ := strconv.ParseUint(string(v), 10, 64)
				total += n
				if i == 3 || i == 4 { // idle, iowait
					idle += n
				}
			}
			busy := total - idle
			if h.prevTotal > 0 && total > h.prevTotal && busy >= h.prevBusy {
				hs.CPUPercent = 100 * float64(busy-h.prevBusy) / float64(total-h.prevTotal)
			}
			h.prevBusy, h.prevTotal = busy, total
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			if v, ok := bytes.CutPrefix(line, []byte("MemAvailable:")); ok {
				hs.MemFreeBytes = kib(v)
			} else if v, ok := bytes.CutPrefix(line, []byte("MemTotal:")); ok {
				hs.MemTotal = kib(v)
			}
		}
	}
	return hs, nil
}

// kib parses " 123456 kB" into bytes.
func kib(v []byte) uint64 {
	f := bytes.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseUint(string(f[0]), 10, 64)
	return n * 1024
}

// procKey tells a process from a later one with its pid.
type procKey struct {
	pid   int
	start uint64
}

// treeReader measures processes and their descendants. It keeps each
// process's CPU ticks between reads (keyed by pid and start time, as pids
// are reused) for CPU % since the last read.
type treeReader struct {
	r        proc.Reader
	pageSize uint64
	prev     map[procKey]uint64 // CPU ticks (own + reaped children) at the last read
	// scanEvery is how many reads pass between full /proc scans that find
	// workers' job processes; between scans, the known ones are re-read.
	scanEvery int
	reads     int
	kids      map[int][]int // worker pid -> descendants found by the last scan
}

func newTreeReader() *treeReader {
	return &treeReader{pageSize: uint64(os.Getpagesize()), prev: map[procKey]uint64{}, scanEvery: 10, kids: map[int][]int{}}
}

// usage is one process tree's resource use.
type usage struct {
	cpuPercent float64
	cpuSeconds float64
	rss        uint64
	procs      int
}

// read measures each root pid with its descendants, dt after the last
// read. A root that is gone reads as zero.
func (t *treeReader) read(roots []int, dt float64) map[int]usage {
	if t.reads%t.scanEvery == 0 {
		t.scan(roots)
	}
	t.reads++
	next := make(map[procKey]uint64, len(t.prev))
	out := make(map[int]usage, len(roots))
	for _, root := range roots {
		var u usage
		for i, pid := range append([]int{root}, t.kids[root]...) {
			s, err := t.r.Stat(pid)
			if err != nil || s.Dead() {
				continue
			}
			if i > 0 && !t.descends(s, root) {
				continue // pid reused by something else since the scan
			}
			ticks := s.CPUTicks + s.ChildTicks
			k := procKey{pid, s.StartTicks}
			if before, ok := t.prev[k]; ok && dt > 0 && ticks >= before {
				u.cpuPercent += 100 * float64(ticks-before) / proc.ClockTicks / dt
			}
			next[k] = ticks
			u.cpuSeconds += float64(ticks) / proc.ClockTicks
			u.rss += s.RSSPages * t.pageSize
			u.procs++
		}
		out[root] = u
	}
	t.prev = next
	t.r.Sweep()
	return out
}

// descends reports whether s's parent chain (as last scanned) leads to
// root; a cheap check that a remembered pid still names the same process.
func (t *treeReader) descends(s proc.Stat, root int) bool {
	if s.PPID == root {
		return true
	}
	for _, k := range t.kids[root] {
		if k == s.PPID {
			return true
		}
	}
	return false
}

// scan finds the descendants of every root in one pass over /proc.
func (t *treeReader) scan(roots []int) {
	t.kids = map[int][]int{}
	if len(roots) == 0 {
		return
	}
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	isRoot := make(map[int]bool, len(roots))
	for _, r := range roots {
		isRoot[r] = true
	}
	parent := map[int]int{}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || isRoot[pid] {
			continue
		}
		if s, err := proc.ReadStat(pid); err == nil && s.PPID > 1 {
			parent[pid] = s.PPID
		}
	}
	for pid := range parent {
		for p, hops := parent[pid], 0; hops < 64; p, hops = parent[p], hops+1 {
			if isRoot[p] {
				t.kids[p] = append(t.kids[p], pid)
				break
			}
			if p == 0 {
				break
			}
		}
	}
}
