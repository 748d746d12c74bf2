// Package redisconn turns a Redis URL into a go-redis client with the
// settings poolctl wants: small pools, a client name, and support for
// redis://, rediss:// (TLS), unix:// and Cluster URLs.
package redisconn

import (
	"github.com/poolctl/poolctl/internal/redact"

	"fmt"
	neturl "net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultURL is used when nothing else is configured and a Redis answers
// there.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Options are the per-process client settings.
type Options struct {
	Name     string // CLIENT SETNAME value (bytes Redis refuses are escaped)
	PoolSize int    // connections per process; 0 = 2
	// NoRetry turns off go-redis's own retries. Callers that retry
	// themselves want this: a retried script whose first reply was lost
	// would run twice.
	NoRetry bool
	// ReadTimeout, when set, replaces go-redis's 3 s default: a client
	// that sends blocking commands by hand needs more than its longest
	// block.
	ReadTimeout time.Duration
	// DialTimeout, when set, replaces go-redis's 5 s default.
	DialTimeout time.Duration
	// Lean makes each new connection cost two round trips (HELLO with the
	// client name, then go-redis's CLIENT SETNAME) instead of four, and
	// the client one connection: it skips CLIENT SETINFO (the library's
	// name and version, for CLIENT LIST) and CLIENT MAINT_NOTIFICATIONS
	// (Redis Enterprise's maintenance hand-off: a connection that
	// maintenance drops is redialled like any other), and lets pipelines
	// share the client's pool instead of dialling a pool of their own.
	// For processes a pool starts by the hundred: built-in workers.
	Lean bool
}

// Open returns a client for url. A URL with "master_name=" finds its
// master through Redis Sentinel (see openSentinel); one with "addr="
// query parameters (redis://h1:6379?addr=h2:6379) opens a Cluster client;
// every other URL a plain client.
func Open(url string, o Options) (redis.UniversalClient, error) {
	if o.PoolSize <= 0 {
		o.PoolSize = 2
	}
	name := clientName(o.Name)
	if strings.Contains(url, "master_name=") {
		return openSentinel(url, name, o)
	}
	if IsCluster(url) {
		opts, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, fmt.Errorf("redis URL %s: %w", redact.URL(url), redactErr(err, url))
		}
		opts.PoolSize, opts.ClientName = o.PoolSize, name
		o.apply(&opts.MaxRetries, &opts.ReadTimeout, &opts.DialTimeout, &opts.ContextTimeoutEnabled)
		if o.Lean {
			opts.DisableIdentity, opts.PipelinePoolSize, opts.MaintNotificationsConfig = true, -1, noMaintNotifications()
		}
		return redis.NewClusterClient(opts), nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis URL %s: %w", redact.URL(url), redactErr(err, url))
	}
	opts.PoolSize, opts.ClientName = o.PoolSize, name
	o.apply(&opts.MaxRetries, &opts.ReadTimeout, &opts.DialTimeout, &opts.ContextTimeoutEnabled)
	if o.Lean {
		opts.DisableIdentity, opts.PipelinePoolSize, opts.MaintNotificationsConfig = true, -1, noMaintNotifications()
	}
	return redis.NewClient(opts), nil
}

// clientName makes name one Redis accepts for CLIENT SETNAME (bytes '!'
// to '~' only; a refused name fails every command of the connection):
// spaces become '_', other bytes %XX. Worker ids hold queue names, which
// may be any printable UTF-8.
func clientName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == ' ':
			b.WriteByte('_')
		case c < '!' || c > '~':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// openSentinel opens a client that finds its master through Redis
// Sentinel: redis://[:PASSWORD@]SENTINEL:26379/DB?master_name=NAME
// [&addr=SENTINEL2:26379 ...]. The password is the master's.
func openSentinel(raw, name string, o Options) (redis.UniversalClient, error) {
	u, err := neturl.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return nil, fmt.Errorf("redis URL %s: want redis://SENTINEL:PORT/DB?master_name=NAME[&addr=SENTINEL2:PORT]", redact.URL(raw))
	}
	q := u.Query()
	opts := &redis.FailoverOptions{
		MasterName:    q.Get("master_name"),
		SentinelAddrs: append([]string{u.Host}, q["addr"]...),
		PoolSize:      o.PoolSize,
		ClientName:    name,
	}
	if u.User != nil {
		opts.Password, _ = u.User.Password()
		opts.Username = u.User.Username()
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if opts.DB, err = strconv.Atoi(db); err != nil {
			return nil, fmt.Errorf("redis URL %s: database %q is not a number", redact.URL(raw), db)
		}
	}
	o.apply(&opts.MaxRetries, &opts.ReadTimeout, &opts.DialTimeout, &opts.ContextTimeoutEnabled)
	if o.Lean {
		opts.DisableIdentity, opts.PipelinePoolSize = true, -1
	}
	return redis.NewFailoverClient(opts), nil
}

// apply sets the options every kind of client shares. Context deadlines
// are always honoured (go-redis ignores them otherwise), so a caller that
// bounds a call, such as a worker unregistering on its way out, is not
// held for the full read timeout by a stalled Redis.
func (o Options) apply(maxRetries *int, readTimeout, dialTimeout *time.Duration, contextTimeout *bool) {
	if o.NoRetry {
		*maxRetries = -1
	}
	if o.ReadTimeout > 0 {
		*readTimeout = o.ReadTimeout
	}
	if o.DialTimeout > 0 {
		*dialTimeout = o.DialTimeout
	}
	*contextTimeout = true
}

// noMaintNotifications turns off go-redis's CLIENT MAINT_NOTIFICATIONS
// handshake (Options.Lean).
func noMaintNotifications() *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

// redactErr keeps a password that a parse error might quote out of logs.
func redactErr(err error, url string) error {
	msg := err.Error()
	if red := redact.URL(url); red != url {
		msg = strings.ReplaceAll(msg, url, red)
	}
	if pw := redact.Password(url); pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return fmt.Errorf("%s", msg)
}

// Validate reports whether url is a Redis URL that Open accepts, without
// connecting: scheme redis://, rediss:// or unix://, and a URL that
// parses (Sentinel and Cluster forms included). Errors name the URL with
// its password redacted.
func Validate(url string) error {
	u, err := neturl.Parse(url)
	if err != nil {
		return fmt.Errorf("redis URL %s: %w", redact.URL(url), redactErr(err, url))
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	case "":
		return fmt.Errorf("redis URL %s: no scheme (want redis://HOST:PORT/DB, rediss://... or unix:///PATH)", redact.URL(url))
	default:
		return fmt.Errorf("redis URL %s: scheme %q is not one of redis://, rediss://, unix://", redact.URL(url), u.Scheme)
	}
	c, err := Open(url, Options{PoolSize: 1})
	if err != nil {
		return err
	}
	return c.Close()
}
