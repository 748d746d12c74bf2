package spec

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", " ", "foo=2", "foo=2:bar=4", "baz,quux,xyzzy=5", "*=2", "high_*=1:*=0",
		"  foo = 2 : bar , baz=3 ", "a=1::b=2", "a=1:", "=3", "foo,,bar=2", "foo=1:foo=2",
		"foo,foo=1", "fo o=1", "a$b=1", "foo=1001", "foo=99999999999999999999", "foo=-1",
		"é=1", "a\xff=1", "foo=2=3", ":", "foo", strings.Repeat("q", 513) + "=1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %v is not *Error", in, err)
			}
			if se.Entry < 1 || se.Column < 1 || se.Column > len(in)+1 {
				t.Fatalf("Parse(%q) error %+v has a bad position", in, se)
			}
			return
		}
		for _, e := range s {
			if e.Count < 0 || e.Count > MaxCount {
				t.Fatalf("Parse(%q) gave count %d", in, e.Count)
			}
		}
		checkRoundTrip(t, in, s)
	})
}

func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"",
		fullExample,
		"foo: 1\nbar: 2\nproduction: {foo: 3, bar: 0}\n",
		"workers:\n  foo: [1\n",
		"workers: &w {foo: 1}\nenvironments:\n  production: {workers: *w}\n",
		"environments:\n  production:\n    workers: {a: x}\n",
		"term_timeout: 1e300\nstart_secs: NaN\n",
		"- a\n- b\n",
		"a: 1\n---\nb: 2\n",
		"workers: {'*': 2, 'a, b': 1}\ncommand: [x, '{queues}']\njobs: {A: [a]}\n",
		"\x01",
		groupsYAML,
		"workers:\n  a: {count: 0, max_rss: 1.5KB, autoscale: {max: 3}}\n  b: 1\nlimits: {max_cpu: 12.5}\n",
		"workers:\n  a: {autoscale: {max: 2}}\nenvironments:\n  production:\n    workers: {a: 0}\n",
	} {
		f.Add([]byte(seed), "production")
	}
	f.Fuzz(func(t *testing.T, data []byte, env string) {
		c, err := ParseConfig(data, "fuzz.yml", env)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig result does not validate: %v", err)
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := ParseConfig(out, "marshalled.yml", "")
		if err != nil {
			t.Fatalf("ParseConfig(Marshal()) error: %v\n%s", err, out)
		}
		if !configsEqual(back, c) {
			t.Fatalf("round trip mismatch\n got: %#v\nwant: %#v\nyaml:\n%s", back, c, out)
		}
	})
}
