package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
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
)

// yamlLineError matches a yaml.v3 error message that carries a line number.
var yamlLineError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Config is a pool configuration file.
type Config struct {
	Workers     Spec                // queue list -> count
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
	if err := c.Validate(); err != nil {
		return nil, &ConfigError{File: filename, Msg: err.Error(), Err: err}
	}
	return &c, nil
}

// decoder turns YAML nodes into a Config, reporting errors with file and line.
type decoder struct {
	file string
}

// errorf returns a *ConfigError located at n.
func (d *decoder) errorf(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &ConfigError{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// yamlError converts a yaml.v3 parse error into a *ConfigError.
//
// yaml.v3 prints 0-based line numbers for parser errors (1-based ones for
// scanner errors), and no line at all when the mark is on the first line;
// this corrects both. Reader errors (bad encoding, control characters) carry
// no position and are reported without a line.
func (d *decoder) yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineError.FindStringSubmatch(err.Error()); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			line, msg = n, m[2]
			if isParserProblem(msg) {
				line++
			}
		}
	} else if !isPositionlessProblem(msg) {
		line = 1
	}
	return &ConfigError{File: d.file, Line: line, Msg: "invalid YAML: " + msg, Err: err}
}

// isParserProblem reports whether msg is one of yaml.v3's parser (as
// opposed to scanner) problems.
func isParserProblem(msg string) bool {
	switch msg {
	case "did not find expected ',' or ']'", "did not find expected ',' or '}'",
		"did not find expected key", "did not find expected node content",
		"did not find expected '-' indicator", "did not find expected <document start>",
		"did not find expected <stream-start>", "found duplicate %YAML directive",
		"found duplicate %TAG directive", "found incompatible YAML document",
		"found undefined tag handle":
		return true
	}
	return false
}

// isPositionlessProblem reports whether msg is a yaml.v3 error that carries
// no position: reader (encoding) errors and composer errors.
func isPositionlessProblem(msg string) bool {
	switch msg {
	case "control characters are not allowed", "invalid leading UTF-8 octet",
		"incomplete UTF-8 octet sequence", "invalid trailing UTF-8 octet",
		"invalid length of a UTF-8 sequence", "invalid Unicode character",
		"incomplete UTF-16 character", "unexpected low surrogate area",
		"incomplete UTF-16 surrogate pair", "expected low surrogate area":
		return true
	}
	for _, prefix := range []string{"input error", "unknown anchor", "anchor ", "document contains", "attempted"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// document parses data and returns its root node, or nil for an empty
// document.
func (d *decoder) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, d.yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, d.errorf(&extra, "multiple YAML documents are not supported")
	} else if !errors.Is(err, io.EOF) {
		return nil, d.yamlError(err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return nil, nil
	}
	return root, nil
}

// resolve follows alias nodes to the node they refer to.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < 8 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is a null scalar ("", "~", "null").
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// isInt reports whether n is an integer scalar.
func isInt(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int"
}

// intValue returns the value of an integer scalar.
func intValue(n *yaml.Node) (int64, bool) {
	if !isInt(n) {
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		return 0, false
	}
	return v, true
}

// describe names a node's value for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "an unsupported node"
}

// isSettingKey reports whether key is a poolctl top-level key.
func isSettingKey(key string) bool {
	switch key {
	case "workers", "command", "jobs", "redis", "namespace",
		"term_timeout", "start_secs", "start_retries", "backoff_max", "job_timeout",
		"heartbeat_interval", "heartbeat_expiry", "recovery_interval",
		"environments":
		return true
	}
	return false
}

// isResquePool reports whether root (a mapping) is in the plain resque-pool
// layout: no poolctl keys (except "jobs" with an integer value, read as a
// queue) and every value an integer, a mapping or null.
func isResquePool(root *yaml.Node) bool {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := resolve(root.Content[i]), resolve(root.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return false
		}
		if isSettingKey(k.Value) && !(k.Value == "jobs" && isInt(v)) {
			return false
		}
		if !isInt(v) && !isNull(v) && v.Kind != yaml.MappingNode {
			return false
		}
	}
	return true
}

