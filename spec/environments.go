package spec

import (
	"os"

	"gopkg.in/yaml.v3"
)

// Environments lists the environment sections of a config file, in file
// order: the keys of "environments:" in poolctl's layout, or the nested
// mappings of a plain resque-pool.yml. A file that does not parse gives
// the error ParseConfig gives.
func Environments(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: err.Error(), Err: err}
	}
	if _, err := ParseConfig(data, path, ""); err != nil {
		return nil, err
	}
	d := &decoder{file: path}
	root, err := d.document(data)
	if err != nil || root == nil || root.Kind != yaml.MappingNode {
		return nil, err
	}
	var names []string
	if isResquePool(root) {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if v := resolve(root.Content[i+1]); v.Kind == yaml.MappingNode {
				names = append(names, resolve(root.Content[i]).Value)
			}
		}
		return names, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := resolve(root.Content[i]), resolve(root.Content[i+1])
		if k.Value != "environments" || v.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			names = append(names, resolve(v.Content[j]).Value)
		}
	}
	return names, nil
}
