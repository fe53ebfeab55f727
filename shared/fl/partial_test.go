package fl_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/fl/fltest"
	"github.com/qflare/qflare/shared/wire"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/partial_golden.txt")

// naiveMean is the float64 running sum the mean strategies used before
// exact sums: sum(n_i·d_i)/sum(n_i), rounded to float32 after adding global.
func naiveMean(r fltest.Round, order []int) []float32 {
	sum := make([]float64, len(r.Global))
	var w float64
	for _, j := range order {
		u := r.Updates[j]
		for i, v := range u.Delta {
			sum[i] += float64(u.Samples) * float64(v)
		}
		w += float64(u.Samples)
	}
	out := make([]float32, len(sum))
	for i, s := range sum {
		out[i] = float32(float64(r.Global[i]) + s/w)
	}
	return out
}

// TestWildUpdatesBreakFloat64Sums shows that the suite's Wild rounds would
// catch an order-dependent sum: a float64 running sum gives another float32
// model for another order of the same updates, where the exact sum does not.
func TestWildUpdatesBreakFloat64Sums(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	r := fltest.Wild(rng, 30, 2000)
	order := rng.Perm(len(r.Updates))
	a, b := naiveMean(r, order), naiveMean(r, slicesBackwardInts(order))
	diff := 0
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			diff++
		}
	}
	if diff == 0 {
		t.Fatalf("a float64 running sum over two orders of Wild updates gives the same model; the suite's partials test would not catch an order-dependent sum")
	}
	t.Logf("float64 running sums: %d of %d coordinates differ between two orders", diff, len(a))
}

func slicesBackwardInts(x []int) []int { y := slices.Clone(x); slices.Reverse(y); return y }

// TestPartialLimits: a partial refuses what it cannot hold exactly, and
// UnmarshalPartial refuses damaged input.
func TestPartialLimits(t *testing.T) {
	p := fl.NewPartial(4)
	if err := p.Add(fl.Update{Client: "big", Samples: 10, Delta: []float32{0, fl.MaxDeltaValue * 2, 0, 0}}); err == nil {
		t.Errorf("Add(delta beyond MaxDeltaValue) = nil; want an error")
	}
	if err := p.Add(fl.Update{Client: "ok", Samples: 10, Delta: []float32{1, -2, 3, -4}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Merge(fl.NewPartial(5)); err == nil {
		t.Errorf("Merge(partial of another size) = nil; want an error")
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fl.UnmarshalPartial(b, 5); err == nil {
		t.Errorf("UnmarshalPartial(for another model size) = nil; want an error")
	}
	for _, cut := range []int{0, 10, len(b) - 1} {
		if _, err := fl.UnmarshalPartial(b[:cut], 4); err == nil {
			t.Errorf("UnmarshalPartial(%d of %d bytes) = nil; want an error", cut, len(b))
		}
	}
	if _, err := fl.UnmarshalPartial(append(slices.Clone(b), 0), 4); err == nil {
		t.Errorf("UnmarshalPartial(with a trailing byte) = nil; want an error")
	}
	mean := make([]float64, 4)
	if err := p.Mean(mean); err != nil || mean[1] != -2 {
		t.Errorf("Mean() = %v, %v; want [1 -2 3 -4], nil", mean, err)
	}
}

// TestVouchedNorm: an update that carries the norm its sender checked is
// folded to the same bits as one whose norm Add computes, and a norm beyond
// MaxDeltaValue vouches for nothing (Add checks the values itself).
func TestVouchedNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	d := make([]float32, 1000)
	for i := range d {
		d[i] = float32(rng.NormFloat64() * 0.01)
	}
	nrm, err := wire.ToDelta(slices.Clone(d), make([]float32, len(d)), fl.MaxDeltaValue, 0)
	if err != nil {
		t.Fatal(err)
	}
	plain, vouched := fl.NewPartial(len(d)), fl.NewPartial(len(d))
	if err := plain.Add(fl.Update{Client: "a", Samples: 600, Delta: d}); err != nil {
		t.Fatal(err)
	}
	if err := vouched.Add(fl.Update{Client: "a", Samples: 600, Delta: d, Norm: nrm}); err != nil {
		t.Fatal(err)
	}
	pb, _ := plain.MarshalBinary()
	vb, _ := vouched.MarshalBinary()
	if !slices.Equal(pb, vb) {
		t.Errorf("a vouched norm (%v) changed the partial; want the same bits", nrm)
	}
	bad := slices.Clone(d)
	bad[3] = float32(math.Inf(1))
	if err := plain.Add(fl.Update{Client: "b", Samples: 1, Delta: bad, Norm: math.Inf(1)}); err == nil {
		t.Errorf("Add(infinite value, Norm +Inf) = nil; want an error")
	}
	bad[3] = fl.MaxDeltaValue * 2
	if err := plain.Add(fl.Update{Client: "b", Samples: 1, Delta: bad, Norm: fl.MaxDeltaValue * 2}); err == nil {
		t.Errorf("Add(value beyond MaxDeltaValue, Norm beyond it) = nil; want an error")
	}
}

// BenchmarkFold compares folding one mnist-2nn-sized delta into an exact
// sum with the float64 running sum it replaced (both with the norm pass
// that validation makes).
func BenchmarkFold(b *testing.B) {
	_, r := fltest.Honest(rand.New(rand.NewPCG(1, 1)), 1, 199210, 0.01, 1)
	u := r.Updates[0]
	b.Run("exact", func(b *testing.B) {
		p := fl.NewPartial(len(u.Delta))
		b.SetBytes(int64(4 * len(u.Delta)))
		for b.Loop() {
			if p.Count == fl.MaxPartialCount-1 {
				p = fl.NewPartial(len(u.Delta))
			}
			p.Add(u)
		}
	})
	b.Run("float64", func(b *testing.B) {
		sum := make([]float64, len(u.Delta))
		b.SetBytes(int64(4 * len(u.Delta)))
		for b.Loop() {
			var nrm float64 // what Add's validation costs
			for _, v := range u.Delta {
				nrm += float64(v) * float64(v)
			}
			w := float64(u.Samples)
			for i, v := range u.Delta {
				sum[i] += w * float64(v)
			}
			if math.IsNaN(nrm) {
				b.Fatal("NaN")
			}
		}
	})
}

// TestPartialGolden pins the model FedAvg computes from a Wild round: the
// exact sums must give the same bits natively and in wasm (make test-wasm
// runs this too). Run with -update-golden to rewrite the digest after an
// intended change.
func TestPartialGolden(t *testing.T) {
	r := fltest.Wild(rand.New(rand.NewPCG(31, 32)), 24, 5000)
	got, _ := fltest.Aggregate(t, mustParse(t, "fedavg"), 1, r)
	h := sha256.New()
	for _, v := range got {
		binary.Write(h, binary.LittleEndian, math.Float32bits(v))
	}
	digest := hex.EncodeToString(h.Sum(nil))
	const path = "testdata/partial_golden.txt"
	if *updateGolden {
		if err := os.WriteFile(path, []byte(digest+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if digest != strings.TrimSpace(string(want)) {
		t.Errorf("FedAvg of the Wild round has digest %s; want %s (%s)", digest, strings.TrimSpace(string(want)), runtime.GOARCH)
	}
}
