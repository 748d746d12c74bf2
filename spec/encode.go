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
	if c.Metrics != def.Metrics {
		add("metrics", strNode(c.Metrics))
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
