package masterd

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/poolctl/poolctl/embedredis"
	"github.com/poolctl/poolctl/internal/procid"
	"github.com/poolctl/poolctl/pool"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/spec"
)

// resolveRedis gives the master its Redis: the configured URL, or, when
// none is configured or it is "embedded", one that embedredis finds or
// starts in the pool's runtime directory. The master reaps a private
// redis-server (Redis.PID) and stops it last.
func resolveRedis(ctx context.Context, configured string, paths pool.Paths, logf func(string, ...any)) (pool.Redis, error) {
	if configured != "" && configured != poolfs.EmbeddedRedis {
		return pool.Redis{URL: configured}, nil
	}
	srv, err := embedredis.Start(ctx, embedredis.Options{
		Dir:     paths.Dir,
		Socket:  paths.Redis,
		Private: configured == poolfs.EmbeddedRedis,
		Logf:    logf,
	})
	if err != nil {
		return pool.Redis{}, err
	}
	return pool.Redis{URL: srv.URL, PID: srv.PID, Stop: srv.Stop}, nil
}

// newRecoverer connects the master to Redis for returning the jobs of dead
// built-in workers to their queues: queue.Recoverer runs its own passes
// (at start and every recovery_interval) and cleans up after each worker
// the master reaps.
func newRecoverer(url string, cfg *spec.Config, log *pool.Logger) (pool.Janitor, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("host name: %w", err)
	}
	rdb, err := redisconn.Open(url, redisconn.Options{Name: "poolctl-master", PoolSize: 4})
	if err != nil {
		return nil, err
	}
	r := queue.NewRecoverer(queue.New(rdb, cfg.Namespace), queue.RecovererOptions{
		Host:            host,
		Alive:           procid.Alive,
		Logf:            log.Printf,
		Interval:        cfg.RecoveryInterval,
		HeartbeatExpiry: cfg.HeartbeatExpiry,
	})
	r.Start()
	return &masterRecoverer{Recoverer: r, rdb: rdb}, nil
}

// masterRecoverer adapts a queue.Recoverer to pool.Janitor.
type masterRecoverer struct {
	*queue.Recoverer
	rdb interface{ Close() error }
}

func (m *masterRecoverer) WorkerExited(pid int, queues string, _ time.Time) {
	m.Recoverer.WorkerExited(pid, queues)
}

func (m *masterRecoverer) Close() error {
	m.Stop()
	return m.rdb.Close()
}
