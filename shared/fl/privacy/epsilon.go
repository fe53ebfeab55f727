package privacy

import (
	"fmt"
	"math"
)

// Conversion selects how Epsilon turns RDP into (epsilon, delta)-DP.
type Conversion int

const (
	// Improved is the conversion of Balle et al. 2020 ("Hypothesis testing
	// interpretations and Rényi differential privacy", Theorem 21), as in
	// TensorFlow Privacy's current compute_dp_sgd_privacy:
	// eps = rdp + log1p(−1/alpha) − log(delta·alpha)/(alpha−1). It is never
	// looser than Classic. Improved is the zero value.
	Improved Conversion = iota
	// Classic is the conversion of Mironov 2017, Proposition 3:
	// eps = rdp − log(delta)/(alpha−1).
	Classic
)

// String returns "improved" or "classic".
func (c Conversion) String() string {
	switch c {
	case Improved:
		return "improved"
	case Classic:
		return "classic"
	}
	return fmt.Sprintf("Conversion(%d)", int(c))
}

// Epsilon returns the smallest epsilon over orders such that a mechanism with
// the given RDP (one value per order, as returned by RDP) is
// (epsilon, delta)-DP, and the order that attains it. Orders whose bound is NaN
// are skipped; if every bound is infinite the result is +Inf. Epsilon is never
// negative.
//
// Epsilon panics if the slices differ in length or are empty, delta is not in
// (0, 1), an order is not greater than 1, an RDP value is negative, or conv is
// unknown.
func Epsilon(orders, rdp []float64, delta float64, conv Conversion) (eps, order float64) {
	if len(orders) != len(rdp) || len(orders) == 0 {
		panic(fmt.Sprintf("privacy: %d orders and %d RDP values", len(orders), len(rdp)))
	}
	if !(delta > 0 && delta < 1) {
		panic(fmt.Sprintf("privacy: delta %v outside (0, 1)", delta))
	}
	if conv != Improved && conv != Classic {
		panic(fmt.Sprintf("privacy: unknown conversion %d", int(conv)))
	}
	eps, order = math.Inf(1), orders[0]
	for i, a := range orders {
		r := rdp[i]
		if !(a > 1) {
			panic(fmt.Sprintf("privacy: order %v is not greater than 1", a))
		}
		if r < 0 {
			panic(fmt.Sprintf("privacy: negative RDP %v at order %v", r, a))
		}
		var e float64
		if conv == Classic {
			e = r - math.Log(delta)/(a-1)
		} else {
			e = improvedBound(a, r, delta)
		}
		if e < eps {
			eps, order = e, a
		}
	}
	return math.Max(0, eps), order
}

// improvedBound is one order's term of the Balle et al. conversion, with TF
// Privacy's guards: when the KL bound already gives delta, epsilon is 0, and
// orders too close to 1 are numerically unstable and skipped (+Inf).
func improvedBound(a, r, delta float64) float64 {
	switch {
	case delta*delta+math.Expm1(-r) >= 0:
		return 0
	case a > 1.01:
		return r + math.Log1p(-1/a) - math.Log(delta*a)/(a-1)
	}
	return math.Inf(1)
}
