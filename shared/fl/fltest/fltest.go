// Package fltest is the test suite every fl.Strategy must pass, and the
// synthetic updates the suite and robustness tests use. A strategy's test is
// one line:
//
//	func TestMedian(t *testing.T) {
//		fltest.TestStrategy(t, func() fl.Strategy { return mustNew("median") }, fltest.Promises{OrderIndependent: true, Identical: true})
//	}
package fltest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/qflare/qflare/shared/fl"
)

// Promises lists the properties a strategy guarantees beyond those every
// strategy must have.
type Promises struct {
	// OrderIndependent: permuting the Add order gives a bit-identical model.
	OrderIndependent bool
	// Identical: k identical deltas d give exactly float32(global + d).
	Identical bool
	// Partials: the aggregations merge fl.Partial sums (fl.PartialAdder),
	// and any grouping of the updates into partials gives the model that
	// adding them one by one gives, bit for bit, also on updates whose
	// coordinates span many orders of magnitude and cancel.
	Partials bool
}

// TestStrategy runs the shared suite against fresh strategies from
// newStrategy: inputs are never modified, bad updates are rejected with errors
// (not panics), an empty round returns fl.ErrNoUpdates, aggregations are
// single-use, Finish may update the global slice in place, verdicts follow
// Add order, concurrent Adds are safe, and state round-trips through
// fl.Stateful; plus the properties in p.
func TestStrategy(t *testing.T, newStrategy func() fl.Strategy, p Promises) {
	t.Helper()
	t.Run("Name", func(t *testing.T) { testName(t, newStrategy()) })
	t.Run("InputsUntouched", func(t *testing.T) { testInputsUntouched(t, newStrategy()) })
	t.Run("RejectsBadUpdates", func(t *testing.T) { testReject(t, newStrategy()) })
	t.Run("NoUpdates", func(t *testing.T) { testNoUpdates(t, newStrategy()) })
	t.Run("SingleUse", func(t *testing.T) { testSingleUse(t, newStrategy()) })
	t.Run("Cancelled", func(t *testing.T) { testCancelled(t, newStrategy) })
	t.Run("Verdicts", func(t *testing.T) { testVerdicts(t, newStrategy()) })
	t.Run("BufferReuse", func(t *testing.T) { testBufferReuse(t, newStrategy) })
	t.Run("InPlace", func(t *testing.T) { testInPlace(t, newStrategy) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newStrategy, p.OrderIndependent) })
	t.Run("State", func(t *testing.T) { testState(t, newStrategy) })
	if p.OrderIndependent {
		t.Run("OrderIndependent", func(t *testing.T) { testOrder(t, newStrategy) })
	}
	if p.Identical {
		t.Run("Identical", func(t *testing.T) { testIdentical(t, newStrategy()) })
	}
	t.Run("Partials", func(t *testing.T) { testPartials(t, newStrategy, p.Partials) })
}

// Round holds a synthetic round: a global model and honest updates.
type Round struct {
	Global  []float32
	Updates []fl.Update
}

// Honest returns a round of k honest updates of size n: each delta is a
// common direction (coordinates N(0, 1)·scale) plus per-client noise of
// relative strength noise (N(0, noise²)·scale per coordinate), so pairwise
// cosines are about 1/(1+noise²). Sample counts vary between 50 and 149.
func Honest(rng *rand.Rand, k, n int, scale, noise float64) (common []float32, r Round) {
	common = make([]float32, n)
	for i := range common {
		common[i] = float32(rng.NormFloat64() * scale)
	}
	r.Global = make([]float32, n)
	for i := range r.Global {
		r.Global[i] = float32(rng.NormFloat64() * 0.1)
	}
	for c := range k {
		d := make([]float32, n)
		for i := range d {
			d[i] = common[i] + float32(noise*scale*rng.NormFloat64())
		}
		r.Updates = append(r.Updates, fl.Update{Client: fmt.Sprintf("c%02d", c), Samples: 50 + rng.IntN(100), Delta: d})
	}
	return common, r
}

// clone deep-copies a round.
func (r Round) clone() Round {
	c := Round{Global: slices.Clone(r.Global)}
	for _, u := range r.Updates {
		u.Delta = slices.Clone(u.Delta)
		c.Updates = append(c.Updates, u)
	}
	return c
}

