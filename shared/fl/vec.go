package fl

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// MaxSamples is the largest sample count an Update may claim. It keeps the
// exact sums of the mean-based strategies in range and rejects absurd claims
// from clients.
const MaxSamples = 1 << 24

// checkUpdate validates u against a model of size n and returns the L2
// norm of its delta. The errors describe outside input, so they are returned,
// never panicked. One pass suffices for finiteness: the float64 sum of the
// squares of finite float32s cannot overflow, so it is finite exactly when
// every value is; and no value exceeds MaxDeltaValue when the norm does not.
func checkUpdate(u Update, n int) (float64, error) {
	if len(u.Delta) != n {
		return 0, fmt.Errorf("fl: update from %q has %d parameters, model has %d", u.Client, len(u.Delta), n)
	}
	if u.Samples <= 0 || u.Samples > MaxSamples {
		return 0, fmt.Errorf("fl: update from %q has sample count %d outside [1, %d]", u.Client, u.Samples, MaxSamples)
	}
	if w := u.Weight; w != 0 && !(w >= MinWeight && w <= 1) {
		return 0, fmt.Errorf("fl: update from %q has weight %v outside [2^-24, 1]", u.Client, w)
	}
	if u.Norm > 0 && u.Norm <= MaxDeltaValue { // vouched for by the caller
		return u.Norm, nil
	}
	nrm := norm(u.Delta)
	if !(nrm <= MaxDeltaValue) {
		for i, v := range u.Delta {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return 0, fmt.Errorf("fl: update from %q has non-finite value %v at index %d", u.Client, v, i)
			}
			if math.Abs(float64(v)) > MaxDeltaValue {
				return 0, fmt.Errorf("fl: update from %q has value %.4g at index %d, beyond ±%d", u.Client, v, i, MaxDeltaValue)
			}
		}
	}
	return nrm, nil
}

// scale returns u.Weight as a factor: 1 when it is 0.
func (u *Update) scale() float32 {
	if u.Weight == 0 {
		return 1
	}
	return u.Weight
}

// checkDst panics unless dst has the model's length.
func checkDst(dst []float32, n int) {
	if len(dst) != n {
		panic(fmt.Sprintf("fl: dst has length %d, model has %d", len(dst), n))
	}
}

// checkGlobal panics on an empty model.
func checkGlobal(global []float32) {
	if len(global) == 0 {
		panic("fl: empty global model")
	}
}

// ctxErr returns ctx.Err(), treating a nil context as never done.
func ctxErr(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

// norm returns the L2 norm of x, accumulated in float64.
func norm(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

// norm64 returns the L2 norm of x.
func norm64(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s)
}

// dot returns the dot product of x and y, accumulated in float64.
func dot(x, y []float32) float64 {
	var s float64
	for i, v := range x {
		s += float64(v) * float64(y[i])
	}
	return s
}

// applyDelta writes dst = global + avg, rounding to float32 once. dst may
// alias global.
func applyDelta(dst, global []float32, avg []float64) {
	for i, a := range avg {
		dst[i] = float32(float64(global[i]) + a)
	}
}

// median returns the median of x, sorting x in place; 0 for an empty slice.
func median(x []float64) float64 {
	n := len(x)
	if n == 0 {
		return 0
	}
	slices.Sort(x)
	if n%2 == 1 {
		return x[n/2]
	}
	return (x[n/2-1] + x[n/2]) / 2
}

// newMetrics returns a metrics map with the round's update count.
func newMetrics() map[string]float64 {
	return make(map[string]float64, 8)
}
