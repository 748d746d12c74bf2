package topview

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/charmbracelet/x/ansi"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/stats"
)

var t0 = time.Date(2026, 11, 22, 11, 19, 36, 0, time.UTC)

func f(v float64) *float64 { return &v }

// pool is a running pool of two queue lists with a fresh sample.
func pool() Input {
	st := &poolfs.State{
		Name: "demo", PID: 4242, Status: poolfs.MasterRunning, StartedAt: t0.Add(-3*time.Minute - 4*time.Second),
		Redis: "redis://127.0.0.1:6379/0",
		Groups: []poolfs.GroupState{
			{Queues: "foo", Desired: 2, Live: 2, State: poolfs.GroupOK},
			{Queues: "bar,baz", Desired: 1, Live: 1, State: poolfs.GroupOK},
		},
		Workers: []poolfs.WorkerState{
			{PID: 101, Queues: "foo", State: poolfs.WorkerRunning},
			{PID: 102, Queues: "foo", State: poolfs.WorkerRunning},
			{PID: 103, Queues: "bar,baz", State: poolfs.WorkerRunning},
		},
	}
	s := &stats.Sample{
		TS: t0.Add(-500 * time.Millisecond), Pool: "demo", Interval: 1,
		Host:   stats.HostSample{Load1: 0.52, Load5: 0.4, Load15: 0.31, CPUPercent: 12, CPUs: 2, MemFreeBytes: 1 << 30, MemTotal: 4 << 30},
		Master: stats.ProcSample{PID: 4242},
		Queues: []stats.QueueSample{
			{Name: "foo", Depth: 120, InRate: 3, OutRate: 5.2, State: stats.QueueDraining, ETASeconds: f(60),
				JobSeconds: stats.Quantiles{P50: f(0.012), P95: f(0.08)}, FailRate1m: 0.5},
			{Name: "bar", Depth: 0, State: stats.QueueEmpty},
			{Name: "baz", Depth: 7, InRate: 9, OutRate: 2, State: stats.QueueGrowing},
		},
		Workers: []stats.WorkerSample{
			{PID: 101, Queues: "foo", State: "running", Job: "Poolctl::Sleep", JobQueue: "foo", JobSeconds: 1.5, JobsDone: 120, CPUPercent: 3.1, RSSBytes: 12 << 20},
			{PID: 102, Queues: "foo", State: "running", JobsDone: 7},
			{PID: 103, Queues: "bar,baz", State: "running", Job: "Archive", JobQueue: "baz", JobSeconds: 75, JobsDone: 1},
		},
		History: map[string][]int{"foo": {200, 180, 160, 140, 120}, "baz": {0, 1, 3, 7}},
	}
	return Input{
		Pool: "demo", Now: t0, MasterPID: 4242, State: st, Sample: s, Selected: "foo",
		Log:   []string{"poolctl-manager[4242]: 2026-11-22T11:19:36.394Z started manager: foo=2:bar,baz=1"},
		Width: 140, Height: 40,
	}
}

func texts(lines []Line) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}

// checkFits fails when a line is wider than w cells, there are more than
// h lines, or a line holds a control character.
func checkFits(t *testing.T, lines []Line, w, h int) {
	t.Helper()
	if len(lines) > h {
		t.Errorf("%d lines for a height of %d:\n%s", len(lines), h, texts(lines))
	}
	for _, l := range lines {
		if got := ansi.StringWidth(l.Text); got > w {
			t.Errorf("line %q is %d cells wide, more than %d", l.Text, got, w)
		}
		for _, r := range l.Text {
			if unicode.IsControl(r) {
				t.Errorf("line %q holds control character %U", l.Text, r)
			}
		}
	}
}

func find(lines []Line, sub string) (Line, bool) {
	for _, l := range lines {
		if strings.Contains(l.Text, sub) {
			return l, true
		}
	}
	return Line{}, false
}

