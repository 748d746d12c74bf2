package spec

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Group is a queue list's own settings: the mapping form of a value under
// workers: (an integer there means {count: N} and no settings of its own).
// This is the one place per-group settings are parsed and validated.
//
//	workers:
//	  mail: 2
//	  "reports,default":
//	    count: 4
//	    command: [bin/reports-worker, "{queues}"]
//	    job_timeout: 10m
//	    max_rss: 500MB
//	    max_jobs: 1000
//	    max_lifetime: 6h
//	    start_secs: 5s
//	    autoscale: {min: 1, max: 32, target_wait: 5s, down_after: 30s}
type Group struct {
	// Command is this list's worker argv ("{queues}" substituted), nil
	// for the config's command.
	Command []string
	// JobTimeout, when set, replaces the config's job_timeout.
	JobTimeout *time.Duration
	// MaxRSS recycles a worker whose process tree stays above it (bytes,
	// 0 = no limit).
	MaxRSS uint64
	// MaxJobs recycles a worker after it ran this many jobs (0 = never).
	MaxJobs int
	// MaxLifetime recycles a worker older than this (0 = never).
	MaxLifetime time.Duration
	// StartSecs, when set, replaces the config's start_secs for this
	// list: how long a worker must live for its start to count, and for
	// a command worker to be ready in a rolling restart.
	//lint:ignore ST1011 named after the start_secs setting (supervisord's startsecs)
	StartSecs *time.Duration
	// Autoscale, when set, lets the master choose the count within its
	// bounds.
	Autoscale *Autoscale
}

// Autoscale bounds and pace a group's automatic count.
type Autoscale struct {
	Min, Max int
	// TargetWait is how long a job should wait in the queue at most.
	TargetWait time.Duration
	// DownAfter is how long a surplus must last before a worker is
	// stopped.
	DownAfter time.Duration
}

// Defaults of the autoscale settings.
const (
	DefaultTargetWait = 5 * time.Second
	DefaultDownAfter  = 30 * time.Second
)

// Limits are the machine limits no scaling may cross.
type Limits struct {
	MaxWorkers    int     // whole pool, 0 = MaxCount per list only
	MaxCPU        float64 // host CPU busy %, 0 = none
	MinFreeMemory uint64  // bytes, 0 = none
	MaxWorkerRSS  uint64  // bytes: a worker's expected size, for the memory estimate (0 = measured)
}

// IsZero reports whether g has no settings of its own.
func (g Group) IsZero() bool {
	return g.Command == nil && g.JobTimeout == nil && g.MaxRSS == 0 && g.MaxJobs == 0 && g.MaxLifetime == 0 && g.Autoscale == nil && g.StartSecs == nil
}

// Group returns the settings in force for the queue list queues
// (canonical form): its own, with the config's command, job_timeout and
// start_secs where it has none.
func (c *Config) Group(queues string) Group {
	g := c.Groups[queues]
	if g.Command == nil && len(c.Command) > 0 {
		g.Command = c.Command
	}
	if g.JobTimeout == nil {
		jt := c.JobTimeout
		g.JobTimeout = &jt
	}
	if g.StartSecs == nil {
		ss := c.StartSecs
		g.StartSecs = &ss
	}
	return g
}

// groupKeys are the keys of a group mapping.
var groupKeys = []string{"count", "command", "job_timeout", "max_rss", "max_jobs", "max_lifetime", "start_secs", "autoscale"}

