package wire

import (
	"math"
	"testing"
)

// ToDelta is the check the origin and an edge shard both apply to every
// update: the same input gets the same code at either.
func TestToDelta(t *testing.T) {
	base := []float32{1, 2, 3, 4}
	cases := []struct {
		name    string
		w       []float32
		maxNorm float64
		code    string // "" for accepted
		norm    float64
		base    []float32 // nil: base
	}{
		{"accepted, no norm limit", []float32{4, 6, 3, 4}, 0, "", 5, nil},
		{"accepted at the limit", []float32{4, 6, 3, 4}, 5, "", 5, nil},
		{"norm beyond the run's limit", []float32{4, 6, 3, 4}, 4.9, CodeNorm, 5, nil},
		{"a weight moved beyond the bound", []float32{1, 2, 3, 4 + 70000}, 0, CodeNorm, 70000, nil},
		{"not finite", []float32{1, float32(math.NaN()), 3, 4}, 0, CodeNotFinite, math.NaN(), nil},
		{"difference overflows", []float32{-math.MaxFloat32, 2, 3, 4}, 0, CodeNotFinite, math.Inf(1), []float32{math.MaxFloat32, 2, 3, 4}},
	}
	for _, c := range cases {
		w := append([]float32(nil), c.w...)
		b := base
		if c.base != nil {
			b = c.base
		}
		norm, err := ToDelta(w, b, 1<<16, c.maxNorm)
		if got := ""; err != nil {
			got = RejectCode(err)
			if got != c.code {
				t.Errorf("%s: code %q (%v), want %q", c.name, got, err, c.code)
			}
		} else if c.code != "" {
			t.Errorf("%s: accepted, want code %q", c.name, c.code)
		}
		if !(math.IsNaN(c.norm) && math.IsNaN(norm)) && math.Abs(norm-c.norm) > 1e-9*max(1, c.norm) && !math.IsInf(c.norm, 1) {
			t.Errorf("%s: norm %v, want %v", c.name, norm, c.norm)
		}
		if c.code == "" {
			for i := range w {
				if want := c.w[i] - base[i]; w[i] != want {
					t.Fatalf("%s: delta[%d] = %v, want %v", c.name, i, w[i], want)
				}
			}
		}
	}
}
