package masterd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/poolctl/poolctl/fleet"
	"github.com/poolctl/poolctl/pool"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/stats"
	"github.com/redis/go-redis/v9"
)

// fleetOptions is what the master's fleet membership needs besides its
// pool: who it is in the fleet and how often it says so.
type fleetOptions struct {
	host       string        // the host part of the pool id (--host)
	configPath string        // the config file the master reads
	heartbeat  time.Duration // registry refresh (--fleet-heartbeat); 0 = fleet.HeartbeatInterval
	replyTTL   time.Duration // the reply lists' TTL: the config's reply_ttl at start
	version    string        // the entry's version: the binary's
}

// fleetHost returns the host part of a pool id: flag, else $POOLCTL_HOST,
// else the host name. It must not hold '/' (ids are HOST/NAME) or spaces.
func fleetHost(flagValue string) (string, error) {
	where, h := "--host", flagValue
	if h == "" {
		where, h = "POOLCTL_HOST", os.Getenv("POOLCTL_HOST")
	}
	if h == "" {
		name, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("host name: %w", err)
		}
		where, h = "the host name", name
	}
	if err := validHost(h); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrUsage, where, err)
	}
	return h, nil
}

// validHost checks the host part of a pool id.
func validHost(h string) error {
	switch {
	case h == "":
		return errors.New("empty host")
	case strings.ContainsAny(h, "/ \t\r\n"):
		return fmt.Errorf("host %q must not contain '/' or spaces", h)
	case len(h) > 255:
		return fmt.Errorf("host %q is longer than 255 bytes", h)
	}
	return nil
}

// fleetMember makes a master part of the fleet: its registry entry, fed
// from the states the master publishes and the sampler's latest figures,
// and its control listener over the master's executor. It runs on
// clients of its own and stops before the master's Redis goes away.
type fleetMember struct {
	id       string
	reg      *fleet.Registrar
	rdb      redis.UniversalClient
	blocking redis.UniversalClient
	sampler  *stats.Sampler
	base     fleet.Entry
	remote   *pool.Remote
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	logf     func(string, ...any)
	interval time.Duration

	mu        sync.Mutex
	state     *pool.State      // the latest the master published
	failedAt0 map[string]int64 // each queue's all-time failures at the first sample
}

// startFleetMember registers the pool and starts serving its control list.
func startFleetMember(url, ns string, paths pool.Paths, o fleetOptions, sampler *stats.Sampler, remote *pool.Remote, logf func(string, ...any)) (*fleetMember, error) {
	rdb, err := redisconn.Open(url, redisconn.Options{Name: "poolctl-fleet", PoolSize: 2, NoRetry: true})
	if err != nil {
		return nil, err
	}
	// The blocking pops wait up to the listener's poll timeout (1 s).
	blocking, err := redisconn.Open(url, redisconn.Options{Name: "poolctl-control", PoolSize: 2, NoRetry: true, ReadTimeout: 5 * time.Second})
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	id := fleet.PoolID(o.host, paths.Name)
	f := &fleetMember{
		id: id, rdb: rdb, blocking: blocking, sampler: sampler, remote: remote, logf: logf,
		reg: fleet.NewRegistrar(rdb, ns, o.heartbeat),
		base: fleet.Entry{ID: id, Host: o.host, Name: paths.Name, PID: os.Getpid(), Version: o.version,
			StartedAt: time.Now().UTC(), Config: o.configPath},
	}
	f.reg.Logf = logf
	f.interval = o.heartbeat
	if f.interval <= 0 {
		f.interval = fleet.HeartbeatInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	l := fleet.NewListener(rdb, blocking, ns, id, fleetExecutor{id: id, r: remote}, fleet.ListenerOptions{Logf: logf, ReplyTTL: o.replyTTL})
	f.wg.Add(3)
	go func() {
		defer f.wg.Done()
		f.reg.Run(ctx)
	}()
	go func() {
		// The cockpit figures change while the state does not: refresh
		// them at the heartbeat's pace.
		defer f.wg.Done()
		t := time.NewTicker(f.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f.update()
			}
		}
	}()
	go func() {
		defer f.wg.Done()
		if err := l.Run(ctx); err != nil && ctx.Err() == nil {
			logf("fleet: control listener stopped: %v", err)
		}
	}()
	logf("fleet: registering as %s", id)
	return f, nil
}

