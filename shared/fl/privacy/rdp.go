package privacy

import (
	"fmt"
	"math"
)

// maxSeriesTerms bounds the series for fractional orders. The terms fall off
// like a Gaussian tail, so a few hundred suffice in practice; the bound only
// guards against a loop that would never end on pathological arguments.
const maxSeriesTerms = 1 << 20

// DefaultOrders returns the orders used by TensorFlow Privacy's
// compute_dp_sgd_privacy: 1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, the
// integers 5 to 63, and 128, 256, 512. Each call returns a new slice.
func DefaultOrders() []float64 {
	o := []float64{1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5}
	for a := 5; a <= 63; a++ {
		o = append(o, float64(a))
	}
	return append(o, 128, 256, 512)
}

// TutorialOrders returns the orders of TensorFlow Privacy's MNIST tutorial:
// 1.1, 1.2, ..., 10.9 and the integers 12 to 63. Each call returns a new slice.
func TutorialOrders() []float64 {
	var o []float64
	for x := 1; x < 100; x++ {
		o = append(o, 1+float64(x)/10)
	}
	for a := 12; a <= 63; a++ {
		o = append(o, float64(a))
	}
	return o
}

// RDP returns the Rényi differential privacy of steps compositions of the
// sampled Gaussian mechanism with sampling rate q and noise multiplier sigma
// (noise standard deviation over L2 sensitivity), at each of orders. With q = 1
// it is the plain Gaussian mechanism, steps·alpha/(2·sigma²); with q = 0 or
// steps = 0 it is 0; with sigma = 0 (and q > 0) or an infinite order it is +Inf.
//
// RDP panics if q is outside [0, 1], sigma or steps is negative, or an order is
// not greater than 1.
func RDP(q, sigma float64, steps int, orders []float64) []float64 {
	if !(q >= 0 && q <= 1) {
		panic(fmt.Sprintf("privacy: sampling rate %v outside [0, 1]", q))
	}
	if !(sigma >= 0) || math.IsInf(sigma, 0) {
		panic(fmt.Sprintf("privacy: invalid noise multiplier %v", sigma))
	}
	if steps < 0 {
		panic(fmt.Sprintf("privacy: negative step count %d", steps))
	}
	out := make([]float64, len(orders))
	for i, alpha := range orders {
		if !(alpha > 1) {
			panic(fmt.Sprintf("privacy: order %v is not greater than 1", alpha))
		}
		r := rdpStep(q, sigma, alpha)
		if r == 0 || steps == 0 {
			out[i] = 0
			continue
		}
		out[i] = r * float64(steps)
	}
	return out
}

// rdpStep is the RDP at order alpha of one step (TF Privacy's _compute_rdp).
func rdpStep(q, sigma, alpha float64) float64 {
	switch {
	case q == 0:
		return 0
	case sigma == 0, math.IsInf(alpha, 1):
		return math.Inf(1)
	case q == 1:
		return alpha / (2 * sigma * sigma)
	}
	return logA(q, sigma, alpha) / (alpha - 1)
}

// logA is log(A_alpha) of Mironov et al. 2019, dispatching on whether the order
// is an integer.
func logA(q, sigma, alpha float64) float64 {
	if alpha == math.Trunc(alpha) && alpha <= 1<<20 {
		return logAInt(q, sigma, int(alpha))
	}
	return logAFrac(q, sigma, alpha)
}

// logAInt computes log(A_alpha) for an integer order by the binomial expansion
// A = sum_i C(alpha, i) q^i (1−q)^(alpha−i) exp((i²−i)/(2 sigma²)).
func logAInt(q, sigma float64, alpha int) float64 {
	logQ, log1mQ := math.Log(q), math.Log1p(-q)
	a := float64(alpha)
	out := math.Inf(-1)
	for i := 0; i <= alpha; i++ {
		fi := float64(i)
		coef := logBinomInt(a, fi) + fi*logQ + (a-fi)*log1mQ
		out = logAdd(out, coef+(fi*fi-fi)/(2*sigma*sigma))
	}
	return out
}

// logAFrac computes log(A_alpha) for a fractional order with the two series of
// Mironov et al. 2019, Section 3.3, each term weighted by a Gaussian tail.
func logAFrac(q, sigma, alpha float64) float64 {
	logQ, log1mQ := math.Log(q), math.Log1p(-q)
	s2 := sigma * sigma
	z0 := s2*math.Log(1/q-1) + 0.5
	a0, a1 := math.Inf(-1), math.Inf(-1)
	for i := 0; i < maxSeriesTerms; i++ {
		fi := float64(i)
		logCoef, positive := logAbsBinom(alpha, fi)
		j := alpha - fi
		t0 := logCoef + fi*logQ + j*log1mQ
		t1 := logCoef + j*logQ + fi*log1mQ
		e0 := math.Log(0.5) + logErfc((fi-z0)/(math.Sqrt2*sigma))
		e1 := math.Log(0.5) + logErfc((z0-j)/(math.Sqrt2*sigma))
		s0 := t0 + (fi*fi-fi)/(2*s2) + e0
		s1 := t1 + (j*j-j)/(2*s2) + e1
		if positive {
			a0, a1 = logAdd(a0, s0), logAdd(a1, s1)
		} else {
			a0, a1 = logSub(a0, s0), logSub(a1, s1)
		}
		if math.Max(s0, s1) < -30 {
			break
		}
	}
	return logAdd(a0, a1)
}

// logBinomInt is log C(n, k) for integers 0 ≤ k ≤ n held in float64s.
func logBinomInt(n, k float64) float64 {
	a, _ := math.Lgamma(n + 1)
	b, _ := math.Lgamma(k + 1)
	c, _ := math.Lgamma(n - k + 1)
	return a - b - c
}

// logAbsBinom returns log|C(alpha, k)| and whether C(alpha, k) is positive, for
// a real alpha > 0 that is not an integer and an integer k ≥ 0.
func logAbsBinom(alpha, k float64) (float64, bool) {
	a, sa := math.Lgamma(alpha + 1)
	b, _ := math.Lgamma(k + 1)
	c, sc := math.Lgamma(alpha - k + 1)
	return a - b - c, sa*sc > 0
}

// logAdd returns log(exp(x) + exp(y)).
func logAdd(x, y float64) float64 {
	a, b := math.Min(x, y), math.Max(x, y)
	if math.IsInf(a, -1) {
		return b
	}
	return math.Log1p(math.Exp(a-b)) + b
}

// logSub returns log(exp(x) − exp(y)) for x ≥ y. As in TF Privacy, a negative
// difference (possible only through rounding in the alternating series)
// saturates to −Inf rather than failing.
func logSub(x, y float64) float64 {
	switch {
	case math.IsInf(y, -1):
		return x
	case x <= y:
		return math.Inf(-1)
	}
	d := math.Expm1(x - y)
	if math.IsInf(d, 1) {
		return x
	}
	return math.Log(d) + y
}

// logErfc returns log(erfc(x)), using the asymptotic expansion where erfc
// would underflow.
func logErfc(x float64) float64 {
	if x < 25 {
		return math.Log(math.Erfc(x))
	}
	x2 := x * x
	return -math.Log(math.Pi)/2 - math.Log(x) - x2 - 0.5/x2 + 0.625/(x2*x2) -
		37.0/24.0/(x2*x2*x2) + 353.0/64.0/(x2*x2*x2*x2)
}
