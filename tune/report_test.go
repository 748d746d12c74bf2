package tune

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestAnalyzeAndReport(t *testing.T) {
	truth := USL{Sigma: 0.05, Kappa: 0.06, Lambda: 100}
	var points []Point
	for _, n := range []int{1, 2, 3, 4, 5, 8} {
		p95 := 0.004
		points = append(points, Point{Workers: n, Throughput: truth.Throughput(float64(n)), P95: &p95, CPUPercent: 50, Steady: true})
	}
	model, note, rec := Analyze(points, Limits{})
	if model == nil || note != "" {
		t.Fatalf("no model from 6 points: %s", note)
	}
	if model.PeakWorkers == nil || !within(*model.PeakWorkers, truth.Peak(), 0.01) {
		t.Errorf("peak %v, want %.2f", model.PeakWorkers, truth.Peak())
	}
	r := Result{Queue: "cpu", QueueList: "cpu", Load: "Poolctl::Cpu 5", StepSeconds: 1, Points: points, USL: model, Recommended: &rec.Workers, Reason: rec.Reason}
	var text bytes.Buffer
	r.WriteText(&text)
	out := text.String()
	for _, want := range []string{"workers    jobs/s", "jobs/s by workers", "◀ recommended", "σ 0.05 (contention)", "predicted peak", "recommended: 3 workers"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// The longest bar is the best point's, chartWidth cells.
	if !strings.Contains(out, "    4 │"+strings.Repeat("█", chartWidth)+" ") {
		t.Errorf("the best point's bar is not full width:\n%s", out)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	p0 := m["points"].([]any)[0].(map[string]any)
	for _, k := range []string{"workers", "throughput", "p95_seconds", "cpu_percent"} {
		if _, ok := p0[k]; !ok {
			t.Errorf("point lacks %q: %v", k, p0)
		}
	}
	usl := m["usl"].(map[string]any)
	for _, k := range []string{"sigma", "kappa", "lambda", "peak_workers"} {
		if _, ok := usl[k]; !ok {
			t.Errorf("usl lacks %q: %v", k, usl)
		}
	}
	if m["recommended"].(float64) != 3 || m["reason"].(string) == "" {
		t.Errorf("recommended %v reason %v", m["recommended"], m["reason"])
	}
}

// Too few points: no model, and the report says so; a linear curve: no
// peak, peak_workers null.
func TestAnalyzeWithoutModelOrPeak(t *testing.T) {
	_, note, _ := Analyze(pts(1, 10, 2, 20, 4, 40), Limits{})
	if !strings.Contains(note, "too few points") || !strings.Contains(note, "3 points, at least 6") {
		t.Errorf("note %q", note)
	}
	r := Result{Queue: "q", Points: pts(1, 10, 2, 20, 4, 40), ModelNote: note, Reason: "x"}
	var text bytes.Buffer
	r.WriteText(&text)
	if !strings.Contains(text.String(), note) || !strings.Contains(text.String(), "no recommendation: x") {
		t.Errorf("report:\n%s", text.String())
	}
	model, _, _ := Analyze(pts(1, 10, 2, 20, 4, 40, 8, 80, 12, 120, 16, 160), Limits{})
	if model == nil || model.PeakWorkers != nil {
		t.Fatalf("linear: %+v", model)
	}
	b, _ := json.Marshal(Result{USL: model})
	if !strings.Contains(string(b), `"peak_workers":null`) {
		t.Errorf("linear JSON: %s", b)
	}
	r = Result{Queue: "q", Points: pts(1, 10, 2, 20, 4, 40, 8, 80, 12, 120, 16, 160), USL: model}
	text.Reset()
	r.WriteText(&text)
	if !strings.Contains(text.String(), "no peak within the model") {
		t.Errorf("linear report:\n%s", text.String())
	}
}
