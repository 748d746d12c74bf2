package worker

import (
	"os"
	"runtime"
)

// OneProc runs the Go scheduler on one processor unless the user set
// GOMAXPROCS. A worker runs one job at a time; with a processor per core
// its goroutines (the job loop, the acker, the heartbeat) hand work to
// each other across threads, and on a 2-core host each handoff was a
// futex wake and a context switch: GOMAXPROCS=1 halved a draining
// worker's CPU per job (docs/benchmarks.md). Call it first in main.
func OneProc() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
