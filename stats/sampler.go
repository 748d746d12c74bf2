package stats

import (
	"context"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
)

// SamplerOptions configures a Sampler.
type SamplerOptions struct {
	Pool string // pool name, copied into every sample
	// Queue reads the pool's Redis; nil means no Redis figures (host and
	// process figures only).
	Queue *queue.Client
	// Host is this host's name as built-in workers put it in their ids.
	Host string
	// Interval is the sampling interval (default 1s); StalledAfter how
	// long a queue with jobs waiting may finish none before it is stalled
	// (default 10s).
	Interval     time.Duration
	StalledAfter time.Duration
	// Keep is how much history the sampler holds in memory (default 15m).
	Keep time.Duration
	// Path is the sample file to publish each sample to ("" = none).
	Path string
	// Logf reports trouble, once per change of trouble; nil = silent.
	Logf func(format string, args ...any)
	// MasterPID is the process whose own use is reported as Master
	// (default: this process).
	MasterPID int
}

// Sampler samples a pool every interval on its own goroutine: one
// pipelined Redis round trip and one /proc scan, from which it derives
// rates, states and ETAs. It keeps the recent samples in memory and
// publishes the latest to the sample file.
type Sampler struct {
	opts SamplerOptions

	mu     sync.Mutex
	state  *poolfs.State
	latest *Sample
	ring   []Frame // the last Keep of history, oldest first

	// The loop's own state (only its goroutine touches it).
	host     hostReader
	tree     *treeReader
	queues   map[string]*queueTracker
	known    []string      // the queues set at the last read
	lastRead *redisReading // the last successful Redis read
	redisErr string        // the Redis error last logged
	// lastReport is the other trouble last logged.
	lastReport string
	timings    []timingMark // per-queue run-time histograms, one every timingStep
	prevAt     time.Time

	stop chan struct{}
	done chan struct{}
}

// NewSampler returns a sampler; Start starts it.
func NewSampler(o SamplerOptions) *Sampler {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.StalledAfter <= 0 {
		o.StalledAfter = 10 * time.Second
	}
	if o.Keep <= 0 {
		o.Keep = 15 * time.Minute
	}
	if o.MasterPID == 0 {
		o.MasterPID = os.Getpid()
	}
	return &Sampler{opts: o, stop: make(chan struct{}), done: make(chan struct{}),
		tree: newTreeReader(), queues: map[string]*queueTracker{}}
}

// Observe gives the sampler the pool's latest state (its workers and
// groups). It never blocks; st must not be modified afterwards.
func (s *Sampler) Observe(st *poolfs.State) {
	s.mu.Lock()
	s.state = st
	s.mu.Unlock()
}

// Latest returns the latest sample and the state it was taken with (nil
// before the first sample). Neither may be modified.
func (s *Sampler) Latest() (*Sample, *poolfs.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest, s.state
}

// Recent returns the history frames of the last d, oldest first.
func (s *Sampler) Recent(d time.Duration) []Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Frame
	for _, f := range s.ring {
		if s.latest != nil && s.latest.TS.Sub(f.TS) <= d {
			out = append(out, f)
		}
	}
	return out
}

// Start starts sampling on a goroutine of its own.
func (s *Sampler) Start() { go s.loop() }

// Stop stops sampling and waits for the goroutine to end.
func (s *Sampler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *Sampler) loop() {
	defer close(s.done)
	defer s.tree.r.Close()
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.sampleOnce(now)
		}
	}
}

// Frame is one instant of the sampler's history: compact, so that 15
// minutes at one-second resolution stay small.
type Frame struct {
	TS      time.Time
	Host    HostSample
	Queues  []QueuePoint
	Workers int // live worker processes
	Busy    int // of which running a job
}

// QueuePoint is one queue's figures in a Frame.
type QueuePoint struct {
	Name              string
	Depth, InFlight   int64
	Processed, Failed int64
	InRate, OutRate   float64
}

// timingMark is every queue's all-time run-time histogram at one time.
type timingMark struct {
	at time.Time
	h  map[string]Histogram
}

// Window and step of the recent job-time percentiles.
const (
	timingWindow = time.Minute
	timingStep   = 5 * time.Second
	// historyPublished is how much depth history sample.json carries.
	historyPublished = 2 * time.Minute
)

