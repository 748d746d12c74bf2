package tune

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Model is the fitted USL as tune reports it.
type Model struct {
	Sigma  float64 `json:"sigma"`
	Kappa  float64 `json:"kappa"`
	Lambda float64 `json:"lambda"`
	// PeakWorkers is N* = √((1−σ)/κ), null when κ = 0 (no peak within
	// the model).
	PeakWorkers *float64 `json:"peak_workers"`
	R2          float64  `json:"r2"`
	Points      int      `json:"points"`
}

// Result is everything one tune run found: the JSON object of
// `tune --json` and the source of its text report.
type Result struct {
	Pool        string  `json:"pool"`
	Queue       string  `json:"queue"`
	QueueList   string  `json:"queue_list"`
	Load        string  `json:"load,omitempty"` // the --load job, "" for the live backlog
	StepSeconds float64 `json:"step_seconds"`
	Points      []Point `json:"points"`
	// USL is the model, null when it was not fitted (ModelNote says why).
	USL       *Model `json:"usl"`
	ModelNote string `json:"model_note,omitempty"`
	// Recommended is the recommended worker count, null when no
	// measured count keeps within the limits.
	Recommended *int   `json:"recommended"`
	Reason      string `json:"reason"`
	// Applied says the recommendation was set (--apply); else the count
	// was put back to Restored.
	Applied  bool `json:"applied"`
	Restored int  `json:"restored_to,omitempty"`
	// SyntheticAdded and SyntheticRemoved count the --load jobs: pushed,
	// and taken back from the queue unrun at the end.
	SyntheticAdded   int64 `json:"synthetic_jobs_added"`
	SyntheticRemoved int64 `json:"synthetic_jobs_removed"`
}

// Analyze fits the model to the points (when there are enough) and
// applies the recommendation rule.
func Analyze(points []Point, lim Limits) (model *Model, note string, rec Recommendation) {
	obs := make([]Observation, len(points))
	for i, p := range points {
		obs[i] = Observation{N: float64(p.Workers), X: p.Throughput}
	}
	u, err := Fit(obs)
	switch {
	case errors.Is(err, ErrTooFewPoints):
		note = fmt.Sprintf("no model: %v (%d points, at least %d)", ErrTooFewPoints, len(points), MinFitPoints)
	case err != nil:
		note = fmt.Sprintf("no model: %v", err)
	default:
		model = &Model{Sigma: u.Sigma, Kappa: u.Kappa, Lambda: u.Lambda, R2: u.R2, Points: len(points)}
		if pk := u.Peak(); !math.IsInf(pk, 1) {
			model.PeakWorkers = &pk
		}
	}
	return model, note, Recommend(points, lim)
}

// Predict is the model's throughput at n workers.
func (m *Model) Predict(n float64) float64 {
	return USL{Sigma: m.Sigma, Kappa: m.Kappa, Lambda: m.Lambda}.Throughput(n)
}

// chartWidth is the longest bar of the chart, in cells.
const chartWidth = 40

// WriteText writes the report for people: the table, the chart, the
// model and the recommendation.
func (r *Result) WriteText(w io.Writer) {
	var b strings.Builder
	load := "the live backlog"
	if r.Load != "" {
		load = "load " + r.Load
	}
	fmt.Fprintf(&b, "tune %s (queue list %s, %s, %gs per step)\n", r.Queue, r.QueueList, load, r.StepSeconds)
	ps := sortedByWorkers(r.Points)
	fmt.Fprintf(&b, "%7s %9s %9s %5s %6s %11s %10s\n", "workers", "jobs/s", "p95", "CPU", "load", "RSS/worker", "mem free")
	for _, p := range ps {
		mark := ""
		if !p.Steady {
			mark = "  (not steady)"
		}
		fmt.Fprintf(&b, "%7d %9s %9s %4.0f%% %6.2f %11s %10s%s\n", p.Workers, formatRate(p.Throughput), formatSeconds(p.P95),
			p.CPUPercent, p.Load1, formatBytes(p.WorkerRSSBytes), formatBytes(p.MemFreeBytes), mark)
	}
	b.WriteString("\n")
	b.WriteString(r.chart(ps))
	b.WriteString("\n")
	if m := r.USL; m != nil {
		peak := "no peak within the model (κ = 0: throughput keeps rising)"
		if m.PeakWorkers != nil {
			peak = fmt.Sprintf("predicted peak N* = √((1−σ)/κ) ≈ %.1f workers (%s jobs/s)", *m.PeakWorkers, formatRate(m.Predict(*m.PeakWorkers)))
		}
		fmt.Fprintf(&b, "model (Universal Scalability Law, %d points, R² %.3f): σ %.4g (contention), κ %.4g (coherency), λ %s jobs/s per worker;\n  %s\n",
			m.Points, m.R2, m.Sigma, m.Kappa, formatRate(m.Lambda), peak)
	} else {
		fmt.Fprintf(&b, "%s\n", r.ModelNote)
	}
	if r.Recommended != nil {
		fmt.Fprintf(&b, "recommended: %d workers: %s\n", *r.Recommended, r.Reason)
	} else {
		fmt.Fprintf(&b, "no recommendation: %s\n", r.Reason)
	}
	_, _ = io.WriteString(w, b.String())
}

// chart draws one bar per measured count, the model's prediction beside
// the measured value, the recommended count marked.
func (r *Result) chart(ps []Point) string {
	top := 0.0
	for _, p := range ps {
		top = math.Max(top, p.Throughput)
	}
	var b strings.Builder
	b.WriteString("jobs/s by workers\n")
	if top <= 0 {
		return b.String()
	}
	eighths := []string{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"}
	for _, p := range ps {
		cells := p.Throughput / top * chartWidth
		full := int(cells)
		bar := strings.Repeat("█", full) + eighths[int((cells-float64(full))*8)]
		pad := chartWidth + 1 - full
		if eighths[int((cells-float64(full))*8)] != "" {
			pad--
		}
		extra := ""
		if r.USL != nil {
			extra = fmt.Sprintf("  (model %s)", formatRate(r.USL.Predict(float64(p.Workers))))
		}
		if r.Recommended != nil && *r.Recommended == p.Workers {
			extra += "  ◀ recommended"
		}
		fmt.Fprintf(&b, "%5d │%s%s%s%s\n", p.Workers, bar, strings.Repeat(" ", max(pad, 1)), formatRate(p.Throughput), extra)
	}
	return b.String()
}
