package secagg

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Quantization. A member's input to the sum has Length = params + 1
// values in Z_2^32: for each parameter, its weighted, clipped delta
//
//	t_i = (w / W) · clamp(d_i, −C, C),    |t_i| ≤ C
//
// scaled by 2^e and rounded stochastically (up with probability equal to
// the fraction, so the rounding is unbiased), as a two's-complement
// uint32; and last, its weight w (its sample count, capped at W, the
// largest slice). Summed over the members, the server gets
// Σ w·clamp(d) ≈ W·Σq/2^e and Σ w: the sample-weighted FedAvg mean.
//
// The exponent e is the largest with n·(C·2^e + 1) < 2^31 for the n
// members of the round (Exponent), so the sum of n inputs cannot wrap.

// Bits is the modulus of the masked sums: Z_2^Bits.
const Bits = 32

// Limits on the exponent: fewer than MinExponent fractional bits would
// round updates away; more than MaxExponent are finer than float32 deltas
// carry and than fl's exact sums hold.
const (
	MinExponent = 8
	MaxExponent = 40
)

// Exponent returns e for n members and clip C: the largest integer with
// n·(C·2^e + 1) < 2^31, capped at MaxExponent. It returns an error when e
// would be below MinExponent (C too large for n).
func Exponent(n int, clip float64) (int, error) {
	if n < 1 || !(clip > 0) || math.IsInf(clip, 0) {
		return 0, fmt.Errorf("secagg: exponent for %d members and clip %g", n, clip)
	}
	room := (math.Exp2(31) - 1) / float64(n) // per-member magnitude budget
	e := int(math.Floor(math.Log2((room - 1) / clip)))
	for e > -64 && float64(n)*(clip*math.Exp2(float64(e))+1) >= math.Exp2(31) {
		e-- // guard against Log2 rounding up
	}
	if e < MinExponent {
		return 0, fmt.Errorf("secagg: clip %g leaves %d fractional bits for %d members; at least %d are needed", clip, e, n, MinExponent)
	}
	return min(e, MaxExponent), nil
}

// Quantize writes a member's input into dst (len(delta)+1 values): the
// clipped delta weighted by weight/maxWeight, scaled by 2^exp and rounded
// stochastically with rng, then the weight. weight is capped at maxWeight.
// delta is not modified. It panics if the lengths differ.
func Quantize(dst []uint32, delta []float32, weight, maxWeight int, clip float64, exp int, rng *rand.Rand) {
	if len(dst) != len(delta)+1 {
		panic(fmt.Sprintf("secagg: Quantize dst of %d values for %d parameters", len(dst), len(delta)))
	}
	if maxWeight < 1 || weight < 1 {
		panic("secagg: Quantize with a weight below 1")
	}
	weight = min(weight, maxWeight)
	k := float64(weight) / float64(maxWeight) * math.Exp2(float64(exp))
	lim := clip * math.Exp2(float64(exp))
	for i, d := range delta {
		x := float64(d)
		switch {
		case x > clip:
			x = clip
		case x < -clip:
			x = -clip
		case x != x: // NaN: a diverged client contributes nothing here
			x = 0
		}
		v := x * k
		v = math.Max(-lim, math.Min(lim, v))
		f := math.Floor(v)
		if rng.Float64() < v-f {
			f++
		}
		dst[i] = uint32(int32(f))
	}
	dst[len(delta)] = uint32(weight)
}

// Decode reads an unmasked sum of inputs: the numerators of Σ w·clamp(d)
// in units of 2^−exp (num[i] = W·signed(sum[i]), into num, len(sum)−1
// values) and the total weight.
func Decode(num []int64, sum []uint32, maxWeight int) (weight int64) {
	if len(num) != len(sum)-1 {
		panic(fmt.Sprintf("secagg: Decode into %d numerators from %d values", len(num), len(sum)))
	}
	for i := range num {
		num[i] = int64(maxWeight) * int64(int32(sum[i]))
	}
	return int64(sum[len(sum)-1])
}