func TestRenderPool(t *testing.T) {
	in := pool()
	lines := Render(in)
	checkFits(t, lines, in.Width, in.Height)
	out := texts(lines)
	for _, want := range []string{
		"pool demo · master 4242 up 3m04s · workers 3/3",
		"load 0.52 0.40 0.31 · cpu 12% of 2 · mem free 1.0 GiB of 4.0 GiB · Redis redis://127.0.0.1:6379/0",
		"draining 1m00s", "growing: won't drain", "empty",
		"12ms", "80ms",
		"> foo  2/2 workers", "  bar,baz  1/1 worker",
		"Poolctl::Sleep", "Archive (baz)", "1m15s", "12.0 MiB", "idle",
		"started manager", Keys,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("screen lacks %q:\n%s", want, out)
		}
	}
	if l, _ := find(lines, "> foo"); l.Style != Selected {
		t.Errorf("selected queue list drawn as %v", l.Style)
	}
	if l, _ := find(lines, "sample "+in.Sample.TS.Local().Format("15:04:05")+" · every 1s"); l.Style != Plain || l.Text == "" {
		t.Errorf("a fresh sample is shown as %+v", l)
	}
	// Depth history, newest at the right, scaled to the largest shown.
	if !strings.Contains(out, "foo") || !strings.Contains(out, Sparkline([]int{200, 180, 160, 140, 120}, 50)) {
		t.Errorf("no sparkline for foo:\n%s", out)
	}
	// The key help is the last line, at the bottom of the screen.
	if len(lines) != in.Height || lines[len(lines)-1].Text != Keys {
		t.Errorf("key help not at the bottom (%d lines):\n%s", len(lines), out)
	}
}

// A missing or stale sample is said as such, never drawn as zeros.
func TestRenderStaleAndMissingSample(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Input)
		want   string
	}{
		{"no sample file", func(in *Input) { in.Sample = nil }, "no sample yet"},
		{"an earlier master's sample", func(in *Input) { in.Sample.Master.PID = 99 }, "no sample yet"},
		{"stale", func(in *Input) { in.Sample.TS = t0.Add(-12 * time.Second) }, "sample 12s old: is the master stopped?"},
		{"stale, slow sampler", func(in *Input) {
			in.Sample.Interval = 5
			in.Sample.TS = t0.Add(-16 * time.Second)
		}, "sample 16s old: is the master stopped?"},
		{"an old sample, top just started", func(in *Input) {
			in.Sample.TS = t0.Add(-45 * time.Second) // the master was not publishing: nobody read
			in.WatchingSince = t0.Add(-2 * time.Second)
		}, "no sample yet"},
		{"an old sample, top started a while ago", func(in *Input) {
			in.Sample.TS = t0.Add(-45 * time.Second)
			in.WatchingSince = t0.Add(-4 * time.Second)
		}, "sample 45s old: is the master stopped?"},
		{"undecodable", func(in *Input) { in.Sample, in.SampleErr = nil, "decode sample.json: unexpected end of JSON input" }, "sample unreadable: decode sample.json"},
		{"master gone", func(in *Input) { in.MasterPID, in.State = 0, nil }, "the master is not running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := pool()
			tc.change(&in)
			lines := Render(in)
			checkFits(t, lines, in.Width, in.Height)
			l, ok := find(lines, tc.want)
			if !ok || l.Style != Warning {
				t.Fatalf("want warning %q, got:\n%s", tc.want, texts(lines))
			}
			if in.Sample == nil {
				if _, ok := find(lines, "DEPTH HISTORY"); ok {
					t.Errorf("a queue table without a sample:\n%s", texts(lines))
				}
				if _, ok := find(lines, "(no sample yet)"); !ok {
					t.Errorf("the queue section does not say there is no sample:\n%s", texts(lines))
				}
			}
		})
	}
	// Within three intervals a sample is current.
	in := pool()
	in.Sample.TS = t0.Add(-2900 * time.Millisecond)
	if fresh, why := Freshness(in.Sample, 4242, t0, time.Time{}); !fresh {
		t.Errorf("a sample 2.9 intervals old is stale: %s", why)
	}
	if fresh, _ := Freshness(in.Sample, 4242, t0.Add(200*time.Millisecond), time.Time{}); fresh {
		t.Error("a sample 3.1 intervals old is fresh")
	}
}

func TestRenderEmptyPool(t *testing.T) {
	in := pool()
	in.State.Groups, in.State.Workers = nil, nil
	in.Sample.Queues, in.Sample.Workers, in.Sample.History = nil, nil, nil
	in.Selected = ""
	in.Log = nil
	lines := Render(in)
	checkFits(t, lines, in.Width, in.Height)
	for _, want := range []string{"workers 0/0", "(no queues)", "(no queue lists configured)"} {
		if _, ok := find(lines, want); !ok {
			t.Errorf("empty pool: no %q:\n%s", want, texts(lines))
		}
	}
	if _, ok := find(lines, "LOG"); ok {
		t.Errorf("a log title without a log:\n%s", texts(lines))
	}
}

