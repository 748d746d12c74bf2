package spec

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Default settings of a Config.
const (
	DefaultNamespace   = "resque:"
	DefaultTermTimeout = 10 * time.Second
	//lint:ignore ST1011 named after the start_secs setting (supervisord's startsecs)
	DefaultStartSecs    = 1 * time.Second
	DefaultStartRetries = 5
	DefaultBackoffMax   = 30 * time.Second

	DefaultHeartbeatInterval = 10 * time.Second
	DefaultHeartbeatExpiry   = 5 * time.Minute
	DefaultRecoveryInterval  = 30 * time.Second

	DefaultSampleInterval = time.Second
	DefaultStalledAfter   = 10 * time.Second

	// DefaultReplyTTL is queue.DefaultReplyTTL (spec imports no Redis
	// code; a worker test checks they agree).
	DefaultReplyTTL = time.Hour
)

// Config is a pool configuration file.
type Config struct {
	Workers Spec // queue list -> count
	// Groups holds the settings of queue lists given as a mapping under
	// workers: (by canonical queue list); see Group.
	Groups map[string]Group
	// Limits bound what scaling may start.
	Limits      Limits
	Command     []string            // worker argv; "{queues}" in any arg is replaced by the comma-joined queue list. Empty = built-in worker.
	Jobs        map[string][]string // job class -> argv
	Redis       string              // Redis URL; "" = default/embedded
	Namespace   string              // Redis key namespace, default "resque:"
	TermTimeout time.Duration       // default 10s: how long a graceful stop waits before SIGKILL
	//lint:ignore ST1011 named after the start_secs setting (supervisord's startsecs)
	StartSecs    time.Duration // default 1s: a worker that exits sooner counts as a failed start
	StartRetries int           // default 5: consecutive failed starts before FATAL
	BackoffMax   time.Duration // default 30s: cap of exponential restart backoff
	JobTimeout   time.Duration // default 0 (none): per-job timeout for command jobs

	// HeartbeatInterval is how often built-in workers heartbeat and
	// re-assert their registration (default 10s).
	HeartbeatInterval time.Duration
	// HeartbeatExpiry is how long another host's worker may stay silent,
	// while Redis is reachable, before the master declares it dead
	// (default 5m, Resque's threshold).
	HeartbeatExpiry time.Duration
	// RecoveryInterval is how often the master looks for dead workers
	// (default 30s).
	RecoveryInterval time.Duration

	// SampleInterval is how often the master samples queues, workers and
	// the host for the cockpit (default 1s).
	SampleInterval time.Duration
	// StalledAfter is how long a queue with jobs waiting may go without a
	// job finishing before it shows as stalled (default 10s).
	StalledAfter time.Duration
	// ReplyTTL is how long a job's reply list lives after its last reply
	// (default 1h; docs/messages.md).
	ReplyTTL time.Duration
	// Metrics is the address the master serves Prometheus /metrics and
	// /healthz on ("" = off); a bare ":PORT" binds loopback only.
	Metrics string
	// RemoteControl lets fleet control messages change the pool (config,
	// reload, pause, resume, stop, autoscale); read-only verbs (ping,
	// status) are always served. Default false.
	RemoteControl bool
}

// ConfigError is an error in a configuration file, located by file and line.
type ConfigError struct {
	File string // file name as given to ParseConfig
	Line int    // 1-based line, 0 when unknown
	Msg  string // what is wrong
	Err  error  // underlying error (e.g. from the YAML parser), may be nil
}

// Error formats the error as "FILE:LINE: MSG" (or "FILE: MSG" when the line
// is unknown).
func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Unwrap returns the underlying error, if any.
func (e *ConfigError) Unwrap() error { return e.Err }

// DefaultConfig returns a Config with the defaults above and no workers.
func DefaultConfig() Config {
	return Config{
		Workers:      Spec{},
		Namespace:    DefaultNamespace,
		TermTimeout:  DefaultTermTimeout,
		StartSecs:    DefaultStartSecs,
		StartRetries: DefaultStartRetries,
		BackoffMax:   DefaultBackoffMax,

		HeartbeatInterval: DefaultHeartbeatInterval,
		HeartbeatExpiry:   DefaultHeartbeatExpiry,
		RecoveryInterval:  DefaultRecoveryInterval,
		SampleInterval:    DefaultSampleInterval,
		StalledAfter:      DefaultStalledAfter,
		ReplyTTL:          DefaultReplyTTL,
	}
}

// EnvFromEnvironment returns the environment name from the first non-empty
// of POOLCTL_ENV, RACK_ENV, RAILS_ENV. getenv is usually os.Getenv; nil
// means os.Getenv.
func EnvFromEnvironment(getenv func(string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, name := range []string{"POOLCTL_ENV", "RACK_ENV", "RAILS_ENV"} {
		if v := getenv(name); v != "" {
			return v
		}
	}
	return ""
}

// LoadConfig reads and parses a file. See ParseConfig.
func LoadConfig(path, env string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spec: load config: %w", err)
	}
	return ParseConfig(data, path, env)
}