// workerEntry decodes one queue list -> count pair. seen maps the canonical
// queue lists already decoded to their lines. prefix starts messages.
func (d *decoder) workerEntry(k, v *yaml.Node, prefix string, seen map[string]int) (Entry, error) {
	if k.Kind != yaml.ScalarNode {
		return Entry{}, d.errorf(k, "%squeue lists must be strings, got %s", prefix, describe(k))
	}
	queues, reason := canonicalQueueList(k.Value)
	if reason != "" {
		return Entry{}, d.errorf(k, "%s%s", prefix, reason)
	}
	if line, dup := seen[queues]; dup {
		return Entry{}, d.errorf(k, "%squeue list %q appears twice (first at line %d)", prefix, queues, line)
	}
	seen[queues] = k.Line
	n, ok := intValue(v)
	switch {
	case !ok:
		return Entry{}, d.errorf(v, "%scount for %q must be an integer, got %s", prefix, queues, describe(v))
	case n < 0:
		return Entry{}, d.errorf(v, "%scount for %q must not be negative, got %d", prefix, queues, n)
	case n > MaxCount:
		return Entry{}, d.errorf(v, "%scount for %q exceeds the limit of %d, got %d", prefix, queues, MaxCount, n)
	}
	return Entry{Queues: queues, Count: int(n)}, nil
}

// workers decodes a mapping of queue list -> count.
func (d *decoder) workers(n *yaml.Node, prefix string) (Spec, error) {
	if n.Kind != yaml.MappingNode {
		return nil, d.errorf(n, "%smust be a mapping of queue list to count, got %s", prefix, describe(n))
	}
	seen := make(map[string]int)
	out := make(Spec, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		e, err := d.workerEntry(resolve(n.Content[i]), resolve(n.Content[i+1]), prefix, seen)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// resquePool decodes a plain resque-pool.yml into c.
func (d *decoder) resquePool(root *yaml.Node, env string, c *Config) error {
	var base, override Spec
	seenLists := make(map[string]int)
	seenKeys := make(map[string]int)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := resolve(root.Content[i]), resolve(root.Content[i+1])
		if isInt(v) {
			e, err := d.workerEntry(k, v, "", seenLists)
			if err != nil {
				return err
			}
			base = append(base, e)
		}
		if line, dup := seenKeys[k.Value]; dup {
			return d.errorf(k, "duplicate key %q (first at line %d)", k.Value, line)
		}
		seenKeys[k.Value] = k.Line
		if isInt(v) || isNull(v) {
			continue
		}
		// An environment section. Every section is checked, so that an
		// error in one is found whichever environment is selected.
		s, err := d.workers(v, k.Value+": ")
		if err != nil {
			return err
		}
		if env != "" && k.Value == env {
			override = s
		}
	}
	c.Workers = c.Workers.Merge(base).Merge(override)
	return nil
}

// section decodes a poolctl mapping (the root, when path is "", or an
// environment section) into c. env selects the environment to merge over
// the root.
func (d *decoder) section(m *yaml.Node, path, env string, c *Config) error {
	seen := make(map[string]int)
	var envs *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := resolve(m.Content[i]), resolve(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return d.errorf(k, "%skeys must be strings, got %s", path, describe(k))
		}
		key := k.Value
		if line, dup := seen[key]; dup {
			return d.errorf(k, "%sduplicate key %q (first at line %d)", path, key, line)
		}
		seen[key] = k.Line
		if !isSettingKey(key) || (key == "environments" && path != "") {
			return d.errorf(k, "%sunknown key %q", path, key)
		}
		if isNull(v) {
			continue
		}
		prefix := path + key + ": "
		var err error
		switch key {
		case "workers":
			var s Spec
			if s, err = d.workers(v, prefix); err == nil {
				c.Workers = c.Workers.Merge(s)
			}
		case "command":
			c.Command, err = d.argv(v, prefix)
		case "jobs":
			err = d.jobs(v, prefix, c)
		case "redis":
			c.Redis, err = d.str(v, prefix)
		case "namespace":
			c.Namespace, err = d.str(v, prefix)
		case "term_timeout":
			c.TermTimeout, err = d.duration(v, prefix)
		case "start_secs":
			c.StartSecs, err = d.duration(v, prefix)
		case "backoff_max":
			c.BackoffMax, err = d.duration(v, prefix)
		case "job_timeout":
			c.JobTimeout, err = d.duration(v, prefix)
		case "heartbeat_interval":
			c.HeartbeatInterval, err = d.duration(v, prefix)
		case "heartbeat_expiry":
			c.HeartbeatExpiry, err = d.duration(v, prefix)
		case "recovery_interval":
			c.RecoveryInterval, err = d.duration(v, prefix)
		case "start_retries":
			c.StartRetries, err = d.startRetries(v, prefix)
		case "environments":
			envs = v
		}
		if err != nil {
			return err
		}
	}
	if envs != nil {
		return d.environments(envs, env, c)
	}
	return nil
}

