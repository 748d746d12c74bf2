// Package tune finds the worker count that serves a queue best: a sweep
// of worker counts under a steady backlog, measured from the master's
// samples (sweep.go), a fit of Gunther's Universal Scalability Law to the
// measured points (usl.go), and the recommendation rule (recommend.go).
// The shell's `tune` command drives it; everything here is pure or runs
// against the small Driver interface, so it is tested without a pool.
package tune

import (
	"errors"
	"fmt"
	"math"
)

// MinFitPoints is how many measured points the USL fit needs: three
// parameters, and enough points beyond them that noise does not decide
// the curve.
const MinFitPoints = 6

// ErrTooFewPoints is returned by Fit when there are fewer than
// MinFitPoints points (or fewer than three distinct worker counts).
var ErrTooFewPoints = errors.New("too few points for the model")

// Observation is one measured throughput X (jobs/s) at N workers.
type Observation struct {
	N float64
	X float64
}

// USL is a fitted Universal Scalability Law:
//
//	X(N) = λN / (1 + σ(N−1) + κN(N−1))
//
// σ (contention) is the share of the work that serialises, κ (coherency)
// the cost each worker adds to every other, λ the throughput of one
// worker.
type USL struct {
	Sigma  float64
	Kappa  float64
	Lambda float64
	// R2 is the coefficient of determination of the fit (1 = every point
	// on the curve).
	R2 float64
}

// Throughput is the model's X(n).
func (u USL) Throughput(n float64) float64 {
	return u.Lambda * n / (1 + u.Sigma*(n-1) + u.Kappa*n*(n-1))
}

// Peak is the model's best worker count N* = √((1−σ)/κ): +Inf when
// κ = 0 (throughput keeps rising: no peak within the model), 1 when
// σ ≥ 1 (a second worker never helps).
func (u USL) Peak() float64 {
	if u.Sigma >= 1 {
		return 1
	}
	if u.Kappa <= 0 {
		return math.Inf(1)
	}
	return math.Max(1, math.Sqrt((1-u.Sigma)/u.Kappa))
}

// Fit fits the USL to obs by least squares on the throughput, with σ in
// [0, 1] and κ ≥ 0. For given σ and κ the best λ has a closed form (the
// model is linear in λ), so a coarse grid over (σ, κ) (σ linear, κ
// logarithmic from 0 to 1) finds the right valley without a starting
// guess; Levenberg–Marquardt on (σ, κ, λ), keeping σ and κ within their
// bounds, then walks to its bottom. It is deterministic.
func Fit(obs []Observation) (USL, error) {
	if len(obs) < MinFitPoints {
		return USL{}, fmt.Errorf("%w: %d measured, the fit needs %d", ErrTooFewPoints, len(obs), MinFitPoints)
	}
	distinct := map[float64]bool{}
	anyWork := false
	for _, o := range obs {
		if o.N < 1 || math.IsNaN(o.N) || math.IsInf(o.N, 0) || o.X < 0 || math.IsNaN(o.X) || math.IsInf(o.X, 0) {
			return USL{}, fmt.Errorf("fit: bad point N=%g X=%g", o.N, o.X)
		}
		distinct[o.N] = true
		anyWork = anyWork || o.X > 0
	}
	if len(distinct) < 3 {
		return USL{}, fmt.Errorf("%w: %d distinct worker counts, the fit needs 3", ErrTooFewPoints, len(distinct))
	}
	if !anyWork {
		return USL{}, errors.New("fit: no throughput measured at any point")
	}

	best := struct{ sigma, kappa, sse float64 }{sse: math.Inf(1)}
	try := func(sigma, kappa float64) {
		if sigma < 0 || sigma > 1 || kappa < 0 {
			return
		}
		if _, sse := lambdaFor(obs, sigma, kappa); sse < best.sse {
			best.sigma, best.kappa, best.sse = sigma, kappa, sse
		}
	}
	// Coarse grid: σ in steps of 0.01, κ = 0 and 1e-7 … 1 in steps of
	// a tenth of a decade.
	kappas := []float64{0}
	for e := -70; e <= 0; e++ {
		kappas = append(kappas, math.Pow(10, float64(e)/10))
	}
	for i := 0; i <= 100; i++ {
		for _, k := range kappas {
			try(float64(i)/100, k)
		}
	}
	sigma, kappa, _ := levenbergMarquardt(obs, best.sigma, best.kappa)
	if _, sse := lambdaFor(obs, sigma, kappa); sse < best.sse {
		best.sigma, best.kappa = sigma, kappa
	}
	lambda, sse := lambdaFor(obs, best.sigma, best.kappa)
	var mean float64
	for _, o := range obs {
		mean += o.X
	}
	mean /= float64(len(obs))
	var sst float64
	for _, o := range obs {
		sst += (o.X - mean) * (o.X - mean)
	}
	r2 := 1.0
	if sst > 0 {
		r2 = 1 - sse/sst
	}
	return USL{Sigma: best.sigma, Kappa: best.kappa, Lambda: lambda, R2: r2}, nil
}