// Long names, wide and combining characters, ':' and '/' and escape
// sequences in names, classes and log lines: every line fits every width
// and nothing reaches the terminal as a control sequence.
func TestRenderNastyNamesAnyWidth(t *testing.T) {
	long := strings.Repeat("報告/日次:", 30) + "é́"
	evil := "mail\x1b[2J\x1b]0;pwned\x07:high"
	in := pool()
	in.State.Groups = append(in.State.Groups,
		poolfs.GroupState{Queues: long, Desired: 3, Live: 1, State: poolfs.GroupBackoff, Reason: "exit status 1 " + strings.Repeat("x", 300)},
		poolfs.GroupState{Queues: evil + ",🚀", Desired: 1, Live: 1, State: poolfs.GroupOK})
	in.State.Workers = append(in.State.Workers,
		poolfs.WorkerState{PID: 201, Queues: long, State: poolfs.WorkerStarting},
		poolfs.WorkerState{PID: 202, Queues: evil + ",🚀", State: poolfs.WorkerRunning},
		poolfs.WorkerState{PID: 203, Queues: "gone", State: poolfs.WorkerStopping})
	in.Sample.Queues = append(in.Sample.Queues,
		stats.QueueSample{Name: long, Depth: 123456789012, InRate: 123456, OutRate: 0.01, State: stats.QueueStalled},
		stats.QueueSample{Name: evil, Depth: 1, State: stats.QueueBusy},
		stats.QueueSample{Name: "🚀", Depth: 2, State: stats.QueueDraining, ETASeconds: f(7 * 86400)})
	in.Sample.Workers = append(in.Sample.Workers, stats.WorkerSample{PID: 202, Job: "Evil\x1b[31m::Class\n", JobQueue: evil, JobSeconds: 1})
	in.Sample.History[long] = []int{1, 2, 3}
	in.Log = append(in.Log, "poolctl-worker[202]: \x1b[2Jclear the screen\r\x08", "\xff\xfe not UTF-8 "+long)
	in.Selected = long
	for _, w := range []int{300, 140, 80, 60, 40, 20, 8, 1} {
		for _, h := range []int{60, 24, 12, 6, 3, 1} {
			t.Run(fmt.Sprintf("%dx%d", w, h), func(t *testing.T) {
				in := in
				in.Width, in.Height = w, h
				lines := Render(in)
				checkFits(t, lines, w, h)
				if h >= 2 && w >= len(Keys) && lines[len(lines)-1].Text != Keys {
					t.Errorf("the key help is not the last line:\n%s", texts(lines))
				}
				if h >= 12 && w >= 20 {
					// The selected queue list stays in view.
					if l, ok := find(lines, "> "); !ok || l.Style != Selected {
						t.Errorf("selection not shown:\n%s", texts(lines))
					}
				}
			})
		}
	}
	lines := Render(Input{Pool: "x", Now: t0, MasterPID: 4242, State: in.State, Sample: in.Sample, Log: in.Log, Selected: long, Width: 140, Height: 60})
	out := texts(lines)
	if !strings.Contains(out, "mail?[2J?]0;pwned?:high") || !strings.Contains(out, "Evil?[31m::Class?") {
		t.Errorf("control characters not made visible:\n%s", out)
	}
	if !strings.Contains(out, "…") {
		t.Errorf("long name not cut with an ellipsis:\n%s", out)
	}
	if !strings.Contains(out, "gone  1 stopping (no longer configured)") {
		t.Errorf("workers of a removed queue list not shown:\n%s", out)
	}
	if !strings.Contains(out, "1/3 workers  backoff: exit status 1") {
		t.Errorf("backoff not shown:\n%s", out)
	}
	if !strings.Contains(out, "123.5G") || !strings.Contains(out, "123k") || !strings.Contains(out, "draining 7d00h") {
		t.Errorf("big figures not shortened:\n%s", out)
	}
}

