package spec

import (
	"bytes"
	"errors"
	"io"

	"gopkg.in/yaml.v3"
)

// SafeToRewrite reports whether data, a config file, can be replaced by
// Marshal's output without losing anything the user wrote: it is in
// poolctl's own layout (not a plain resque-pool.yml), has no
// environments: sections, no comments, no anchors or aliases. It says why
// not otherwise.
func SafeToRewrite(data []byte) (ok bool, why string) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); errors.Is(err, io.EOF) {
		return true, "" // empty
	} else if err != nil {
		return false, "it does not parse"
	}
	if len(doc.Content) == 0 {
		return true, ""
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return false, "it is not a mapping"
	}
	if isResquePool(root) {
		return false, "it is a resque-pool.yml, which poolctl's layout would replace"
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "environments" {
			return false, "it has environments: sections, which saving would flatten"
		}
	}
	var lossy func(n *yaml.Node) string
	lossy = func(n *yaml.Node) string {
		switch {
		case n.HeadComment != "" || n.LineComment != "" || n.FootComment != "":
			return "it has comments, which saving would lose"
		case n.Anchor != "" || n.Kind == yaml.AliasNode:
			return "it uses anchors or aliases, which saving would expand"
		}
		for _, c := range n.Content {
			if why := lossy(c); why != "" {
				return why
			}
		}
		return ""
	}
	if why := lossy(&doc); why != "" {
		return false, why
	}
	return true, ""
}
