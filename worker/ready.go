package worker

import (
	"os"
	"strconv"

	"github.com/poolctl/poolctl/internal/workerenv"
)

// announceReady tells the master that the worker is registered in Redis:
// it writes a line to the pipe named by $POOLCTL_READY_FD and closes it.
// The variable is cleared first, so the descriptor is used once and never
// taken for a later file that reuses its number.
func announceReady() {
	v := os.Getenv(workerenv.ReadyFD)
	if v == "" {
		return
	}
	_ = os.Unsetenv(workerenv.ReadyFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	_, _ = f.WriteString("ready\n")
	_ = f.Close()
}
