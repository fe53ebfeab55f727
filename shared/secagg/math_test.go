package secagg

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cloudflare/circl/secretsharing"
)

// TestShamirAgainstCircl: shares from split recover through circl's own
// Recover, and circl's shares recover through ours.
func TestShamirAgainstCircl(t *testing.T) {
	rnd := seeded(5)
	secret, _ := randomScalar(rnd)
	holders := []int{1, 4, 5, 9, 10}
	shares, err := split(rnd, secret, 3, holders)
	if err != nil {
		t.Fatal(err)
	}
	var cs []secretsharing.Share
	for i, h := range holders[1:4] {
		y, err := parseScalar(shares[i+1])
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, secretsharing.Share{ID: xOf(h), Value: y})
	}
	got, err := secretsharing.Recover(2, cs)
	if err != nil || !got.IsEqual(secret) {
		t.Fatalf("circl Recover of our shares = %v, %v; want the secret", got, err)
	}
	ss := secretsharing.New(rnd, 2, secret)
	theirs := map[int][]byte{}
	for _, h := range []int{0, 6, 8} {
		theirs[h] = scalarBytes(ss.ShareWithID(xOf(h)).Value)
	}
	var lg lagrange
	if ours, err := lg.recoverSecret(theirs, 3); err != nil || !ours.IsEqual(secret) {
		t.Fatalf("our recovery of circl's shares = %v, %v; want the secret", ours, err)
	}
}

// TestShamirChecks: too few shares, a share off the polynomial and a
// non-canonical share are errors.
func TestShamirChecks(t *testing.T) {
	rnd := seeded(6)
	secret, _ := randomScalar(rnd)
	holders := []int{0, 1, 2, 3}
	shares, _ := split(rnd, secret, 3, holders)
	var lg lagrange
	if _, err := lg.recoverSecret(map[int][]byte{0: shares[0], 1: shares[1]}, 3); !errors.Is(err, ErrBelowThreshold) {
		t.Errorf("recovery from 2 of 3 shares = %v; want ErrBelowThreshold", err)
	}
	bad := map[int][]byte{0: shares[0], 1: shares[1], 2: shares[2], 3: scalarBytes(field.NewScalar().SetUint64(7))}
	if _, err := lg.recoverSecret(bad, 3); !errors.Is(err, ErrBadShare) {
		t.Errorf("recovery with a share off the polynomial = %v; want ErrBadShare", err)
	}
	ff := make([]byte, 32)
	for i := range ff {
		ff[i] = 0xff
	}
	if _, err := lg.recoverSecret(map[int][]byte{0: shares[0], 1: shares[1], 2: ff}, 3); !errors.Is(err, ErrBadShare) {
		t.Errorf("recovery with a non-canonical share = %v; want ErrBadShare", err)
	}
}

// TestExponentCannotWrap: with the chosen exponent, n members at the clip
// (and rounded up) still sum below 2^31.
func TestExponentCannotWrap(t *testing.T) {
	for _, n := range []int{2, 3, 10, 100, 1000, 5000} {
		for _, clip := range []float64{0.01, 1, 10, 1000} {
			e, err := Exponent(n, clip)
			if err != nil {
				continue
			}
			worst := float64(n) * (math.Floor(clip*math.Exp2(float64(e))) + 1)
			if worst >= math.Exp2(31) {
				t.Errorf("Exponent(%d, %g) = %d: %d members can reach %g ≥ 2^31", n, clip, e, n, worst)
			}
			if e < MaxExponent && float64(n)*(clip*math.Exp2(float64(e+1))+1) < math.Exp2(31)-float64(n) {
				t.Errorf("Exponent(%d, %g) = %d; %d would fit too", n, clip, e, e+1)
			}
		}
	}
	if _, err := Exponent(5000, 1e6); err == nil {
		t.Error("Exponent(5000, 1e6) = nil error; want too few bits")
	}
}

// TestQuantizeSums: the sum of n members' quantized inputs, decoded, is
// the weighted sum of their clipped deltas within n·2^-e per coordinate,
// and rounding is unbiased over many draws.
func TestQuantizeSums(t *testing.T) {
	const n, m, W = 50, 200, 600
	e, _ := Exponent(n, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	sum := make([]uint32, m+1)
	want := make([]float64, m)
	wantW := int64(0)
	q := make([]uint32, m+1)
	for range n {
		d := make([]float32, m)
		for i := range d {
			d[i] = float32(rng.NormFloat64())
		}
		w := 1 + rng.IntN(W)
		wantW += int64(w)
		Quantize(q, d, w, W, 1, e, rng)
		for i := range q {
			sum[i] += q[i]
		}
		for i, x := range d {
			want[i] += float64(w) * math.Max(-1, math.Min(1, float64(x)))
		}
	}
	num := make([]int64, m)
	if got := Decode(num, sum, W); got != wantW {
		t.Errorf("decoded weight %d; want %d", got, wantW)
	}
	for i := range num {
		got := float64(num[i]) * math.Exp2(-float64(e))
		if d := math.Abs(got - want[i]); d > float64(n*W)*math.Exp2(-float64(e)) {
			t.Fatalf("coordinate %d decodes to %g; want %g (off by %g)", i, got, want[i], d)
		}
	}
	// Unbiased: a value a third of the way between two steps rounds up a
	// third of the time.
	x := float32(1.0/3) * float32(math.Exp2(-float64(e)))
	q2 := make([]uint32, 2)
	ups := 0
	for range 30000 {
		Quantize(q2, []float32{x}, W, W, 1, e, rng)
		ups += int(q2[0])
	}
	if f := float64(ups) / 30000; math.Abs(f-1.0/3) > 0.02 {
		t.Errorf("rounded up %.3f of the time; want 1/3", f)
	}
}

// TestGraphs: a k-regular graph is symmetric, k-regular and without
// self-loops; k ≥ n−1 is complete.
func TestGraphs(t *testing.T) {
	for _, c := range []struct{ n, k int }{{10, 4}, {101, 8}, {1000, 10}, {5, 8}} {
		topo := newTopology(Graph{K: c.k}, c.n, [32]byte{byte(c.n)})
		for i := range c.n {
			nb := topo.neighbours(i)
			want := min(c.k, c.n-1)
			if len(nb) != want {
				t.Fatalf("n=%d k=%d: member %d has %d neighbours; want %d", c.n, c.k, i, len(nb), want)
			}
			for _, j := range nb {
				if j == i || !topo.adjacent(j, i) {
					t.Fatalf("n=%d k=%d: edge %d-%d is not symmetric or a self-loop", c.n, c.k, i, j)
				}
			}
		}
	}
	for _, s := range []string{"complete", "k:8", "k:2"} {
		g, err := ParseGraph(s)
		if err != nil || g.String() != s {
			t.Errorf("ParseGraph(%q) = %v, %v", s, g, err)
		}
	}
	for _, s := range []string{"", "k:3", "k:0", "k:x", "ring"} {
		if _, err := ParseGraph(s); err == nil {
			t.Errorf("ParseGraph(%q) = nil error", s)
		}
	}
}