// Aggregate runs one round of s over r, adding updates in order, and returns
// the new model and result. It fails the test on any error.
func Aggregate(t testing.TB, s fl.Strategy, round int, r Round) ([]float32, fl.Result) {
	t.Helper()
	agg := s.Begin(round, r.Global)
	ctx := context.Background()
	for _, u := range r.Updates {
		if err := agg.Add(ctx, u); err != nil {
			t.Fatalf("%s: Add(%q) = %v; want nil", s.Name(), u.Client, err)
		}
	}
	dst := make([]float32, len(r.Global))
	res, err := agg.Finish(ctx, dst)
	if err != nil {
		t.Fatalf("%s: Finish() = %v; want nil", s.Name(), err)
	}
	return dst, res
}

func testName(t *testing.T, s fl.Strategy) {
	if s.Name() == "" {
		t.Errorf("Name() = %q; want non-empty", s.Name())
	}
	base := fl.FitConfig{Epochs: 3, Batch: 17, LR: 0.05}
	got := s.ConfigureFit(1, base)
	if got.Epochs != base.Epochs || got.Batch != base.Batch || got.LR != base.LR {
		t.Errorf("%s: ConfigureFit(1, %+v) = %+v; want epochs, batch and lr kept", s.Name(), base, got)
	}
}

func testInputsUntouched(t *testing.T, s fl.Strategy) {
	_, r := Honest(rand.New(rand.NewPCG(1, 2)), 9, 777, 0.01, 1)
	orig := r.clone()
	Aggregate(t, s, 1, r)
	if !slices.Equal(r.Global, orig.Global) {
		t.Errorf("%s: Finish modified the global model", s.Name())
	}
	for i, u := range r.Updates {
		if !slices.Equal(u.Delta, orig.Updates[i].Delta) {
			t.Errorf("%s: aggregation modified the delta of %q", s.Name(), u.Client)
		}
	}
}

