package main

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"time"

	"github.com/poolctl/poolctl/queue"
)

// idleSize is the idle scenario's scale: the 200 `*` workers over
// 1,000 queues, or a tiny pool for the smoke test.
type idleSize struct {
	workers, queues, samples int
	settle, window           time.Duration
}

func idleSizes(z sizes) idleSize {
	if z.Workers < fullSizes.Workers { // the smoke sizes
		return idleSize{workers: 3, queues: 20, samples: 3, settle: 500 * time.Millisecond, window: time.Second}
	}
	return idleSize{workers: 200, queues: 1000, samples: 40, settle: 3 * time.Second, window: 10 * time.Second}
}

func idleRows(z sizes) []row {
	s := idleSizes(z)
	return []row{
		{key: "idle_redis_cpu", label: fmt.Sprintf("%d idle `*` workers over %d queues: Redis CPU (of one core)", s.workers, s.queues), unit: "%", target: "< 5 %", limit: 5, zeroOK: true},
		{key: "idle_cmds_per_worker", label: "  … Redis commands/s per idle worker (INFO commandstats)", unit: "cmd/s", info: true, zeroOK: true},
		{key: "idle_pickup_p50", label: "  … pick-up p50, job pushed by poolctl's enqueue path", unit: "ms", info: true},
		{key: "idle_pickup_p99", label: "  … pick-up p99, job pushed by poolctl's enqueue path", unit: "ms", target: "≤ 100 ms", limit: 100},
		{key: "idle_foreign_p50", label: "  … pick-up p50, plain RPUSH (foreign producer)", unit: "ms", info: true},
		{key: "idle_foreign_p99", label: "  … pick-up p99, plain RPUSH (foreign producer)", unit: "ms", target: "≤ 1,000 ms", limit: 1000},
	}
}

// idle: a pool of `*` workers over many empty queues sits idle; Redis's
// own counters (INFO commandstats, INFO cpu) say what they cost it over a
// window. Then single jobs are pushed to random queues, by poolctl's
// enqueue path (queue.Client.Enqueue, what `poolctl enqueue` calls) and
// by a plain RPUSH (a foreign producer such as Ruby's Resque.push), and
// the time until a worker has taken each one (LLEN back to 0) is its
// pick-up latency. The master's sampler is off (sample_interval: 1h) so
// that only the workers are measured.
func idle(e *env, z sizes, _ int) ([]metric, error) {
	s := idleSizes(z)
	names := make([]any, s.queues)
	for i := range names {
		names[i] = fmt.Sprintf("q%04d", i)
	}
	if err := e.rdb.SAdd(bg, "resque:queues", names...).Err(); err != nil {
		return nil, err
	}
	m, _, err := e.startMaster(e.config(map[string]int{"*": s.workers}, []string{"*"}, "sample_interval: 1h\n"))
	if err != nil {
		return nil, err
	}
	defer m.stop()
	if _, _, err := m.waitWorkers(s.workers, true, 120*time.Second); err != nil {
		return nil, err
	}
	time.Sleep(s.settle) // let every worker reach its idle steady state

	calls0, cpu0, err := redisCounters(e)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	time.Sleep(s.window)
	calls1, cpu1, err := redisCounters(e)
	if err != nil {
		return nil, err
	}
	el := time.Since(t0).Seconds()
	// Our own two INFO calls are not the workers'.
	cmds := (calls1 - calls0 - 2) / el / float64(s.workers)
	cpu := (cpu1 - cpu0) / el * 100

	q := queue.New(e.rdb, "")
	rng := rand.New(rand.NewSource(1))
	pickup := func(foreign bool) (float64, error) {
		name := names[rng.Intn(len(names))].(string)
		payload := []byte(fmt.Sprintf(`{"class":"Poolctl::Noop","args":[%d]}`, time.Now().UnixNano()))
		t0 := time.Now()
		var err error
		if foreign {
			err = e.rdb.RPush(bg, "resque:queue:"+name, payload).Err()
		} else {
			err = q.Enqueue(bg, name, payload)
		}
		if err != nil {
			return 0, err
		}
		t1, err := pollUntil(10*time.Second, func() bool { return e.rdb.LLen(bg, "resque:queue:"+name).Val() == 0 })
		if err != nil {
			return 0, m.failure("no idle worker took a job pushed to " + name)
		}
		return float64(t1.Sub(t0).Microseconds()) / 1000, nil
	}
	var own, foreign []float64
	for i := 0; i < s.samples; i++ {
		// Idle long enough between jobs for the workers to back off again.
		time.Sleep(time.Duration(1500+rng.Intn(500)) * time.Millisecond)
		v, err := pickup(i%2 == 1)
		if err != nil {
			return nil, err
		}
		if i%2 == 1 {
			foreign = append(foreign, v)
		} else {
			own = append(own, v)
		}
	}
	return []metric{
		{key: "idle_redis_cpu", value: cpu},
		{key: "idle_cmds_per_worker", value: cmds},
		{key: "idle_pickup_p50", value: percentile(own, 50)},
		{key: "idle_pickup_p99", value: percentile(own, 99)},
		{key: "idle_foreign_p50", value: percentile(foreign, 50)},
		{key: "idle_foreign_p99", value: percentile(foreign, 99)},
	}, nil
}

// redisCounters returns Redis's total commands processed (the sum of
// INFO commandstats calls) and its CPU time in seconds (used_cpu_sys +
// used_cpu_user, main thread and children alike).
func redisCounters(e *env) (calls, cpu float64, err error) {
	stats, err := e.rdb.Info(bg, "commandstats").Result()
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(stats, "\n") {
		_, rest, ok := strings.Cut(line, ":calls=")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		v, _ := strconv.ParseFloat(n, 64)
		calls += v
	}
	info, err := e.rdb.Info(bg, "cpu").Result()
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		}
	}
	return calls, cpu, nil
}
