package metrics

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/stats"
)

// Source is where the metrics come from: the master's latest sample and
// the pool state it was taken with (stats.Sampler satisfies it). Either
// may be nil before the first sample.
type Source interface {
	Latest() (*stats.Sample, *poolfs.State)
}

const ns = "poolctl"

// Label names. Every label is bounded by the configuration or the
// queues, classes and states the pool knows: never a pid or a job id.
const (
	labelQueues = "queues" // a queue list of the configuration
	labelReason = "reason" // why a worker was recycled: rss, jobs, lifetime (other)
	labelQueue  = "queue"  // one queue
	labelClass  = "class"  // a job class
	labelState  = "state"  // one of a fixed set of states
)

// recycleKinds are the values of the reason label; groupStates and
// queueStates those of the state label.
var (
	recycleKinds = []string{"rss", "jobs", "lifetime"}
	groupStates  = []string{poolfs.GroupOK, poolfs.GroupBackoff, poolfs.GroupFatal}
	queueStates  = []string{stats.QueueEmpty, stats.QueueDraining, stats.QueueBusy, stats.QueueStalled, stats.QueueGrowing}
)

// descs are the descriptions of every metric the collector exports.
type descs struct {
	desired, live, groupState, spawns, restarts, recycles *prometheus.Desc

	autoscaleOn, autoscaleMin, autoscaleMax, autoscaleTargetWait *prometheus.Desc

	workerCPU, workerRSS, workerProcs *prometheus.Desc

	depth, inFlight, processed, failed         *prometheus.Desc
	inRate, outRate, eta, queueState, waitSecs *prometheus.Desc

	jobDuration, classFailed *prometheus.Desc

	load1, load5, load15, hostCPU, memFree, memTotal *prometheus.Desc

	sampleTime, redisUp *prometheus.Desc
}

func newDescs() descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
	}
	return descs{
		desired:    d("workers_desired", "Workers configured for the queue list.", labelQueues),
		live:       d("workers_live", "Live workers of the queue list (started, not stopping).", labelQueues),
		groupState: d("group_state", "1 for the queue list's state (ok, backoff or fatal), 0 for the others.", labelQueues, labelState),
		spawns:     d("spawns_total", "Workers started for the queue list since the master started.", labelQueues),
		restarts:   d("restarts_total", "Workers of the queue list that exited unasked and were replaced, since the master started.", labelQueues),
		recycles:   d("worker_recycles_total", "Workers of the queue list recycled since the master started, by reason (rss, jobs, lifetime); present for queue lists with recycling limits.", labelQueues, labelReason),

		autoscaleOn:         d("autoscale_enabled", "1 when the autoscaler sets the queue list's count, 0 when a shell pinned it at its configured count (autoscale off); present only for autoscaled queue lists.", labelQueues),
		autoscaleMin:        d("autoscale_min_workers", "The autoscaled queue list's lower bound.", labelQueues),
		autoscaleMax:        d("autoscale_max_workers", "The autoscaled queue list's upper bound.", labelQueues),
		autoscaleTargetWait: d("autoscale_target_wait_seconds", "How long the autoscaler lets a job of the queue list wait at most (target_wait).", labelQueues),

		workerCPU:   d("worker_cpu_seconds_total", "CPU time used by the queue list's workers and their job processes, in seconds (as seen by the sampler).", labelQueues),
		workerRSS:   d("worker_resident_memory_bytes", "Resident memory of the queue list's workers and their job processes, summed.", labelQueues),
		workerProcs: d("worker_processes", "Processes in the queue list's workers' trees (workers and their jobs).", labelQueues),

		depth:      d("queue_depth", "Jobs waiting in the queue (LLEN).", labelQueue),
		inFlight:   d("queue_in_flight", "Jobs of the queue this pool's workers are running.", labelQueue),
		processed:  d("jobs_processed_total", "Jobs of the queue finished (successes and failures), all hosts.", labelQueue),
		failed:     d("jobs_failed_total", "Jobs of the queue that failed, all hosts.", labelQueue),
		inRate:     d("queue_in_rate", "Jobs arriving in the queue per second, 10 s average.", labelQueue),
		outRate:    d("queue_out_rate", "Jobs of the queue finishing per second, 10 s average.", labelQueue),
		eta:        d("queue_eta_seconds", "Time until the queue is empty at the current rates; present only while it drains.", labelQueue),
		queueState: d("queue_state", "1 for the queue's state (empty, draining, busy, stalled or growing), 0 for the others.", labelQueue, labelState),
		waitSecs:   d("queue_wait_seconds", "How long jobs wait in the queue: measured from enqueued_at stamps, else estimated as depth / out rate.", labelQueue),

		jobDuration: d("job_duration_seconds", "Run time of jobs of the class on the pool's queues, all hosts.", labelClass),
		classFailed: d("job_class_failed_total", "Jobs of the class that failed on the pool's queues, all hosts.", labelClass),

		load1:    d("host_load1", "Host load average over 1 minute."),
		load5:    d("host_load5", "Host load average over 5 minutes."),
		load15:   d("host_load15", "Host load average over 15 minutes."),
		hostCPU:  d("host_cpu_busy_ratio", "Busy share of all the host's CPUs since the previous sample (0 to 1)."),
		memFree:  d("host_memory_free_bytes", "Memory available on the host (MemAvailable)."),
		memTotal: d("host_memory_total_bytes", "Memory of the host."),

		sampleTime: d("sample_timestamp_seconds", "When the sample these figures come from was taken (Unix time)."),
		redisUp:    d("redis_up", "1 when the latest sample read Redis, 0 when it could not (queue figures are then the last known)."),
	}
}