// group decodes a group mapping; count is -1 when the mapping gives none.
func (d *decoder) group(n *yaml.Node, queues, prefix string) (count int, g Group, err error) {
	count = -1
	prefix = fmt.Sprintf("%s%q: ", prefix, queues)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return 0, g, d.errorf(k, "%skeys must be strings, got %s", prefix, describe(k))
		}
		if line, dup := seen[k.Value]; dup {
			return 0, g, d.errorf(k, "%sduplicate key %q (first at line %d)", prefix, k.Value, line)
		}
		seen[k.Value] = k.Line
		p := prefix + k.Value + ": "
		switch k.Value {
		case "count":
			n, ok := intValue(v)
			if !ok || n < 0 || n > MaxCount {
				return 0, g, d.errorf(v, "%smust be an integer from 0 to %d, got %s", p, MaxCount, describe(v))
			}
			count = int(n)
		case "command":
			if g.Command, err = d.argv(v, p); err == nil && len(g.Command) == 0 {
				err = d.errorf(v, "%smust not be empty", p)
			}
		case "job_timeout":
			var jt time.Duration
			if jt, err = d.duration(v, p); err == nil {
				g.JobTimeout = &jt
			}
		case "max_rss":
			g.MaxRSS, err = d.bytes(v, p)
		case "max_jobs":
			n, ok := intValue(v)
			if !ok || n < 0 || n > math.MaxInt32 {
				return 0, g, d.errorf(v, "%smust be a non-negative integer, got %s", p, describe(v))
			}
			g.MaxJobs = int(n)
		case "max_lifetime":
			g.MaxLifetime, err = d.duration(v, p)
		case "start_secs":
			var ss time.Duration
			if ss, err = d.duration(v, p); err == nil {
				g.StartSecs = &ss
			}
		case "autoscale":
			g.Autoscale, err = d.autoscale(v, p)
		default:
			return 0, g, d.errorf(k, "%sunknown key %q (want one of %s)", prefix, k.Value, strings.Join(groupKeys, ", "))
		}
		if err != nil {
			return 0, g, err
		}
	}
	if count < 0 {
		if g.Autoscale == nil {
			return 0, g, d.errorf(n, "%sneeds count: N (or autoscale:)", prefix)
		}
		// Start at min, but at least one worker: a count of 0 removes a
		// queue list, while the autoscaler may still take it down to a
		// min of 0 when idle.
		count = max(g.Autoscale.Min, 1)
	}
	if a := g.Autoscale; a != nil && (count < a.Min || count > a.Max) {
		return 0, g, d.errorf(n, "%scount %d is outside autoscale's bounds %d..%d", prefix, count, a.Min, a.Max)
	}
	return count, g, nil
}

// autoscale decodes an autoscale mapping.
func (d *decoder) autoscale(n *yaml.Node, prefix string) (*Autoscale, error) {
	if n.Kind != yaml.MappingNode {
		return nil, d.errorf(n, "%smust be a mapping {min, max, target_wait, down_after}, got %s", prefix, describe(n))
	}
	a := &Autoscale{Min: -1, Max: -1, TargetWait: DefaultTargetWait, DownAfter: DefaultDownAfter}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if line, dup := seen[k.Value]; dup {
			return nil, d.errorf(k, "%sduplicate key %q (first at line %d)", prefix, k.Value, line)
		}
		seen[k.Value] = k.Line
		p := prefix + k.Value + ": "
		var err error
		switch k.Value {
		case "min", "max":
			n, ok := intValue(v)
			if !ok || n < 0 || n > MaxCount {
				return nil, d.errorf(v, "%smust be an integer from 0 to %d, got %s", p, MaxCount, describe(v))
			}
			if k.Value == "min" {
				a.Min = int(n)
			} else {
				a.Max = int(n)
			}
		case "target_wait":
			if a.TargetWait, err = d.duration(v, p); err == nil && a.TargetWait <= 0 {
				err = d.errorf(v, "%smust be positive", p)
			}
		case "down_after":
			a.DownAfter, err = d.duration(v, p)
		default:
			return nil, d.errorf(k, "%sunknown key %q (want min, max, target_wait, down_after)", prefix, k.Value)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case a.Max < 0:
		return nil, d.errorf(n, "%sneeds max: N", prefix)
	case a.Min < 0:
		a.Min = 0
	}
	if a.Min > a.Max {
		return nil, d.errorf(n, "%smin %d is more than max %d", prefix, a.Min, a.Max)
	}
	return a, nil
}

// limits decodes the limits mapping.
func (d *decoder) limits(n *yaml.Node, prefix string) (Limits, error) {
	var l Limits
	if n.Kind != yaml.MappingNode {
		return l, d.errorf(n, "%smust be a mapping {max_workers, max_cpu, min_free_memory, max_worker_rss}, got %s", prefix, describe(n))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if line, dup := seen[k.Value]; dup {
			return l, d.errorf(k, "%sduplicate key %q (first at line %d)", prefix, k.Value, line)
		}
		seen[k.Value] = k.Line
		p := prefix + k.Value + ": "
		var err error
		switch k.Value {
		case "max_workers":
			n, ok := intValue(v)
			if !ok || n < 0 || n > math.MaxInt32 {
				return l, d.errorf(v, "%smust be a non-negative integer, got %s", p, describe(v))
			}
			l.MaxWorkers = int(n)
		case "max_cpu":
			l.MaxCPU, err = d.percent(v, p)
		case "min_free_memory":
			l.MinFreeMemory, err = d.bytes(v, p)
		case "max_worker_rss":
			l.MaxWorkerRSS, err = d.bytes(v, p)
		default:
			return l, d.errorf(k, "%sunknown key %q (want max_workers, max_cpu, min_free_memory, max_worker_rss)", prefix, k.Value)
		}
		if err != nil {
			return l, err
		}
	}
	return l, nil
}

