package spec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// withDefaults returns DefaultConfig modified by f.
func withDefaults(f func(c *Config)) *Config {
	c := DefaultConfig()
	f(&c)
	return &c
}

// configsEqual compares configs, treating nil and empty collections alike.
func configsEqual(a, b *Config) bool {
	norm := func(c Config) Config {
		if len(c.Workers) == 0 {
			c.Workers = Spec{}
		}
		if len(c.Command) == 0 {
			c.Command = nil
		}
		if len(c.Jobs) == 0 {
			c.Jobs = nil
		}
		return c
	}
	return reflect.DeepEqual(norm(*a), norm(*b))
}

const fullExample = `# poolctl pool
workers:
  foo: 2
  "bar, baz": 1
  '*': 3
  idle: 0
command: [php, worker.php, "--queues={queues}"]
jobs:
  Mailer: [bin/send-mail, --fast]
  "Reports::Daily":
    - bin/report
    - daily
redis: redis://localhost:6380/2
namespace: "myapp:"
term_timeout: 20s
start_secs: 2.5
start_retries: 3
backoff_max: 1m30s
job_timeout: 90
`

func TestParseConfig(t *testing.T) {
	full := withDefaults(func(c *Config) {
		c.Workers = Spec{{"foo", 2}, {"bar,baz", 1}, {"*", 3}}
		c.Command = []string{"php", "worker.php", "--queues={queues}"}
		c.Jobs = map[string][]string{
			"Mailer":         {"bin/send-mail", "--fast"},
			"Reports::Daily": {"bin/report", "daily"},
		}
		c.Redis = "redis://localhost:6380/2"
		c.Namespace = "myapp:"
		c.TermTimeout = 20 * time.Second
		c.StartSecs = 2500 * time.Millisecond
		c.StartRetries = 3
		c.BackoffMax = 90 * time.Second
		c.JobTimeout = 90 * time.Second
	})
	envExample := `workers:
  foo: 1
  bar: 2
redis: redis://main
environments:
  production:
    workers:
      foo: 3
      bar: 0
      baz: 1
    command: [w, "{queues}"]
    jobs: {B: [b]}
    term_timeout: 1m
  development:
    workers: {dev: 1}
    redis: ""
jobs: {A: [a]}
`
	tests := []struct {
		name string
		yaml string
		env  string
		want *Config
	}{
		{"empty file", "", "", withDefaults(func(*Config) {})},
		{"only comments", "# nothing here\n", "", withDefaults(func(*Config) {})},
		{"null document", "---\n~\n", "", withDefaults(func(*Config) {})},
		{"empty mapping", "{}", "", withDefaults(func(*Config) {})},
		{"full poolctl example", fullExample, "", full},
		{"full example ignores env", fullExample, "production", full},
		{"settings without workers", "start_retries: 2\n", "", withDefaults(func(c *Config) { c.StartRetries = 2 })},
		{"null settings keep defaults", "workers:\ncommand:\nnamespace:\nterm_timeout: ~\n", "", withDefaults(func(*Config) {})},
		{"empty command is built-in", "workers: {a: 1}\ncommand: []\n", "", withDefaults(func(c *Config) { c.Workers = Spec{{"a", 1}} })},
		{"duration forms", "term_timeout: 1m30s\nstart_secs: 0\nbackoff_max: \"45\"\njob_timeout: 0.25\nreply_ttl: 10m\n", "", withDefaults(func(c *Config) {
			c.ReplyTTL = 10 * time.Minute
			c.TermTimeout = 90 * time.Second
			c.StartSecs = 0
			c.BackoffMax = 45 * time.Second
			c.JobTimeout = 250 * time.Millisecond
		})},
		{"command scalars kept literally", "command: [worker, 5, true, \"{queues}\"]\n", "", withDefaults(func(c *Config) {
			c.Command = []string{"worker", "5", "true", "{queues}"}
		})},
		{"environments: none selected", envExample, "", withDefaults(func(c *Config) {
			c.Workers = Spec{{"foo", 1}, {"bar", 2}}
			c.Redis = "redis://main"
			c.Jobs = map[string][]string{"A": {"a"}}
		})},
		{"environments: production", envExample, "production", withDefaults(func(c *Config) {
			c.Workers = Spec{{"foo", 3}, {"baz", 1}}
			c.Redis = "redis://main"
			c.Command = []string{"w", "{queues}"}
			c.Jobs = map[string][]string{"A": {"a"}, "B": {"b"}}
			c.TermTimeout = time.Minute
		})},
		{"environments: development", envExample, "development", withDefaults(func(c *Config) {
			c.Workers = Spec{{"foo", 1}, {"bar", 2}, {"dev", 1}}
			c.Jobs = map[string][]string{"A": {"a"}}
		})},
		{"environments: unknown env", envExample, "staging", withDefaults(func(c *Config) {
			c.Workers = Spec{{"foo", 1}, {"bar", 2}}
			c.Redis = "redis://main"
			c.Jobs = map[string][]string{"A": {"a"}}
		})},
		{"resque-pool flat", "foo: 1\n\"bar,baz\": 2\n'*': 1\n", "", withDefaults(func(c *Config) {
			c.Workers = Spec{{"foo", 1}, {"bar,baz", 2}, {"*", 1}}
		})},
		{"resque-pool env merge", "foo: 1\nbar: 2\nproduction: {foo: 3, bar: 0}\n", "production", withDefaults(func(c *Config) {
			c.Workers = Spec{{"foo", 3}}
		})},
		{"resque-pool env adds", "foo: 1\nproduction:\n  baz: 4\ndevelopment:\n  qux: 1\n", "production", withDefaults(func(c *Config) {
			c.Workers = Spec{{"foo", 1}, {"baz", 4}}
		})},
		{"resque-pool other env ignored", "foo: 1\nbar: 2\nproduction: {foo: 3, bar: 0}\n", "development", withDefaults(func(c *Config) {
			c.Workers = Spec{{"foo", 1}, {"bar", 2}}
		})},
		{"resque-pool no env", "foo: 1\nproduction: {foo: 3}\n", "", withDefaults(func(c *Config) {
			c.Workers = Spec{{"foo", 1}}
		})},
		{"resque-pool env only", "production:\n  foo: 2\nstaging:\n", "production", withDefaults(func(c *Config) {
			c.Workers = Spec{{"foo", 2}}
		})},
		{"resque-pool queue named jobs", "jobs: 2\nfoo: 1\n", "", withDefaults(func(c *Config) {
			c.Workers = Spec{{"jobs", 2}, {"foo", 1}}
		})},
		{"resque-pool zero count", "foo: 0\nbar: 1\n", "", withDefaults(func(c *Config) {
			c.Workers = Spec{{"bar", 1}}
		})},
		{"anchors and aliases", "workers: &w {foo: 1}\nenvironments:\n  production: {workers: *w}\n", "production", withDefaults(func(c *Config) {
			c.Workers = Spec{{"foo", 1}}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tt.yaml), "pool.yml", tt.env)
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseConfig =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	long := strings.Repeat("q", 513)
	tests := []struct {
		name string
		yaml string
		env  string
		want string
	}{
		{"yaml syntax", "workers:\n  foo: [1\n", "", "pool.yml:2: invalid YAML: did not find expected ',' or ']'"},
		{"yaml bad indentation", "workers:\n  foo: 1\n bar: 2\n", "", "pool.yml:3: invalid YAML: did not find expected key"},
		{"yaml scanner error", "workers:\n  foo: 1\n  bar: @x\n", "", "pool.yml:3: invalid YAML: found character that cannot start any token"},
		{"yaml mapping value", "workers:\n  foo: 1: 2\n", "", "pool.yml:2: invalid YAML: mapping values are not allowed in this context"},
		{"yaml error on line 1", "@x: 1\n", "", "pool.yml:1: invalid YAML: found character that cannot start any token"},
		{"yaml unterminated flow at end of input", "[a\n", "", "pool.yml:2: invalid YAML: did not find expected ',' or ']'"},
		{"yaml unknown anchor", "workers: *nope\n", "", "pool.yml: invalid YAML: unknown anchor 'nope' referenced"},
		{"yaml without line", "foo: \x01\n", "", "pool.yml: invalid YAML: control characters are not allowed"},
		{"multiple documents", "workers: {a: 1}\n---\nworkers: {b: 1}\n", "", "pool.yml:2: multiple YAML documents are not supported"},
		{"top level sequence", "- foo\n- bar\n", "", "pool.yml:1: top level must be a mapping, got a sequence"},
		{"top level scalar", "hello\n", "", `pool.yml:1: top level must be a mapping, got "hello"`},
		{"unknown key", "workers:\n  foo: 1\nwokers:\n  bar: 2\n", "", `pool.yml:3: unknown key "wokers"`},
		{"unknown key without workers", "redis: x\nfoo: bar\n", "", `pool.yml:2: unknown key "foo"`},
		{"duplicate key", "redis: a\nworkers: {}\nredis: b\n", "", `pool.yml:3: duplicate key "redis" (first at line 1)`},
		{"non-string key", "workers: {}\n[a, b]: 1\n", "", "pool.yml:2: keys must be strings, got a sequence"},
		{"workers not a mapping", "workers: [foo]\n", "", "pool.yml:1: workers: must be a mapping of queue list to count (or to settings), got a sequence"},
		{"count not an integer", "workers:\n  foo: 1\n  bar: abc\n", "", `pool.yml:3: workers: count for "bar" must be an integer, got "abc"`},
		{"count quoted", "workers:\n  foo: \"2\"\n", "", `pool.yml:2: workers: count for "foo" must be an integer, got "2"`},
		{"count float", "workers:\n  foo: 2.5\n", "", `pool.yml:2: workers: count for "foo" must be an integer, got "2.5"`},
		{"count null", "workers:\n  foo:\n", "", `pool.yml:2: workers: count for "foo" must be an integer, got null`},
		{"count mapping", "workers:\n  foo: {a: 1}\n", "", `pool.yml:2: workers: "foo": unknown key "a" (want one of count, command, job_timeout, max_rss, max_jobs, max_lifetime, start_secs, autoscale)`},
		{"group start_secs negative", "workers:\n  foo: {count: 1, start_secs: -2s}\n", "", `pool.yml:2: workers: "foo": start_secs: must not be negative, got "-2s"`},
		{"count negative", "workers:\n  foo: -1\n", "", `pool.yml:2: workers: count for "foo" must not be negative, got -1`},
		{"count over limit", "workers:\n  foo: 1001\n", "", `pool.yml:2: workers: count for "foo" exceeds the limit of 1000, got 1001`},
		{"duplicate queue list", "workers:\n  a,b: 1\n  foo: 1\n  \"a, b\": 2\n", "", `pool.yml:4: workers: queue list "a,b" appears twice (first at line 2)`},
		{"duplicate queue exact", "workers:\n  foo: 1\n  foo: 2\n", "", `pool.yml:3: workers: queue list "foo" appears twice (first at line 2)`},
		{"invalid queue name", "workers:\n  \"fo o\": 1\n", "", `pool.yml:2: workers: queue name "fo o" contains an invalid character ' '`},
		{"queue name with a comma", "workers:\n  ok: 1\n  \"a b\": 1\n", "", `pool.yml:3: workers: queue name "a b" contains an invalid character ' '`},
		{"empty queue name", "workers:\n  \"foo,,bar\": 1\n", "", "pool.yml:2: workers: empty queue name"},
		{"queue repeats", "workers:\n  foo,foo: 1\n", "", `pool.yml:2: workers: queue "foo" repeats within the list`},
		{"queue name too long", "workers:\n  " + long + ": 1\n", "", `pool.yml:2: workers: queue name "` + long + `" is longer than 512 bytes`},
		{"queue list key not scalar", "workers:\n  [a]: 1\n", "", "pool.yml:2: workers: queue lists must be strings, got a sequence"},
		{"command not a sequence", "command: php worker.php\n", "", `pool.yml:1: command: must be a sequence of strings, got "php worker.php"`},
		{"command empty argument", "command: [php, \"\"]\n", "", `pool.yml:1: command: argument 2 must be a non-empty string, got ""`},
		{"command null argument", "command:\n  - php\n  -\n", "", "pool.yml:3: command: argument 2 must be a non-empty string, got null"},
		{"command nested", "command: [[a]]\n", "", "pool.yml:1: command: argument 1 must be a non-empty string, got a sequence"},
		{"jobs not a mapping", "jobs: [a]\n", "", "pool.yml:1: jobs: must be a mapping of job class to command, got a sequence"},
		{"jobs empty class", "jobs:\n  \"\": [a]\n", "", `pool.yml:2: jobs: class names must be non-empty strings, got ""`},
		{"jobs empty command", "jobs:\n  Foo: []\n", "", `pool.yml:2: jobs: class "Foo": command must not be empty`},
		{"jobs null command", "jobs:\n  Foo:\n", "", `pool.yml:2: jobs: class "Foo": must be a sequence of strings, got null`},
		{"jobs duplicate class", "jobs:\n  Foo: [a]\n  Foo: [b]\n", "", `pool.yml:3: jobs: duplicate class "Foo" (first at line 2)`},
		{"jobs bad argument", "jobs:\n  Foo: [a, \"\"]\n", "", `pool.yml:2: jobs: class "Foo": argument 2 must be a non-empty string, got ""`},
		{"redis mapping", "redis: {host: x}\n", "", "pool.yml:1: redis: must be a string, got a mapping"},
		{"namespace sequence", "namespace: [a]\n", "", "pool.yml:1: namespace: must be a string, got a sequence"},
		{"bad duration", "workers: {}\nterm_timeout: soon\n", "", `pool.yml:2: term_timeout: invalid duration "soon" (want e.g. "10s", "1m30s" or a number of seconds)`},
		{"duration without unit suffix typo", "start_secs: 10x\n", "", `pool.yml:1: start_secs: invalid duration "10x" (want e.g. "10s", "1m30s" or a number of seconds)`},
		{"negative duration", "backoff_max: -5s\n", "", `pool.yml:1: backoff_max: must not be negative, got "-5s"`},
		{"negative seconds", "job_timeout: -1\n", "", `pool.yml:1: job_timeout: must not be negative, got "-1"`},
		{"duration out of range", "job_timeout: 1e300\n", "", `pool.yml:1: job_timeout: duration "1e300" is out of range`},
		{"duration nan", "job_timeout: NaN\n", "", `pool.yml:1: job_timeout: duration "NaN" is out of range`},
		{"duration yaml inf", "job_timeout: .inf\n", "", `pool.yml:1: job_timeout: invalid duration ".inf" (want e.g. "10s", "1m30s" or a number of seconds)`},
		{"duration mapping", "term_timeout: {s: 1}\n", "", "pool.yml:1: term_timeout: must be a duration, got a mapping"},
		{"start_retries zero", "start_retries: 0\n", "", "pool.yml:1: start_retries: must be at least 1, got 0"},
		{"start_retries text", "start_retries: many\n", "", `pool.yml:1: start_retries: must be an integer, got "many"`},
		{"start_retries huge", "start_retries: 99999999999\n", "", `pool.yml:1: start_retries: must be an integer, got "99999999999"`},
		{"environments not a mapping", "environments: [a]\n", "", "pool.yml:1: environments: must be a mapping of environment name to settings, got a sequence"},
		{"environment not a mapping", "environments:\n  production: 3\n", "", `pool.yml:2: environments: production: must be a mapping, got "3"`},
		{"environment unknown key", "workers: {}\nenvironments:\n  production:\n    wrkers: {a: 1}\n", "production", `pool.yml:4: environments: production: unknown key "wrkers"`},
		{"environment error in unselected env", "environments:\n  production:\n    workers: {a: x}\n", "development", `pool.yml:3: environments: production: workers: count for "a" must be an integer, got "x"`},
		{"nested environments", "environments:\n  production:\n    environments: {}\n", "", `pool.yml:3: environments: production: unknown key "environments"`},
		{"duplicate environment", "environments:\n  p: {}\n  p: {}\n", "", `pool.yml:3: environments: duplicate environment "p" (first at line 2)`},
		{"environment duplicate key", "environments:\n  p:\n    redis: a\n    redis: b\n", "", `pool.yml:4: environments: p: duplicate key "redis" (first at line 3)`},
		{"resque-pool negative", "foo: 1\nbar: -2\n", "", `pool.yml:2: count for "bar" must not be negative, got -2`},
		{"resque-pool over limit", "foo: 5000\n", "", `pool.yml:1: count for "foo" exceeds the limit of 1000, got 5000`},
		{"resque-pool bad name", "foo: 1\n\"a b\": 1\n", "", `pool.yml:2: queue name "a b" contains an invalid character ' '`},
		{"resque-pool duplicate list", "a,b: 1\n'a, b': 2\n", "", `pool.yml:2: queue list "a,b" appears twice (first at line 1)`},
		{"resque-pool duplicate section", "production: {a: 1}\nproduction: {a: 2}\n", "", `pool.yml:2: duplicate key "production" (first at line 1)`},
		{"resque-pool queue and section", "production: 1\nproduction: {a: 2}\n", "", `pool.yml:2: duplicate key "production" (first at line 1)`},
		{"resque-pool section bad count", "foo: 1\nproduction:\n  foo: many\n", "production", `pool.yml:3: production: count for "foo" must be an integer, got "many"`},
		{"resque-pool section bad name", "foo: 1\nstaging:\n  \"x=y\": 1\n", "production", `pool.yml:3: staging: queue name "x=y" contains an invalid character '='`},
		{"resque-pool section duplicate", "production:\n  foo: 1\n  foo: 2\n", "production", `pool.yml:3: production: queue list "foo" appears twice (first at line 2)`},
		{"flat file with string value", "foo: 1\nbar: two\n", "", `pool.yml:1: unknown key "foo"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tt.yaml), "pool.yml", tt.env)
			if err == nil {
				t.Fatalf("ParseConfig succeeded with %#v, want error %q", got, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("ParseConfig error\n got: %s\nwant: %s", err, tt.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.File != "pool.yml" {
				t.Errorf("error %#v is not a *ConfigError for pool.yml", err)
			}
		})
	}
}

func TestParseConfigDefaultFilename(t *testing.T) {
	_, err := ParseConfig([]byte("bogus: x\n"), "", "")
	if want := `config:1: unknown key "bogus"`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestParseConfigYAMLErrorUnwraps(t *testing.T) {
	_, err := ParseConfig([]byte("a: [\n"), "pool.yml", "")
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Err == nil || errors.Unwrap(err) != ce.Err {
		t.Fatalf("error %#v does not wrap the YAML error", err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pool.yml")
	if err := os.WriteFile(path, []byte("workers:\n  foo: 2\nwokers: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path, "")
	if want := path + `:3: unknown key "wokers"`; err == nil || err.Error() != want {
		t.Errorf("LoadConfig error = %v, want %q", err, want)
	}
	if err := os.WriteFile(path, []byte("foo: 2\nproduction: {foo: 5}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path, "production")
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if got := c.Workers.String(); got != "foo=5" {
		t.Errorf("LoadConfig workers = %q, want foo=5", got)
	}
	missing := filepath.Join(dir, "missing.yml")
	_, err = LoadConfig(missing, "")
	if want := "spec: load config: open " + missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("LoadConfig(missing) error = %v, want %q", err, want)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadConfig(missing) error %v is not os.ErrNotExist", err)
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if len(c.Workers) != 0 || c.Command != nil || c.Jobs != nil || c.Redis != "" ||
		c.Namespace != "resque:" || c.TermTimeout != 10*time.Second || c.StartSecs != time.Second ||
		c.StartRetries != 5 || c.BackoffMax != 30*time.Second || c.JobTimeout != 0 {
		t.Errorf("DefaultConfig() = %#v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
}

func TestEnvFromEnvironment(t *testing.T) {
	tests := []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{}, ""},
		{map[string]string{"RAILS_ENV": "rails"}, "rails"},
		{map[string]string{"RACK_ENV": "rack", "RAILS_ENV": "rails"}, "rack"},
		{map[string]string{"POOLCTL_ENV": "pool", "RACK_ENV": "rack", "RAILS_ENV": "rails"}, "pool"},
		{map[string]string{"POOLCTL_ENV": "", "RACK_ENV": "", "RAILS_ENV": "rails"}, "rails"},
		{map[string]string{"POOLCTL_ENV": "pool", "RAILS_ENV": "rails"}, "pool"},
	}
	for _, tt := range tests {
		got := EnvFromEnvironment(func(k string) string { return tt.vars[k] })
		if got != tt.want {
			t.Errorf("EnvFromEnvironment(%v) = %q, want %q", tt.vars, got, tt.want)
		}
	}
}

func TestEnvFromEnvironmentNilGetenv(t *testing.T) {
	t.Setenv("POOLCTL_ENV", "from-os")
	if got := EnvFromEnvironment(nil); got != "from-os" {
		t.Errorf("EnvFromEnvironment(nil) = %q, want from-os", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"valid", func(c *Config) { c.Workers = Spec{{"a", 1}, {"b,c", 0}} }, ""},
		{"bad queue name", func(c *Config) { c.Workers = Spec{{"a", 1}, {"a b", 1}} }, `spec: config: workers: entry 2: queue name "a b" contains an invalid character ' '`},
		{"empty queue list", func(c *Config) { c.Workers = Spec{{"", 1}} }, "spec: config: workers: entry 1: empty queue name"},
		{"not canonical", func(c *Config) { c.Workers = Spec{{"a, b", 1}} }, `spec: config: workers: entry 1: queue list "a, b" is not canonical (want "a,b")`},
		{"duplicate", func(c *Config) { c.Workers = Spec{{"a", 1}, {"a", 2}} }, `spec: config: workers: queue list "a" appears twice`},
		{"negative count", func(c *Config) { c.Workers = Spec{{"a", -1}} }, `spec: config: workers: count for "a" must not be negative, got -1`},
		{"count over limit", func(c *Config) { c.Workers = Spec{{"a", 1001}} }, `spec: config: workers: count for "a" exceeds the limit of 1000, got 1001`},
		{"empty command arg", func(c *Config) { c.Command = []string{"php", ""} }, "spec: config: command: argument 2 must be a non-empty string"},
		{"empty class", func(c *Config) { c.Jobs = map[string][]string{"": {"x"}} }, "spec: config: jobs: class names must be non-empty"},
		{"empty job argv", func(c *Config) { c.Jobs = map[string][]string{"A": nil} }, `spec: config: jobs: class "A": command must not be empty`},
		{"empty job arg", func(c *Config) { c.Jobs = map[string][]string{"A": {"x", ""}} }, `spec: config: jobs: class "A": argument 2 must be a non-empty string`},
		{"negative term_timeout", func(c *Config) { c.TermTimeout = -time.Second }, "spec: config: term_timeout must not be negative, got -1s"},
		{"negative start_secs", func(c *Config) { c.StartSecs = -1 }, "spec: config: start_secs must not be negative, got -1ns"},
		{"negative backoff_max", func(c *Config) { c.BackoffMax = -time.Minute }, "spec: config: backoff_max must not be negative, got -1m0s"},
		{"negative job_timeout", func(c *Config) { c.JobTimeout = -time.Millisecond }, "spec: config: job_timeout must not be negative, got -1ms"},
		{"start_retries zero", func(c *Config) { c.StartRetries = 0 }, "spec: config: start_retries must be at least 1, got 0"},
		{"zero reply_ttl", func(c *Config) { c.ReplyTTL = 0 }, "spec: config: reply_ttl must be positive, got 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := withDefaults(tt.mod).Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
	var nilConfig *Config
	if err := nilConfig.Validate(); err == nil || err.Error() != "spec: config: nil config" {
		t.Errorf("nil Validate() = %v", err)
	}
}

func TestWorkerArgv(t *testing.T) {
	c := withDefaults(func(c *Config) {
		c.Command = []string{"php", "worker.php", "--queues={queues}", "{queues}{queues}"}
	})
	got := c.WorkerArgv("high,low")
	want := []string{"php", "worker.php", "--queues=high,low", "high,lowhigh,low"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("WorkerArgv = %q, want %q", got, want)
	}
	got[0] = "changed"
	if c.Command[0] != "php" {
		t.Errorf("WorkerArgv result aliases Command")
	}
	if got := withDefaults(func(*Config) {}).WorkerArgv("a"); got != nil {
		t.Errorf("WorkerArgv without command = %q, want nil", got)
	}
}

func TestMarshal(t *testing.T) {
	c := withDefaults(func(c *Config) {
		c.Workers = Spec{{"foo", 2}, {"bar,baz", 1}, {"*", 3}, {"idle", 0}}
		c.Command = []string{"php", "worker.php", "--queues={queues}"}
		c.Jobs = map[string][]string{"Z": {"z"}, "A": {"a", "--x: y"}}
		c.Redis = "redis://localhost:6380/2"
		c.TermTimeout = 20 * time.Second
		c.StartRetries = 3
		c.JobTimeout = 1500 * time.Millisecond
	})
	want := `workers:
  foo: 2
  bar,baz: 1
  '*': 3
command: [php, worker.php, '--queues={queues}']
jobs:
  A: [a, '--x: y']
  Z: [z]
redis: redis://localhost:6380/2
term_timeout: 20s
job_timeout: 1.5s
start_retries: 3
`
	got, err := c.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if string(got) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", got, want)
	}

	def := DefaultConfig()
	got, err = def.Marshal()
	if err != nil || string(got) != "workers: {}\n" {
		t.Errorf("Marshal(DefaultConfig()) = %q, %v; want \"workers: {}\\n\"", got, err)
	}

	bad := withDefaults(func(c *Config) { c.StartRetries = 0 })
	if _, err := bad.Marshal(); err == nil || err.Error() != "spec: config: start_retries must be at least 1, got 0" {
		t.Errorf("Marshal(invalid) error = %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	configs := []*Config{
		withDefaults(func(*Config) {}),
		withDefaults(func(c *Config) { c.StartRetries = 2 }),
		withDefaults(func(c *Config) {
			c.Workers = Spec{{"*", 1}, {"123", 2}, {"true", 3}, {"null", 4}, {"a.b-c_d", 5}, {"x,*,y", 1000}}
			c.Command = []string{"sh", "-c", "exec worker '{queues}' # \"quoted\"", "null", "~", "- dash", "[x]", "a\tb\nc"}
			c.Jobs = map[string][]string{"Foo::Bar": {"x"}, "null": {"y"}, " spaced ": {"z"}, "é": {"ü"}}
			c.Redis = "redis://:p@ss@host:6379/0"
			c.Namespace = ""
			c.TermTimeout = 0
			c.StartSecs = 1234567 * time.Microsecond
			c.StartRetries = 1
			c.BackoffMax = 2 * time.Hour
			c.JobTimeout = time.Nanosecond
		}),
		withDefaults(func(c *Config) { c.Namespace = "{app}:"; c.Redis = "'quoted'" }),
	}
	for _, yml := range []string{fullExample, "foo: 1\nbar: 2\nproduction: {foo: 3, bar: 0}\n"} {
		c, err := ParseConfig([]byte(yml), "x.yml", "production")
		if err != nil {
			t.Fatal(err)
		}
		configs = append(configs, c)
	}
	for i, c := range configs {
		data, err := c.Marshal()
		if err != nil {
			t.Fatalf("config %d: Marshal: %v", i, err)
		}
		back, err := ParseConfig(data, "marshalled.yml", "")
		if err != nil {
			t.Fatalf("config %d: ParseConfig(Marshal()) error: %v\n%s", i, err, data)
		}
		if !configsEqual(back, c) {
			t.Errorf("config %d: round trip mismatch\n got: %#v\nwant: %#v\nyaml:\n%s", i, back, c, data)
		}
		again, err := back.Marshal()
		if err != nil || string(again) != string(data) {
			t.Errorf("config %d: Marshal not stable:\n%s\nthen\n%s (%v)", i, data, again, err)
		}
	}
}
