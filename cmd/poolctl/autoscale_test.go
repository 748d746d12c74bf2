package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
)

func groupOf(st *poolfs.State, queues string) poolfs.GroupState {
	for _, g := range st.Groups {
		if g.Queues == queues {
			return g
		}
	}
	return poolfs.GroupState{}
}

// A backlog of 3,000 20 ms jobs: the group scales up within 3 s to at
// least 8 workers, drains the queue, and comes back to its minimum within
// down_after + 5 s, logging a reason for every change.
func TestAutoscaleUpDrainAndDown(t *testing.T) {
	p, q, _ := cockpitPool(t, "auto", `  work:
    autoscale: {min: 1, max: 16, target_wait: 2s, down_after: 5s}
`)
	st, err := poolfs.ReadState(p.State)
	if err != nil {
		t.Fatal(err)
	}
	if g := groupOf(st, "work"); g.Desired != 1 || g.Autoscale == nil || g.Autoscale.Mode != poolfs.AutoscaleOn {
		t.Fatalf("group at start: %+v", g)
	}
	if err := q.Enqueue(context.Background(), "work", sleepJobs(t, 3000, 20)...); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var peak int
	waitFor(t, 10*time.Second, "8 live workers", func() bool {
		st, err := poolfs.ReadState(p.State)
		if err != nil {
			return false
		}
		peak = max(peak, groupOf(st, "work").Live)
		return peak >= 8
	})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("reached %d workers after %s, want within 3s", peak, took)
	}
	waitQueueState(t, p, "work", "empty", 30*time.Second)
	drained := time.Now()
	waitFor(t, 15*time.Second, "back at 1 worker", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && groupOf(st, "work").Desired == 1 && groupOf(st, "work").Live == 1 && st.Settled()
	})
	if took := time.Since(drained); took > 5*time.Second+5*time.Second {
		t.Errorf("back at 1 after %s, want within down_after + 5s", took)
	}
	n, err := q.Redis().HGet(context.Background(), q.Keys().Stats("work"), "processed").Int()
	if err != nil || n != 3000 {
		t.Errorf("processed %d (%v), want exactly 3000: a job was lost or run twice", n, err)
	}
	logb, _ := os.ReadFile(p.Log)
	log := string(logb)
	changes := regexp.MustCompile(`autoscale work (\d+)→(\d+): (.+)`).FindAllStringSubmatch(log, -1)
	if len(changes) < 2 {
		t.Fatalf("want autoscale lines with reasons in the log:\n%s", log)
	}
	for _, c := range changes {
		if strings.TrimSpace(c[3]) == "" {
			t.Errorf("a change without a reason: %q", c[0])
		}
	}
	t.Logf("autoscale log:\n%s", strings.Join(regexp.MustCompile(`(?m)^.*autoscale.*$`).FindAllString(log, -1), "\n"))
	if !strings.Contains(log, "one idle worker stopped") {
		t.Errorf("no scale-down step in the log:\n%s", log)
	}
}