// bytes decodes a size: a number of bytes, or a number with a unit (K,
// KB, KiB, M, MB, MiB, G, GB, GiB, T, TB, TiB; every unit is binary, as
// memory is counted in pages: 1MB = 1MiB = 1048576 bytes).
func (d *decoder) bytes(n *yaml.Node, prefix string) (uint64, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, d.errorf(n, "%smust be a size, got %s", prefix, describe(n))
	}
	b, err := ParseBytes(n.Value)
	if err != nil {
		return 0, d.errorf(n, "%s%v", prefix, err)
	}
	return b, nil
}

// ParseBytes parses a size such as "512MB", "1.5GiB" or "1048576".
func ParseBytes(s string) (uint64, error) {
	v := strings.TrimSpace(s)
	i := len(v)
	for i > 0 && (v[i-1] < '0' || v[i-1] > '9') {
		i--
	}
	num, unit := v[:i], strings.ToUpper(strings.TrimSpace(v[i:]))
	mult := map[string]float64{"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
		"G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if mult == 0 || err != nil || f < 0 || math.IsInf(f, 0) || f*mult >= math.MaxInt64 {
		return 0, fmt.Errorf(`invalid size %q (want e.g. "512MB", "1GB" or a number of bytes)`, s)
	}
	return uint64(math.Round(f * mult)), nil
}

// FormatBytes renders b in the largest binary unit that divides it ("512MB").
func FormatBytes(b uint64) string {
	for _, u := range []struct {
		name string
		size uint64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}} {
		if b >= u.size && b%u.size == 0 {
			return strconv.FormatUint(b/u.size, 10) + u.name
		}
	}
	return strconv.FormatUint(b, 10)
}

// percent decodes "90%" or 90 (a share of all CPUs, 0 < p <= 100).
func (d *decoder) percent(n *yaml.Node, prefix string) (float64, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, d.errorf(n, "%smust be a percentage, got %s", prefix, describe(n))
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(n.Value), "%"), 64)
	if err != nil || f <= 0 || f > 100 {
		return 0, d.errorf(n, `%sinvalid percentage %q (want e.g. "90%%", more than 0 and at most 100)`, prefix, n.Value)
	}
	return f, nil
}

// validateGroup checks a group's values. Settings of a queue list that an
// update removed from workers: are kept and ignored, so that adding it
// back restores them.
func (c *Config) validateGroup(queues string, g Group) error {
	prefix := fmt.Sprintf("spec: config: workers: %q: ", queues)
	count := 0
	for _, e := range c.Workers {
		if e.Queues == queues {
			count = e.Count
		}
	}
	for i, arg := range g.Command {
		if arg == "" {
			return fmt.Errorf("%scommand: argument %d must be a non-empty string", prefix, i+1)
		}
	}
	if g.Command != nil && len(g.Command) == 0 {
		return fmt.Errorf("%scommand: must not be empty", prefix)
	}
	if g.JobTimeout != nil && *g.JobTimeout < 0 || g.MaxLifetime < 0 || g.MaxJobs < 0 || g.StartSecs != nil && *g.StartSecs < 0 {
		return fmt.Errorf("%sjob_timeout, max_lifetime, max_jobs and start_secs must not be negative", prefix)
	}
	if a := g.Autoscale; a != nil {
		switch {
		case a.Min < 0 || a.Max > MaxCount || a.Min > a.Max:
			return fmt.Errorf("%sautoscale: bounds %d..%d must be within 0..%d, min first", prefix, a.Min, a.Max, MaxCount)
		case a.TargetWait <= 0 || a.DownAfter < 0:
			return fmt.Errorf("%sautoscale: target_wait must be positive and down_after not negative", prefix)
		case count != 0 && (count < a.Min || count > a.Max):
			// 0 is a queue list removed by an update (spec merge).
			return fmt.Errorf("%scount %d is outside autoscale's bounds %d..%d", prefix, count, a.Min, a.Max)
		}
	}
	return nil
}

// sortedGroupKeys returns the queue lists of m in sorted order.
func sortedGroupKeys(m map[string]Group) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// pruneGroups forgets the settings of queue lists that workers: does not
// run (a count of 0, or removed by an environment), so that a parsed
// config holds settings only for the lists it runs.
func (c *Config) pruneGroups() {
	for q := range c.Groups {
		if c.Workers.Count(q) == 0 {
			delete(c.Groups, q)
		}
	}
	if len(c.Groups) == 0 {
		c.Groups = nil
	}
}
