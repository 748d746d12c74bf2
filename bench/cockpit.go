package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/poolctl/poolctl/stats"
)

// cockpit: the sampler's cost. A master with z.Workers idle built-in
// workers over 50 queues (10 queue lists of 5) samples every second; its
// CPU over z.MasterIdle is the sampler's cost plus the master's idle cost
// (lifecycle's master_idle_cpu), which is near zero. The same pool with
// sample_interval: 1h gives that baseline in the same run, and a reader
// of sample.json (as `top` is) the cost of publishing it.
func cockpit(e *env, z sizes, _ int) ([]metric, error) {
	on, _, err := cockpitCPU(e, z, "", false)
	if err != nil {
		return nil, err
	}
	watched, bytes, err := cockpitCPU(e, z, "", true)
	if err != nil {
		return nil, err
	}
	off, _, err := cockpitCPU(e, z, "sample_interval: 1h\n", false)
	if err != nil {
		return nil, err
	}
	return []metric{
		{key: "cockpit_cpu", value: on},
		{key: "cockpit_cpu_watched", value: watched},
		{key: "cockpit_cpu_off", value: off},
		{key: "cockpit_sample_kb", value: float64(bytes) / 1024},
	}, nil
}

// cockpitCPU measures the master's CPU; watched reads sample.json every
// second meanwhile, as a `top` would.
func cockpitCPU(e *env, z sizes, extra string, watched bool) (cpu float64, sampleBytes int64, err error) {
	const lists, perList = 10, 5
	groups := map[string]int{}
	var order []string
	for g := 0; g < lists; g++ {
		var qs []string
		for i := 0; i < perList; i++ {
			qs = append(qs, fmt.Sprintf("q%02d", g*perList+i))
		}
		name := strings.Join(qs, ",")
		groups[name] = max(z.Workers/lists, 1)
		order = append(order, name)
	}
	m, _, err := e.startMaster(e.config(groups, order, extra))
	if err != nil {
		return 0, 0, err
	}
	defer m.stop()
	n := max(z.Workers/lists, 1) * lists
	if _, _, err := m.waitWorkers(n, true, 60*time.Second); err != nil {
		return 0, 0, err
	}
	time.Sleep(1500 * time.Millisecond) // past start_secs: workers promoted, state written
	stop := make(chan struct{})
	if watched {
		go func() {
			for {
				_, _ = stats.ReadFile(m.paths.Sample)
				select {
				case <-stop:
					return
				case <-time.After(time.Second):
				}
			}
		}()
		time.Sleep(2 * time.Second) // the master notices the reader
	}
	start := time.Now()
	c0 := cpuTicks(m.pid)
	time.Sleep(z.MasterIdle)
	c1, took := cpuTicks(m.pid), time.Since(start)
	close(stop)
	if watched {
		smp, err := stats.ReadFile(m.paths.Sample)
		if err != nil {
			return 0, 0, m.failure("no sample published: " + err.Error())
		}
		if len(smp.Queues) != lists*perList || len(smp.Workers) != n {
			return 0, 0, m.failure(fmt.Sprintf("sample has %d queues and %d workers, want %d and %d", len(smp.Queues), len(smp.Workers), lists*perList, n))
		}
		if fi, err := os.Stat(m.paths.Sample); err == nil {
			sampleBytes = fi.Size()
		}
	}
	return float64(c1-c0) / clkTck / took.Seconds() * 100, sampleBytes, nil
}