// sampleOnce takes one sample, keeps it and publishes it.
func (s *Sampler) sampleOnce(now time.Time) {
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	smp := s.take(now, st)

	s.mu.Lock()
	s.latest = smp
	s.ring = append(s.ring, frameOf(smp))
	cut := 0
	for cut < len(s.ring) && now.Sub(s.ring[cut].TS) > s.opts.Keep {
		cut++
	}
	if cut > 0 {
		s.ring = append(s.ring[:0:0], s.ring[cut:]...)
	}
	smp.History = s.depthHistory(now)
	s.mu.Unlock()

	if s.opts.Path != "" && wanted(s.opts.Path, time.Now()) {
		if err := WriteFile(s.opts.Path, smp); err != nil {
			s.report("cannot publish the cockpit sample: " + err.Error())
		}
	}
}

// take builds the sample at now from the state st (nil before the master
// published one).
func (s *Sampler) take(now time.Time, st *poolfs.State) *Sample {
	smp := &Sample{TS: now.UTC(), Pool: s.opts.Pool, Interval: s.opts.Interval.Seconds(), Queues: []QueueSample{}, Workers: []WorkerSample{}}
	dt := 0.0
	if !s.prevAt.IsZero() {
		dt = now.Sub(s.prevAt).Seconds()
	}
	s.prevAt = now
	var err error
	if smp.Host, err = s.host.read(); err != nil {
		s.report(err.Error())
	}

	var groups []poolfs.GroupState
	var workers []poolfs.WorkerState
	if st != nil {
		groups, workers = st.Groups, st.Workers
	}
	roots := []int{s.opts.MasterPID}
	var refs []workerRef
	for _, w := range workers {
		roots = append(roots, w.PID)
		if w.Builtin {
			refs = append(refs, workerRef{pid: w.PID, id: queue.WorkerID(s.opts.Host, w.PID, strings.Split(w.Queues, ","))})
		}
	}
	use := s.tree.read(roots, dt)
	m := use[s.opts.MasterPID]
	smp.Master = ProcSample{PID: s.opts.MasterPID, CPUPercent: m.cpuPercent, CPUSeconds: m.cpuSeconds, RSSBytes: m.rss}

	names := s.queueNames(groups)
	reading := s.readRedis(names, refs)
	if reading == nil {
		smp.RedisError = s.redisErr
		if s.lastRead != nil {
			reading = s.lastRead
		} else {
			reading = &redisReading{workers: map[int]workerReading{}}
		}
	} else {
		s.lastRead = reading
		s.known = reading.known
	}

	inFlight := map[string]int64{}
	for _, w := range workers {
		ws := WorkerSample{PID: w.PID, Queues: w.Queues, State: w.State}
		if r, ok := reading.workers[w.PID]; ok {
			ws.Job, ws.JobQueue, ws.JobsDone = r.job, r.queue, r.done
			if r.job != "" {
				inFlight[r.queue]++
				if !r.runAt.IsZero() {
					ws.JobSeconds = max(0, now.Sub(r.runAt).Seconds())
				}
			}
		}
		u := use[w.PID]
		ws.CPUPercent, ws.CPUSeconds, ws.RSSBytes, ws.Procs = u.cpuPercent, u.cpuSeconds, u.rss, u.procs
		smp.Workers = append(smp.Workers, ws)
	}

	classes := map[string]*ClassSample{}
	live := map[string]bool{}
	old := s.timingAgo(now)
	for _, r := range reading.queues {
		live[r.name] = true
		t := s.queues[r.name]
		if t == nil {
			t = newQueueTracker()
			s.queues[r.name] = t
		}
		qs := t.observe(r, inFlight[r.name], now, s.opts.StalledAfter)
		if qs.Timing.Count == 0 {
			qs.Timing.Counts = nil // an idle queue's empty buckets are not worth publishing
		}
		recent := r.timing
		if h, ok := old[r.name]; ok {
			if d := r.timing.Sub(h); d.Count > 0 {
				recent = d
			}
		}
		qs.JobSeconds = recent.Quantiles()
		if r.waitN > 0 {
			qs.WaitSeconds = &Wait{Seconds: float64(r.waitUS) / 1e6 / float64(r.waitN)}
		}
		smp.Queues = append(smp.Queues, qs)
		for c, cs := range r.classes {
			agg := classes[c]
			if agg == nil {
				agg = &ClassSample{Class: c}
				classes[c] = agg
			}
			agg.Failed += cs.Failed
			agg.Timing.Add(cs.Timing)
		}
	}
	for name := range s.queues {
		if !live[name] {
			delete(s.queues, name)
		}
	}
	for _, c := range classes {
		smp.Classes = append(smp.Classes, *c)
	}
	sort.Slice(smp.Classes, func(i, j int) bool { return smp.Classes[i].Class < smp.Classes[j].Class })
	s.markTimings(now, reading)
	return smp
}

