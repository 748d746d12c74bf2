package stats

import (
	"math"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		name            string
		depth, inFlight int64
		out, in         float64
		sinceDone       time.Duration
		known           bool
		want            string
		eta             float64 // -1 = nil
	}{
		{"nothing queued or running", 0, 0, 0, 0, time.Hour, true, QueueEmpty, -1},
		{"last jobs running", 0, 3, 10, 0, 0, true, QueueDraining, 0.3},
		{"draining", 100, 0, 50, 10, 0, true, QueueDraining, 2.5},
		{"stalled wins over rates", 100, 0, 50, 0, 10 * time.Second, true, QueueStalled, -1},
		{"growing", 100, 4, 10, 20, 0, true, QueueGrowing, -1},
		{"balanced", 100, 0, 10, 10, 0, true, QueueBusy, -1},
		{"rates not known yet", 100, 0, 0, 0, 0, false, QueueBusy, -1},
		{"in a hair above out is noise, not growth", 100, 0, 10, 10.01, 0, true, QueueBusy, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, eta := classify(c.depth, c.inFlight, c.out, c.in, c.sinceDone, 10*time.Second, c.known)
			if got != c.want {
				t.Fatalf("state = %q, want %q", got, c.want)
			}
			switch {
			case c.eta < 0 && eta != nil:
				t.Fatalf("eta = %v, want none", *eta)
			case c.eta >= 0 && (eta == nil || math.Abs(*eta-c.eta) > 1e-9):
				t.Fatalf("eta = %v, want %v", eta, c.eta)
			}
		})
	}
}

// A batch enqueued at once is a burst of arrivals: the queue must read as
// draining with an ETA close to backlog / out rate right after it, not as
// growing while the burst decays out of the 10 s average.
func TestBurstDoesNotReadAsGrowth(t *testing.T) {
	tr := newQueueTracker()
	now := time.Unix(1000, 0)
	var processed int64
	depth := int64(0)
	tr.observe(queueReading{name: "q"}, 0, now, 10*time.Second)
	// One interval: 4000 jobs arrive, 100 are done.
	depth, processed = 3900, 100
	now = now.Add(time.Second)
	qs := tr.observe(queueReading{name: "q", depth: depth, processed: processed}, 4, now, 10*time.Second)
	for i := 0; i < 4; i++ {
		depth -= 360
		processed += 360
		now = now.Add(time.Second)
		qs = tr.observe(queueReading{name: "q", depth: depth, processed: processed}, 4, now, 10*time.Second)
	}
	if qs.State != QueueDraining || qs.ETASeconds == nil {
		t.Fatalf("state %s (in %.0f/s, out %.0f/s), want draining", qs.State, qs.InRate, qs.OutRate)
	}
	want := float64(depth+4) / 360
	if math.Abs(*qs.ETASeconds-want)/want > 0.3 {
		t.Errorf("eta %.1fs, want within 30%% of %.1fs", *qs.ETASeconds, want)
	}
	if qs.InRate < 100 {
		t.Errorf("in rate %.0f/s: the published 10 s average should still show the burst", qs.InRate)
	}
}

// A producer that keeps outpacing the workers is growth.
func TestSustainedProducerIsGrowing(t *testing.T) {
	tr := newQueueTracker()
	now := time.Unix(1000, 0)
	var depth, processed int64
	var qs QueueSample
	for i := 0; i < 8; i++ {
		qs = tr.observe(queueReading{name: "q", depth: depth, processed: processed}, 2, now, 10*time.Second)
		depth += 50 // 150 in, 100 out each second
		processed += 100
		now = now.Add(time.Second)
	}
	if qs.State != QueueGrowing {
		t.Fatalf("state %s (in %.0f/s, out %.0f/s), want growing", qs.State, qs.InRate, qs.OutRate)
	}
	if math.Abs(qs.InRate-150) > 1 || math.Abs(qs.OutRate-100) > 1 {
		t.Errorf("rates in %.1f out %.1f, want 150 and 100", qs.InRate, qs.OutRate)
	}
}

