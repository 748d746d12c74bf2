// Package procid identifies a process on this host in a way that survives
// pid reuse and clock steps: the kernel's boot id plus the process's start
// time in clock ticks since boot (field 22 of /proc/PID/stat). Neither
// changes when the wall clock is stepped (NTP, a resumed VM), and a later
// process that reuses the pid has a later start time.
package procid

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/poolctl/poolctl/internal/proc"
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

// Of returns the identity of process pid, live or a zombie not yet
// reaped (its identity is still its own); a pid with no process is an
// error.
func Of(pid int) (ID, error) {
	if pid <= 0 {
		return ID{}, fmt.Errorf("no process %d", pid)
	}
	st, err := proc.ReadStat(pid)
	if err != nil {
		return ID{}, err
	}
	boot, err := BootID()
	if err != nil {
		return ID{}, err
	}
	return ID{Boot: boot, Ticks: st.StartTicks}, nil
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
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	if st.Dead() {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return st.StartTicks, nil
}
