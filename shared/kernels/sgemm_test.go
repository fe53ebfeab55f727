package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// sgemmer is the part of blas.Float32 that testSgemm tests.
type sgemmer interface {
	Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
}

// withKernel is Implementation's Sgemm with a chosen kernel, so that every kernel of a
// build is tested, not only the active one.
type withKernel struct{ ks *kernel }

func (w withKernel) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(w.ks, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// implementations returns the Sgemm implementations to test and benchmark: the active
// kernel as "qflare", the other kernels of the build by name, and gonum's.
func implementations() []struct {
	name string
	impl sgemmer
} {
	impls := []struct {
		name string
		impl sgemmer
	}{{"qflare", Implementation{}}}
	for _, ks := range available[1:] {
		impls = append(impls, struct {
			name string
			impl sgemmer
		}{ks.name, withKernel{ks}})
	}
	return append(impls, struct {
		name string
		impl sgemmer
	}{"gonum", gonum.Implementation{}})
}

func TestSgemm(t *testing.T) {
	if active != available[0] {
		t.Fatalf("available[0] = %s; want the active kernel %s", available[0].name, active.name)
	}
	for _, im := range implementations() {
		t.Run(im.name, func(t *testing.T) { testSgemm(t, im.impl) })
	}
	// Each kernel of the build, and plain-loop kernels of other tile shapes, with its
	// thresholds forced both ways, so that the packed path, the tiles reading B in
	// place and the dot path all run every size. The loop kernels run the blocking and
	// packing code with the widths of every build (nr = 8 is the SIMD kernel's) and with
	// widths that have no special case.
	kernels := append([]*kernel{}, available...)
	kernels = append(kernels, loopKernel(4, 8, 2, 4), loopKernel(3, 5, 3, 2))
	for _, ks := range kernels {
		for _, small := range []int{0, math.MaxInt} {
			forced := *ks
			forced.smallM, forced.dotM = small, small
			t.Run(fmt.Sprintf("%s/smallM=%d", ks.name, small), func(t *testing.T) { testSgemm(t, withKernel{&forced}) })
		}
	}
}

// loopKernel returns a kernel of mr×nr tiles and dmr×dnr dot blocks computed by plain
// loops.
func loopKernel(mr, nr, dmr, dnr int) *kernel {
	rows := func(r, kc int, a []float32, lda int, b []float32, ldb int, alpha, beta float32, c []float32, ldc int) {
		if r < 1 || r > mr {
			panic(fmt.Sprintf("kernels: tile of %d rows for a kernel of %d", r, mr))
		}
		for i := range r {
			for j := range nr {
				var sum float32
				for p := range kc {
					sum += a[i*lda+p] * b[p*ldb+j]
				}
				store(&c[i*ldc+j], sum, alpha, beta)
			}
		}
	}
	tile := func(kc int, a []float32, lda int, b []float32, alpha, beta float32, c []float32, ldc int) {
		rows(mr, kc, a, lda, b, nr, alpha, beta, c, ldc)
	}
	dot := func(r, q, kc int, a []float32, lda int, b []float32, ldb int, alpha, beta float32, c []float32, ldc int) {
		if r < 1 || r > dmr || q < 1 || q > dnr {
			panic(fmt.Sprintf("kernels: dot block %d×%d for a kernel of %d×%d", r, q, dmr, dnr))
		}
		for i := range r {
			for j := range q {
				var sum float32
				for p := range kc {
					sum += a[i*lda+p] * b[j*ldb+p]
				}
				store(&c[i*ldc+j], sum, alpha, beta)
			}
		}
	}
	return &kernel{
		name: fmt.Sprintf("loop%dx%d", mr, nr), mr: mr, nr: nr, tile: tile, rows: rows,
		dmr: dmr, dnr: dnr, dot: dot, smallM: 16, dotM: 16,
	}
}

// sgemmCase is one call of the suite: sizes, scalars and padding of the leading
// dimensions beyond their minimum.
type sgemmCase struct {
	tA, tB           blas.Transpose
	m, n, k          int
	alpha, beta      float32
	padA, padB, padC int
}

func (tc sgemmCase) String() string {
	return fmt.Sprintf("Sgemm(%c, %c, m=%d, n=%d, k=%d, alpha=%v, beta=%v, pads=%d/%d/%d)",
		tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.padA, tc.padB, tc.padC)
}

var (
	transposes = []blas.Transpose{blas.NoTrans, blas.Trans, blas.ConjTrans}
	alphas     = []float32{0, 1, -0.5, 2}
	betas      = []float32{0, 1, 0.5}
)

// sgemmCases returns the suite's table: every size from {0, 1, 2, 3, 5, 7} cubed, then
// odd sizes up to 129 and sizes that cross the blocking limits (kcMax, mcMax, ncMax,
// dotKcMax and the tile shapes) or are a dense layer's at a small batch, each with every
// transpose pair and a rotation of alpha, beta and leading-dimension padding.
func sgemmCases() []sgemmCase {
	small := []int{0, 1, 2, 3, 5, 7}
	var sizes [][3]int
	for _, m := range small {
		for _, n := range small {
			for _, k := range small {
				sizes = append(sizes, [3]int{m, n, k})
			}
		}
	}
	sizes = append(sizes,
		[3]int{17, 33, 65}, [3]int{33, 17, 129}, [3]int{65, 65, 65}, [3]int{129, 7, 33},
		[3]int{4, 8, 16}, [3]int{8, 16, 1}, [3]int{5, 9, kcMax + 1}, [3]int{3, 10, 2*kcMax + 45},
		[3]int{mcMax + 3, 9, 20}, [3]int{2*mcMax + 1, 4, 3}, [3]int{3, ncMax + 5, 4},
		[3]int{2, 2*ncMax + 9, 2}, [3]int{10, 10, 200},
		[3]int{9, 13, 2*dotKcMax + 3}, [3]int{10, 34, 46}, [3]int{11, 17, 10},
	)
	var cases []sgemmCase
	i := 0
	for _, s := range sizes {
		for _, tA := range transposes {
			for _, tB := range transposes {
				if (tA == blas.ConjTrans || tB == blas.ConjTrans) && s[0]*s[1]*s[2] > 7*7*7 {
					continue // ConjTrans is Trans; the small sizes show that.
				}
				cases = append(cases, sgemmCase{
					tA: tA, tB: tB, m: s[0], n: s[1], k: s[2],
					alpha: alphas[i%len(alphas)], beta: betas[i/len(alphas)%len(betas)],
					padA: i % 3, padB: i / 3 % 3, padC: i / 2 % 3,
				})
				i++
			}
		}
	}
	return cases
}

// testSgemm checks impl against a reference accumulated in float64 over sgemmCases. It
// also checks that A and B are not modified, that C beyond its m×n part (the padding of
// ldc) is not touched, that NaN in C does not leak out when beta is 0, and that padding
// in A and B (NaN) is not read.
func testSgemm(t *testing.T, impl sgemmer) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, tc := range sgemmCases() {
		ar, ac := tc.m, tc.k
		if tc.tA != blas.NoTrans {
			ar, ac = ac, ar
		}
		br, bc := tc.k, tc.n
		if tc.tB != blas.NoTrans {
			br, bc = bc, br
		}
		lda, ldb, ldc := max(1, ac)+tc.padA, max(1, bc)+tc.padB, max(1, tc.n)+tc.padC
		a := newMatrix(rnd, ar, ac, lda, false)
		b := newMatrix(rnd, br, bc, ldb, false)
		c := newMatrix(rnd, tc.m, tc.n, ldc, tc.beta == 0)
		a0, b0, c0 := clone(a), clone(b), clone(c)
		impl.Sgemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
		if !sameBits(a, a0) || !sameBits(b, b0) {
			t.Errorf("%v modified A or B", tc)
		}
		if err := checkResult(tc, a0, lda, b0, ldb, c0, c, ldc); err != "" {
			t.Errorf("%v: %s", tc, err)
		}
	}
}