// environments decodes the environments mapping, merging the section named
// env over c. Every section is checked for errors.
func (d *decoder) environments(n *yaml.Node, env string, c *Config) error {
	if n.Kind != yaml.MappingNode {
		return d.errorf(n, "environments: must be a mapping of environment name to settings, got %s", describe(n))
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return d.errorf(k, "environments: names must be strings, got %s", describe(k))
		}
		name := k.Value
		if line, dup := seen[name]; dup {
			return d.errorf(k, "environments: duplicate environment %q (first at line %d)", name, line)
		}
		seen[name] = k.Line
		if isNull(v) {
			continue
		}
		prefix := "environments: " + name + ": "
		if v.Kind != yaml.MappingNode {
			return d.errorf(v, "%smust be a mapping, got %s", prefix, describe(v))
		}
		target := DefaultConfig()
		if env != "" && name == env {
			target = *c
		}
		if err := d.section(v, prefix, "", &target); err != nil {
			return err
		}
		if env != "" && name == env {
			*c = target
		}
	}
	return nil
}

// argv decodes a sequence of non-empty strings; an empty sequence is nil.
func (d *decoder) argv(n *yaml.Node, prefix string) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, d.errorf(n, "%smust be a sequence of strings, got %s", prefix, describe(n))
	}
	var out []string
	for i, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.ScalarNode || isNull(item) || item.Value == "" {
			return nil, d.errorf(item, "%sargument %d must be a non-empty string, got %s", prefix, i+1, describe(item))
		}
		out = append(out, item.Value)
	}
	return out, nil
}

// jobs decodes a mapping of job class -> argv, merging it into c.Jobs.
func (d *decoder) jobs(n *yaml.Node, prefix string, c *Config) error {
	if n.Kind != yaml.MappingNode {
		return d.errorf(n, "%smust be a mapping of job class to command, got %s", prefix, describe(n))
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || isNull(k) || k.Value == "" {
			return d.errorf(k, "%sclass names must be non-empty strings, got %s", prefix, describe(k))
		}
		class := k.Value
		if line, dup := seen[class]; dup {
			return d.errorf(k, "%sduplicate class %q (first at line %d)", prefix, class, line)
		}
		seen[class] = k.Line
		classPrefix := fmt.Sprintf("%sclass %q: ", prefix, class)
		argv, err := d.argv(v, classPrefix)
		if err != nil {
			return err
		}
		if len(argv) == 0 {
			return d.errorf(v, "%scommand must not be empty", classPrefix)
		}
		if c.Jobs == nil {
			c.Jobs = make(map[string][]string)
		}
		c.Jobs[class] = argv
	}
	return nil
}

// str decodes a scalar as a string.
func (d *decoder) str(n *yaml.Node, prefix string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", d.errorf(n, "%smust be a string, got %s", prefix, describe(n))
	}
	return n.Value, nil
}

// duration decodes a duration string ("10s", "1m30s") or a number of
// seconds (2.5).
func (d *decoder) duration(n *yaml.Node, prefix string) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, d.errorf(n, "%smust be a duration, got %s", prefix, describe(n))
	}
	var dur time.Duration
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil && !strings.ContainsAny(n.Value, "xXpP_") {
		secs := f * float64(time.Second)
		if math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) >= math.MaxInt64 {
			return 0, d.errorf(n, "%sduration %q is out of range", prefix, n.Value)
		}
		dur = time.Duration(math.Round(secs))
	} else if dur, err = time.ParseDuration(n.Value); err != nil {
		return 0, d.errorf(n, `%sinvalid duration %q (want e.g. "10s", "1m30s" or a number of seconds)`, prefix, n.Value)
	}
	if dur < 0 {
		return 0, d.errorf(n, "%smust not be negative, got %q", prefix, n.Value)
	}
	return dur, nil
}

