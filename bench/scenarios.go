package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/pool"
	"github.com/poolctl/poolctl/pstree"
	"github.com/poolctl/poolctl/queue"
	"github.com/redis/go-redis/v9"
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
}

var fullSizes = sizes{
	Runs: 5, SlowRuns: 3, Workers: 100, Status: 200, DrainJobs: 20000,
	DrainWorkers: []int{1, 2, 4, 8}, LatSamples: 250,
	MasterIdle: 20 * time.Second, WorkerIdle: 10 * time.Second, IdleRuns: 3,
	Enqueue: 100000, GrowFrom: 4,
}

var smokeSizes = sizes{
	Runs: 1, SlowRuns: 1, Workers: 6, Status: 6, DrainJobs: 300,
	DrainWorkers: []int{1, 2}, LatSamples: 10,
	MasterIdle: time.Second, WorkerIdle: 500 * time.Millisecond, IdleRuns: 1,
	Enqueue: 1000, GrowFrom: 2,
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
	)
	return ss
}

const sleepCommand = "command: [\"sleep\", \"1000\"]\n"

func pidsOf(st *pool.State) map[int]string {
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

var noop = []byte(`{"class":"Poolctl::Noop","args":[]}`)

// drain: n idle built-in workers; DrainJobs Noop jobs are enqueued at
// once; jobs/s from the first processed job to the last.
func drain(e *env, z sizes, n int) ([]metric, error) {
	m, _, err := e.startMaster(e.config(map[string]int{"drain": n}, []string{"drain"}, ""))
	if err != nil {
		return nil, err
	}
	defer m.stop()
	if _, _, err := m.waitWorkers(n, true, 30*time.Second); err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond)
	total := z.DrainJobs
	payloads := make([][]byte, total)
	for i := range payloads {
		payloads[i] = noop
	}
	type obs struct {
		t time.Time
		p int64
	}
	first, last := make(chan obs, 1), make(chan obs, 1)
	stop := make(chan struct{})
	go func() {
		var seen bool
		deadline := time.Now().Add(5 * time.Minute)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			p, _ := e.rdb.Get(bg, "resque:stat:processed").Int64()
			now := time.Now()
			if p > 0 && !seen {
				seen = true
				first <- obs{now, p}
			}
			if p >= int64(total) {
				last <- obs{now, p}
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	defer close(stop)
	if err := queue.New(e.rdb, "").Enqueue(bg, "drain", payloads...); err != nil {
		return nil, err
	}
	var a, b obs
	select {
	case a = <-first:
	case <-time.After(time.Minute):
		return nil, m.failure("no job processed")
	}
	select {
	case b = <-last:
	case <-time.After(5 * time.Minute):
		return nil, m.failure("queue not drained")
	}
	note := ""
	if f, _ := e.rdb.Get(bg, "resque:stat:failed").Int64(); f > 0 {
		note = fmt.Sprintf("%d jobs failed", f)
	}
	rate := float64(b.p-a.p) / b.t.Sub(a.t).Seconds()
	return []metric{{key: "drain_" + strconv.Itoa(n), value: rate, note: note}}, nil
}

// ceiling: one client pushes the worker's per-job command mix straight
// at Redis, pipelined: one reserve, then per job the AckReserve script the
// busy worker runs (idempotent ack of the previous job plus the next
// reserve), exactly as queue.Client issues it.
func ceiling(e *env, z sizes, _ int) ([]metric, error) {
	total := z.DrainJobs
	payloads := make([][]byte, total)
	for i := range payloads {
		payloads[i] = noop
	}
	q := queue.New(e.rdb, "")
	if err := q.Enqueue(bg, "ceil", payloads...); err != nil {
		return nil, err
	}
	k := q.Keys()
	qs := []string{"ceil"}
	id := queue.WorkerID("benchhost", 1, qs)
	if err := q.LoadScripts(bg); err != nil {
		return nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: e.srv.Addr(), PoolSize: 1})
	defer rdb.Close()
	_ = rdb.Ping(bg).Err()
	const batch = 100
	t0 := time.Now()
	first, err := q.Reserve(bg, id, qs, time.Now())
	if err != nil || first == nil {
		return nil, fmt.Errorf("ceiling: first reserve: %v %v", first, err)
	}
	for done := 0; done < total; {
		b := min(batch, total-done)
		now := time.Now()
		pipe := rdb.Pipeline()
		for j := 0; j < b; j++ {
			// Every payload is noop; the token of each job is the one the
			// previous script reserved it with.
			_, next := q.AckReserveCmd(bg, pipe, id, first, qs, now)
			first = &queue.Job{Queue: first.Queue, Payload: first.Payload, Token: next}
		}
		if _, err := pipe.Exec(bg); err != nil && err != redis.Nil {
			return nil, fmt.Errorf("ceiling pipeline: %w", err)
		}
		done += b
	}
	el := time.Since(t0)
	if p, _ := e.rdb.Get(bg, k.Processed()).Int64(); p != int64(total) {
		return nil, fmt.Errorf("ceiling: processed = %d, want %d", p, total)
	}
	return []metric{{key: "ceiling", value: float64(total) / el.Seconds()}}, nil
}

// monitorEvent is one command seen by MONITOR, stamped by the server.
type monitorEvent struct {
	ts   float64 // seconds, server clock
	kind string  // push, record, ack, wait
}

// monitor streams MONITOR output and classifies the commands the pick-up
// measurement needs.
func monitor(addr, queueName string) (net.Conn, <-chan monitorEvent, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.Write([]byte("MONITOR\r\n")); err != nil {
		c.Close()
		return nil, nil, err
	}
	ch := make(chan monitorEvent, 1024)
	pushKey := `"rpush" "resque:queue:` + strings.ToLower(queueName) + `"`
	go func() {
		defer close(ch)
		r := bufio.NewReaderSize(c, 1<<16)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if !strings.HasPrefix(line, "+") || len(line) < 3 {
				continue
			}
			sp := strings.IndexByte(line, ' ')
			if sp < 0 {
				continue
			}
			ts, err := strconv.ParseFloat(line[1:sp], 64)
			if err != nil {
				continue
			}
			var kind string
			line = strings.ToLower(line) // go-redis sends lower-case command names
			switch {
			case strings.Contains(line, pushKey):
				kind = "push"
			case strings.Contains(line, `"set" "resque:worker:`) && !strings.Contains(line, `:started"`):
				kind = "record"
			case strings.HasSuffix(strings.TrimSpace(line), `"incr" "resque:stat:processed"`):
				kind = "ack"
			case strings.Contains(line, `"blmove"`):
				kind = "wait"
			default:
				continue
			}
			ch <- monitorEvent{ts, kind}
		}
	}()
	return c, ch, nil
}

