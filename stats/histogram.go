package stats

import (
	"github.com/poolctl/poolctl/queue"
)

// Histogram is a job-duration histogram over queue.Buckets: Counts[i] is
// the number of jobs in bucket i (not cumulative), Sum their total run
// time in seconds.
type Histogram struct {
	Count  int64   `json:"count"`
	Sum    float64 `json:"sum_seconds"`
	Counts []int64 `json:"buckets,omitempty"`
}

// Add adds o's jobs to h.
func (h *Histogram) Add(o Histogram) {
	if len(o.Counts) > 0 && len(h.Counts) < len(o.Counts) {
		h.Counts = append(h.Counts, make([]int64, len(o.Counts)-len(h.Counts))...)
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Count += o.Count
	h.Sum += o.Sum
}

// Sub returns the jobs of h that are not in earlier (an older reading of
// the same counters); a counter that went backwards (Redis restarted
// empty) yields h itself.
func (h Histogram) Sub(earlier Histogram) Histogram {
	if earlier.Count > h.Count {
		return h
	}
	d := Histogram{Count: h.Count - earlier.Count, Sum: h.Sum - earlier.Sum, Counts: make([]int64, len(h.Counts))}
	for i, c := range h.Counts {
		if i < len(earlier.Counts) {
			c -= earlier.Counts[i]
		}
		if c < 0 {
			return h
		}
		d.Counts[i] = c
	}
	return d
}

// Mean is the mean job time in seconds, 0 when no job ran.
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / float64(h.Count)
}

// Quantile estimates the q-quantile (0 < q <= 1) in seconds by linear
// interpolation inside the bucket that holds it, as Prometheus's
// histogram_quantile does; the overflow bucket reports its lower bound.
// ok is false when the histogram is empty.
func (h Histogram) Quantile(q float64) (seconds float64, ok bool) {
	var total int64
	for _, c := range h.Counts {
		total += c
	}
	if total == 0 {
		return 0, false
	}
	rank := q * float64(total)
	var seen int64
	for i, c := range h.Counts {
		if c == 0 || float64(seen+c) < rank {
			seen += c
			continue
		}
		lower := 0.0
		if i > 0 {
			lower = queue.Buckets[i-1].Seconds()
		}
		if i >= len(queue.Buckets) {
			return lower, true
		}
		upper := queue.Buckets[i].Seconds()
		return lower + (upper-lower)*(rank-float64(seen))/float64(c), true
	}
	return queue.Buckets[len(queue.Buckets)-1].Seconds(), true
}

// Quantiles returns h's p50, p95 and p99 (nil when h is empty).
func (h Histogram) Quantiles() Quantiles {
	at := func(q float64) *float64 {
		if v, ok := h.Quantile(q); ok {
			return &v
		}
		return nil
	}
	return Quantiles{P50: at(0.50), P95: at(0.95), P99: at(0.99)}
}
