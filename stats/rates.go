package stats

import (
	"math"
	"sort"
	"time"
)

// Smoothing windows of the published rates.
const (
	shortWindow = 10 * time.Second
	longWindow  = time.Minute
	etaWindow   = 3 * time.Second
	// burstWindow is how many recent intervals the ETA's arrival rate is
	// judged over: a one-off burst (a batch enqueued at once) is arrival,
	// but not one that will go on, so the ETA discounts it.
	burstWindow = 5
)

// ewma is an exponentially weighted moving average of a rate over a time
// constant, exact for uneven intervals and bias-corrected: until it has
// seen a few time constants, it is the weighted mean of what it has seen
// (not of that and an assumed starting value), so the first interval of a
// batch, or a first slow one, does not linger in it for tens of seconds.
type ewma struct {
	tau    time.Duration
	sum    float64 // decayed sum of weighted rates
	weight float64 // decayed sum of the weights
	value  float64
	seeded bool
}

func (e *ewma) observe(rate float64, dt time.Duration) {
	decay := math.Exp(-dt.Seconds() / e.tau.Seconds())
	e.sum = e.sum*decay + (1-decay)*rate
	e.weight = e.weight*decay + (1 - decay)
	if e.weight > 0 {
		e.value = e.sum / e.weight
	}
	e.seeded = true
}

// queueTracker derives one queue's rates and state from its successive
// readings.
type queueTracker struct {
	last     queueReading
	inFlight int64
	lastAt   time.Time
	seen     bool
	// lastDone is when a job of the queue last finished (or tracking
	// began), for "stalled".
	lastDone time.Time
	// episodeDone is whether a job finished since the backlog last rose
	// from nothing: until one has, the out rate is an earlier batch's, and
	// an ETA from it would be a guess.
	episodeDone bool

	in, out, in1m, out1m, fail1m ewma
	// outETA follows the pace closer (3 s) for the ETA: a drain that
	// speeds up as its workers warm up would otherwise be forecast at
	// the pace of its first seconds.
	outETA   ewma
	recentIn []float64 // the last burstWindow instantaneous arrival rates
}

func newQueueTracker() *queueTracker {
	return &queueTracker{
		in: ewma{tau: shortWindow}, out: ewma{tau: shortWindow},
		in1m: ewma{tau: longWindow}, out1m: ewma{tau: longWindow}, fail1m: ewma{tau: longWindow},
		outETA: ewma{tau: etaWindow},
	}
}

// observe takes a new reading at now and fills the queue's sample.
func (t *queueTracker) observe(r queueReading, inFlight int64, now time.Time, stalledAfter time.Duration) QueueSample {
	qs := QueueSample{Name: r.name, Depth: r.depth, InFlight: inFlight, Processed: r.processed, Failed: r.failed, Timing: r.timing}
	if !t.seen {
		t.seen, t.lastDone = true, now
	} else if dt := now.Sub(t.lastAt); dt > 0 {
		done := r.processed - t.last.processed
		failed := r.failed - t.last.failed
		if done < 0 || failed < 0 { // counters reset (Redis restarted empty)
			done, failed = 0, 0
		}
		// Arrivals: what left plus what the backlog (queued and running)
		// grew by.
		arrived := float64(done) + float64(r.depth-t.last.depth) + float64(inFlight-t.inFlight)
		if arrived < 0 {
			arrived = 0 // jobs left some other way (deleted, moved)
		}
		secs := dt.Seconds()
		// An interval that began with nothing to do and ended with a
		// backlog had workers idle for part of it: its throughput says
		// nothing of the pool's pace, and counting it would make the
		// first ETA of a batch far too long.
		rampUp := t.last.depth+t.inFlight == 0 && r.depth+inFlight > 0
		if !rampUp {
			t.out.observe(float64(done)/secs, dt)
			t.outETA.observe(float64(done)/secs, dt)
			t.out1m.observe(float64(done)/secs, dt)
		}
		if rampUp {
			t.episodeDone = done > 0
		} else if done > 0 {
			t.episodeDone = true
		}
		t.in.observe(arrived/secs, dt)
		t.in1m.observe(arrived/secs, dt)
		t.fail1m.observe(float64(failed)/secs, dt)
		t.recentIn = append(t.recentIn, arrived/secs)
		if len(t.recentIn) > burstWindow {
			t.recentIn = t.recentIn[1:]
		}
		if done > 0 {
			t.lastDone = now
		}
	}
	t.last, t.inFlight, t.lastAt = r, inFlight, now
	if r.depth == 0 && inFlight == 0 {
		t.lastDone = now // nothing waits: nothing is stalled
	}

	qs.InRate, qs.OutRate = t.in.value, t.out.value
	qs.InRateSustained = t.sustainedIn()
	qs.InRate1m, qs.OutRate1m = t.in1m.value, t.out1m.value
	qs.FailRate1m = 60 * t.fail1m.value
	qs.State, qs.ETASeconds = classify(r.depth, inFlight, t.out.value, t.sustainedIn(), now.Sub(t.lastDone), stalledAfter, t.out.seeded && t.episodeDone)
	if qs.ETASeconds != nil && t.outETA.value > t.sustainedIn() {
		eta := float64(r.depth+inFlight) / (t.outETA.value - t.sustainedIn())
		qs.ETASeconds = &eta
	}
	if qs.OutRate > 0 && r.depth > 0 {
		qs.WaitSeconds = &Wait{Seconds: float64(r.depth) / qs.OutRate, Estimated: true}
	}
	return qs
}

// sustainedIn is the arrival rate the ETA and the state assume goes on:
// the smoothed rate, but no more than the median of the last few
// intervals', so a one-off burst does not read as a producer that keeps
// outpacing the workers.
func (t *queueTracker) sustainedIn() float64 {
	if len(t.recentIn) == 0 {
		return t.in.value
	}
	r := append([]float64(nil), t.recentIn...)
	sort.Float64s(r)
	return math.Min(t.in.value, r[len(r)/2])
}

// classify decides a queue's state, and its ETA when it is draining.
// known is false until a rate could be measured.
func classify(depth, inFlight int64, out, in float64, sinceDone, stalledAfter time.Duration, known bool) (string, *float64) {
	backlog := depth + inFlight
	switch {
	case backlog == 0:
		return QueueEmpty, nil
	case depth > 0 && sinceDone >= stalledAfter:
		return QueueStalled, nil
	case !known:
		return QueueBusy, nil
	case depth > 0 && in > out*1.02 && in-out > 0.05:
		return QueueGrowing, nil
	case out > in && out > 0:
		eta := float64(backlog) / (out - in)
		return QueueDraining, &eta
	}
	return QueueBusy, nil
}
