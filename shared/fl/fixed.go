package fl

import "fmt"

// NewPartialFixed returns the partial of count updates whose weighted sum
// Σ n_i·d_i is, coordinate by coordinate, num[i]·2^−exp exactly, and whose
// total weight is weight: a sum computed elsewhere in fixed point, such as
// the unmasked result of a secure aggregation (package secagg), which
// never sees the individual updates. It holds no per-update norms
// (NormSum is 0). exp must be in [4, 48] (the exact sum's 2^−48 units hold
// every such value); a numerator beyond count·MaxSamples·MaxDeltaValue, a
// weight outside [count, count·MaxSamples] or clients that do not number
// count are errors.
func NewPartialFixed(num []int64, exp int, weight int64, count int, clients []string) (*Partial, error) {
	switch {
	case len(num) == 0:
		return nil, fmt.Errorf("fl: fixed-point partial of no parameters")
	case exp < fixedBits-splitBits || exp > fixedBits:
		return nil, fmt.Errorf("fl: fixed-point exponent %d is not in [4, %d]", exp, fixedBits)
	case count < 1 || count > MaxPartialCount || len(clients) != count:
		return nil, fmt.Errorf("fl: fixed-point partial of %d updates (%d clients named); want 1..%d", count, len(clients), MaxPartialCount)
	case weight < int64(count) || weight > int64(count)*MaxSamples:
		return nil, fmt.Errorf("fl: fixed-point partial weight %d is not in %d..%d", weight, count, int64(count)*MaxSamples)
	}
	limit := int64(count) * MaxSamples * MaxDeltaValue // in units of 1
	p := NewPartial(len(num))
	shift := uint(exp - (fixedBits - splitBits)) // exp − 4
	for i, v := range num {
		if v>>uint(exp) >= limit || v>>uint(exp) < -limit {
			return nil, fmt.Errorf("fl: fixed-point coordinate %d is %d·2^-%d, beyond the bound of %d updates", i, v, exp, count)
		}
		// value = v·2^(48−exp) units = a·2^44 + b with 0 ≤ b < 2^44.
		a := v >> shift
		p.sum.a[i] = a
		p.sum.b[i] = (v - a<<shift) << uint(fixedBits-exp)
	}
	p.Weight, p.Count = weight, count
	p.Clients = append([]string(nil), clients...)
	return p, nil
}
