package spec

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const groupsYAML = `command: [php, bin/worker.php, "--queues={queues}"]
job_timeout: 1m
workers:
  mail: 2
  "reports, default":
    count: 4
    command: [bin/reports-worker, "{queues}"]
    max_rss: 500MB
    max_jobs: 1000
    max_lifetime: 6h
    job_timeout: 10m
    start_secs: 5s
  "bulk:é/x":
    autoscale: {min: 1, max: 32, target_wait: 5s, down_after: 30s}
limits: {max_workers: 64, max_cpu: 90%, min_free_memory: 512MB, max_worker_rss: 1GB}
`

func TestGroupsParse(t *testing.T) {
	c, err := ParseConfig([]byte(groupsYAML), "pool.yml", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Workers.String(); got != "mail=2:reports,default=4:bulk:é/x=1" {
		t.Fatalf("workers %q", got)
	}
	r := c.Group("reports,default")
	if !reflect.DeepEqual(r.Command, []string{"bin/reports-worker", "{queues}"}) || r.MaxRSS != 500<<20 || r.MaxJobs != 1000 ||
		r.MaxLifetime != 6*time.Hour || *r.JobTimeout != 10*time.Minute || *r.StartSecs != 5*time.Second {
		t.Fatalf("reports group %+v", r)
	}
	if argv := c.WorkerArgv("reports,default"); !reflect.DeepEqual(argv, []string{"bin/reports-worker", "reports,default"}) {
		t.Fatalf("reports argv %q", argv)
	}
	m := c.Group("mail")
	if !reflect.DeepEqual(m.Command, c.Command) || *m.JobTimeout != time.Minute || m.Autoscale != nil || *m.StartSecs != DefaultStartSecs {
		t.Fatalf("a plain count inherits the config's command, job_timeout and start_secs: %+v", m)
	}
	if argv := c.WorkerArgv("mail"); argv[2] != "--queues=mail" {
		t.Fatalf("mail argv %q", argv)
	}
	a := c.Group("bulk:é/x").Autoscale
	if a == nil || *a != (Autoscale{Min: 1, Max: 32, TargetWait: 5 * time.Second, DownAfter: 30 * time.Second}) {
		t.Fatalf("autoscale %+v", a)
	}
	want := Limits{MaxWorkers: 64, MaxCPU: 90, MinFreeMemory: 512 << 20, MaxWorkerRSS: 1 << 30}
	if c.Limits != want {
		t.Fatalf("limits %+v, want %+v", c.Limits, want)
	}

	// Round trip through the canonical format.
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(out, "saved.yml", "")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip differs:\n%s\n%+v\n%+v", out, back, c)
	}
}

func TestGroupsInEnvironments(t *testing.T) {
	doc := groupsYAML + `environments:
  production:
    workers:
      mail: {count: 3, max_jobs: 5}
      "reports,default": 8
`
	c, err := ParseConfig([]byte(doc), "pool.yml", "production")
	if err != nil {
		t.Fatal(err)
	}
	if c.Groups["mail"].MaxJobs != 5 {
		t.Errorf("production's mail settings not applied: %+v", c.Groups["mail"])
	}
	if _, ok := c.Groups["reports,default"]; ok {
		t.Errorf("a plain count in the environment should replace the root's settings: %+v", c.Groups["reports,default"])
	}
}

func TestGroupErrors(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"unknown key", "workers:\n  foo: {count: 1, max_rs: 1GB}\n", `pool.yml:2: workers: "foo": unknown key "max_rs"`},
		{"no count", "workers:\n  foo: {max_jobs: 3}\n", `pool.yml:2: workers: "foo": needs count: N (or autoscale:)`},
		{"bad size", "workers:\n  foo: {count: 1, max_rss: lots}\n", `pool.yml:2: workers: "foo": max_rss: invalid size "lots"`},
		{"negative size", "workers:\n  foo: {count: 1, max_rss: -5MB}\n", `invalid size "-5MB"`},
		{"empty command", "workers:\n  foo: {count: 1, command: []}\n", `pool.yml:2: workers: "foo": command: must not be empty`},
		{"min over max", "workers:\n  foo: {autoscale: {min: 5, max: 2}}\n", `pool.yml:2: workers: "foo": autoscale: min 5 is more than max 2`},
		{"no max", "workers:\n  foo: {autoscale: {min: 1}}\n", `autoscale: needs max: N`},
		{"count outside bounds", "workers:\n  foo: {count: 9, autoscale: {max: 4}}\n", `count 9 is outside autoscale's bounds 0..4`},
		{"zero target wait", "workers:\n  foo: {autoscale: {max: 4, target_wait: 0}}\n", `target_wait: must be positive`},
		{"bad cpu", "limits: {max_cpu: 120%}\nworkers: {}\n", `pool.yml:1: limits: max_cpu: invalid percentage "120%"`},
		{"unknown limit", "limits: {max_ram: 1GB}\nworkers: {}\n", `unknown key "max_ram"`},
		{"count too big", "workers:\n  foo: {count: 5000}\n", `count: must be an integer from 0 to 1000`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.doc), "pool.yml", "")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{"1048576": 1 << 20, "512MB": 512 << 20, "1.5GiB": 3 << 29, "2g": 2 << 30, "64 KB": 64 << 10, "0": 0} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "1XB", "-1", "1e400GB", "NaN"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) accepted", in)
		}
	}
	if FormatBytes(512<<20) != "512MB" || FormatBytes(1500) != "1500" {
		t.Errorf("FormatBytes: %s %s", FormatBytes(512<<20), FormatBytes(1500))
	}
}
