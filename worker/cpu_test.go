package worker

import (
	"context"
	"encoding/json"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Poolctl::Cpu burns CPU time, not wall time: with more jobs at once than
// CPUs, each takes longer by the wall clock and together they use as
// much CPU as they asked for, as real CPU-bound work does (the autoscaler's
// no-gain rule and load tests depend on it).
func TestCpuJobBurnsCPUTime(t *testing.T) {
	h, _ := builtinHandler(ClassCpu)
	const ms, jobs = 40, 3
	n := runtime.NumCPU() * jobs
	cpu0, wall0 := processCPU(), time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.run(context.Background(), JobInfo{Class: ClassCpu, Args: json.RawMessage("[40]")}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	cpu, wall := processCPU()-cpu0, time.Since(wall0)
	want := time.Duration(n) * ms * time.Millisecond
	if cpu < want*9/10 {
		t.Errorf("%d jobs of %d ms used %s of CPU, want at least %s", n, ms, cpu, want*9/10)
	}
	// On all CPUs at once, they cannot finish sooner than their CPU allows.
	if floor := want / time.Duration(runtime.NumCPU()) * 8 / 10; wall < floor {
		t.Errorf("%d jobs of %d ms CPU took %s by the wall clock on %d CPUs, want at least %s", n, ms, wall, runtime.NumCPU(), floor)
	}
}
