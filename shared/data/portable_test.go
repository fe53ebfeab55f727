package data

import (
	"math"
	"testing"
)

// ulps returns how many representable float64 values lie between a and b.
func ulps(a, b float64) uint64 {
	x, y := int64(math.Float64bits(a)), int64(math.Float64bits(b))
	if x > y {
		return uint64(x - y)
	}
	return uint64(y - x)
}

func TestPortableLogExp(t *testing.T) {
	g := newRNG(1)
	xs := []float64{1, 2, 0.5, math.E, 1e-300, 1e300, 0.999999, 1.000001, math.MaxFloat64}
	for range 2000 {
		xs = append(xs, g.open01(), math.Ldexp(g.open01(), g.intN(200)-100))
	}
	for _, x := range xs {
		if got, want := portableLog(x), math.Log(x); ulps(got, want) > 1 {
			t.Errorf("portableLog(%v) = %v; want %v", x, got, want)
		}
	}
	for _, x := range append(xs, -1, -700, 700, -1e-9, 3.5) {
		if got, want := portableExp(x), math.Exp(x); ulps(got, want) > 1 {
			t.Errorf("portableExp(%v) = %v; want %v", x, got, want)
		}
	}
	special := []struct{ got, want float64 }{
		{portableLog(0), math.Inf(-1)},
		// amd64's assembly math.Log gets subnormals wrong (-709.09).
		{portableLog(math.SmallestNonzeroFloat64), -1074 * math.Ln2},
		{portableLog(math.Inf(1)), math.Inf(1)},
		{portableExp(math.Inf(-1)), 0},
		{portableExp(800), math.Inf(1)},
	}
	for i, s := range special {
		if s.got != s.want {
			t.Errorf("special case %d = %v; want %v", i, s.got, s.want)
		}
	}
	if !math.IsNaN(portableLog(-1)) || !math.IsNaN(portableExp(math.NaN())) {
		t.Errorf("portableLog(-1), portableExp(NaN) = %v, %v; want NaN, NaN", portableLog(-1), portableExp(math.NaN()))
	}
}

func TestGammaMoments(t *testing.T) {
	// A Gamma(a, 1) variate has mean a and variance a.
	const n = 20000
	for _, a := range []float64{0.1, 0.5, 1, 2.5, 30} {
		g := newRNG(uint64(a * 1000))
		sum, sum2 := 0.0, 0.0
		for range n {
			x := math.Exp(g.logGamma(a))
			sum += x
			sum2 += x * x
		}
		mean := sum / n
		variance := sum2/n - mean*mean
		// The standard error of the mean is sqrt(a/n); allow 5 of them.
		if tol := 5 * math.Sqrt(a/n); math.Abs(mean-a) > tol {
			t.Errorf("mean of %d Gamma(%v) draws = %.4f; want %v ± %.4f", n, a, mean, a, tol)
		}
		if math.Abs(variance-a) > 0.2*a+0.02 {
			t.Errorf("variance of %d Gamma(%v) draws = %.4f; want about %v", n, a, variance, a)
		}
	}
}

func TestIntNUniform(t *testing.T) {
	g := newRNG(9)
	counts := make([]int, 7)
	for range 70000 {
		counts[g.intN(7)]++
	}
	for k, c := range counts {
		if c < 9500 || c > 10500 {
			t.Errorf("intN(7) gave %d %d times in 70000; want about 10000", k, c)
		}
	}
}
