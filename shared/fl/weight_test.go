package fl_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/fl/fltest"
)

// TestWeightedMean: an Update's Weight multiplies its say in the mean, in
// the numerator and the divisor: the step is Σ n·w·d / Σ n·w, so updates
// that all weigh w still move the model by their plain mean.
func TestWeightedMean(t *testing.T) {
	global := []float32{1, -2, 0.5}
	ups := []fl.Update{
		{Client: "a", Samples: 1, Delta: []float32{1, 0, -1}, Weight: 0.5},
		{Client: "b", Samples: 3, Delta: []float32{-1, 4, 1}},
	}
	// weights 0.5 and 3, total 3.5
	want := []float32{1 + (0.5-3)/3.5, -2 + 12/3.5, 0.5 + (-0.5+3)/3.5}
	got, res := fltest.Aggregate(t, mustParse(t, "fedavg"), 1, fltest.Round{Global: global, Updates: ups})
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("fedavg of weighted updates = %v; want %v", got, want)
		}
	}
	if res.Metrics["weight"] != 4 {
		t.Errorf("weight metric %v; want the sample total 4", res.Metrics["weight"])
	}
	// Equal weights: exactly the unweighted mean.
	for i := range ups {
		ups[i].Weight = 0.25
	}
	got, _ = fltest.Aggregate(t, mustParse(t, "fedavg"), 1, fltest.Round{Global: global, Updates: ups})
	for i := range ups {
		ups[i].Weight = 0
	}
	plain, _ := fltest.Aggregate(t, mustParse(t, "fedavg"), 1, fltest.Round{Global: global, Updates: ups})
	if !slices.Equal(got, plain) {
		t.Errorf("fedavg of updates all weighing 0.25 = %v; want the plain mean %v", got, plain)
	}
}

// TestWeightedOrderIndependent: weighted updates keep the exact sums'
// bit-identical result whatever the order, and through partials merged
// in any grouping.
func TestWeightedOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 1))
	_, r := fltest.Honest(rng, 30, 5000, 0.003, 1.5)
	for i := range r.Updates {
		if i%3 != 0 { // a third unweighted: partials mix the two
			r.Updates[i].Weight = float32(1 / math.Sqrt(1+float64(rng.IntN(8))))
		}
	}
	want, _ := fltest.Aggregate(t, mustParse(t, "fedavg"), 1, r)
	for p := range 5 {
		q := r
		q.Updates = slices.Clone(r.Updates)
		rng.Shuffle(len(q.Updates), func(i, j int) { q.Updates[i], q.Updates[j] = q.Updates[j], q.Updates[i] })
		got, _ := fltest.Aggregate(t, mustParse(t, "fedavg"), 1, q)
		if !slices.Equal(got, want) {
			t.Fatalf("permutation %d is not bit-identical", p)
		}
		// The same updates as two partials merged into the aggregation.
		cut := 1 + rng.IntN(len(q.Updates)-1)
		agg := mustParse(t, "fedavg").Begin(1, slices.Clone(r.Global))
		for _, part := range [][]fl.Update{q.Updates[:cut], q.Updates[cut:]} {
			pa := fl.NewPartial(len(r.Global))
			for _, u := range part {
				if err := pa.Add(u); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := pa.MarshalBinary(); pa.Weighted() && err == nil {
				t.Fatal("a partial of weighted updates was marshalled: its format has no sum of weights")
			}
			if err := agg.(fl.PartialAdder).AddPartial(context.Background(), pa); err != nil {
				t.Fatal(err)
			}
		}
		got = make([]float32, len(r.Global))
		if _, err := agg.Finish(context.Background(), got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("partials split at %d are not bit-identical to the updates added one by one", cut)
		}
	}
}

// TestWeightBounds: a weight outside [MinWeight, 1] (or not a number) is
// refused; the robust rules, which ignore sample counts, multiply the
// delta by it.
func TestWeightBounds(t *testing.T) {
	global := []float32{0, 0}
	for _, w := range []float32{-0.5, 1.5, fl.MinWeight / 2, float32(math.NaN())} {
		agg := mustParse(t, "fedavg").Begin(1, global)
		if err := agg.Add(context.Background(), fl.Update{Client: "a", Samples: 1, Delta: []float32{1, 1}, Weight: w}); err == nil {
			t.Errorf("weight %v was accepted", w)
		}
	}
	ups := []fl.Update{
		{Client: "a", Samples: 1, Delta: []float32{4, 4}, Weight: 0.5},
		{Client: "b", Samples: 1, Delta: []float32{1, 1}},
		{Client: "c", Samples: 1, Delta: []float32{3, 3}, Weight: 0.25},
	}
	got, _ := fltest.Aggregate(t, mustParse(t, "median"), 1, fltest.Round{Global: global, Updates: ups})
	if !slices.Equal(got, []float32{1, 1}) { // the median of 2, 1 and 0.75
		t.Errorf("median of weighted deltas = %v; want [1 1]", got)
	}
}