// lambdaFor returns the least-squares λ for σ and κ and the sum of the
// squared residuals.
func lambdaFor(obs []Observation, sigma, kappa float64) (lambda, sse float64) {
	var xf, ff float64
	for _, o := range obs {
		f := o.N / (1 + sigma*(o.N-1) + kappa*o.N*(o.N-1))
		xf += o.X * f
		ff += f * f
	}
	if ff == 0 {
		return 0, math.Inf(1)
	}
	lambda = xf / ff
	for _, o := range obs {
		r := o.X - lambda*o.N/(1+sigma*(o.N-1)+kappa*o.N*(o.N-1))
		sse += r * r
	}
	return lambda, sse
}

// levenbergMarquardt minimises the squared residuals of the USL over
// (σ, κ, λ) from σ0, κ0 (λ from its closed form), with σ in [0, 1] and
// κ ≥ 0: a parameter on its bound that the gradient pushes outwards is
// held there for the step (a projected active set).
func levenbergMarquardt(obs []Observation, sigma0, kappa0 float64) (sigma, kappa, lambda float64) {
	lambda0, _ := lambdaFor(obs, sigma0, kappa0)
	p := [3]float64{sigma0, kappa0, lambda0}
	cost := func(p [3]float64) float64 {
		var sse float64
		for _, o := range obs {
			r := o.X - p[2]*o.N/(1+p[0]*(o.N-1)+p[1]*o.N*(o.N-1))
			sse += r * r
		}
		return sse
	}
	clamp := func(p [3]float64) [3]float64 {
		p[0] = math.Min(math.Max(p[0], 0), 1)
		p[1] = math.Max(p[1], 0)
		return p
	}
	cur := cost(p)
	mu := 1e-3
	for iter := 0; iter < 500 && mu < 1e12; iter++ {
		// Normal equations JᵀJ δ = Jᵀr of the residuals r = X − model.
		var jtj [3][3]float64
		var jtr [3]float64
		for _, o := range obs {
			d := 1 + p[0]*(o.N-1) + p[1]*o.N*(o.N-1)
			model := p[2] * o.N / d
			j := [3]float64{
				-p[2] * o.N * (o.N - 1) / (d * d),
				-p[2] * o.N * o.N * (o.N - 1) / (d * d),
				o.N / d,
			}
			r := o.X - model
			for a := 0; a < 3; a++ {
				jtr[a] += j[a] * r
				for b := 0; b < 3; b++ {
					jtj[a][b] += j[a] * j[b]
				}
			}
		}
		free := [3]bool{true, true, true}
		if (p[0] <= 0 && jtr[0] < 0) || (p[0] >= 1 && jtr[0] > 0) {
			free[0] = false
		}
		if p[1] <= 0 && jtr[1] < 0 {
			free[1] = false
		}
		var m [3][3]float64
		var v [3]float64
		for a := 0; a < 3; a++ {
			for b := 0; b < 3; b++ {
				switch {
				case !free[a] || !free[b]:
					if a == b {
						m[a][b] = 1
					}
				case a == b:
					m[a][b] = jtj[a][b] * (1 + mu)
					if m[a][b] == 0 {
						m[a][b] = mu
					}
				default:
					m[a][b] = jtj[a][b]
				}
			}
			if free[a] {
				v[a] = jtr[a]
			}
		}
		delta, ok := solve3(m, v)
		if !ok {
			mu *= 10
			continue
		}
		next := clamp([3]float64{p[0] + delta[0], p[1] + delta[1], p[2] + delta[2]})
		c := cost(next)
		if c < cur {
			converged := cur-c <= 1e-15*cur
			p, cur = next, c
			mu = math.Max(mu/3, 1e-12)
			if converged {
				break
			}
		} else {
			mu *= 4
		}
	}
	return p[0], p[1], p[2]
}

// solve3 solves m·x = v by Gaussian elimination with partial pivoting.
func solve3(m [3][3]float64, v [3]float64) ([3]float64, bool) {
	for col := 0; col < 3; col++ {
		piv := col
		for r := col + 1; r < 3; r++ {
			if math.Abs(m[r][col]) > math.Abs(m[piv][col]) {
				piv = r
			}
		}
		if m[piv][col] == 0 || math.IsNaN(m[piv][col]) {
			return [3]float64{}, false
		}
		m[col], m[piv] = m[piv], m[col]
		v[col], v[piv] = v[piv], v[col]
		for r := col + 1; r < 3; r++ {
			f := m[r][col] / m[col][col]
			for c := col; c < 3; c++ {
				m[r][c] -= f * m[col][c]
			}
			v[r] -= f * v[col]
		}
	}
	var x [3]float64
	for r := 2; r >= 0; r-- {
		sum := v[r]
		for c := r + 1; c < 3; c++ {
			sum -= m[r][c] * x[c]
		}
		x[r] = sum / m[r][r]
	}
	return x, true
}
