package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

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
		"sample_interval", "stalled_after", "reply_ttl", "metrics", "limits", "remote_control",
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

// poolWorkers decodes poolctl's workers mapping: queue list -> count, or
// queue list -> group mapping (Group).
func (d *decoder) poolWorkers(n *yaml.Node, prefix string) (Spec, map[string]Group, error) {
	if n.Kind != yaml.MappingNode {
		return nil, nil, d.errorf(n, "%smust be a mapping of queue list to count (or to settings), got %s", prefix, describe(n))
	}
	seen := make(map[string]int)
	out := make(Spec, 0, len(n.Content)/2)
	var groups map[string]Group
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if v.Kind != yaml.MappingNode {
			e, err := d.workerEntry(k, v, prefix, seen)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, e)
			continue
		}
		e, err := d.workerEntry(k, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: "0"}, prefix, seen)
		if err != nil {
			return nil, nil, err
		}
		count, g, err := d.group(v, e.Queues, prefix)
		if err != nil {
			return nil, nil, err
		}
		e.Count = count
		out = append(out, e)
		if !g.IsZero() {
			if groups == nil {
				groups = map[string]Group{}
			}
			groups[e.Queues] = g
		}
	}
	return out, groups, nil
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
			var groups map[string]Group
			if s, groups, err = d.poolWorkers(v, prefix); err == nil {
				c.Workers = c.Workers.Merge(s)
				for _, e := range s {
					if g, ok := groups[e.Queues]; ok {
						if c.Groups == nil {
							c.Groups = map[string]Group{}
						}
						c.Groups[e.Queues] = g
					} else {
						delete(c.Groups, e.Queues) // a plain count in an environment drops the root's settings
					}
				}
			}
		case "limits":
			c.Limits, err = d.limits(v, prefix)
		case "command":
			c.Command, err = d.argv(v, prefix)
		case "jobs":
			err = d.jobs(v, prefix, c)
		case "redis":
			c.Redis, err = d.str(v, prefix)
		case "namespace":
			c.Namespace, err = d.str(v, prefix)
		case "metrics":
			c.Metrics, err = d.str(v, prefix)
		case "remote_control":
			c.RemoteControl, err = d.boolean(v, prefix)
		case "start_retries":
			c.StartRetries, err = d.startRetries(v, prefix)
		case "environments":
			envs = v
		default:
			for _, ds := range c.durations() {
				if ds.name == key {
					*ds.ptr, err = d.duration(v, prefix)
				}
			}
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

// boolean decodes true or false (YAML 1.2: not yes/no/on/off, which
// would be read as strings and silently mean something else).
func (d *decoder) boolean(n *yaml.Node, prefix string) (bool, error) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, nil
		}
	}
	return false, d.errorf(n, "%smust be true or false, got %s", prefix, describe(n))
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
