package stats

import (
	"sync"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
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
	ring   []*Sample

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
	return &Sampler{opts: o, stop: make(chan struct{}), done: make(chan struct{})}
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

// Recent returns the samples of the last d, oldest first.
func (s *Sampler) Recent(d time.Duration) []*Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Sample
	for _, x := range s.ring {
		if s.latest != nil && s.latest.TS.Sub(x.TS) <= d {
			out = append(out, x)
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
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}