// queueNames lists the queues the pool serves: every group's queue list,
// globs expanded against the queues set of the last read.
func (s *Sampler) queueNames(groups []poolfs.GroupState) []string {
	var patterns []string
	for _, g := range groups {
		patterns = append(patterns, strings.Split(g.Queues, ",")...)
	}
	return queue.ExpandNames(patterns, s.known)
}

// readRedis reads the sample's Redis figures, nil when it cannot (the
// error is reported once, and kept for the sample).
func (s *Sampler) readRedis(names []string, refs []workerRef) *redisReading {
	if s.opts.Queue == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(s.opts.Interval, time.Second))
	defer cancel()
	r, err := readRedis(ctx, s.opts.Queue, names, refs)
	if err != nil {
		msg := "cockpit cannot read Redis: " + redisconn.Describe(err)
		if msg != s.redisErr {
			s.redisErr = msg
			s.logf("%s (figures stay at their last values until it can)", msg)
		}
		return nil
	}
	if s.redisErr != "" {
		s.redisErr = ""
		s.logf("cockpit reads Redis again")
	}
	return r
}

// markTimings remembers the queues' histograms every timingStep, for the
// last timingWindow's percentiles.
func (s *Sampler) markTimings(now time.Time, r *redisReading) {
	if n := len(s.timings); n > 0 && now.Sub(s.timings[n-1].at) < timingStep {
		return
	}
	h := make(map[string]Histogram, len(r.queues))
	for _, q := range r.queues {
		h[q.name] = q.timing
	}
	s.timings = append(s.timings, timingMark{at: now, h: h})
	for len(s.timings) > 0 && now.Sub(s.timings[0].at) > timingWindow+timingStep {
		s.timings = s.timings[1:]
	}
}

// timingAgo returns the oldest remembered histograms within the window.
func (s *Sampler) timingAgo(now time.Time) map[string]Histogram {
	for _, m := range s.timings {
		if now.Sub(m.at) <= timingWindow+timingStep {
			return m.h
		}
	}
	return nil
}

// depthHistory is each current queue's depth over the published history.
func (s *Sampler) depthHistory(now time.Time) map[string][]int {
	if s.latest == nil || len(s.latest.Queues) == 0 {
		return nil
	}
	out := make(map[string][]int, len(s.latest.Queues))
	for _, q := range s.latest.Queues {
		out[q.Name] = nil
	}
	for _, f := range s.ring {
		if now.Sub(f.TS) > historyPublished {
			continue
		}
		for _, q := range f.Queues {
			if h, ok := out[q.Name]; ok {
				out[q.Name] = append(h, int(q.Depth))
			}
		}
	}
	return out
}

// frameOf is the compact history record of a sample.
func frameOf(smp *Sample) Frame {
	f := Frame{TS: smp.TS, Host: smp.Host, Workers: len(smp.Workers), Queues: make([]QueuePoint, len(smp.Queues))}
	for i, q := range smp.Queues {
		f.Queues[i] = QueuePoint{Name: q.Name, Depth: q.Depth, InFlight: q.InFlight, Processed: q.Processed, Failed: q.Failed, InRate: q.InRate, OutRate: q.OutRate}
	}
	for _, w := range smp.Workers {
		if w.Job != "" {
			f.Busy++
		}
	}
	return f
}

// report logs msg once (until a different one comes).
func (s *Sampler) report(msg string) {
	if msg != s.lastReport {
		s.lastReport = msg
		s.logf("%s", msg)
	}
}

func (s *Sampler) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}
