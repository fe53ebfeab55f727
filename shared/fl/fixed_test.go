package fl

import (
	"math"
	"testing"
)

// TestPartialFixed: a fixed-point sum reads back exactly, and merges into
// an aggregation as the same updates added one by one would when they are
// exact multiples of 2^-exp.
func TestPartialFixed(t *testing.T) {
	const exp = 20
	num := []int64{0, 1, -1, 3 << 30, -(5 << 33) + 1<<22, 1 << 34}
	p, err := NewPartialFixed(num, exp, 10, 2, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	mean := make([]float64, len(num))
	if err := p.Mean(mean); err != nil {
		t.Fatal(err)
	}
	for i, v := range num {
		if want := float64(v) * math.Exp2(-exp) / 10; mean[i] != want {
			t.Errorf("Mean[%d] = %g; want %g", i, mean[i], want)
		}
	}
	// The same sum from two updates whose weighted deltas are multiples of
	// 2^-exp: weights 4 and 6, deltas chosen so 4·d1 + 6·d2 = num·2^-exp.
	q := NewPartial(len(num))
	d1, d2 := make([]float32, len(num)), make([]float32, len(num))
	for i, v := range num {
		d1[i] = float32(float64(v) * math.Exp2(-exp) / 4)
	}
	if err := q.Add(Update{Client: "a", Samples: 4, Delta: d1}); err != nil {
		t.Fatal(err)
	}
	if err := q.Add(Update{Client: "b", Samples: 6, Delta: d2}); err != nil {
		t.Fatal(err)
	}
	for i := range num {
		pa, pb := p.sum.normal(i)
		qa, qb := q.sum.normal(i)
		if pa != qa || pb != qb {
			t.Errorf("coordinate %d: fixed partial (%d, %d); added updates (%d, %d)", i, pa, pb, qa, qb)
		}
	}
	for _, c := range []struct {
		exp    int
		weight int64
		count  int
	}{{3, 10, 2}, {49, 10, 2}, {exp, 1, 2}, {exp, 10, 0}} {
		if _, err := NewPartialFixed(num, c.exp, c.weight, c.count, make([]string, c.count)); err == nil {
			t.Errorf("NewPartialFixed(exp %d, weight %d, count %d) = nil error", c.exp, c.weight, c.count)
		}
	}
}
