package tune

import (
	"errors"
	"math"
	"math/rand"
	"testing"
)

func curve(u USL, ns []float64, noise func(i int) float64) []Observation {
	obs := make([]Observation, len(ns))
	for i, n := range ns {
		x := u.Throughput(n)
		if noise != nil {
			x *= 1 + noise(i)
		}
		obs[i] = Observation{N: n, X: x}
	}
	return obs
}

func within(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)
}

// Exact points of known curves (σ and κ off the coarse grid): σ, κ and
// λ come back within 1% (the brief asks 10%), and so does the peak.
func TestFitRecoversKnownCurves(t *testing.T) {
	cases := []struct {
		name string
		u    USL
		ns   []float64
	}{
		{"contention and coherency, peak 17", USL{Sigma: 0.037, Kappa: 0.0031, Lambda: 100}, []float64{1, 2, 4, 8, 16, 32}},
		{"tune's sweep shape, peak 4", USL{Sigma: 0.113, Kappa: 0.0567, Lambda: 180}, []float64{1, 2, 3, 4, 6, 8}},
		{"strong contention", USL{Sigma: 0.417, Kappa: 0.00042, Lambda: 12}, []float64{1, 2, 4, 8, 16, 32, 64}},
		{"tiny coherency, far peak", USL{Sigma: 0.0234, Kappa: 0.0000271, Lambda: 20}, []float64{1, 2, 4, 8, 12, 16, 24, 32}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Fit(curve(c.u, c.ns, nil))
			if err != nil {
				t.Fatal(err)
			}
			if !within(got.Sigma, c.u.Sigma, 0.01) || !within(got.Kappa, c.u.Kappa, 0.01) || !within(got.Lambda, c.u.Lambda, 0.01) {
				t.Errorf("fit σ=%g κ=%g λ=%g, want σ=%g κ=%g λ=%g", got.Sigma, got.Kappa, got.Lambda, c.u.Sigma, c.u.Kappa, c.u.Lambda)
			}
			if !within(got.Peak(), c.u.Peak(), 0.01) {
				t.Errorf("peak %g, want %g", got.Peak(), c.u.Peak())
			}
			if got.R2 < 0.9999 {
				t.Errorf("R² %g on exact points", got.R2)
			}
		})
	}
}

// Points with ±2% measurement noise: the fit still finds the curve (the
// peak and the throughput it predicts within 10%).
func TestFitNoisyPoints(t *testing.T) {
	truth := USL{Sigma: 0.083, Kappa: 0.0043, Lambda: 50}
	ns := []float64{1, 2, 4, 8, 12, 16, 24, 32}
	for seed := int64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewSource(seed))
		obs := curve(truth, ns, func(int) float64 { return (r.Float64()*2 - 1) * 0.02 })
		got, err := Fit(obs)
		if err != nil {
			t.Fatal(err)
		}
		if !within(got.Peak(), truth.Peak(), 0.1) {
			t.Errorf("seed %d: peak %.2f, want %.2f (σ=%g κ=%g)", seed, got.Peak(), truth.Peak(), got.Sigma, got.Kappa)
		}
		for _, n := range ns {
			if !within(got.Throughput(n), truth.Throughput(n), 0.05) {
				t.Errorf("seed %d: X(%g)=%.1f, want %.1f", seed, n, got.Throughput(n), truth.Throughput(n))
			}
		}
		if got.R2 < 0.95 {
			t.Errorf("seed %d: R² %g", seed, got.R2)
		}
	}
}

// A linear curve (every worker adds the same): κ = 0, σ = 0, no peak.
func TestFitLinearCurve(t *testing.T) {
	obs := curve(USL{Lambda: 20}, []float64{1, 2, 4, 8, 10, 12, 14, 16}, nil)
	got, err := Fit(obs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kappa != 0 || got.Sigma > 1e-6 || !within(got.Lambda, 20, 1e-6) {
		t.Errorf("linear: σ=%g κ=%g λ=%g, want 0, 0, 20", got.Sigma, got.Kappa, got.Lambda)
	}
	if !math.IsInf(got.Peak(), 1) {
		t.Errorf("linear: peak %g, want +Inf (no peak within the model)", got.Peak())
	}
}

// Amdahl's law is the USL with κ = 0: σ is recovered, there is no peak.
func TestFitAmdahl(t *testing.T) {
	truth := USL{Sigma: 0.257, Lambda: 10}
	got, err := Fit(curve(truth, []float64{1, 2, 3, 4, 6, 8, 16}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !within(got.Sigma, 0.257, 0.001) || got.Kappa > 1e-9 {
		t.Errorf("Amdahl: σ=%g κ=%g, want 0.257, 0", got.Sigma, got.Kappa)
	}
}

// Adding workers only hurts (σ = 1 region): the peak is one worker.
func TestFitRetrograde(t *testing.T) {
	obs := []Observation{{1, 100}, {2, 60}, {3, 40}, {4, 30}, {6, 20}, {8, 15}}
	got, err := Fit(obs)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Peak(); p > 1.5 {
		t.Errorf("retrograde curve: peak %g (σ=%g κ=%g), want about 1", p, got.Sigma, got.Kappa)
	}
}

func TestFitRefusesTooFewPoints(t *testing.T) {
	obs := curve(USL{Sigma: 0.1, Kappa: 0.01, Lambda: 10}, []float64{1, 2, 3, 4, 8}, nil)
	if _, err := Fit(obs); !errors.Is(err, ErrTooFewPoints) {
		t.Errorf("5 points: %v, want ErrTooFewPoints", err)
	}
	same := []Observation{{1, 10}, {1, 11}, {2, 19}, {2, 20}, {1, 10}, {2, 21}}
	if _, err := Fit(same); !errors.Is(err, ErrTooFewPoints) {
		t.Errorf("2 distinct counts: %v, want ErrTooFewPoints", err)
	}
	bad := []Observation{{1, 10}, {2, 20}, {3, math.NaN()}, {4, 40}, {5, 50}, {6, 60}}
	if _, err := Fit(bad); err == nil {
		t.Error("a NaN throughput was accepted")
	}
	zero := []Observation{{1, 0}, {2, 0}, {3, 0}, {4, 0}, {5, 0}, {6, 0}}
	if _, err := Fit(zero); err == nil {
		t.Error("no throughput at all was fitted")
	}
}
