package spec

import (
	"bytes"
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"
)

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
		count := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(e.Count)}
		if g, ok := c.Groups[e.Queues]; ok && !g.IsZero() {
			workers.Content = append(workers.Content, strNode(e.Queues), groupNode(count, g))
		} else if e.Count > 0 {
			workers.Content = append(workers.Content, strNode(e.Queues), count)
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
	if c.Limits != def.Limits {
		add("limits", limitsNode(c.Limits))
	}
	if c.Metrics != def.Metrics {
		add("metrics", strNode(c.Metrics))
	}
	if c.RemoteControl {
		add("remote_control", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	}
	defs := def.durations()
	for i, d := range c.durations() {
		if *d.ptr != *defs[i].ptr {
			add(d.name, strNode(d.ptr.String()))
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

// groupNode renders a queue list's count and settings as a mapping.
func groupNode(count *yaml.Node, g Group) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, v *yaml.Node) { m.Content = append(m.Content, strNode(key), v) }
	add("count", count)
	if g.Command != nil {
		add("command", seqNode(g.Command))
	}
	if g.JobTimeout != nil {
		add("job_timeout", strNode(g.JobTimeout.String()))
	}
	if g.MaxRSS > 0 {
		add("max_rss", strNode(FormatBytes(g.MaxRSS)))
	}
	if g.MaxJobs > 0 {
		add("max_jobs", intNode(g.MaxJobs))
	}
	if g.MaxLifetime > 0 {
		add("max_lifetime", strNode(g.MaxLifetime.String()))
	}
	if g.StartSecs != nil {
		add("start_secs", strNode(g.StartSecs.String()))
	}
	if a := g.Autoscale; a != nil {
		as := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
		as.Content = append(as.Content, strNode("min"), intNode(a.Min), strNode("max"), intNode(a.Max),
			strNode("target_wait"), strNode(a.TargetWait.String()), strNode("down_after"), strNode(a.DownAfter.String()))
		add("autoscale", as)
	}
	return m
}

// limitsNode renders the limits that are set.
func limitsNode(l Limits) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	add := func(key string, v *yaml.Node) { m.Content = append(m.Content, strNode(key), v) }
	if l.MaxWorkers > 0 {
		add("max_workers", intNode(l.MaxWorkers))
	}
	if l.MaxCPU > 0 {
		add("max_cpu", strNode(strconv.FormatFloat(l.MaxCPU, 'f', -1, 64)+"%"))
	}
	if l.MinFreeMemory > 0 {
		add("min_free_memory", strNode(FormatBytes(l.MinFreeMemory)))
	}
	if l.MaxWorkerRSS > 0 {
		add("max_worker_rss", strNode(FormatBytes(l.MaxWorkerRSS)))
	}
	return m
}

func intNode(n int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(n)}
}
