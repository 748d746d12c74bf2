package masterd

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/poolctl/poolctl/autoscale"
	"github.com/poolctl/poolctl/metrics"
	"github.com/poolctl/poolctl/pool"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/recycle"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/spec"
	"github.com/poolctl/poolctl/stats"
)

// cockpitFor returns newCockpit with the metrics address addr
// (--metrics) in place of the config's metrics:, when addr is set, and
// the pool's fleet membership.
func cockpitFor(addr string, fo fleetOptions) func(string, *spec.Config, pool.Paths, *pool.Logger, pool.Control) (pool.Cockpit, error) {
	return func(url string, cfg *spec.Config, paths pool.Paths, log *pool.Logger, ctl pool.Control) (pool.Cockpit, error) {
		if addr != "" {
			c := *cfg
			c.Metrics = addr
			cfg = &c
		}
		return newCockpit(url, cfg, paths, log, ctl, fo)
	}
}

// newCockpit starts the master's sampler (package stats), which publishes
// the pool's figures in the runtime directory every sample_interval, and,
// when cfg.Metrics is set, the Prometheus server over its samples
// (package metrics). A metrics address that cannot be served is an error:
// the master stops with it.
func newCockpit(url string, cfg *spec.Config, paths pool.Paths, log *pool.Logger, ctl pool.Control, fo fleetOptions) (pool.Cockpit, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("host name: %w", err)
	}
	c := &cockpit{}
	opts := stats.SamplerOptions{
		Pool:         paths.Name,
		Host:         host,
		Interval:     cfg.SampleInterval,
		StalledAfter: cfg.StalledAfter,
		Path:         paths.Sample,
		Logf:         log.Printf,
	}
	if url != "" {
		rdb, err := redisconn.Open(url, redisconn.Options{Name: "poolctl-sampler", PoolSize: 1, NoRetry: true, ReadTimeout: time.Second})
		if err != nil {
			return nil, err
		}
		c.rdb = rdb
		opts.Queue = queue.New(rdb, cfg.Namespace)
	}
	c.sampler = stats.NewSampler(opts)
	if cfg.Metrics != "" {
		srv, err := metrics.NewServer(cfg.Metrics, c.sampler, metrics.WithLogf(log.Printf))
		if err != nil {
			if c.rdb != nil {
				_ = c.rdb.Close()
			}
			return nil, err
		}
		c.metrics = srv
		log.Printf("serving metrics on http://%s/metrics", srv.Addr())
	}
	c.sampler.Start()
	// The autoscaler decides on each new sample (autoscaled queue lists
	// only; it does nothing in a pool without them).
	c.scaler = autoscale.NewScaler(c.sampler, ctl, cfg.SampleInterval/4)
	c.scaler.Start()
	// The recycler replaces workers past their queue list's max_rss or
	// max_lifetime (nothing in a pool without them).
	c.recycler = recycle.New(c.sampler, ctl, cfg.SampleInterval/4)
	c.recycler.Start()
	// The fleet registry entry and control listener (issue 14): a pool
	// that cannot join the fleet still runs, and says why.
	fo.replyTTL = cfg.ReplyTTL
	if url != "" {
		f, err := startFleetMember(url, cfg.Namespace, paths, fo, c.sampler, ctl.Remote(), log.Printf)
		if err != nil {
			log.Printf("warning: fleet registry and control messages disabled: %v", err)
		} else {
			c.fleet = f
		}
	}
	return c, nil
}

// cockpit adapts the sampler and the metrics server, when one is
// configured, to pool.Cockpit.
type cockpit struct {
	sampler  *stats.Sampler
	rdb      interface{ Close() error }
	metrics  *metrics.Server // nil when off
	scaler   *autoscale.Scaler
	recycler *recycle.Recycler
	fleet    *fleetMember // nil when the pool could not join the fleet
}

func (c *cockpit) Observe(s *pool.State) {
	c.sampler.Observe(s)
	if c.fleet != nil {
		c.fleet.Observe(s)
	}
}

// MetricsAddr is the address the metrics server listens on (its real
// port when port 0 was asked), "" when off.
func (c *cockpit) MetricsAddr() string {
	if c.metrics == nil {
		return ""
	}
	return c.metrics.Addr()
}

func (c *cockpit) Close() error {
	var errs []error
	if c.fleet != nil {
		// First: the listener must not take a command it cannot answer.
		errs = append(errs, c.fleet.Close())
	}
	if c.metrics != nil {
		errs = append(errs, c.metrics.Close())
	}
	c.scaler.Stop()
	c.recycler.Stop()
	c.sampler.Stop()
	if c.rdb != nil {
		errs = append(errs, c.rdb.Close())
	}
	return errors.Join(errs...)
}