// newMatrix returns an r×c matrix with leading dimension ld, as long as Sgemm requires
// it to be, with values in [-1, 1) or, if nan, NaN. The padding past column c is NaN, so
// that an implementation reading it produces NaN.
func newMatrix(rnd *rand.Rand, r, c, ld int, nan bool) []float32 {
	s := make([]float32, max(0, (r-1)*ld+c))
	for i := range s {
		s[i] = float32(math.NaN())
		if i%ld < c && !nan {
			s[i] = 2*rnd.Float32() - 1
		}
	}
	return s
}

// checkResult compares got with alpha*op(A)*op(B) + beta*C0 computed in float64, within
// a bound on float32 rounding that grows with k and the size of the terms. It returns a
// description of the first difference, or "" when there is none.
func checkResult(tc sgemmCase, a []float32, lda int, b []float32, ldb int, c0, got []float32, ldc int) string {
	at := func(i, p int) float64 {
		if tc.tA == blas.NoTrans {
			return float64(a[i*lda+p])
		}
		return float64(a[p*lda+i])
	}
	bt := func(p, j int) float64 {
		if tc.tB == blas.NoTrans {
			return float64(b[p*ldb+j])
		}
		return float64(b[j*ldb+p])
	}
	for idx := range got {
		i, j := idx/ldc, idx%ldc
		if j >= tc.n {
			if math.Float32bits(got[idx]) != math.Float32bits(c0[idx]) {
				return fmt.Sprintf("C[%d] (padding past column %d) = %v; want %v untouched", idx, tc.n, got[idx], c0[idx])
			}
			continue
		}
		var sum, mag float64
		for p := range tc.k {
			sum += at(i, p) * bt(p, j)
			mag += math.Abs(at(i, p) * bt(p, j))
		}
		want := float64(tc.alpha) * sum
		mag *= math.Abs(float64(tc.alpha))
		if tc.beta != 0 {
			want += float64(tc.beta) * float64(c0[idx])
			mag += math.Abs(float64(tc.beta) * float64(c0[idx]))
		}
		tol := 2 * float64(tc.k+3) * 0x1p-24 * mag
		if d := math.Abs(float64(got[idx]) - want); !(d <= tol) {
			return fmt.Sprintf("C[%d][%d] = %v; want %v (tolerance %.3g)", i, j, got[idx], want, tol)
		}
	}
	return ""
}

