package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	prompt "github.com/c-bata/go-prompt"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/stats"
)

// autoscaleYAML has two autoscaled queue lists, one with a name that
// needs care, and a plain one.
const autoscaleYAML = `workers:
  mail: 2
  work:
    autoscale: {min: 1, max: 16, target_wait: 2s, down_after: 30s}
  "reports:daily/ü,default":
    count: 4
    autoscale: {min: 2, max: 8}
`

// newFileSession is a shell on a pool that is not started, from a -c
// FILE holding yaml; stdout and stderr apart.
func newFileSession(t *testing.T, yaml string) (s *Session, out, errb *bytes.Buffer, file string) {
	t.Helper()
	t.Setenv("POOLCTL_RUNTIME_DIR", t.TempDir())
	t.Setenv("REDIS_URL", "")
	file = filepath.Join(t.TempDir(), "pool.yml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errb = &bytes.Buffer{}, &bytes.Buffer{}
	s, err := NewSession(Options{
		Name: "unit", ConfigFile: file, NoStart: true,
		Log: filepath.Join(t.TempDir(), "pool.log"), Stdout: out, Stderr: errb,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.info = errb // as in a script: confirmations on standard error
	t.Cleanup(s.Close)
	return s, out, errb, file
}

func pinsFile(t *testing.T, s *Session) string {
	t.Helper()
	b, err := os.ReadFile(s.paths.AutoscaleOff)
	if os.IsNotExist(err) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAutoscaleUsage(t *testing.T) {
	s, _ := newTestSession(t, "foo=2")
	for line, want := range map[string]string{
		"autoscale frob":      `autoscale: unknown sub-command "frob" (want on, off or explain) (usage: autoscale [--json] | on|off [QUEUES ...] | explain [--json] [QUEUES ...])`,
		"autoscale --xml":     `autoscale: unknown option "--xml" (usage: autoscale [--json] | on|off [QUEUES ...] | explain [--json] [QUEUES ...])`,
		"autoscale on --json": `autoscale: unknown option "--json" (usage: autoscale [--json] | on|off [QUEUES ...] | explain [--json] [QUEUES ...])`,
		"autoscale":           "pool unit: the master is not running (use start)",
		"autoscale --json":    "pool unit: the master is not running (use start)",
		"autoscale explain":   "pool unit: the master is not running (use start)",
		"autoscale off":       "pool unit has no autoscaled queue lists (give one autoscale: {min: N, max: M} under workers: in the config)",
		"autoscale on foo":    "pool unit has no autoscaled queue lists (give one autoscale: {min: N, max: M} under workers: in the config)",
	} {
		if err := s.Exec(context.Background(), line); err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", line, err, want)
		}
	}
	if got := pinsFile(t, s); got != "<none>" {
		t.Errorf("pins after failed commands: %q", got)
	}
}

func TestPickAutoscaled(t *testing.T) {
	lists := []string{"work", "reports:daily/ü,default"}
	got, err := pickAutoscaled("p", []string{" reports:daily/ü , default", "work", "work"}, lists)
	if err != nil || !reflect.DeepEqual(got, []string{"reports:daily/ü,default", "work"}) {
		t.Fatalf("got %q, %v", got, err)
	}
	if got, err := pickAutoscaled("p", nil, lists); err != nil || !reflect.DeepEqual(got, lists) {
		t.Fatalf("all: %q, %v", got, err)
	}
	_, err = pickAutoscaled("p", []string{"work", "nosuch"}, lists)
	if err == nil || err.Error() != `"nosuch" is not an autoscaled queue list of pool p (autoscaled: work reports:daily/ü,default)` {
		t.Fatalf("err = %v", err)
	}
	for _, n := range []string{"mail", "default", "work,mail", "work=3"} {
		if _, err := pickAutoscaled("p", []string{n}, lists); err == nil || !strings.Contains(err.Error(), n) {
			t.Errorf("%q: err = %v", n, err)
		}
	}
}

// config on an autoscaled queue list pins it, and says so on stderr;
// a plain one is not pinned; removing a list drops its pin; bad input
// changes nothing; on and off without a master record the pins for the
// next start.
func TestConfigPinsAutoscaledLists(t *testing.T) {
	s, out, errb, _ := newFileSession(t, autoscaleYAML)
	ctx := context.Background()
	if err := s.Exec(ctx, "config work=3 mail=1"); err != nil {
		t.Fatal(err)
	}
	if got := errb.String(); got != "mail=1:work=3:reports:daily/ü,default=4\nwork: autoscale off, pinned at 3; `autoscale on work` to resume\n" {
		t.Errorf("stderr %q", got)
	}
	if got := pinsFile(t, s); got != "work\n" {
		t.Errorf("pins %q", got)
	}
	errb.Reset()
	for _, line := range []string{"config work=17", "config work=3 mail=x", `config "reports:daily/ü,default=9"`} {
		if err := s.Exec(ctx, line); err == nil {
			t.Errorf("%s: no error", line)
		}
	}
	if got := pinsFile(t, s); got != "work\n" || errb.Len() != 0 {
		t.Errorf("after bad input: pins %q, stderr %q", got, errb)
	}
	if err := s.Exec(ctx, `config "reports:daily/ü,default=8"`); err != nil {
		t.Fatal(err)
	}
	if got := errb.String(); !strings.HasSuffix(got, "\nreports:daily/ü,default: autoscale off, pinned at 8; `autoscale on reports:daily/ü,default` to resume\n") {
		t.Errorf("stderr %q", got)
	}
	if err := s.Exec(ctx, "config work=0"); err != nil {
		t.Fatal(err)
	}
	if got := pinsFile(t, s); got != "reports:daily/ü,default\n" {
		t.Errorf("pins after removing work: %q", got)
	}
	errb.Reset()
	if err := s.Exec(ctx, "autoscale on 'reports:daily/ü,default'"); err != nil {
		t.Fatal(err)
	}
	if got := pinsFile(t, s); got != "" {
		t.Errorf("pins after autoscale on: %q", got)
	}
	if !strings.Contains(errb.String(), "reports:daily/ü,default: autoscale on when the pool starts") || out.Len() != 0 {
		t.Errorf("autoscale on printed %q, stdout %q", errb, out)
	}
	if err := s.Exec(ctx, "autoscale off work"); err == nil || !strings.Contains(err.Error(), `"work" is not an autoscaled queue list`) {
		t.Errorf("work is removed: err = %v", err)
	}
	if err := s.Exec(ctx, "autoscale off -- -x"); err == nil || !strings.Contains(err.Error(), `"-x" is not an autoscaled queue list`) {
		t.Errorf("after --: err = %v", err)
	}
	if err := s.Exec(ctx, "autoscale off"); err != nil {
		t.Fatal(err)
	}
	if got := pinsFile(t, s); got != "reports:daily/ü,default\n" {
		t.Errorf("pins after autoscale off: %q", got)
	}
}

// A shell that starts a pool afresh starts it unpinned, whatever an
// earlier run left in the runtime directory; the pins it sets itself
// survive its own restarts.
func TestFreshStartClearsStalePins(t *testing.T) {
	s, _, _, _ := newFileSession(t, autoscaleYAML)
	if err := s.paths.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := poolfs.WriteAutoscaleOff(s.paths.AutoscaleOff, map[string]bool{"work": true}); err != nil {
		t.Fatal(err)
	}
	s.overridesPath, s.configPath = s.paths.Overrides, s.userFile // as start does
	if err := s.writeConfig(); err != nil {
		t.Fatal(err)
	}
	if got := pinsFile(t, s); got != "" {
		t.Fatalf("stale pins kept: %q", got)
	}
	if err := s.Exec(context.Background(), "config work=2"); err != nil {
		t.Fatal(err)
	}
	if err := s.writeConfig(); err != nil {
		t.Fatal(err)
	}
	if got := pinsFile(t, s); got != "work\n" {
		t.Fatalf("own pins lost: %q", got)
	}
}

func TestConfigSaveKeepsGroupMappings(t *testing.T) {
	s, _, _, file := newFileSession(t, autoscaleYAML)
	if err := s.Exec(context.Background(), "config --save work=5"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"work:\n    count: 5\n    autoscale: {min: 1, max: 16, target_wait: 2s, down_after: 30s}",
		"count: 4\n    autoscale: {min: 2, max: 8, target_wait: 5s, down_after: 30s}", "mail: 2"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("saved file lacks %q:\n%s", want, b)
		}
	}
	if got := pinsFile(t, s); got != "work\n" {
		t.Errorf("pins %q", got)
	}
}

// autoscaleFixture is a master's state and sample with two autoscaled
// queue lists (one pinned) and a plain one.
func autoscaleFixture(now time.Time) autoscaleView {
	st := &poolfs.State{
		PID: 42, Limits: &poolfs.Limits{MaxWorkers: 64, MaxCPU: 90, MinFreeMemory: 512 << 20},
		Groups: []poolfs.GroupState{
			{Queues: "mail", Desired: 2, Live: 2},
			{Queues: "work,high", Desired: 9, Live: 8, Autoscale: &poolfs.AutoscaleState{Mode: poolfs.AutoscaleOn, Min: 1, Max: 16,
				TargetWait: 5, DownAfter: 30, Configured: 4, Reason: "backlog 5400, in 310/s, job 28ms, target wait 5s: λ·S + B·S/T = 38.9 (cpu 61% < 90%)", At: now.Add(-3 * time.Second)}},
			{Queues: "ü", Desired: 3, Live: 3, Autoscale: &poolfs.AutoscaleState{Mode: poolfs.AutoscaleOff, Min: 0, Max: 8, TargetWait: 2, DownAfter: 5, Configured: 3}},
		},
	}
	for pid := 100; pid < 108; pid++ {
		st.Workers = append(st.Workers, poolfs.WorkerState{PID: pid, Queues: "work,high"})
	}
	h := stats.Histogram{Counts: make([]int64, queue.NumBuckets)}
	h.Count, h.Sum = 100, 2.8
	smp := &stats.Sample{TS: now.Add(-500 * time.Millisecond), Interval: 1, Master: stats.ProcSample{PID: 42},
		Host: stats.HostSample{CPUPercent: 61, CPUs: 2, MemFreeBytes: 3 << 30},
		Queues: []stats.QueueSample{
			{Name: "work", Depth: 5000, InRate: 300, InRateSustained: 300, OutRate: 280, Timing: h},
			{Name: "high", Depth: 400, InRate: 10, InRateSustained: 10, OutRate: 12, Timing: h},
			{Name: "mail", Depth: 7},
		},
	}
	for pid := 100; pid < 108; pid++ {
		w := stats.WorkerSample{PID: pid, Queues: "work,high", State: poolfs.WorkerRunning, Job: "Archive"}
		if pid < 102 {
			w.Job = ""
		}
		smp.Workers = append(smp.Workers, w)
	}
	return autoscaleView{pid: 42, state: st, sample: smp}
}

func TestAutoscaleReport(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := autoscaleFixture(now)
	r := v.report("p", now)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	groups := m["groups"].([]any)
	if len(groups) != 2 {
		t.Fatalf("groups %s", b)
	}
	g := groups[0].(map[string]any)
	in := g["inputs"].(map[string]any)
	if g["queues"] != "work,high" || g["mode"] != "on" || g["desired"] != 9.0 || g["live"] != 8.0 || g["configured"] != 4.0 ||
		in["backlog"] != 5400.0 || in["in_rate"] != 310.0 || in["idle"] != 2.0 || math.Abs(in["job_seconds"].(float64)-0.028) > 1e-9 ||
		g["last_decision"].(map[string]any)["age_seconds"] != 3.0 {
		t.Errorf("work,high: %v", g)
	}
	if g := groups[1].(map[string]any); g["mode"] != "off" || g["last_decision"] != nil {
		t.Errorf("ü: %v", g)
	}
	var out bytes.Buffer
	printAutoscale(&out, r)
	for _, want := range []string{
		"limits: max_workers 64, max_cpu 90%, min_free_memory 512MB\n",
		"work,high: autoscale on, 1..16, target wait 5s, down after 30s, configured 4\n",
		"  workers: desired 9, live 8 (2 idle)\n",
		"  inputs: backlog 5400, in 310/s, job 28ms, out 292/s; host cpu 61%, free memory 3.0 GiB\n",
		"  last decision 3s ago: backlog 5400",
		"ü: autoscale off (pinned at 3; `autoscale on ü` resumes), 0..8, target wait 2s, down after 5s, configured 3\n",
		"  last decision: none yet\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
	// Without a sample, the inputs are null / said to be missing.
	v.sample = nil
	r = v.report("p", now)
	if r.Groups[0].Inputs != nil || r.SampleAt != nil {
		t.Errorf("inputs without a sample: %+v", r.Groups[0].Inputs)
	}
	out.Reset()
	printAutoscale(&out, r)
	if !strings.Contains(out.String(), "  inputs: no recent sample\n") {
		t.Errorf("text:\n%s", out.String())
	}
	// A pool without autoscaled lists says so.
	out.Reset()
	printAutoscale(&out, (autoscaleView{state: &poolfs.State{Groups: []poolfs.GroupState{{Queues: "mail"}}}}).report("p", now))
	if !strings.HasPrefix(out.String(), "pool p has no autoscaled queue lists") {
		t.Errorf("text: %q", out.String())
	}
}

func TestAutoscaleStatusLine(t *testing.T) {
	now := time.Now()
	v := autoscaleFixture(now)
	g := GroupStatus{Queues: "work,high", Desired: 9, Autoscale: v.state.Groups[1].Autoscale, inputs: v.inputs(v.state.Groups[1])}
	if got, want := autoscaleStatusLine(g), "work,high: autoscale on 1..16 (target wait 5s): 9 — backlog 5400, in 310/s, job 28ms"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
	g.inputs = nil
	if got, want := autoscaleStatusLine(g), "work,high: autoscale on 1..16 (target wait 5s): 9"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
	g = GroupStatus{Queues: "ü", Desired: 3, Autoscale: v.state.Groups[2].Autoscale}
	if got, want := autoscaleStatusLine(g), "ü: autoscale off (pinned at 3; `autoscale on ü` resumes) 0..8 (target wait 2s)"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
}

func TestExplanationText(t *testing.T) {
	now := time.Now()
	v := autoscaleFixture(now)
	var out bytes.Buffer
	printExplanation(&out, "work,high", "on", v.explain(v.state.Groups[1]), 500*time.Millisecond)
	for _, want := range []string{
		"work,high: autoscale on, 1..16; desired 9, live 8 (2 idle); sample 500ms old\n",
		"  λ in rate      310/s\n",
		"  S job time     28ms\n",
		"  B backlog      5400\n",
		"  T target wait  5s\n",
		"  λ·S + B·S/T    8.68 + 30.24 = 38.92 → 39\n",
		"  bounds         1..16: lowered to max, 16\n",
		"  limit          max_workers: room for 56 more (pool at 8 of max_workers 64)\n",
		"  policy: scale up 9→16: backlog 5400",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain lacks %q:\n%s", want, out.String())
		}
	}
}

func TestAutoscaleCompletion(t *testing.T) {
	s, _, _, _ := newFileSession(t, autoscaleYAML)
	complete := func(text string) []string {
		b := prompt.NewBuffer()
		b.InsertText(text, false, true)
		var got []string
		for _, sg := range s.complete(*b.Document()) {
			got = append(got, sg.Text)
		}
		sort.Strings(got)
		return got
	}
	for text, want := range map[string][]string{
		"autoscale ":     {"--json", "explain", "off", "on"},
		"autoscale o":    {"off", "on"},
		"autoscale off ": {"reports:daily/ü,default", "work"},
		"autoscale on w": {"work"},
		"autosc":         {"autoscale"},
	} {
		if got := complete(text); !reflect.DeepEqual(got, want) {
			t.Errorf("complete(%q) = %q, want %q", text, got, want)
		}
	}
}