// latency: one built-in worker idle in BLMOVE; one Noop job at a time.
// MONITOR's server timestamps give RPUSH → SET of the worker record (the
// worker holds the job; its handler is next) and RPUSH → INCR processed
// (the handler has run and the ack is being applied): the handler starts
// between the two. The ack-based figure is the one held to the target.
func latency(e *env, z sizes, _ int) ([]metric, error) {
	m, _, err := e.startMaster(e.config(map[string]int{"lat": 1}, []string{"lat"}, ""))
	if err != nil {
		return nil, err
	}
	defer m.stop()
	if _, _, err := m.waitWorkers(1, true, 30*time.Second); err != nil {
		return nil, err
	}
	conn, events, err := monitor(e.srv.Addr(), "lat")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	q := queue.New(e.rdb, "")
	rng := rand.New(rand.NewSource(1))
	next := func(want string, timeout time.Duration) (float64, error) {
		deadline := time.After(timeout)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return 0, fmt.Errorf("MONITOR connection closed")
				}
				if ev.kind == want {
					return ev.ts, nil
				}
			case <-deadline:
				return 0, fmt.Errorf("no %s seen by MONITOR", want)
			}
		}
	}
	if _, err := next("wait", 12*time.Second); err != nil {
		return nil, m.failure(err.Error())
	}
	var toAck, toRecord []float64
	for i := 0; i < z.LatSamples; i++ {
		time.Sleep(time.Duration(2+rng.Intn(8)) * time.Millisecond) // the worker sits in BLMOVE
		payload := fmt.Sprintf(`{"class":"Poolctl::Noop","args":[%d,%d]}`, i, time.Now().UnixNano())
		if err := q.Enqueue(bg, "lat", []byte(payload)); err != nil {
			return nil, err
		}
		push, err := next("push", 5*time.Second)
		if err != nil {
			return nil, err
		}
		rec, err := next("record", 5*time.Second)
		if err != nil {
			return nil, m.failure(err.Error())
		}
		ack, err := next("ack", 5*time.Second)
		if err != nil {
			return nil, m.failure(err.Error())
		}
		if _, err := next("wait", 5*time.Second); err != nil {
			return nil, m.failure(err.Error())
		}
		toRecord = append(toRecord, (rec-push)*1000)
		toAck = append(toAck, (ack-push)*1000)
	}
	return []metric{
		{key: "latency_p50", value: percentile(toAck, 50)},
		{key: "latency_p99", value: percentile(toAck, 99)},
		{key: "latency_record_p50", value: percentile(toRecord, 50)},
		{key: "latency_record_p99", value: percentile(toRecord, 99)},
	}, nil
}

