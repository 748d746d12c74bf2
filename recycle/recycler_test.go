package recycle

import (
	"testing"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/stats"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	mb := uint64(1 << 20)
	rss := poolfs.RecycleSettings{MaxRSS: 500 * mb}
	life := poolfs.RecycleSettings{MaxLifetime: (6 * time.Hour).Seconds()}
	started := func(ago time.Duration, builtin bool) poolfs.WorkerState {
		return poolfs.WorkerState{PID: 7, StartedAt: now.Add(-ago), Builtin: builtin}
	}
	t.Run("rss needs two samples over", func(t *testing.T) {
		over := map[string]int{}
		w := started(time.Minute, true)
		if r := Decide(stats.WorkerSample{RSSBytes: 612 * mb}, w, rss, now, over, "k"); r != "" {
			t.Fatalf("first sample over: %q, want nothing", r)
		}
		if r := Decide(stats.WorkerSample{RSSBytes: 400 * mb}, w, rss, now, over, "k"); r != "" {
			t.Fatalf("back under: %q", r)
		}
		Decide(stats.WorkerSample{RSSBytes: 612 * mb}, w, rss, now, over, "k")
		r := Decide(stats.WorkerSample{RSSBytes: 612 * mb}, w, rss, now, over, "k")
		if want := "rss 612MB > max_rss 500MB"; r != want {
			t.Fatalf("second sample over: %q, want %q", r, want)
		}
	})
	for _, c := range []struct {
		name    string
		age     time.Duration
		builtin bool
		job     string
		want    string
	}{
		{"young", 5 * time.Hour, true, "", ""},
		{"old idle builtin", 6*time.Hour + 20*time.Second, true, "", "lifetime 6h0m > max_lifetime 6h"},
		{"old busy builtin waits", 6*time.Hour + 30*time.Minute, true, "Slow", ""},
		{"busy builtin 10% past", 6*time.Hour + 37*time.Minute, true, "Slow", "lifetime 6h37m > max_lifetime 6h"},
		{"command does not wait", 6*time.Hour + time.Minute, false, "", "lifetime 6h1m > max_lifetime 6h"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Decide(stats.WorkerSample{Job: c.job}, started(c.age, c.builtin), life, now, map[string]int{}, "k")
			if r != c.want {
				t.Errorf("got %q, want %q", r, c.want)
			}
		})
	}
}

func TestDurationJustPastReadsPast(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2*time.Second + 50*time.Millisecond:  "2.1s",
		2 * time.Second:                      "2s",
		2*time.Minute + 200*time.Millisecond: "2m1s",
		6*time.Hour + 20*time.Second:         "6h0m",
	} {
		if got := duration(d); got != want {
			t.Errorf("duration(%s) = %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{6 * time.Hour: "6h", 90 * time.Minute: "1h30m", 2 * time.Second: "2s", 150 * time.Second: "2m30s"} {
		if got := limitString(d); got != want {
			t.Errorf("limitString(%s) = %q, want %q", d, got, want)
		}
	}
}
