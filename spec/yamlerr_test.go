package spec

import "testing"

// yamlError rewrites yaml.v3's wording and positions; one case per
// message family it treats specially, so a yaml.v3 upgrade that changes
// any of them fails here first.
func TestYAMLErrorRewrites(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		// Parser problems: yaml.v3 counts their lines from 0.
		{"parser: flow sequence", "a: [1\n", "f.yml:2: invalid YAML: did not find expected ',' or ']'"},
		{"parser: flow mapping", "a: {b: 1\n", "f.yml:2: invalid YAML: did not find expected ',' or '}'"},
		{"parser: expected key", "a:\n  b: 1\n c: 2\n", "f.yml:3: invalid YAML: did not find expected key"},
		{"parser: node content", "a: 1\nb: ]\n", "f.yml:2: invalid YAML: did not find expected node content"},
		{"parser: '-' indicator", "- a\nb: 1\n", "f.yml:2: invalid YAML: did not find expected '-' indicator"},
		{"parser: duplicate %YAML", "%YAML 1.1\n%YAML 1.1\n---\na: 1\n", "f.yml:2: invalid YAML: found duplicate %YAML directive"},
		{"parser: undefined tag handle", "a: !x!y 1\n", "f.yml:1: invalid YAML: found undefined tag handle"},
		// Scanner problems: lines from 1, as printed.
		{"scanner: bad token", "a: 1\nb: @x\n", "f.yml:2: invalid YAML: found character that cannot start any token"},
		{"scanner: mapping value", "a: 1: 2\n", "f.yml:1: invalid YAML: mapping values are not allowed in this context"},
		// No line printed when the mark is on the first line.
		{"first line", "@x: 1\n", "f.yml:1: invalid YAML: found character that cannot start any token"},
		// Reader and composer problems carry no position at all.
		{"reader: control character", "a: \x01\n", "f.yml: invalid YAML: control characters are not allowed"},
		{"reader: invalid UTF-8", "a: \xff\n", "f.yml: invalid YAML: invalid leading UTF-8 octet"},
		{"composer: unknown anchor", "a: *nope\n", "f.yml: invalid YAML: unknown anchor 'nope' referenced"},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.doc), "f.yml", "")
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: %q\n got: %v\nwant: %s", c.name, c.doc, err, c.want)
		}
	}
}