func (d *descs) all() []*prometheus.Desc {
	return []*prometheus.Desc{
		d.desired, d.live, d.groupState, d.spawns, d.restarts, d.recycles,
		d.autoscaleOn, d.autoscaleMin, d.autoscaleMax, d.autoscaleTargetWait,
		d.workerCPU, d.workerRSS, d.workerProcs,
		d.depth, d.inFlight, d.processed, d.failed, d.inRate, d.outRate, d.eta, d.queueState, d.waitSecs,
		d.jobDuration, d.classFailed,
		d.load1, d.load5, d.load15, d.hostCPU, d.memFree, d.memTotal,
		d.sampleTime, d.redisUp,
	}
}

// collector turns the latest sample and state into const metrics at
// scrape time: it never samples anything itself.
type collector struct {
	src Source
	d   descs

	// cpu keeps worker CPU time monotonic across scrapes (see cpuSeconds).
	mu  sync.Mutex
	cpu cpuTotals
}

// newCollector returns the collector of src's figures.
func newCollector(src Source) *collector {
	return &collector{src: src, d: newDescs(), cpu: cpuTotals{workers: map[workerKey]*workerCPU{}, departed: map[string]float64{}}}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.d.all() {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, st := c.src.Latest()
	e := emitter{ch: ch}
	d := &c.d
	if st != nil {
		seen := map[string]bool{}
		for _, g := range st.Groups {
			q := labelValue(g.Queues)
			if seen[q] {
				continue
			}
			seen[q] = true
			e.gauge(d.desired, float64(g.Desired), q)
			e.gauge(d.live, float64(g.Live), q)
			for _, state := range groupStates {
				e.gauge(d.groupState, bool01(g.State == state), q, state)
			}
			e.counter(d.spawns, float64(g.Spawns), q)
			e.counter(d.restarts, float64(g.Restarts), q)
			if g.Recycle != nil || len(g.Recycled) > 0 {
				for _, kind := range recycleKinds {
					e.counter(d.recycles, float64(g.Recycled[kind]), q, kind)
				}
				if n := g.Recycled["other"]; n > 0 {
					e.counter(d.recycles, float64(n), q, "other")
				}
			}
			if a := g.Autoscale; a != nil {
				e.gauge(d.autoscaleOn, bool01(a.Mode == poolfs.AutoscaleOn), q)
				e.gauge(d.autoscaleMin, float64(a.Min), q)
				e.gauge(d.autoscaleMax, float64(a.Max), q)
				e.gauge(d.autoscaleTargetWait, a.TargetWait, q)
			}
		}
	}
	if s == nil {
		return
	}
	e.gauge(d.sampleTime, float64(s.TS.Unix())+float64(s.TS.Nanosecond())/1e9)
	e.gauge(d.redisUp, bool01(s.RedisError == ""))

	h := s.Host
	e.gauge(d.load1, h.Load1)
	e.gauge(d.load5, h.Load5)
	e.gauge(d.load15, h.Load15)
	e.gauge(d.hostCPU, h.CPUPercent/100)
	e.gauge(d.memFree, float64(h.MemFreeBytes))
	e.gauge(d.memTotal, float64(h.MemTotal))

	seen := map[string]bool{}
	for _, x := range s.Queues {
		q := labelValue(x.Name)
		if seen[q] {
			continue
		}
		seen[q] = true
		e.gauge(d.depth, float64(x.Depth), q)
		e.gauge(d.inFlight, float64(x.InFlight), q)
		e.counter(d.processed, float64(x.Processed), q)
		e.counter(d.failed, float64(x.Failed), q)
		e.gauge(d.inRate, x.InRate, q)
		e.gauge(d.outRate, x.OutRate, q)
		if x.ETASeconds != nil {
			e.gauge(d.eta, *x.ETASeconds, q)
		}
		if x.WaitSeconds != nil {
			e.gauge(d.waitSecs, x.WaitSeconds.Seconds, q)
		}
		if x.State != "" {
			for _, state := range queueStates {
				e.gauge(d.queueState, bool01(x.State == state), q, state)
			}
		}
	}

	seen = map[string]bool{}
	for _, x := range s.Classes {
		cl := labelValue(x.Class)
		if seen[cl] {
			continue
		}
		seen[cl] = true
		count, sum, buckets := promBuckets(x.Timing)
		e.add(prometheus.NewConstHistogram(d.jobDuration, count, sum, buckets, cl))
		e.counter(d.classFailed, float64(x.Failed), cl)
	}

	// Per queue list (by label value: two lists that only an encoding
	// error tells apart are one series).
	type perList struct {
		rss, procs, cpu float64
		workers         bool
	}
	lists := map[string]*perList{}
	var order []string
	list := func(queues string) *perList {
		q := labelValue(queues)
		p := lists[q]
		if p == nil {
			p = &perList{}
			lists[q] = p
			order = append(order, q)
		}
		return p
	}
	for _, w := range s.Workers {
		p := list(w.Queues)
		p.rss += float64(w.RSSBytes)
		p.procs += float64(w.Procs)
		p.workers = true
	}
	for ql, v := range c.cpuSeconds(s, st) {
		list(ql).cpu += v
	}
	for _, q := range order {
		p := lists[q]
		if p.workers {
			e.gauge(d.workerRSS, p.rss, q)
			e.gauge(d.workerProcs, p.procs, q)
		}
		e.counter(d.workerCPU, p.cpu, q)
	}
}

// cpuTotals makes the CPU time of a queue list's workers a true counter:
// the sampler reports each live worker tree's CPU time, which drops when
// a job process or a worker exits. Each worker's growth between scrapes
// is added to its own total; a worker gone keeps its total in its queue
// list's. CPU used after the last scrape by a process that then exited is
// not seen (nothing polls between scrapes).
type cpuTotals struct {
	workers  map[workerKey]*workerCPU
	departed map[string]float64 // queue list → CPU seconds of workers gone
}

// workerKey is a worker: a later process reusing its pid for another
// queue list is another worker (one for the same list within a scrape
// interval is taken for the same; its CPU counts from its first growth).
type workerKey struct {
	pid    int
	queues string
}

type workerCPU struct {
	queues string
	last   float64 // the sampler's figure at the previous scrape
	total  float64 // growth seen so far
	seen   bool    // in the current scrape
}

// cpuSeconds returns each queue list's worker CPU seconds, monotonic
// between scrapes of one master.
func (c *collector) cpuSeconds(s *stats.Sample, st *poolfs.State) map[string]float64 {
	configured := map[string]bool{}
	if st != nil {
		for _, g := range st.Groups {
			configured[g.Queues] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &c.cpu
	for _, w := range t.workers {
		w.seen = false
	}
	for _, ws := range s.Workers {
		k := workerKey{ws.PID, ws.Queues}
		w := t.workers[k]
		switch {
		case w == nil:
			w = &workerCPU{queues: ws.Queues, total: max(ws.CPUSeconds, 0)}
			t.workers[k] = w
		case ws.CPUSeconds > w.last:
			w.total += ws.CPUSeconds - w.last
		}
		w.last, w.seen = ws.CPUSeconds, true
	}
	out := map[string]float64{}
	for k, w := range t.workers {
		if !w.seen {
			t.departed[w.queues] += w.total
			delete(t.workers, k)
			continue
		}
		out[w.queues] += w.total
	}
	for ql, v := range t.departed {
		if _, live := out[ql]; !live && !configured[ql] {
			// A queue list gone from the configuration, its workers
			// gone too: its series ends.
			delete(t.departed, ql)
			continue
		}
		out[ql] += v
	}
	return out
}

// promBuckets converts a histogram over queue.Buckets (counts per bucket,
// the last one the overflow) to Prometheus's cumulative buckets keyed by
// upper bound in seconds. The count (the +Inf bucket) is never below the
// highest finite bucket, so a torn read of the counters still gives a
// valid histogram; negative counts (a corrupt hash) count as 0.
func promBuckets(h stats.Histogram) (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, len(queue.Buckets))
	var cum uint64
	for i, b := range queue.Buckets {
		if i < len(h.Counts) && h.Counts[i] > 0 {
			cum += uint64(h.Counts[i])
		}
		buckets[b.Seconds()] = cum
	}
	all := cum
	for i := len(queue.Buckets); i < len(h.Counts); i++ {
		if h.Counts[i] > 0 {
			all += uint64(h.Counts[i])
		}
	}
	count = all
	if h.Count > 0 && uint64(h.Count) > count {
		count = uint64(h.Count)
	}
	return count, h.Sum, buckets
}

// labelValue makes s a valid label value (Prometheus wants UTF-8): in a
// name that is not valid UTF-8 (a queue a producer named in another
// encoding), invalid bytes are spelled \xNN and backslashes doubled, so
// two such names stay apart and the scrape still succeeds. Valid names
// are kept as they are; one that equals another's spelling (a literal
// `\xff`) shares its series and the first one wins.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// emitter sends const metrics, turning an error (which would otherwise
// be a panic in MustNewConstMetric) into an invalid metric: the registry
// reports it and the handler serves the rest.
type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.add(prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...))
}

func (e emitter) counter(d *prometheus.Desc, v float64, labels ...string) {
	e.add(prometheus.NewConstMetric(d, prometheus.CounterValue, v, labels...))
}

func (e emitter) add(m prometheus.Metric, err error) {
	if err != nil {
		// NewInvalidMetric needs a Desc; m is nil on error, so report it
		// against a description naming the failure.
		e.ch <- prometheus.NewInvalidMetric(prometheus.NewInvalidDesc(err), err)
		return
	}
	e.ch <- m
}
