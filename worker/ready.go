package worker

import (
	"io"
	"os"
	"strconv"

	"github.com/poolctl/poolctl/internal/workerenv"
)

// takeReadyPipe returns the readiness pipe named by $POOLCTL_READY_FD, or
// nil when there is none. The variable is cleared first, so the
// descriptor is taken once and never mistaken for a later file that
// reuses its number.
func takeReadyPipe() *os.File {
	v := os.Getenv(workerenv.ReadyFD)
	if v == "" {
		return nil
	}
	_ = os.Unsetenv(workerenv.ReadyFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	return os.NewFile(uintptr(fd), "ready")
}

// tellMaster writes one readiness line; a master that stopped listening
// is no reason to stop.
func tellMaster(pipe io.Writer, line string) {
	if pipe != nil {
		_, _ = io.WriteString(pipe, line+"\n")
	}
}
