package worker

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// waitExited blocks until the child pid has ended, without reaping it: as
// long as it is an unreaped zombie, its pid still names its process group
// and cannot be reused, so signalling -pid reaches only what is left of
// the job.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		return nil
	}
}