func testReject(t *testing.T, s fl.Strategy) {
	_, r := Honest(rand.New(rand.NewPCG(3, 4)), 5, 100, 0.01, 1)
	nan := slices.Clone(r.Updates[0].Delta)
	nan[17] = float32(math.NaN())
	inf := slices.Clone(r.Updates[0].Delta)
	inf[3] = float32(math.Inf(-1))
	bad := []fl.Update{
		{Client: "short", Samples: 10, Delta: make([]float32, 99)},
		{Client: "long", Samples: 10, Delta: make([]float32, 101)},
		{Client: "nil", Samples: 10},
		{Client: "zero-samples", Samples: 0, Delta: r.Updates[0].Delta},
		{Client: "negative-samples", Samples: -5, Delta: r.Updates[0].Delta},
		{Client: "huge-samples", Samples: fl.MaxSamples + 1, Delta: r.Updates[0].Delta},
		{Client: "nan", Samples: 10, Delta: nan},
		{Client: "inf", Samples: 10, Delta: inf},
	}
	agg := s.Begin(1, r.Global)
	ctx := context.Background()
	for _, u := range bad {
		if err := addNoPanic(t, ctx, agg, u); err == nil {
			t.Errorf("%s: Add(%q) = nil; want an error", s.Name(), u.Client)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := addNoPanic(t, cancelled, agg, r.Updates[0]); !errors.Is(err, context.Canceled) {
		t.Errorf("%s: Add(cancelled context) = %v; want context.Canceled", s.Name(), err)
	}
	for _, u := range r.Updates {
		if err := agg.Add(ctx, u); err != nil {
			t.Fatalf("%s: Add(%q) after rejections = %v; want nil", s.Name(), u.Client, err)
		}
	}
	res, err := agg.Finish(ctx, make([]float32, len(r.Global)))
	if err != nil || len(res.Verdicts) != len(r.Updates) {
		t.Errorf("%s: Finish() after rejections = %d verdicts, %v; want %d, nil", s.Name(), len(res.Verdicts), err, len(r.Updates))
	}
}

// addNoPanic calls Add, reporting a panic as a test failure.
func addNoPanic(t *testing.T, ctx context.Context, agg fl.Aggregation, u fl.Update) (err error) {
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Add(%q) panicked: %v; want an error", u.Client, r)
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return agg.Add(ctx, u)
}

func testNoUpdates(t *testing.T, s fl.Strategy) {
	_, r := Honest(rand.New(rand.NewPCG(5, 6)), 5, 64, 0.01, 1)
	agg := s.Begin(1, r.Global)
	dst := make([]float32, 64)
	for i := range dst {
		dst[i] = 42
	}
	res, err := agg.Finish(context.Background(), dst)
	if !errors.Is(err, fl.ErrNoUpdates) {
		t.Fatalf("%s: Finish() with no updates = %v; want fl.ErrNoUpdates", s.Name(), err)
	}
	if res.Metrics == nil {
		t.Errorf("%s: Finish() with no updates returned nil Metrics", s.Name())
	}
	for i, v := range dst {
		if v != 42 {
			t.Fatalf("%s: Finish() with no updates wrote dst[%d] = %v", s.Name(), i, v)
		}
	}
	// The aggregation stays open.
	for _, u := range r.Updates {
		if err := agg.Add(context.Background(), u); err != nil {
			t.Fatalf("%s: Add after ErrNoUpdates = %v; want nil", s.Name(), err)
		}
	}
	if _, err := agg.Finish(context.Background(), dst); err != nil {
		t.Errorf("%s: Finish() after ErrNoUpdates and Adds = %v; want nil", s.Name(), err)
	}
}

func testSingleUse(t *testing.T, s fl.Strategy) {
	_, r := Honest(rand.New(rand.NewPCG(7, 8)), 5, 50, 0.01, 1)
	agg := s.Begin(1, r.Global)
	ctx := context.Background()
	for _, u := range r.Updates {
		if err := agg.Add(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	dst := make([]float32, 50)
	if _, err := agg.Finish(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if err := agg.Add(ctx, r.Updates[0]); !errors.Is(err, fl.ErrFinished) {
		t.Errorf("%s: Add after Finish = %v; want fl.ErrFinished", s.Name(), err)
	}
	if _, err := agg.Finish(ctx, dst); !errors.Is(err, fl.ErrFinished) {
		t.Errorf("%s: second Finish = %v; want fl.ErrFinished", s.Name(), err)
	}
}

// testCancelled: Finish with a cancelled context fails with the context's
// error before doing anything, and a later Finish gives the normal result.
func testCancelled(t *testing.T, newStrategy func() fl.Strategy) {
	_, r := Honest(rand.New(rand.NewPCG(23, 24)), 6, 300, 0.01, 1)
	want, _ := Aggregate(t, newStrategy(), 1, r)
	s := newStrategy()
	agg := s.Begin(1, r.Global)
	for _, u := range r.Updates {
		if err := agg.Add(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := make([]float32, len(r.Global))
	if _, err := agg.Finish(ctx, got); !errors.Is(err, context.Canceled) {
		t.Fatalf("%s: Finish(cancelled context) = %v; want context.Canceled", s.Name(), err)
	}
	if _, err := agg.Finish(context.Background(), got); err != nil {
		t.Fatalf("%s: Finish after a cancelled Finish = %v; want nil", s.Name(), err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: Finish after a cancelled Finish differs from an uninterrupted round", s.Name())
	}
}

func testVerdicts(t *testing.T, s fl.Strategy) {
	_, r := Honest(rand.New(rand.NewPCG(9, 10)), 11, 300, 0.01, 1)
	dst, res := Aggregate(t, s, 1, r)
	if len(res.Verdicts) != len(r.Updates) {
		t.Fatalf("%s: %d verdicts; want %d", s.Name(), len(res.Verdicts), len(r.Updates))
	}
	for i, v := range res.Verdicts {
		if v.Client != r.Updates[i].Client {
			t.Errorf("%s: Verdicts[%d].Client = %q; want %q", s.Name(), i, v.Client, r.Updates[i].Client)
		}
	}
	if res.Used < 1 || res.Used > len(r.Updates) {
		t.Errorf("%s: Used = %d; want in [1, %d]", s.Name(), res.Used, len(r.Updates))
	}
	if res.Metrics == nil {
		t.Errorf("%s: Metrics is nil", s.Name())
	}
	for i, v := range dst {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("%s: new model[%d] = %v", s.Name(), i, v)
		}
	}
}

// testBufferReuse adds every update from one reused buffer, scribbled over
// after each Add, as a decoder would: the result must not change.
func testBufferReuse(t *testing.T, newStrategy func() fl.Strategy) {
	_, r := Honest(rand.New(rand.NewPCG(21, 22)), 7, 600, 0.01, 1)
	want, _ := Aggregate(t, newStrategy(), 1, r)
	s := newStrategy()
	agg := s.Begin(1, r.Global)
	buf := make([]float32, len(r.Global))
	for _, u := range r.Updates {
		copy(buf, u.Delta)
		u.Delta = buf
		if err := agg.Add(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] = 1e6
		}
	}
	got := make([]float32, len(r.Global))
	if _, err := agg.Finish(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: reusing the caller's delta buffer after Add changes the result", s.Name())
	}
}

func testInPlace(t *testing.T, newStrategy func() fl.Strategy) {
	_, r := Honest(rand.New(rand.NewPCG(11, 12)), 6, 500, 0.01, 1)
	want, _ := Aggregate(t, newStrategy(), 1, r)
	s := newStrategy()
	global := slices.Clone(r.Global)
	agg := s.Begin(1, global)
	for _, u := range r.Updates {
		if err := agg.Add(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := agg.Finish(context.Background(), global); err != nil {
		t.Fatalf("%s: Finish(global) = %v; want nil", s.Name(), err)
	}
	if !slices.Equal(global, want) {
		t.Errorf("%s: Finish into the global slice differs from Finish into a fresh dst", s.Name())
	}
}

func testConcurrent(t *testing.T, newStrategy func() fl.Strategy, orderIndependent bool) {
	_, r := Honest(rand.New(rand.NewPCG(13, 14)), 16, 2000, 0.01, 1)
	want, _ := Aggregate(t, newStrategy(), 1, r)
	s := newStrategy()
	agg := s.Begin(1, r.Global)
	var wg sync.WaitGroup
	for _, u := range r.Updates {
		wg.Go(func() {
			if err := agg.Add(context.Background(), u); err != nil {
				t.Errorf("%s: concurrent Add(%q) = %v", s.Name(), u.Client, err)
			}
		})
	}
	wg.Wait()
	got := make([]float32, len(r.Global))
	res, err := agg.Finish(context.Background(), got)
	if err != nil || len(res.Verdicts) != len(r.Updates) {
		t.Fatalf("%s: Finish after concurrent Adds = %d verdicts, %v", s.Name(), len(res.Verdicts), err)
	}
	if orderIndependent && !slices.Equal(got, want) {
		t.Errorf("%s: concurrent Adds give a different model than sequential ones", s.Name())
	}
}

func testState(t *testing.T, newStrategy func() fl.Strategy) {
	rng := rand.New(rand.NewPCG(15, 16))
	_, r1 := Honest(rng, 6, 400, 0.01, 1)
	_, r2 := Honest(rng, 6, 400, 0.01, 1)
	a := newStrategy()
	st, ok := fl.StateOf(a)
	if !ok {
		t.Skip("no persistent state")
	}
	m1, _ := Aggregate(t, a, 1, r1)
	blob, err := st.MarshalState()
	if err != nil {
		t.Fatalf("%s: MarshalState() = %v", a.Name(), err)
	}
	b := newStrategy()
	stb, _ := fl.StateOf(b)
	if err := stb.UnmarshalState(blob); err != nil {
		t.Fatalf("%s: UnmarshalState(MarshalState()) = %v", b.Name(), err)
	}
	r2.Global = m1
	wantM, _ := Aggregate(t, a, 2, r2)
	gotM, _ := Aggregate(t, b, 2, r2)
	if !slices.Equal(gotM, wantM) {
		t.Errorf("%s: restored strategy's round 2 differs from the original's", a.Name())
	}
	for _, cut := range []int{0, 3, len(blob) / 2, len(blob) - 1} {
		if err := stb.UnmarshalState(blob[:cut]); err == nil {
			t.Errorf("%s: UnmarshalState(%d of %d bytes) = nil; want an error", b.Name(), cut, len(blob))
		}
	}
	if err := stb.UnmarshalState(append(slices.Clone(blob), 0)); err == nil {
		t.Errorf("%s: UnmarshalState(state + 1 byte) = nil; want an error", b.Name())
	}
}

func testOrder(t *testing.T, newStrategy func() fl.Strategy) {
	rng := rand.New(rand.NewPCG(17, 18))
	_, r := Honest(rng, 40, 3000, 0.01, 1)
	want, _ := Aggregate(t, newStrategy(), 1, r)
	for p := range 3 {
		q := r
		q.Updates = slices.Clone(r.Updates)
		rng.Shuffle(len(q.Updates), func(i, j int) { q.Updates[i], q.Updates[j] = q.Updates[j], q.Updates[i] })
		got, _ := Aggregate(t, newStrategy(), 1, q)
		diff := 0
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("%s: permutation %d changes %d of %d coordinates; want bit-identical", newStrategy().Name(), p, diff, len(got))
		}
	}
}

func testIdentical(t *testing.T, s fl.Strategy) {
	_, r := Honest(rand.New(rand.NewPCG(19, 20)), 7, 1000, 0.01, 1)
	d := r.Updates[0].Delta
	for i := range r.Updates {
		r.Updates[i].Delta = slices.Clone(d)
	}
	got, _ := Aggregate(t, s, 1, r)
	for i := range got {
		if want := float32(float64(r.Global[i]) + float64(d[i])); got[i] != want {
			t.Fatalf("%s: identical updates give model[%d] = %v; want %v", s.Name(), i, got[i], want)
		}
	}
}

// Wild returns a round of k updates whose coordinates span 24 orders of
// magnitude and cancel: every other update negates half the coordinates of
// the one before it, with the same sample count, and half the global
// coordinates are 0. A float64 running sum of such terms loses the small
// ones or keeps them depending on the order of addition, which changes the
// float32 model.
func Wild(rng *rand.Rand, k, n int) Round {
	r := Round{Global: make([]float32, n)}
	for i := range r.Global {
		if i%2 == 0 {
			r.Global[i] = float32(math.Ldexp(2*rng.Float64()-1, -10))
		}
	}
	for c := range k {
		u := fl.Update{Client: fmt.Sprintf("w%02d", c), Samples: 1 + rng.IntN(60000), Delta: make([]float32, n)}
		for i := range u.Delta {
			// ±[2^-66, 2^14): about 1e-20 .. 1e4, from integer draws and
			// exact arithmetic only, so every platform draws the same round.
			u.Delta[i] = float32(math.Ldexp(2*rng.Float64()-1, -65+rng.IntN(79)))
		}
		if c%2 == 1 {
			prev := r.Updates[c-1]
			u.Samples = prev.Samples
			for i := range u.Delta {
				if rng.IntN(2) == 0 {
					u.Delta[i] = -prev.Delta[i]
				}
			}
		}
		r.Updates = append(r.Updates, u)
	}
	return r
}

// testPartials folds the updates of a round into partials of random sizes
// (through their wire encoding), merges them, and compares with adding the
// updates one by one and in other orders. Strategies that do not promise
// partials must not claim to merge them.
func testPartials(t *testing.T, newStrategy func() fl.Strategy, promised bool) {
	s := newStrategy()
	if got := fl.AcceptsPartials(s); got != promised {
		t.Fatalf("%s: AcceptsPartials = %v; the strategy promises %v", s.Name(), got, promised)
	}
	if !promised {
		return
	}
	rng := rand.New(rand.NewPCG(25, 26))
	_, honest := Honest(rng, 30, 2000, 0.01, 1)
	for name, r := range map[string]Round{"honest": honest, "wild": Wild(rng, 30, 2000)} {
		want, wantRes := Aggregate(t, newStrategy(), 1, r)
		for trial := range 4 {
			order := rng.Perm(len(r.Updates))
			s := newStrategy()
			agg := s.Begin(1, r.Global)
			var clients []string
			for lo := 0; lo < len(order); {
				hi := min(len(order), lo+1+rng.IntN(12))
				p := fl.NewPartial(len(r.Global))
				for _, j := range order[lo:hi] {
					if err := p.Add(r.Updates[j]); err != nil {
						t.Fatal(err)
					}
					clients = append(clients, r.Updates[j].Client)
				}
				b, err := p.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				q, err := fl.UnmarshalPartial(b, len(r.Global))
				if err != nil {
					t.Fatalf("UnmarshalPartial(MarshalBinary()) = %v", err)
				}
				if err := agg.(fl.PartialAdder).AddPartial(context.Background(), q); err != nil {
					t.Fatalf("%s: AddPartial = %v", s.Name(), err)
				}
				lo = hi
			}
			got := make([]float32, len(r.Global))
			res, err := agg.Finish(context.Background(), got)
			if err != nil {
				t.Fatalf("%s: Finish after partials = %v", s.Name(), err)
			}
			diff := 0
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					diff++
				}
			}
			if diff > 0 {
				t.Errorf("%s, %s updates, trial %d: partials change %d of %d coordinates; want bit-identical", s.Name(), name, trial, diff, len(got))
			}
			if res.Used != wantRes.Used || len(res.Verdicts) != len(clients) {
				t.Errorf("%s: partials give Used %d and %d verdicts; want %d and %d", s.Name(), res.Used, len(res.Verdicts), wantRes.Used, len(clients))
			}
			for i, v := range res.Verdicts {
				if v.Client != clients[i] {
					t.Errorf("%s: Verdicts[%d].Client = %q; want %q (partials' order)", s.Name(), i, v.Client, clients[i])
					break
				}
			}
		}
	}
}