// startRetries decodes start_retries, which must be at least 1.
func (d *decoder) startRetries(n *yaml.Node, prefix string) (int, error) {
	v, ok := intValue(n)
	if !ok || v > math.MaxInt32 {
		return 0, d.errorf(n, "%smust be an integer, got %s", prefix, describe(n))
	}
	if v < 1 {
		return 0, d.errorf(n, "%smust be at least 1, got %d", prefix, v)
	}
	return int(v), nil
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
	for _, d := range []struct {
		name string
		val  time.Duration
	}{
		{"term_timeout", c.TermTimeout},
		{"start_secs", c.StartSecs},
		{"backoff_max", c.BackoffMax},
		{"job_timeout", c.JobTimeout},
	} {
		if d.val < 0 {
			return fmt.Errorf("spec: config: %s must not be negative, got %s", d.name, d.val)
		}
	}
	if c.StartRetries < 1 {
		return fmt.Errorf("spec: config: start_retries must be at least 1, got %d", c.StartRetries)
	}
	for _, d := range []struct {
		name string
		val  time.Duration
	}{
		{"heartbeat_interval", c.HeartbeatInterval},
		{"heartbeat_expiry", c.HeartbeatExpiry},
		{"recovery_interval", c.RecoveryInterval},
	} {
		if d.val <= 0 {
			return fmt.Errorf("spec: config: %s must be positive, got %s", d.name, d.val)
		}
	}
	if c.HeartbeatExpiry <= 2*c.HeartbeatInterval {
		return fmt.Errorf("spec: config: heartbeat_expiry (%s) must be more than twice heartbeat_interval (%s), or live workers would look dead", c.HeartbeatExpiry, c.HeartbeatInterval)
	}
	return nil
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

// WorkerArgv returns the argv for a worker of the given queue list: Command
// with {queues} substituted, or nil when Command is empty (caller uses the
// built-in worker). The result is a fresh slice.
func (c *Config) WorkerArgv(queues string) []string {
	if len(c.Command) == 0 {
		return nil
	}
	argv := make([]string, len(c.Command))
	for i, arg := range c.Command {
		argv[i] = strings.ReplaceAll(arg, "{queues}", queues)
	}
	return argv
}

// Marshal renders c as YAML in the poolctl format: the workers mapping in
// spec order (always present, so the file is never mistaken for the
// resque-pool layout; 0-count entries omitted), then the settings that
// differ from the defaults, durations as strings like "10s". Jobs are
// sorted by class. ParseConfig(Marshal(c)) equals c for a valid c without
// 0-count workers. Marshal returns Validate's error for an invalid c.
func (c *Config) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	def := DefaultConfig()
	root := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, v *yaml.Node) {
		root.Content = append(root.Content, strNode(key), v)
	}

	workers := &yaml.Node{Kind: yaml.MappingNode}
	for _, e := range c.Workers {
		if e.Count > 0 {
			workers.Content = append(workers.Content, strNode(e.Queues),
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(e.Count)})
		}
	}
	if len(workers.Content) == 0 {
		workers.Style = yaml.FlowStyle
	}
	add("workers", workers)
	if len(c.Command) > 0 {
		add("command", seqNode(c.Command))
	}
	if len(c.Jobs) > 0 {
		jobs := &yaml.Node{Kind: yaml.MappingNode}
		for _, class := range sortedKeys(c.Jobs) {
			jobs.Content = append(jobs.Content, strNode(class), seqNode(c.Jobs[class]))
		}
		add("jobs", jobs)
	}
	if c.Redis != def.Redis {
		add("redis", strNode(c.Redis))
	}
	if c.Namespace != def.Namespace {
		add("namespace", strNode(c.Namespace))
	}
	for _, d := range []struct {
		name     string
		val, def time.Duration
	}{
		{"term_timeout", c.TermTimeout, def.TermTimeout},
		{"start_secs", c.StartSecs, def.StartSecs},
		{"backoff_max", c.BackoffMax, def.BackoffMax},
		{"job_timeout", c.JobTimeout, def.JobTimeout},
		{"heartbeat_interval", c.HeartbeatInterval, def.HeartbeatInterval},
		{"heartbeat_expiry", c.HeartbeatExpiry, def.HeartbeatExpiry},
		{"recovery_interval", c.RecoveryInterval, def.RecoveryInterval},
	} {
		if d.val != d.def {
			add(d.name, strNode(d.val.String()))
		}
	}
	if c.StartRetries != def.StartRetries {
		add("start_retries", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(c.StartRetries)})
	}

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("spec: marshal config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("spec: marshal config: %w", err)
	}
	return buf.Bytes(), nil
}

// strNode returns a string scalar node.
func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// seqNode returns a flow-style sequence of strings.
func seqNode(items []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, s := range items {
		n.Content = append(n.Content, strNode(s))
	}
	return n
}