func TestCounterResetIsNotNegativeThroughput(t *testing.T) {
	tr := newQueueTracker()
	now := time.Unix(1000, 0)
	tr.observe(queueReading{name: "q", depth: 5, processed: 1000}, 0, now, 10*time.Second)
	qs := tr.observe(queueReading{name: "q", depth: 5, processed: 0}, 0, now.Add(time.Second), 10*time.Second)
	if qs.OutRate < 0 || qs.InRate < 0 {
		t.Fatalf("rates went negative after Redis lost its counters: in %v out %v", qs.InRate, qs.OutRate)
	}
}

func TestQuantileInterpolatesWithinBucket(t *testing.T) {
	h := Histogram{Counts: make([]int64, 22)}
	// 100 jobs between 10 and 20 ms (bucket 4: (10ms, 20ms]).
	h.Counts[4], h.Count = 100, 100
	p50, ok := h.Quantile(0.5)
	if !ok || math.Abs(p50-0.015) > 1e-9 {
		t.Fatalf("p50 = %v, %v; want 0.015", p50, ok)
	}
	if _, ok := (Histogram{}).Quantile(0.5); ok {
		t.Fatal("an empty histogram has a quantile")
	}
	h.Counts[21]++ // one job over an hour
	h.Count++
	if p100, _ := h.Quantile(1); p100 != 3600 {
		t.Fatalf("overflow quantile = %v, want its lower bound 3600", p100)
	}
	d := h.Sub(Histogram{Count: 50, Counts: []int64{0, 0, 0, 0, 50}})
	if d.Count != 51 || d.Counts[4] != 50 {
		t.Fatalf("Sub = %+v", d)
	}
	if r := h.Sub(Histogram{Count: 500}); r.Count != h.Count {
		t.Fatalf("a reset counter should yield the later histogram, got %+v", r)
	}
}

// A batch sampled every 200 ms whose first busy intervals are slow (the
// workers warming up): at half-way the rate must be close to the pace of
// the drain so far, not to the first interval's.
func TestEarlySlowIntervalsDoNotDominate(t *testing.T) {
	tr := newQueueTracker()
	now := time.Unix(1000, 0)
	const step = 200 * time.Millisecond
	depth, processed := int64(4000), int64(0)
	tr.observe(queueReading{name: "q"}, 0, now, 10*time.Second) // empty before the batch
	var qs QueueSample
	for i := 1; depth > 2000; i++ {
		now = now.Add(step)
		n := int64(80) // 400/s
		if i <= 3 {
			n = 10 // 50/s while warming up
		}
		depth -= n
		processed += n
		qs = tr.observe(queueReading{name: "q", depth: depth, processed: processed}, 4, now, 10*time.Second)
	}
	if qs.OutRate < 340 || qs.OutRate > 410 {
		t.Fatalf("out rate at half-way %.0f/s, want about 400/s", qs.OutRate)
	}
	want := float64(depth+4) / 400
	if qs.ETASeconds == nil || math.Abs(*qs.ETASeconds-want)/want > 0.15 {
		t.Fatalf("eta %v, want within 15%% of %.1fs", qs.ETASeconds, want)
	}
}

// A queue that worked earlier, emptied, and now holds a batch nobody has
// touched (its workers paused): the out rate still shows the earlier
// jobs, decaying, but no ETA may come of it.
func TestNoETAFromAnEarlierBatchsRate(t *testing.T) {
	tr := newQueueTracker()
	now := time.Unix(1000, 0)
	var processed int64
	depth := int64(100)
	for i := 0; i < 5; i++ { // an earlier batch drains at 20/s
		tr.observe(queueReading{name: "q", depth: depth, processed: processed}, 1, now, 10*time.Second)
		depth, processed, now = depth-20, processed+20, now.Add(time.Second)
	}
	tr.observe(queueReading{name: "q", depth: 0, processed: processed}, 0, now, 10*time.Second)
	for i := 0; i < 5; i++ { // 2,000 queued, nothing finishes
		now = now.Add(200 * time.Millisecond)
		qs := tr.observe(queueReading{name: "q", depth: 2000, processed: processed}, 0, now, 10*time.Second)
		if qs.ETASeconds != nil || qs.State == QueueDraining {
			t.Fatalf("sample %d: state %s eta %v (out %.2f/s, an earlier batch's)", i, qs.State, *qs.ETASeconds, qs.OutRate)
		}
	}
}
