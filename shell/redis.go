package shell

import (
	"errors"
	"os"
	"sync"

	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/redis/go-redis/v9"
)

// redisClients caches the session's connection to the pool's Redis,
// reused while the URL stays the same. Its methods are safe for
// concurrent use.
type redisClients struct {
	mu  sync.Mutex
	rdb redis.UniversalClient
	url string
}

// client returns a queue client on url in namespace ns.
func (r *redisClients) client(url, ns string) (*queue.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rdb == nil || r.url != url {
		r.closeLocked()
		rdb, err := openRedis(url, "poolctl-shell", 2)
		if err != nil {
			return nil, err
		}
		r.rdb, r.url = rdb, url
	}
	return queue.New(r.rdb, ns), nil
}

// close releases the connection.
func (r *redisClients) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeLocked()
}

func (r *redisClients) closeLocked() {
	if r.rdb != nil {
		r.rdb.Close()
		r.rdb = nil
	}
}

// openRedis connects to url. go-redis ignores context deadlines on reads;
// they are bounded here so that status never waits longer than
// summaryTimeout for Redis.
func openRedis(url, name string, poolSize int) (redis.UniversalClient, error) {
	// redisconn's errors name the (redacted) URL.
	return redisconn.Open(url, redisconn.Options{Name: name, PoolSize: poolSize, ReadTimeout: summaryTimeout, DialTimeout: summaryTimeout})
}

// redisURL is the Redis URL this shell reads queue data from, by the
// precedence of poolfs.Pool.RedisFor: --redis, the running master's,
// $REDIS_URL, the config's redis:; "" when none.
func (s *Session) redisURL() string {
	cfgRedis := ""
	if s.cfg != nil {
		cfgRedis = s.cfg.Redis
	}
	url, _ := s.pool().RedisFor(s.opts.Redis, os.Getenv("REDIS_URL"), cfgRedis)
	return url
}

// namespace is the one in force for the pool's Redis, as the master
// decides it (hash-tagged on a Cluster).
func (s *Session) namespace() string {
	ns := queue.DefaultNamespace
	if s.cfg != nil && s.cfg.Namespace != "" {
		ns = s.cfg.Namespace
	}
	ns, _ = redisconn.EffectiveNamespace(s.redisURL(), ns)
	return ns
}

// queueClient returns a client for the pool's Redis and its URL.
func (s *Session) queueClient() (*queue.Client, string, error) {
	url := s.redisURL()
	if url == "" {
		return nil, "", errors.New("no Redis configured")
	}
	qc, err := s.redis.client(url, s.namespace())
	return qc, url, err
}

// Close releases the session's connections.
func (s *Session) Close() { s.redis.close() }
