// Package procid identifies a process on this host in a way that survives
// pid reuse and clock steps: the kernel's boot id plus the process's start
// time in clock ticks since boot (field 22 of /proc/PID/stat). Neither
// changes when the wall clock is stepped (NTP, a resumed VM), and a later
// process that reuses the pid has a later start time.
package procid

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ID is a process identity. The zero ID is unknown.
type ID struct {
	Boot  string // /proc/sys/kernel/random/boot_id
	Ticks uint64 // start time in clock ticks after boot
}

// String formats id as "BOOT/TICKS", the form stored in Redis.
func (id ID) String() string {
	if id.Boot == "" {
		return ""
	}
	return id.Boot + "/" + strconv.FormatUint(id.Ticks, 10)
}

// Parse reads the form String writes.
func Parse(s string) (ID, error) {
	boot, ticks, ok := strings.Cut(s, "/")
	if !ok || boot == "" {
		return ID{}, fmt.Errorf("malformed process identity %q", s)
	}
	n, err := strconv.ParseUint(ticks, 10, 64)
	if err != nil {
		return ID{}, fmt.Errorf("malformed process identity %q: %w", s, err)
	}
	return ID{Boot: boot, Ticks: n}, nil
}

// BootID is this boot's id.
func BootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Of returns the identity of the live process pid. A zombie or a process
// that is gone is an error.
func Of(pid int) (ID, error) {
	ticks, err := startTicks(pid)
	if err != nil {
		return ID{}, err
	}
	boot, err := BootID()
	if err != nil {
		return ID{}, err
	}
	return ID{Boot: boot, Ticks: ticks}, nil
}

// Self is the identity of the calling process.
func Self() (ID, error) { return Of(os.Getpid()) }

// Alive reports whether pid is a live, non-zombie process. When recorded
// is a well-formed identity, the process must also be the one recorded
// (same boot, same start ticks); when it is empty or malformed, the pid
// alone decides.
func Alive(pid int, recorded string) bool {
	ticks, err := startTicks(pid)
	if err != nil {
		return false
	}
	want, err := Parse(recorded)
	if err != nil {
		return true
	}
	boot, err := BootID()
	if err != nil {
		return true // cannot tell: trust the pid
	}
	return want.Boot == boot && want.Ticks == ticks
}

// startTicks reads a live process's start time in ticks since boot.
func startTicks(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no process %d", pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name may contain spaces and parentheses: fields are
	// counted after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	if f[0][0] == 'Z' || f[0][0] == 'X' {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	ticks, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("process %d: start time: %w", pid, err)
	}
	return ticks, nil
}