// With little room the selected queue list's workers stay in view and
// the other lists fold to one line each.
func TestRenderManyWorkersSmallScreen(t *testing.T) {
	in := pool()
	in.State.Groups, in.State.Workers = nil, nil
	for g := 0; g < 6; g++ {
		q := fmt.Sprintf("q%d", g)
		in.State.Groups = append(in.State.Groups, poolfs.GroupState{Queues: q, Desired: 5, Live: 5, State: poolfs.GroupOK})
		for i := 0; i < 5; i++ {
			in.State.Workers = append(in.State.Workers, poolfs.WorkerState{PID: 1000 + 10*g + i, Queues: q, State: poolfs.WorkerRunning})
		}
	}
	in.Selected = "q4"
	in.Height = 20
	lines := Render(in)
	checkFits(t, lines, in.Width, in.Height)
	out := texts(lines)
	for _, want := range []string{"> q4", "1040", "1044"} {
		if !strings.Contains(out, want) {
			t.Errorf("selected list's %q not in view:\n%s", want, out)
		}
	}
	if strings.Contains(out, "1000 ") {
		t.Errorf("an unselected list's workers shown on a small screen:\n%s", out)
	}
	in.Height = 14
	lines = Render(in)
	checkFits(t, lines, in.Width, in.Height)
	if _, ok := find(lines, "> q4"); !ok {
		t.Errorf("selection scrolled out of view:\n%s", texts(lines))
	}
}

func TestRenderPaused(t *testing.T) {
	in := pool()
	in.Paused = map[int]bool{101: true}
	lines := Render(in)
	if _, ok := find(lines, "> foo  2/2 workers  paused 1/2"); !ok {
		t.Errorf("paused count not shown:\n%s", texts(lines))
	}
	if l, ok := find(lines, "101 paused"); !ok || l.Style != Plain {
		t.Errorf("paused worker not shown as such:\n%s", texts(lines))
	}
}

func TestRenderMessage(t *testing.T) {
	in := pool()
	in.Message, in.Error = "foo has 1 worker: - stops at 1", true
	lines := Render(in)
	if got := lines[len(lines)-2]; got.Text != in.Message || got.Style != Warning {
		t.Errorf("message line = %+v", got)
	}
}

func TestSparkline(t *testing.T) {
	tests := []struct {
		values []int
		width  int
		want   string
	}{
		{nil, 10, ""},
		{[]int{0, 0, 0}, 10, "▁▁▁"},
		{[]int{0, 1, 2, 4, 8}, 10, "▁▂▃▅█"},
		{[]int{1, 1000}, 10, "▂█"}, // any job at all shows above empty
		{[]int{9, 9, 0, 1, 2, 4, 8}, 5, "▁▂▃▅█"},
		{[]int{5}, 0, ""},
	}
	for _, tc := range tests {
		if got := Sparkline(tc.values, tc.width); got != tc.want {
			t.Errorf("Sparkline(%v, %d) = %q, want %q", tc.values, tc.width, got, tc.want)
		}
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Seconds(nil), "-"}, {Seconds(f(0.0004)), "400µs"}, {Seconds(f(0.25)), "250ms"},
		{Seconds(f(2.5)), "2.5s"}, {Seconds(f(125)), "2m05s"},
		{Rate(0), "0"}, {Rate(0.04), "0.0"}, {Rate(3.25), "3.2"}, {Rate(42.4), "42"}, {Rate(25000), "25k"},
		{Count(9_999_999), "9999999"}, {Count(12_345_678), "12.3M"},
		{QueueState(stats.QueueSample{State: stats.QueueDraining}), "draining"},
		{QueueState(stats.QueueSample{State: stats.QueueStalled}), "stalled"},
		{Pad("報告", 3), "報…"}, {Pad("報", 3), "報 "}, {Pad("ab", 4), "ab  "}, {PadLeft("ab", 4), "  ab"}, {Truncate("abcdef", 4), "abc…"},
		{Printable("a\tb\x1bc\u2028"), "a b?c?"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestRenderSampleInterval(t *testing.T) {
	in := pool()
	in.Sample.Interval = 0.2
	in.Sample.TS = t0.Add(-100 * time.Millisecond)
	if _, ok := find(Render(in), " · every 200ms"); !ok {
		t.Errorf("interval not shown:\n%s", texts(Render(in)))
	}
}

func TestRenderAutoscale(t *testing.T) {
	in := pool()
	in.State.Groups[0].Autoscale = &poolfs.AutoscaleState{Mode: poolfs.AutoscaleOn, Min: 1, Max: 16}
	in.State.Groups[1].Autoscale = &poolfs.AutoscaleState{Mode: poolfs.AutoscaleOff, Min: 1, Max: 4, Configured: 1}
	out := texts(Render(in))
	for _, want := range []string{"> foo  2/2 workers  autoscale 1..16", "  bar,baz  1/1 worker  autoscale off (pinned at 1)"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q:\n%s", want, out)
		}
	}
}
