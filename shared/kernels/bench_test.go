package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// shape is one Sgemm call of the models: op(A) is m×k, op(B) k×n, C m×n, all with
// minimal leading dimensions.
type shape struct {
	name    string
	tA, tB  blas.Transpose
	m, n, k int
}

func (sh shape) lda() int {
	if sh.tA == blas.NoTrans {
		return max(1, sh.k)
	}
	return max(1, sh.m)
}

func (sh shape) ldb() int {
	if sh.tB == blas.NoTrans {
		return max(1, sh.n)
	}
	return max(1, sh.k)
}

// operands returns A, B and C for sh, filled with values in [-1, 1).
func (sh shape) operands() (a, b, c []float32) {
	rnd := rand.New(rand.NewPCG(3, 4))
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = 2*rnd.Float32() - 1
		}
		return s
	}
	return fill(sh.m * sh.k), fill(sh.k * sh.n), fill(sh.m * sh.n)
}

// modelShapes returns the Sgemm calls of the models' layers for a batch of size b.
// Weights are [out, in] row-major and activations NHWC, so a dense layer calls forward
// y = x·Wᵀ, dW = dYᵀ·x and dX = dY·W; a 5×5 convolution runs as im2col with one row per
// output pixel (28×28 for conv1, 14×14 for conv2) and K = Cin*25.
func modelShapes(b int) []shape {
	var shapes []shape
	for _, d := range [][2]int{{784, 200}, {200, 200}, {200, 10}, {3136, 512}, {512, 10}} {
		in, out := d[0], d[1]
		name := fmt.Sprintf("dense%dx%d", in, out)
		shapes = append(shapes,
			shape{name + ".fwd", blas.NoTrans, blas.Trans, b, out, in},
			shape{name + ".dW", blas.Trans, blas.NoTrans, out, in, b},
			shape{name + ".dX", blas.NoTrans, blas.NoTrans, b, in, out},
		)
	}
	return append(shapes,
		shape{"conv1.fwd", blas.NoTrans, blas.Trans, b * 784, 32, 25},
		shape{"conv1.dW", blas.Trans, blas.NoTrans, 32, 25, b * 784},
		shape{"conv2.fwd", blas.NoTrans, blas.Trans, b * 196, 64, 800},
		shape{"conv2.dW", blas.Trans, blas.NoTrans, 64, 800, b * 196},
		shape{"conv2.dcol", blas.NoTrans, blas.NoTrans, b * 196, 800, 64},
	)
}

// BenchmarkSgemm runs the models' shapes at batch 10 and 64 for every implementation
// ("qflare" is the active kernel, see Name) and reports GFLOPS (2mnk per call). Names end
// in MxNxK, which make bench reads.
func BenchmarkSgemm(b *testing.B) {
	for _, im := range implementations() {
		b.Run(im.name, func(b *testing.B) {
			for _, batch := range []int{10, 64} {
				for _, sh := range modelShapes(batch) {
					b.Run(fmt.Sprintf("%s.B%d/%dx%dx%d", sh.name, batch, sh.m, sh.n, sh.k), func(b *testing.B) {
						benchmarkSgemm(b, im.impl, sh)
					})
				}
			}
		})
	}
}

func benchmarkSgemm(b *testing.B, impl sgemmer, sh shape) {
	a, bb, c := sh.operands()
	b.ReportAllocs()
	for b.Loop() {
		impl.Sgemm(sh.tA, sh.tB, sh.m, sh.n, sh.k, 1, a, sh.lda(), bb, sh.ldb(), 0, c, sh.n)
	}
	flops := 2 * float64(sh.m) * float64(sh.n) * float64(sh.k) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOPS")
}