func clone(s []float32) []float32 { return append([]float32(nil), s...) }

// sameBits reports whether x and y hold the same bits, so that NaN equals NaN.
func sameBits(x, y []float32) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
			return false
		}
	}
	return true
}

// TestSgemmAlphaZero checks that with alpha = 0 Sgemm only scales C and does not read A
// and B, as reference BLAS says ("when alpha is zero then A and B need not be set").
// gonum v0.17.0 differs: unless beta is 1 it still adds 0*A*B, so NaN or Inf in A or B
// turns C into NaN; that is why this is not part of testSgemm.
func TestSgemmAlphaZero(t *testing.T) {
	nan := float32(math.NaN())
	for _, ks := range available {
		for _, beta := range betas {
			a := []float32{nan, nan, nan, nan, nan, nan}
			b := []float32{nan, float32(math.Inf(1)), nan, nan, nan, nan}
			c := []float32{1, 2, 3, 4}
			sgemm(ks, blas.NoTrans, blas.NoTrans, 2, 2, 3, 0, a, 3, b, 2, beta, c, 2)
			for i, v := range c {
				if want := beta * float32(i+1); v != want {
					t.Errorf("%s: Sgemm(alpha=0, beta=%v) with NaN in A and B: C[%d] = %v; want %v", ks.name, beta, i, v, want)
				}
			}
		}
	}
}
