// Package proc reads Linux's process table (/proc): the one parser of
// /proc/PID/stat that the master, the worker, process identities
// (internal/procid), the tests and the benchmark share.
package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// ClockTicks is USER_HZ, the unit of the tick counts in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const ClockTicks = 100

// Stat is what poolctl reads of /proc/PID/stat.
type Stat struct {
	PID      int
	PPID     int
	PGID     int
	State    byte   // 'R', 'S', 'D', 'T', 'Z', ...
	CPUTicks uint64 // user + system time
	// ChildTicks is the user + system time of its children that it has
	// waited for (a worker's finished job processes).
	ChildTicks uint64
	StartTicks uint64 // start time after boot
	RSSPages   uint64 // resident set size in pages
}

// Dead reports whether the process has exited (a zombie waiting to be
// reaped, or on its way out).
func (s Stat) Dead() bool { return s.State == 'Z' || s.State == 'X' }

// ReadStat reads /proc/PID/stat. An error means there is no such process
// (or /proc is unreadable).
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return ParseStat(pid, b)
}

// ParseStat parses the contents of /proc/PID/stat:
// "pid (comm) state ppid pgrp ...". The command name may contain spaces
// and parentheses, so fields are counted after the last ')'.
func ParseStat(pid int, b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("process %d: malformed stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 22 || len(f[0]) == 0 {
		return Stat{}, fmt.Errorf("process %d: malformed stat", pid)
	}
	num := func(k int) uint64 { n, _ := strconv.ParseUint(string(f[k]), 10, 64); return n }
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgid, err2 := strconv.Atoi(string(f[2]))
	start, err3 := strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Stat{}, fmt.Errorf("process %d: malformed stat", pid)
	}
	return Stat{PID: pid, PPID: ppid, PGID: pgid, State: f[0][0], CPUTicks: num(11) + num(12), ChildTicks: num(13) + num(14), StartTicks: start, RSSPages: num(21)}, nil
}

// Children lists the processes whose parent is ppid, from one pass over
// /proc (/proc/PID/task/TID/children would be cheaper, but kernels built
// without CONFIG_PROC_CHILDREN lack it). Processes that vanish while it
// reads are skipped.
func Children(ppid int) ([]Stat, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var kids []Stat
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if s, err := ReadStat(pid); err == nil && s.PPID == ppid {
			kids = append(kids, s)
		}
	}
	return kids, nil
}

// BootTime is when this machine booted, by the wall clock (btime in
// /proc/stat). Use it only to show times: a clock step moves it.
func BootTime() (time.Time, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			sec, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("read boot time: %w", err)
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("no btime in /proc/stat")
}

// Reader reads /proc/PID/stat files with a reused buffer and bare system
// calls, and keeps up to MaxOpen of them open between reads: re-reading an
// open stat file is one pread, where os.ReadFile costs six system calls
// and an allocation. A sampler that reads a hundred of them every second
// pays a fifth as much. An open stat file belongs to one process: once it
// exits, reads fail (ESRCH) even if its pid is reused, so a cached file
// never reports another process. Close releases the files.
type Reader struct {
	// MaxOpen caps the files kept open (0 = 256).
	MaxOpen int
	buf     [1024]byte
	path    []byte
	open    map[int]int // pid -> fd
	used    map[int]bool
}

// Stat reads /proc/PID/stat as ReadStat does.
func (r *Reader) Stat(pid int) (Stat, error) {
	if r.open == nil {
		r.open, r.used = map[int]int{}, map[int]bool{}
	}
	if fd, ok := r.open[pid]; ok {
		n, err := syscall.Pread(fd, r.buf[:], 0)
		if err == nil && n > 0 {
			r.used[pid] = true
			return ParseStat(pid, r.buf[:n])
		}
		syscall.Close(fd)
		delete(r.open, pid)
		return Stat{}, fmt.Errorf("process %d: gone", pid)
	}
	r.path = append(strconv.AppendInt(append(r.path[:0], "/proc/"...), int64(pid), 10), "/stat"...)
	fd, err := syscall.Open(string(r.path), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return Stat{}, fmt.Errorf("process %d: %w", pid, err)
	}
	n, err := syscall.Pread(fd, r.buf[:], 0)
	max := r.MaxOpen
	if max <= 0 {
		max = 256
	}
	if err == nil && len(r.open) < max {
		r.open[pid], r.used[pid] = fd, true
	} else {
		syscall.Close(fd)
	}
	if err != nil {
		return Stat{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return ParseStat(pid, r.buf[:n])
}

// Sweep closes the files of processes not read since the last Sweep.
func (r *Reader) Sweep() {
	for pid, fd := range r.open {
		if !r.used[pid] {
			syscall.Close(fd)
			delete(r.open, pid)
		}
	}
	clear(r.used)
}

// Close closes every file the reader keeps open.
func (r *Reader) Close() {
	for pid, fd := range r.open {
		syscall.Close(fd)
		delete(r.open, pid)
	}
}
