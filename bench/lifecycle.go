package main

import (
	"fmt"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
)

const sleepCommand = "command: [\"sleep\", \"1000\"]\n"

func pidsOf(st *poolfs.State) map[int]string {
	out := map[int]string{}
	for _, w := range st.Workers {
		out[w.PID] = w.Queues
	}
	return out
}

// lifecycle: 0 → N built-in workers from the master's exec until all are
// in the state file, in /proc and registered in Redis; then (some runs)
// the idle cost of the master and of the workers; then QUIT until every
// process is gone.
func lifecycle(e *env, z sizes, i int) ([]metric, error) {
	n := z.Workers
	m, t0, err := e.startMaster(e.config(map[string]int{"foo": n}, []string{"foo"}, ""))
	if err != nil {
		return nil, err
	}
	defer m.stop()
	st, t1, err := m.waitWorkers(n, true, 60*time.Second)
	if err != nil {
		return nil, err
	}
	out := []metric{{key: "spawn_builtin", value: t1.Sub(t0).Seconds()}}
	if i < z.IdleRuns {
		time.Sleep(1500 * time.Millisecond) // past start_secs: workers promoted, state written
		if st = m.state(); st == nil || len(st.Workers) != n {
			return nil, m.failure("workers changed while idle")
		}
		sumTicks := func() int64 {
			var t int64
			for _, w := range st.Workers {
				t += cpuTicks(w.PID)
			}
			return t
		}
		start := time.Now()
		m0, w0 := cpuTicks(m.pid), sumTicks()
		time.Sleep(z.WorkerIdle)
		w1, tw := sumTicks(), time.Since(start)
		var rss, anon []float64
		for _, w := range st.Workers {
			rss = append(rss, float64(rssBytes(w.PID))/(1<<20))
			anon = append(anon, float64(statusBytes(w.PID, "RssAnon:"))/(1<<20))
		}
		time.Sleep(z.MasterIdle - z.WorkerIdle)
		m1, tm := cpuTicks(m.pid), time.Since(start)
		out = append(out,
			metric{key: "master_idle_cpu", value: float64(m1-m0) / clkTck / tm.Seconds() * 100},
			metric{key: "master_idle_rss", value: float64(rssBytes(m.pid)) / (1 << 20)},
			metric{key: "worker_idle_cpu", value: float64(w1-w0) / clkTck / tw.Seconds() * 100 / float64(n)},
			metric{key: "worker_idle_rss", value: median(rss)},
			metric{key: "worker_idle_anon", value: median(anon)},
			metric{key: "master_idle_anon", value: float64(statusBytes(m.pid, "RssAnon:")) / (1 << 20)},
		)
	}
	st = m.state()
	pids := pidsOf(st)
	tq := time.Now()
	if err := syscall.Kill(m.pid, syscall.SIGQUIT); err != nil {
		return nil, err
	}
	t2, err := pollUntil(30*time.Second, func() bool {
		if m.alive() {
			return false
		}
		for pid := range pids {
			if procExists(pid) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, m.failure("QUIT did not end every process")
	}
	return append(out, metric{key: "quit", value: t2.Sub(tq).Seconds()}), nil
}

// spawnSleep: a master running an empty config gets a HUP to N `sleep`
// workers; time until the state file shows N live and /proc shows each
// pid exec'd into sleep. The master's CPU over that window / N is the
// CPU per spawn.
func spawnSleep(e *env, z sizes, _ int) ([]metric, error) {
	n := z.Workers
	m, _, err := e.startMaster(e.config(nil, nil, sleepCommand))
	if err != nil {
		return nil, err
	}
	defer m.stop()
	if _, err := pollUntil(10*time.Second, func() bool { return m.state() != nil }); err != nil {
		return nil, m.failure("no state file")
	}
	time.Sleep(200 * time.Millisecond)
	c0 := cpuTicks(m.pid)
	execd := map[int]bool{}
	t0, err := m.reconfigure(e.config(map[string]int{"foo": n}, []string{"foo"}, sleepCommand))
	if err != nil {
		return nil, err
	}
	t1, err := pollUntil(30*time.Second, func() bool {
		st := m.state()
		if st == nil || len(st.Workers) != n || len(st.Groups) != 1 || st.Groups[0].Live != n {
			return false
		}
		for _, w := range st.Workers {
			if !execd[w.PID] {
				if comm(w.PID) != "sleep" {
					return false
				}
				execd[w.PID] = true
			}
		}
		return true
	})
	c1 := cpuTicks(m.pid)
	if err != nil {
		return nil, m.failure("sleep workers did not come up")
	}
	return []metric{
		{key: "spawn_sleep", value: t1.Sub(t0).Seconds()},
		{key: "cpu_per_spawn", value: float64(c1-c0) / clkTck * 1000 / float64(n)},
	}, nil
}

// scaleDown: N idle built-in workers, HUP to N/10; time until the
// surplus are gone from /proc; the kept ones must be the same pids.
func scaleDown(e *env, z sizes, _ int) ([]metric, error) {
	n, keep := z.Workers, max(z.Workers/10, 1)
	m, _, err := e.startMaster(e.config(map[string]int{"foo": n}, []string{"foo"}, ""))
	if err != nil {
		return nil, err
	}
	defer m.stop()
	st, _, err := m.waitWorkers(n, true, 60*time.Second)
	if err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond) // idle: every worker in its blocking wait
	before := pidsOf(st)
	t0, err := m.reconfigure(e.config(map[string]int{"foo": keep}, []string{"foo"}, ""))
	if err != nil {
		return nil, err
	}
	t1, err := pollUntil(30*time.Second, func() bool {
		alive := 0
		for pid := range before {
			if procExists(pid) {
				alive++
			}
		}
		return alive <= keep
	})
	if err != nil {
		return nil, m.failure("surplus workers did not stop")
	}
	after, _, err := m.waitWorkers(keep, true, 10*time.Second)
	if err != nil {
		return nil, err
	}
	note := ""
	for pid := range pidsOf(after) {
		if _, ok := before[pid]; !ok {
			note = fmt.Sprintf("kept worker %d is new: a kept worker was restarted", pid)
		}
	}
	return []metric{{key: "scale_down", value: t1.Sub(t0).Seconds(), note: note}}, nil
}

// hupGrow: foo, bar, baz at 4 built-in workers each; HUP foo to 8; time
// until the 4 new workers run (registered in Redis). Unchanged workers
// must keep their pids.
func hupGrow(e *env, z sizes, _ int) ([]metric, error) {
	from := z.GrowFrom
	order := []string{"foo", "bar", "baz"}
	cfg := map[string]int{"foo": from, "bar": from, "baz": from}
	m, _, err := e.startMaster(e.config(cfg, order, ""))
	if err != nil {
		return nil, err
	}
	defer m.stop()
	st, _, err := m.waitWorkers(3*from, true, 60*time.Second)
	if err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond)
	before := pidsOf(st)
	cfg["foo"] = 2 * from
	total := 4 * from
	t0, err := m.reconfigure(e.config(cfg, order, ""))
	if err != nil {
		return nil, err
	}
	var spawned time.Time
	t1, err := pollUntil(30*time.Second, func() bool {
		if spawned.IsZero() {
			if s := m.state(); s != nil && len(s.Workers) == total {
				spawned = time.Now()
			}
		}
		return e.rdb.SCard(bg, "resque:workers").Val() == int64(total)
	})
	if err != nil {
		return nil, m.failure("new workers did not register")
	}
	if spawned.IsZero() {
		spawned = t1
	}
	after, _, err := m.waitWorkers(total, true, 10*time.Second)
	if err != nil {
		return nil, err
	}
	now := pidsOf(after)
	restarted := 0
	for pid, q := range before {
		if now[pid] != q {
			restarted++
		}
	}
	note := ""
	if restarted > 0 {
		note = fmt.Sprintf("%d unchanged workers restarted", restarted)
	}
	return []metric{
		{key: "hup_grow", value: t1.Sub(t0).Seconds(), note: note},
		{key: "hup_grow_spawned", value: spawned.Sub(t0).Seconds()},
		{key: "hup_restarts", value: float64(restarted)},
	}, nil
}