// status: Status `sleep` workers plus as many registrations in Redis;
// `printf 'status --json\n' | poolctl attach bench` wall time, and the
// in-process building blocks (state file + one process-tree scan +
// queue.Summarize) for comparison. Each run of the scenario takes
// z.Runs samples of each from one pool.
func status(e *env, z sizes, _ int) ([]metric, error) {
	n := z.Status
	m, _, err := e.startMaster(e.config(map[string]int{"foo": n}, []string{"foo"}, sleepCommand))
	if err != nil {
		return nil, err
	}
	defer m.stop()
	if _, _, err := m.waitWorkers(n, false, 60*time.Second); err != nil {
		return nil, err
	}
	q := queue.New(e.rdb, "")
	for i := 0; i < n; i++ {
		if err := q.Register(bg, queue.Registration{ID: queue.WorkerID("benchhost", 100000+i, []string{"foo"}), Started: time.Now()}); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{"foo", "bar", "baz"} {
		_ = q.Enqueue(bg, name, noop, noop, noop)
	}
	out, err := statusInShell(e, m.runtime, n, z.Runs)
	if err != nil {
		return nil, err
	}
	for i := 0; i < z.Runs; i++ {
		// The shell, as a script would run it.
		cmd := exec.Command(e.bin, "attach", "bench")
		cmd.Env = append(os.Environ(), "POOLCTL_RUNTIME_DIR="+m.runtime, "REDIS_URL=")
		cmd.Stdin = strings.NewReader("status --json\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		t0 := time.Now()
		err := cmd.Run()
		el := time.Since(t0)
		var doc struct {
			Workers []json.RawMessage `json:"workers"`
		}
		parsed := false
		for _, line := range strings.Split(stdout.String(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "{") && json.Unmarshal([]byte(line), &doc) == nil {
				parsed = true
				break
			}
		}
		switch {
		case err != nil || !parsed:
			e.logf("status: `poolctl attach` gave no status JSON (%v): %s %s", err, trim(stdout.String()), trim(stderr.String()))
		case len(doc.Workers) != n:
			e.logf("status --json listed %d workers, want %d", len(doc.Workers), n)
		default:
			out = append(out, metric{key: "status_json", value: float64(el.Microseconds()) / 1000})
		}
		if !m.alive() {
			return nil, m.failure("the master died during status")
		}
		// The building blocks, in process, with a fresh Redis connection
		// and a fresh sampler as a one-shot command would have.
		t0 = time.Now()
		st, err := pool.ReadState(m.paths.State)
		if err != nil {
			return nil, err
		}
		tree, err := pstree.NewSampler().Tree(context.Background(), int32(st.PID))
		if err != nil {
			return nil, err
		}
		rdb := redis.NewClient(&redis.Options{Addr: e.srv.Addr(), PoolSize: 1})
		sum, err := queue.New(rdb, st.Namespace).Summarize(bg)
		rdb.Close()
		if err != nil {
			return nil, err
		}
		if _, err := json.Marshal([]any{st, tree, sum}); err != nil {
			return nil, err
		}
		out = append(out, metric{key: "status_blocks", value: float64(time.Since(t0).Microseconds()) / 1000})
		if len(sum.Workers) != n || len(tree.Children) != n {
			return nil, fmt.Errorf("status blocks saw %d registrations and %d children, want %d", len(sum.Workers), len(tree.Children), n)
		}
	}
	return out, nil
}

// statusInShell times the command itself: one attached shell reading
// commands from a pipe; from writing "status --json" until its JSON line
// arrives. The first answer (the CPU sampler's first sight of every
// process) is a warm-up and not counted.
func statusInShell(e *env, runtime string, n, runs int) ([]metric, error) {
	cmd := exec.Command(e.bin, "attach", "bench")
	cmd.Env = append(os.Environ(), "POOLCTL_RUNTIME_DIR="+runtime, "REDIS_URL=")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	lines := bufio.NewReaderSize(stdout, 1<<20)
	var out []metric
	for i := 0; i <= runs; i++ {
		t0 := time.Now()
		if _, err := io.WriteString(stdin, "status --json\n"); err != nil {
			return nil, err
		}
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				return nil, fmt.Errorf("status in shell: %w", err)
			}
			if !strings.HasPrefix(line, "{") {
				continue
			}
			el := time.Since(t0)
			var doc struct {
				Workers []json.RawMessage `json:"workers"`
			}
			if err := json.Unmarshal([]byte(line), &doc); err != nil || len(doc.Workers) != n {
				return nil, fmt.Errorf("status in shell listed %d workers (%v), want %d", len(doc.Workers), err, n)
			}
			if i > 0 {
				out = append(out, metric{key: "status_shell", value: float64(el.Microseconds()) / 1000})
			}
			break
		}
	}
	return out, nil
}

func trim(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// enqueue: wall time of `poolctl enqueue -n N QUEUE Poolctl::Noop`.
func enqueue(e *env, z sizes, _ int) ([]metric, error) {
	cmd := exec.Command(e.bin, "enqueue", "-q", "-n", strconv.Itoa(z.Enqueue), "--redis", e.srv.URL(), "bulk", "Poolctl::Noop")
	cmd.Env = append(os.Environ(), "REDIS_URL=")
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	el := time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("poolctl enqueue: %v: %s", err, out)
	}
	if got := e.rdb.LLen(bg, "resque:queue:bulk").Val(); got != int64(z.Enqueue) {
		return nil, fmt.Errorf("enqueue: queue holds %d jobs, want %d", got, z.Enqueue)
	}
	return []metric{{key: "enqueue", value: el.Seconds()}}, nil
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