// Observe updates the registry entry from a state the master published
// and the sampler's latest figures. It never blocks.
func (f *fleetMember) Observe(s *pool.State) {
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
	f.update()
}

// update hands the registrar the entry of the latest state and sample.
func (f *fleetMember) update() {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.state
	if s == nil {
		return
	}
	e := f.base
	e.State = s.Status
	e.RemoteControl = f.remote.RemoteControl()
	e.Groups = make([]fleet.Group, 0, len(s.Groups))
	for _, g := range s.Groups {
		e.Groups = append(e.Groups, fleet.Group{Queues: g.Queues, Desired: g.Desired, Live: g.Live})
	}
	if f.sampler != nil {
		if smp, _ := f.sampler.Latest(); smp != nil {
			e.Cockpit = f.cockpit(smp)
		}
	}
	f.reg.Update(e)
}

// cockpit sums a sample's figures for fleet top; f.mu is held.
func (f *fleetMember) cockpit(smp *stats.Sample) *fleet.Cockpit {
	c := &fleet.Cockpit{Workers: len(smp.Workers)}
	if f.failedAt0 == nil {
		f.failedAt0 = map[string]int64{}
		for _, q := range smp.Queues {
			f.failedAt0[q.Name] = q.Failed
		}
	}
	for _, q := range smp.Queues {
		c.Queued += q.Depth
		c.InFlight += q.InFlight
		c.InRate += q.InRate
		c.OutRate += q.OutRate
		base, ok := f.failedAt0[q.Name]
		if !ok {
			f.failedAt0[q.Name], base = q.Failed, q.Failed
		}
		c.Failed += max(q.Failed-base, 0)
	}
	for _, w := range smp.Workers {
		if w.Job != "" {
			c.Busy++
		}
	}
	return c
}

// Close stops the listener and the heartbeat and removes the entry (a
// clean exit): the master calls it before its Redis goes away.
func (f *fleetMember) Close() error {
	f.cancel()
	// The listener's blocking pop is not cancelled by the context (an
	// answer the server sent must be read): closing its client ends it
	// now rather than after PollTimeout, which was most of a pool's stop.
	// A command the server moved meanwhile waits on the taken list for
	// the next master.
	blockingErr := f.blocking.Close()
	f.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := f.reg.Remove(ctx)
	if err != nil {
		f.logf("fleet: cannot remove %s from the registry: %v (it shows stale)", f.id, err)
	} else {
		f.logf("fleet: %s removed from the registry", f.id)
	}
	return errors.Join(err, blockingErr, f.rdb.Close())
}

// fleetExecutor adapts the master's executor to fleet.Executor: status
// answers carry the pool id.
type fleetExecutor struct {
	id string
	r  *pool.Remote
}

// fleetStatus is a status answer: the pool id and the master's state.
type fleetStatus struct {
	Pool string `json:"pool"`
	*pool.State
}

func (x fleetExecutor) Status(ctx context.Context) (any, error) {
	v, err := x.r.Status(ctx)
	if err != nil {
		return nil, err
	}
	st, _ := v.(*pool.State)
	return fleetStatus{Pool: x.id, State: st}, nil
}

func (x fleetExecutor) Config(ctx context.Context, words []string) (any, error) {
	return x.r.Config(ctx, words)
}
func (x fleetExecutor) Reload(ctx context.Context) (any, error) { return x.r.Reload(ctx) }
func (x fleetExecutor) Pause(ctx context.Context, q []string) (any, error) {
	return x.r.Pause(ctx, q)
}
func (x fleetExecutor) Resume(ctx context.Context, q []string) (any, error) {
	return x.r.Resume(ctx, q)
}
func (x fleetExecutor) Stop(ctx context.Context) (any, error) { return x.r.Stop(ctx) }
func (x fleetExecutor) Autoscale(ctx context.Context, on bool, q []string) (any, error) {
	return x.r.Autoscale(ctx, on, q)
}
func (x fleetExecutor) RemoteControl() bool { return x.r.RemoteControl() }

var _ fleet.Executor = fleetExecutor{}
