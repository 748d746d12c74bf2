package autoscale

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/spec"
)

func TestExplain(t *testing.T) {
	now := time.Unix(2000, 0)
	base := Input{Now: now, Settings: bounds, Current: 2, Live: 2, CPUs: 2, CPUPercent: 40}
	cases := []struct {
		name    string
		mod     func(*Input)
		law     float64 // -1: none
		want    int
		clamp   string
		rooms   map[string]int
		desired int
		reason  string
	}{
		{"little's law", func(in *Input) { in.Backlog, in.InRate, in.JobSeconds = 100, 50, 0.1 }, 10, 10, "", nil, 10, "λ·S + B·S/T = 10.0"},
		{"clamped to max", func(in *Input) { in.Backlog, in.JobSeconds = 3000, 0.02 }, 30, 16, "lowered to max", nil, 16, "backlog 3000"},
		{"job time unknown: doubling", func(in *Input) { in.Backlog = 50 }, -1, 4, "", nil, 4, "doubling"},
		{"limits: each one's room, the smallest binds", func(in *Input) {
			in.Backlog, in.JobSeconds = 3000, 0.02
			in.Limits = spec.Limits{MaxWorkers: 10, MaxCPU: 90, MinFreeMemory: 1 << 30, MaxWorkerRSS: 256 << 20}
			in.PoolWorkers, in.WorkerCPU, in.MemFreeBytes = 6, 20, 2<<30
		}, 30, 16, "lowered to max", map[string]int{"max_workers": 4, "max_cpu": 5, "min_free_memory": 4}, 6, "max_workers 10"},
		{"surplus: one idle worker once it lasted", func(in *Input) { in.Current, in.Live, in.Idle = 5, 5, 2 }, -1, 1, "raised to min", nil, 4, "one idle worker stopped"},
		{"surplus, every worker busy", func(in *Input) { in.Current, in.Live = 5, 5; in.InRate, in.JobSeconds = 1, 0.1 }, 0.1, 1, "", nil, 5, "every worker is busy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base
			c.mod(&in)
			e := Explain(in)
			switch {
			case c.law < 0 && e.Law != nil:
				t.Errorf("law = %v, want none", *e.Law)
			case c.law >= 0 && (e.Law == nil || abs(*e.Law-c.law) > 1e-9):
				t.Errorf("law = %v, want %v", e.Law, c.law)
			}
			if e.Want != c.want || e.Clamp != c.clamp {
				t.Errorf("want %d clamp %q, want %d %q", e.Want, e.Clamp, c.want, c.clamp)
			}
			got := map[string]int{}
			for _, r := range e.Limits {
				got[r.Limit] = -1
				if r.Room != nil {
					got[r.Limit] = *r.Room
				}
				if r.Why == "" {
					t.Errorf("limit %s without figures", r.Limit)
				}
			}
			if len(got) != len(c.rooms) {
				t.Errorf("rooms %v, want %v", got, c.rooms)
			}
			least := -1
			for k, v := range c.rooms {
				if got[k] != v {
					t.Errorf("room of %s = %d, want %d", k, got[k], v)
				}
				if least < 0 || v < least {
					least = v
				}
			}
			if (least < 0) != (e.RoomLeft == nil) || (e.RoomLeft != nil && *e.RoomLeft != least) {
				t.Errorf("room left %v, want %d", e.RoomLeft, least)
			}
			if e.Desired != c.desired || !strings.Contains(e.Reason, c.reason) {
				t.Errorf("decision %d (%s), want %d with %q", e.Desired, e.Reason, c.desired, c.reason)
			}
			// The explanation agrees with the policy on the same input.
			if w, _ := Want(in); w != e.Want {
				t.Errorf("Want = %d, Explain's want %d", w, e.Want)
			}
			if _, err := json.Marshal(e); err != nil {
				t.Errorf("marshal: %v", err)
			}
		})
	}
}

// A limit whose per-worker cost is not measured yet does not bound the
// count: its room is nil, not a huge number.
func TestExplainUnmeasuredLimit(t *testing.T) {
	in := Input{Now: time.Unix(1, 0), Settings: bounds, Current: 1, Backlog: 10, JobSeconds: 0.1, CPUPercent: 50,
		Limits: spec.Limits{MaxCPU: 90, MinFreeMemory: 1 << 20}, MemFreeBytes: 1 << 30}
	e := Explain(in)
	if len(e.Limits) != 2 || e.Limits[0].Room != nil || e.Limits[1].Room != nil || e.RoomLeft != nil {
		t.Fatalf("limits %+v room %v", e.Limits, e.RoomLeft)
	}
}

// A target wait of 0 (a state file written by hand) makes the law
// infinite: Explain still returns something JSON can carry.
func TestExplainZeroTargetWait(t *testing.T) {
	in := Input{Now: time.Unix(1, 0), Settings: spec.Autoscale{Min: 1, Max: 4}, Current: 1, Backlog: 10, JobSeconds: 0.1}
	e := Explain(in)
	if e.Law != nil || e.Want != 4 {
		t.Fatalf("law %v want %d", e.Law, e.Want)
	}
	if _, err := json.Marshal(e); err != nil {
		t.Fatal(err)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
