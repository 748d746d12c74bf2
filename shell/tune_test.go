package shell

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/queue"

	prompt "github.com/c-bata/go-prompt"
)

// The feeder keeps a queue that a consumer drains at 400 jobs/s from
// running dry, without flooding it: its backlog stays within a few
// seconds of the pace.
func TestFeederKeepsBacklog(t *testing.T) {
	srv := redistest.Start(t)
	qc := queue.New(srv.Client(), "resque:")
	const q = "tune:ü/x"
	payload, err := tunePayload([]string{"Poolctl::Sleep", "5"}, "run1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &feeder{qc: qc, queue: q, payload: payload, fail: func(error) {}}
	if err := f.fill(ctx); err != nil {
		t.Fatal(err)
	}
	f.start(ctx)
	var consumed, dry atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		key := qc.Keys().Queue(q)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			n, err := srv.Client().LPopCount(ctx, key, 4).Result()
			if err != nil || len(n) < 4 {
				dry.Add(1)
			}
			consumed.Add(int64(len(n)))
		}
	}()
	began := time.Now()
	testutil.Eventually(t, 30*time.Second, "1,200 jobs consumed", func() bool { return consumed.Load() >= 1200 })
	close(stop)
	<-done
	f.stop()
	depth, _ := srv.Client().LLen(ctx, qc.Keys().Queue(q)).Result()
	added := f.added.Load()
	t.Logf("consumed %d, added %d, left %d, dry ticks %d", consumed.Load(), added, depth, dry.Load())
	if dry.Load() > 0 {
		t.Errorf("the queue ran dry %d times", dry.Load())
	}
	if added != consumed.Load()+depth {
		t.Errorf("added %d != consumed %d + left %d", added, consumed.Load(), depth)
	}
	rate := float64(consumed.Load()) / time.Since(began).Seconds()
	if max := int64(rate*feedAhead.Seconds()*2) + feedMin; depth > max {
		t.Errorf("backlog %d at the end, want at most %d (a few seconds of %.0f jobs/s)", depth, max, rate)
	}
}

// The synthetic payload carries the class, the arguments parsed as
// enqueue parses them, and the run's marker.
func TestTunePayload(t *testing.T) {
	b, err := tunePayload([]string{"Poolctl::Cpu", "5", "x y", `{"a":1}`}, "r-1")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Class  string            `json:"class"`
		Args   []json.RawMessage `json:"args"`
		Marker string            `json:"poolctl_tune"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.Class != "Poolctl::Cpu" || p.Marker != "r-1" || len(p.Args) != 3 || string(p.Args[0]) != "5" || string(p.Args[1]) != `"x y"` || string(p.Args[2]) != `{"a":1}` {
		t.Errorf("payload %s", b)
	}
}

func TestParseTuneArgs(t *testing.T) {
	o, err := parseTuneArgs([]string{"--max", "8", "mail:high/ü", "--load", "Poolctl::Cpu 5", "--step-seconds=1.5", "--json", "--apply", "--min=2"})
	if err != nil {
		t.Fatal(err)
	}
	if o.queue != "mail:high/ü" || o.max != 8 || !o.maxSet || o.min != 2 || o.step != 1500*time.Millisecond || !o.json || !o.apply ||
		strings.Join(o.load, "|") != "Poolctl::Cpu|5" {
		t.Errorf("parsed %+v", o)
	}
	if o, _ := parseTuneArgs([]string{"q", "--step-seconds", "2s"}); o.step != 2*time.Second || o.min != 1 || o.maxSet {
		t.Errorf("defaults and a duration: %+v", o)
	}
	bad := map[string][]string{
		"which queue":                   {"--json"},
		"one queue at a time":           {"a", "b"},
		"--max needs a value":           {"q", "--max"},
		"want a worker count":           {"q", "--max", "0"},
		"--max 2 is below --min 4":      {"q", "--min", "4", "--max", "2"},
		"want seconds":                  {"q", "--step-seconds", "NaN"},
		"unknown flag --maxx":           {"q", "--maxx", "3"},
		"--json takes no value":         {"q", "--json=1"},
		"needs a job class":             {"q", "--load", ""},
		"unterminated":                  {"q", "--load", "Poolctl::Cpu 'x"},
		"is a pattern":                  {"mail*"},
		"contains an invalid character": {"a,b"},
	}
	for want, args := range bad {
		if _, err := parseTuneArgs(args); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("tune %v: %v, want an error with %q", args, err, want)
		}
	}
}

// Completion offers the pool's queues first, then the flags not given
// yet (a flag's value is not taken for the queue).
func TestTuneCompletion(t *testing.T) {
	s, _ := newTestSession(t, "foo=2:bar,baz=1")
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
	tests := map[string][]string{
		"tune b":                   {"bar", "baz"},
		"tune --max 8 f":           {"foo"},
		"tune foo --m":             {"--max", "--min"},
		"tune foo --max 8 --m":     {"--min"},
		"tune foo --json --apply ": {"--load", "--max", "--min", "--step-seconds"},
	}
	for text, want := range tests {
		if got := complete(text); !reflect.DeepEqual(got, want) {
			t.Errorf("complete(%q) = %q, want %q", text, got, want)
		}
	}
}

// A tune that cannot start changes nothing and says why: no master.
func TestTuneWithoutMaster(t *testing.T) {
	s, _ := newTestSession(t, "foo=2")
	err := s.Exec(context.Background(), "tune foo --load 'Poolctl::Noop'")
	if err == nil || !strings.Contains(err.Error(), "the master is not running") {
		t.Fatalf("tune on a stopped pool: %v", err)
	}
	if err := s.Exec(context.Background(), "tune"); err == nil || !strings.Contains(err.Error(), "missing argument") {
		t.Fatalf("tune without a queue: %v", err)
	}
}
