package worker

import (
	"context"
	"encoding/json"
	"sync"
	"syscall"
	"testing"
	"time"
)

func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Poolctl::Cpu burns its milliseconds of CPU, not of wall time: eight
// jobs at once on a host with fewer cores still cost eight times the CPU
// of one, so that CPU-bound load stops scaling at the cores (tune, the
// autoscaler's no-gain rule) however the scheduler slices them.
func TestCpuJobBurnsCPUTime(t *testing.T) {
	h := builtinHandler(ClassCpu)
	const jobs, ms = 8, 40
	before := processCPU(t)
	var wg sync.WaitGroup
	for i := 0; i < jobs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h(context.Background(), JobInfo{Class: ClassCpu, Args: json.RawMessage(`[40]`)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	used := processCPU(t) - before
	if want := time.Duration(jobs*ms) * time.Millisecond * 9 / 10; used < want {
		t.Errorf("%d jobs of Poolctl::Cpu %d used %v of CPU, want at least %v", jobs, ms, used, want)
	}
}

// A cancelled Cpu job stops burning at once.
func TestCpuJobStopsWhenCancelled(t *testing.T) {
	h := builtinHandler(ClassCpu)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := h(ctx, JobInfo{Class: ClassCpu, Args: json.RawMessage(`[60000]`)}); err == nil {
		t.Fatal("a cancelled job succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("cancelled job ran %v", took)
	}
}
