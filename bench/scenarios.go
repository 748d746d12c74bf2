package main

import (
	"sort"
	"strconv"
	"time"
)

// sizes are the scenario sizes: the for a real run, tiny ones for
// the smoke test.
type sizes struct {
	Runs         int   // runs of the fast scenarios
	SlowRuns     int   // runs of the slow ones (idle windows, drains)
	Workers      int   // 100
	Status       int   // 200
	DrainJobs    int   // 20,000
	DrainWorkers []int // 1, 2, 4, 8
	LatSamples   int   // ≥ 200
	MasterIdle   time.Duration
	WorkerIdle   time.Duration
	IdleRuns     int // lifecycle runs that include the idle window
	Enqueue      int // 100,000
	GrowFrom     int // 4 (to 2×)
	Scale        int // 1,000 `sleep` workers (issue 16)
	ScaleIdle    time.Duration
}

var fullSizes = sizes{
	Runs: 5, SlowRuns: 3, Workers: 100, Status: 200, DrainJobs: 20000,
	DrainWorkers: []int{1, 2, 4, 8}, LatSamples: 250,
	MasterIdle: 20 * time.Second, WorkerIdle: 10 * time.Second, IdleRuns: 3,
	Enqueue: 100000, GrowFrom: 4, Scale: 1000, ScaleIdle: 5 * time.Second,
}

var smokeSizes = sizes{
	Runs: 1, SlowRuns: 1, Workers: 6, Status: 6, DrainJobs: 300,
	DrainWorkers: []int{1, 2}, LatSamples: 10,
	MasterIdle: time.Second, WorkerIdle: 500 * time.Millisecond, IdleRuns: 1,
	Enqueue: 1000, GrowFrom: 2, Scale: 20, ScaleIdle: 500 * time.Millisecond,
}

// metric is one measured value of one run.
type metric struct {
	key   string
	value float64
	note  string
}

type scenario struct {
	name string
	runs func(sizes) int
	run  func(e *env, z sizes, i int) ([]metric, error)
}

func scenarios() []scenario {
	fast := func(z sizes) int { return z.Runs }
	slow := func(z sizes) int { return z.SlowRuns }
	ss := []scenario{
		{"lifecycle", fast, lifecycle},
		{"spawn-sleep", fast, spawnSleep},
		{"scale-down", fast, scaleDown},
		{"hup-grow", fast, hupGrow},
	}
	for _, n := range []int{1, 2, 4, 8} {
		n := n
		ss = append(ss, scenario{"drain-" + strconv.Itoa(n), slow, func(e *env, z sizes, i int) ([]metric, error) {
			for _, w := range z.DrainWorkers {
				if w == n {
					return drain(e, z, n)
				}
			}
			return nil, nil
		}})
	}
	ss = append(ss,
		scenario{"ceiling", fast, ceiling},
		scenario{"latency", slow, latency},
		scenario{"status", func(sizes) int { return 1 }, status},
		scenario{"enqueue", fast, enqueue},
		scenario{"cockpit", func(sizes) int { return 1 }, cockpit},
		scenario{"idle", func(sizes) int { return 1 }, idle},
		scenario{"scale", slow, scale},
	)
	return ss
}

func median(xs []float64) float64 { return percentile(xs, 50) }

// percentile is the nearest-rank percentile of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if p == 50 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	i := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
