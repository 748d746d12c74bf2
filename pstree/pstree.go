// Package pstree builds the process tree under a root pid (the pool master)
// with each process's command line, current CPU% and resident memory.
//
// A tree is built from one scan of all processes plus a parent map; it never
// asks gopsutil for Children() per node, which is quadratic and shells out to
// pgrep in gopsutil v3.
package pstree

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/shirou/gopsutil/v3/host"
	"github.com/shirou/gopsutil/v3/process"
)

// ErrNoProcess is returned (wrapped) by Sampler.Tree when the root process
// does not exist.
var ErrNoProcess = errors.New("no such process")

// Proc is one process in the tree.
type Proc struct {
	PID, PPID int32
	// CreateTime is the start time in ms since the epoch (gopsutil
	// CreateTime). With PID it identifies the process, since pids are
	// reused.
	CreateTime int64
	// Cmdline is the full command line, or "[name]" for processes without
	// one (kernel threads, zombies).
	Cmdline string
	// CPUPercent is the CPU use since the previous snapshot of the same
	// Sampler, 100 meaning one full core; 0 the first time a process is
	// seen.
	CPUPercent float64
	// RSSBytes is the resident set size.
	RSSBytes uint64
	// Children are the direct children, sorted by PID.
	Children []*Proc
}

// procKey identifies a process across snapshots.
type procKey struct {
	pid        int32
	createTime int64
}

// Sampler takes snapshots of process trees. It keeps the gopsutil process
// objects of the processes it has reported, keyed by pid and create time, so
// that CPUPercent is the rate since the previous snapshot rather than the
// lifetime average. A Sampler is safe for concurrent use; snapshots are
// serialised.
type Sampler struct {
	mu    sync.Mutex
	known map[procKey]*process.Process
}

// NewSampler returns a Sampler with no history. It enables gopsutil's
// boot-time cache, which saves a read of /proc/stat per process.
func NewSampler() *Sampler {
	host.EnableBootTimeCache(true)
	process.EnableBootTimeCache(true)
	return &Sampler{known: make(map[procKey]*process.Process)}
}

// scanned is what one scan learns about a process.
type scanned struct {
	p    *process.Process
	ppid int32
	ct   int64
}

// Tree returns the process tree rooted at root, including descendants at
// any depth. Processes that exit during the scan are left out. It returns
// an error wrapping ErrNoProcess if root does not exist.
func (s *Sampler) Tree(ctx context.Context, root int32) (*Proc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	all, err := process.ProcessesWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("pstree: list processes: %w", err)
	}
	byPID := make(map[int32]scanned, len(all))
	children := make(map[int32][]int32)
	for _, p := range all {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ppid, err := p.PpidWithContext(ctx)
		if err != nil {
			continue // vanished
		}
		ct, err := p.CreateTimeWithContext(ctx)
		if err != nil {
			continue
		}
		byPID[p.Pid] = scanned{p: p, ppid: ppid, ct: ct}
		if p.Pid != ppid { // pid 0 on some systems is its own parent
			children[ppid] = append(children[ppid], p.Pid)
		}
	}
	if _, ok := byPID[root]; !ok {
		return nil, fmt.Errorf("pstree: process %d: %w", root, ErrNoProcess)
	}

	// Forget processes that no longer exist (same pid, same start time).
	for k := range s.known {
		if sc, ok := byPID[k.pid]; !ok || sc.ct != k.createTime {
			delete(s.known, k)
		}
	}

	visited := make(map[int32]bool)
	var build func(pid int32) *Proc
	build = func(pid int32) *Proc {
		visited[pid] = true
		n := s.describe(ctx, pid, byPID[pid])
		kids := children[pid]
		sort.Slice(kids, func(i, j int) bool { return kids[i] < kids[j] })
		for _, c := range kids {
			if visited[c] { // defensive: a cycle would mean a corrupt scan
				continue
			}
			n.Children = append(n.Children, build(c))
		}
		return n
	}
	return build(root), nil
}

// describe fills in a Proc from the scan, reusing the process object of an
// earlier snapshot for the CPU rate.
func (s *Sampler) describe(ctx context.Context, pid int32, sc scanned) *Proc {
	n := &Proc{PID: pid, PPID: sc.ppid, CreateTime: sc.ct}
	key := procKey{pid: pid, createTime: sc.ct}
	p, ok := s.known[key]
	if !ok {
		p = sc.p
		s.known[key] = p
	}
	// The first call on a fresh object records the CPU times and returns 0.
	if pct, err := p.PercentWithContext(ctx, 0); err == nil {
		n.CPUPercent = pct
	}
	if mi, err := p.MemoryInfoWithContext(ctx); err == nil {
		n.RSSBytes = mi.RSS
	}
	if cmd, err := p.CmdlineWithContext(ctx); err == nil && cmd != "" {
		n.Cmdline = cmd
	} else if name, err := p.NameWithContext(ctx); err == nil {
		n.Cmdline = "[" + name + "]"
	}
	return n
}

// Walk visits p and its descendants depth-first, parents before children,
// passing each one's depth (p itself has depth 0).
func (p *Proc) Walk(fn func(p *Proc, depth int)) {
	p.walk(fn, 0)
}

func (p *Proc) walk(fn func(*Proc, int), depth int) {
	if p == nil {
		return
	}
	fn(p, depth)
	for _, c := range p.Children {
		c.walk(fn, depth+1)
	}
}

// Format renders the tree as one line per process, indented two spaces per
// level, for example:
//
//	12345 poolctl master -c /run/... (cpu 0.0%, rss 12.3 MiB)
//	  12350 poolctl-worker[resque:work] --queues foo (cpu 1.2%, rss 8.1 MiB)
//	    12360 sleep 5 (cpu 0.0%, rss 1.0 MiB)
//
// Control characters in command lines are shown as spaces. Format of a nil
// tree is "".
func Format(p *Proc) string {
	var b strings.Builder
	p.Walk(func(p *Proc, depth int) {
		fmt.Fprintf(&b, "%s%d %s (cpu %.1f%%, rss %s)\n",
			strings.Repeat("  ", depth), p.PID, sanitize(p.Cmdline), p.CPUPercent, HumanBytes(p.RSSBytes))
	})
	return b.String()
}

// sanitize replaces control characters so that a command line stays on one
// line.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// HumanBytes formats a byte count with binary units and one decimal, like
// "512 B", "1.5 KiB" or "12.3 MiB".
func HumanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n) / unit
	i := 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	// Avoid "1024.0 KiB" from rounding just below a unit boundary.
	if v >= unit-0.05 && i < len(units)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