// ParseConfig parses YAML config bytes. env selects an environment section
// ("" = none); a section that does not exist is not an error. filename is
// used only in error messages ("pool.yml:7: unknown key \"wokers\"").
// Errors are of type *ConfigError. An empty document yields DefaultConfig.
func ParseConfig(data []byte, filename, env string) (*Config, error) {
	if filename == "" {
		filename = "config"
	}
	d := &decoder{file: filename}
	root, err := d.document(data)
	if err != nil {
		return nil, err
	}
	c := DefaultConfig()
	if root != nil {
		if root.Kind != yaml.MappingNode {
			return nil, d.errorf(root, "top level must be a mapping, got %s", describe(root))
		}
		if isResquePool(root) {
			err = d.resquePool(root, env, &c)
		} else {
			err = d.section(root, "", env, &c)
		}
		if err != nil {
			return nil, err
		}
	}
	c.pruneGroups()
	if err := c.Validate(); err != nil {
		return nil, &ConfigError{File: filename, Msg: err.Error(), Err: err}
	}
	return &c, nil
}

// Validate checks the config's invariants: workers with canonical, valid,
// unique queue lists and counts in [0, MaxCount]; non-negative durations;
// StartRetries >= 1; command arguments that are non-empty strings; job
// class names that are non-empty, each with a non-empty argv of non-empty
// strings.
func (c *Config) Validate() error {
	if c == nil {
		return errors.New("spec: config: nil config")
	}
	seen := make(map[string]struct{}, len(c.Workers))
	for i, e := range c.Workers {
		canon, reason := canonicalQueueList(e.Queues)
		switch {
		case reason != "":
			return fmt.Errorf("spec: config: workers: entry %d: %s", i+1, reason)
		case canon != e.Queues:
			return fmt.Errorf("spec: config: workers: entry %d: queue list %q is not canonical (want %q)", i+1, e.Queues, canon)
		case e.Count < 0:
			return fmt.Errorf("spec: config: workers: count for %q must not be negative, got %d", e.Queues, e.Count)
		case e.Count > MaxCount:
			return fmt.Errorf("spec: config: workers: count for %q exceeds the limit of %d, got %d", e.Queues, MaxCount, e.Count)
		}
		if _, dup := seen[e.Queues]; dup {
			return fmt.Errorf("spec: config: workers: queue list %q appears twice", e.Queues)
		}
		seen[e.Queues] = struct{}{}
	}
	for _, q := range sortedGroupKeys(c.Groups) {
		if err := c.validateGroup(q, c.Groups[q]); err != nil {
			return err
		}
	}
	if c.Metrics != "" {
		if _, err := MetricsListenAddr(c.Metrics); err != nil {
			return fmt.Errorf("spec: config: metrics: %w", err)
		}
	}
	for i, arg := range c.Command {
		if arg == "" {
			return fmt.Errorf("spec: config: command: argument %d must be a non-empty string", i+1)
		}
	}
	for _, class := range sortedKeys(c.Jobs) {
		argv := c.Jobs[class]
		if class == "" {
			return errors.New("spec: config: jobs: class names must be non-empty")
		}
		if len(argv) == 0 {
			return fmt.Errorf("spec: config: jobs: class %q: command must not be empty", class)
		}
		for i, arg := range argv {
			if arg == "" {
				return fmt.Errorf("spec: config: jobs: class %q: argument %d must be a non-empty string", class, i+1)
			}
		}
	}
	for _, d := range c.durations() {
		if val := *d.ptr; val < 0 || (d.positive && val == 0) {
			want := "must not be negative"
			if d.positive {
				want = "must be positive"
			}
			return fmt.Errorf("spec: config: %s %s, got %s", d.name, want, val)
		}
	}
	if c.StartRetries < 1 {
		return fmt.Errorf("spec: config: start_retries must be at least 1, got %d", c.StartRetries)
	}
	if c.HeartbeatExpiry <= 2*c.HeartbeatInterval {
		return fmt.Errorf("spec: config: heartbeat_expiry (%s) must be more than twice heartbeat_interval (%s), or live workers would look dead", c.HeartbeatExpiry, c.HeartbeatInterval)
	}
	return nil
}

// durationSetting is one duration setting of a Config: its key, where it
// is kept, and whether zero is allowed.
type durationSetting struct {
	name     string
	ptr      *time.Duration
	positive bool
}

// durations lists c's duration settings, the one table that decoding,
// validation and encoding share.
func (c *Config) durations() []durationSetting {
	return []durationSetting{
		{"term_timeout", &c.TermTimeout, false},
		{"start_secs", &c.StartSecs, false},
		{"backoff_max", &c.BackoffMax, false},
		{"job_timeout", &c.JobTimeout, false},
		{"heartbeat_interval", &c.HeartbeatInterval, true},
		{"heartbeat_expiry", &c.HeartbeatExpiry, true},
		{"recovery_interval", &c.RecoveryInterval, true},
		{"sample_interval", &c.SampleInterval, true},
		{"stalled_after", &c.StalledAfter, true},
		{"reply_ttl", &c.ReplyTTL, true},
	}
}

// MetricsListenAddr checks a metrics address (HOST:PORT, or :PORT) and
// returns the address to listen on: a bare ":PORT" binds loopback only, so
// that metrics are never exposed to the network by accident.
func MetricsListenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not HOST:PORT or :PORT", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%q: port must be a number from 0 to 65535", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// sortedKeys returns the keys of m in sorted order.
func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// WorkerArgv returns the argv for a worker of the given queue list: its
// group's command, else Command, with {queues} substituted, or nil when Command is empty (caller uses the
// built-in worker). The result is a fresh slice.
func (c *Config) WorkerArgv(queues string) []string {
	command := c.Command
	if g, ok := c.Groups[queues]; ok && g.Command != nil {
		command = g.Command
	}
	if len(command) == 0 {
		return nil
	}
	argv := make([]string, len(command))
	for i, arg := range command {
		argv[i] = strings.ReplaceAll(arg, "{queues}", queues)
	}
	return argv
}
