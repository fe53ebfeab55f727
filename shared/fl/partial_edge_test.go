package fl_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/fl"
)

// randomPartial folds k random updates of n parameters.
func randomPartial(t *testing.T, rng *rand.Rand, n, k int) *fl.Partial {
	t.Helper()
	p := fl.NewPartial(n)
	d := make([]float32, n)
	for c := range k {
		for i := range d {
			d[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(8)-4)))
		}
		if err := p.Add(fl.Update{Client: strings.Repeat("c", c%7+1), Samples: 1 + rng.IntN(600), Delta: d}); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestPartialWriteTo: WriteTo writes exactly MarshalBinary's bytes, and
// PartialSize predicts their number.
func TestPartialWriteTo(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 7, 1 << 14, 1<<14 + 3, 50000} {
		p := randomPartial(t, rng, n, 5)
		want, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		got, err := p.WriteTo(&buf)
		if err != nil || got != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("n=%d: WriteTo wrote %d bytes (%v), equal %v; want MarshalBinary's %d", n, got, err, bytes.Equal(buf.Bytes(), want), len(want))
		}
		names := 0
		for _, c := range p.Clients {
			names += len(c)
		}
		if s := fl.PartialSize(n, p.Count, names); s != len(want) {
			t.Errorf("PartialSize(%d, %d, %d) = %d; want %d", n, p.Count, names, s, len(want))
		}
		if len(want) > fl.MaxPartialSize(n, p.Count) {
			t.Errorf("MaxPartialSize(%d, %d) = %d < %d", n, p.Count, fl.MaxPartialSize(n, p.Count), len(want))
		}
	}
}

// TestDPPartialsAtTheShard: clipping at a shard (AddClipped) and merging
// the partial into DP's aggregation (AddClippedPartial) gives DP's model
// for the same updates given one by one, the same verdicts, and the same
// adaptive clip norm for the next round.
func TestDPPartialsAtTheShard(t *testing.T) {
	const n = 300
	cfg := fl.DPConfig{ClipNorm: 1.5, ClientsPerRound: 6, TotalClients: 60, TargetQuantile: 0.5, Seed: 7}
	direct, sharded := mustDP(t, "fedavg", cfg), mustDP(t, "fedavg", cfg)
	rng := rand.New(rand.NewPCG(5, 6))
	global := make([]float32, n)
	var ups []fl.Update
	for c := range 6 {
		d := make([]float32, n)
		scale := 0.02 + 0.2*float64(c) // norms from about 0.35 to 18
		for i := range d {
			d[i] = float32(rng.NormFloat64() * scale)
		}
		ups = append(ups, fl.Update{Client: string(rune('a' + c)), Samples: 100 + c, Delta: d})
	}
	ctx := context.Background()
	a := direct.Begin(1, global)
	for _, u := range ups {
		if err := a.Add(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	b := sharded.Begin(1, global)
	cpa, ok := b.(fl.ClippedPartialAdder)
	if !ok {
		t.Fatalf("DP's aggregation is a %T; want a fl.ClippedPartialAdder", b)
	}
	if cpa.ClipNorm() != 1.5 {
		t.Errorf("ClipNorm() = %v; want 1.5", cpa.ClipNorm())
	}
	// Two shards of three updates each.
	for s := range 2 {
		p := fl.NewPartial(n)
		var clipped []bool
		for _, u := range ups[3*s : 3*s+3] {
			before := slices.Clone(u.Delta)
			c, err := p.AddClipped(u, cpa.ClipNorm())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(before, u.Delta) {
				t.Fatal("AddClipped modified its input")
			}
			clipped = append(clipped, c)
		}
		if err := cpa.AddClippedPartial(ctx, p, clipped); err != nil {
			t.Fatal(err)
		}
	}
	wa, wb := make([]float32, n), make([]float32, n)
	ra, err := a.Finish(ctx, wa)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.Finish(ctx, wb)
	if err != nil {
		t.Fatal(err)
	}
	for i := range wa {
		if d := math.Abs(float64(wa[i] - wb[i])); d > 1e-6 {
			t.Fatalf("coordinate %d: direct %v, through partials %v", i, wa[i], wb[i])
		}
	}
	for i := range ra.Verdicts {
		if (ra.Verdicts[i].Reason == "") != (rb.Verdicts[i].Reason == "") || ra.Verdicts[i].Client != rb.Verdicts[i].Client {
			t.Errorf("verdict %d: direct %+v, through partials %+v", i, ra.Verdicts[i], rb.Verdicts[i])
		}
	}
	if na, nb := ra.Metrics["dp_next_clip_norm"], rb.Metrics["dp_next_clip_norm"]; na != nb {
		t.Errorf("next clip norm: direct %v, through partials %v; want the same (same unclipped count)", na, nb)
	}
}

// TestDPPartialRefusals: a partial whose updates are not of weight 1, or
// whose flags do not match, is refused and leaves the aggregation as it was.
func TestDPPartialRefusals(t *testing.T) {
	d := mustDP(t, "fedavg", fl.DPConfig{ClipNorm: 1, ClientsPerRound: 2, TotalClients: 20, Seed: 1})
	agg := d.Begin(1, make([]float32, 2)).(fl.ClippedPartialAdder)
	weighted := fl.NewPartial(2)
	weighted.Add(fl.Update{Client: "x", Samples: 5, Delta: []float32{0.1, 0.1}})
	if err := agg.AddClippedPartial(context.Background(), weighted, []bool{false}); err == nil {
		t.Errorf("AddClippedPartial(a sample-weighted partial) = nil; want an error")
	}
	clipped := fl.NewPartial(2)
	if _, err := clipped.AddClipped(fl.Update{Client: "x", Samples: 5, Delta: []float32{3, 4}}, 1); err != nil {
		t.Fatal(err)
	}
	if err := agg.AddClippedPartial(context.Background(), clipped, nil); err == nil {
		t.Errorf("AddClippedPartial(without the clipped flags) = nil; want an error")
	}
	if _, err := agg.(fl.Aggregation).Finish(context.Background(), make([]float32, 2)); !errors.Is(err, fl.ErrNoUpdates) {
		t.Errorf("Finish after refused partials = %v; want ErrNoUpdates", err)
	}
	if _, err := fl.NewPartial(2).AddClipped(fl.Update{Client: "x", Samples: 1, Delta: []float32{1, 1}}, 0); err == nil {
		t.Errorf("AddClipped(clip 0) = nil; want an error")
	}
}

// TestPartialReset: a reset partial folds as a new one does.
func TestPartialReset(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	used := randomPartial(t, rng, 100, 4)
	used.Reset()
	fresh := fl.NewPartial(100)
	d := make([]float32, 100)
	for i := range d {
		d[i] = float32(rng.NormFloat64())
	}
	for _, p := range []*fl.Partial{used, fresh} {
		if err := p.Add(fl.Update{Client: "x", Samples: 3, Delta: d}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := used.MarshalBinary()
	b, _ := fresh.MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Error("a reset partial differs from a new one after the same update")
	}
}
