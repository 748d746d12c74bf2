package tune

import (
	"fmt"
	"sort"
	"strings"
)

// GoodEnough is the share of the best measured throughput a smaller
// worker count must reach to be recommended instead: workers that add
// less than the last 5% cost memory and CPU for nothing.
const GoodEnough = 0.95

// Limits are the pool's machine limits (the config's limits:) as they
// bear on one queue list's count. Zero values mean no limit.
type Limits struct {
	// MaxWorkers is the pool's max_workers; OtherWorkers the workers of
	// the pool's other queue lists, which count towards it.
	MaxWorkers   int
	OtherWorkers int
	// MaxCPU is max_cpu: the host CPU busy % a point may show.
	MaxCPU float64
	// MinFreeMemory is min_free_memory: the available memory (bytes) a
	// point must have left.
	MinFreeMemory uint64
}

// Recommendation is the worker count tune recommends and why. Workers is
// 0 when no measured count keeps within the limits.
type Recommendation struct {
	Workers int
	Reason  string
}

// violation says which limit the point p breaks, "" when none.
func (l Limits) violation(p Point) string {
	var why []string
	if l.MaxWorkers > 0 && p.Workers+l.OtherWorkers > l.MaxWorkers {
		if l.OtherWorkers > 0 {
			why = append(why, fmt.Sprintf("%d workers with the pool's other %d exceed max_workers %d", p.Workers, l.OtherWorkers, l.MaxWorkers))
		} else {
			why = append(why, fmt.Sprintf("%d workers exceed max_workers %d", p.Workers, l.MaxWorkers))
		}
	}
	if l.MaxCPU > 0 && p.CPUPercent > l.MaxCPU {
		why = append(why, fmt.Sprintf("host CPU %.0f%% > max_cpu %.0f%%", p.CPUPercent, l.MaxCPU))
	}
	if l.MinFreeMemory > 0 && p.MemFreeBytes > 0 && p.MemFreeBytes < l.MinFreeMemory {
		why = append(why, fmt.Sprintf("free memory %s < min_free_memory %s", formatBytes(p.MemFreeBytes), formatBytes(l.MinFreeMemory)))
	}
	return strings.Join(why, ", ")
}

// MinMarginal is the share of one worker's throughput (at the smallest
// count measured) that each worker beyond the knee must add: past a count
// where every further worker adds less, more workers buy nothing but
// contention (CPU-bound jobs past the cores), whatever noise says about
// the last few percent. The autoscaler's no-gain rule uses the same 10%.
const MinMarginal = 0.10

// Recommend applies tune's rule to the measured points: the smallest
// worker count whose throughput is at least GoodEnough of the best
// measured, or, if smaller, the knee: the smallest count beyond which
// every larger measured count adds less than MinMarginal of one worker's
// throughput per added worker; among the counts that keep within lim. When every such count
// breaks a limit, it is the count with the best throughput among those
// that keep within it (the reason names the limit); when none does,
// Workers is 0.
func Recommend(points []Point, lim Limits) Recommendation {
	if len(points) == 0 {
		return Recommendation{Reason: "nothing was measured"}
	}
	ps := append([]Point(nil), points...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Workers < ps[j].Workers })
	best := ps[0]
	for _, p := range ps[1:] {
		if p.Throughput > best.Throughput {
			best = p
		}
	}
	if best.Throughput <= 0 {
		return Recommendation{Reason: "no job finished at any worker count"}
	}
	var allowed []Point
	var broken []string
	for _, p := range ps {
		if why := lim.violation(p); why != "" {
			broken = append(broken, fmt.Sprintf("%d: %s", p.Workers, why))
			continue
		}
		allowed = append(allowed, p)
	}
	if len(allowed) == 0 {
		return Recommendation{Reason: "no measured worker count keeps within the pool's limits (" + strings.Join(broken, "; ") + ")"}
	}
	if k, ok := knee(allowed); ok && k.Throughput < GoodEnough*best.Throughput {
		return Recommendation{Workers: k.Workers, Reason: fmt.Sprintf("the knee: %s jobs/s at %d workers, and no larger count adds %.0f%% of one worker's throughput per added worker (best measured %s at %d)",
			formatRate(k.Throughput), k.Workers, MinMarginal*100, formatRate(best.Throughput), best.Workers)}
	}
	for _, p := range allowed {
		if p.Throughput < GoodEnough*best.Throughput*(1-1e-12) { // 95% counts, whatever the rounding
			continue
		}
		if p.Workers == best.Workers {
			return Recommendation{Workers: p.Workers, Reason: fmt.Sprintf("the best measured throughput, %s jobs/s; fewer workers reached less than %.0f%% of it", formatRate(p.Throughput), GoodEnough*100)}
		}
		return Recommendation{Workers: p.Workers, Reason: fmt.Sprintf("the fewest workers within %.0f%% of the best measured throughput: %s jobs/s, %.0f%% of %s at %d workers",
			(1-GoodEnough)*100, formatRate(p.Throughput), 100*p.Throughput/best.Throughput, formatRate(best.Throughput), best.Workers)}
	}
	top := allowed[0]
	for _, p := range allowed[1:] {
		if p.Throughput > top.Throughput {
			top = p
		}
	}
	return Recommendation{Workers: top.Workers, Reason: fmt.Sprintf("the best throughput within the pool's limits: %s jobs/s, %.0f%% of the best measured (%s at %d workers, where %s)",
		formatRate(top.Throughput), 100*top.Throughput/best.Throughput, formatRate(best.Throughput), best.Workers, lim.violation(best))}
}

// formatRate prints a throughput with sensible precision.
func formatRate(x float64) string {
	switch {
	case x >= 99.95:
		return fmt.Sprintf("%.0f", x)
	case x >= 9.995:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

// formatBytes prints a byte count in binary units (as spec.FormatBytes
// does for config values, but rounded for a table).
func formatBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%dB", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(b)/float64(div), "KMGTP"[exp])
}

// knee finds the smallest count (of ps, sorted by workers) past which no
// larger count adds MinMarginal of one worker's throughput per added
// worker. Every larger count must fall short, so one noisy point does not
// make a knee.
func knee(ps []Point) (Point, bool) {
	if len(ps) < 3 || ps[0].Workers <= 0 || ps[0].Throughput <= 0 {
		return Point{}, false
	}
	perWorker := ps[0].Throughput / float64(ps[0].Workers)
	for i, p := range ps[:len(ps)-1] {
		flat := true
		for _, q := range ps[i+1:] {
			if q.Throughput-p.Throughput >= MinMarginal*perWorker*float64(q.Workers-p.Workers) {
				flat = false
				break
			}
		}
		if flat {
			return p, true
		}
	}
	return Point{}, false
}
