package nn

import (
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// paramDecl declares one parameter tensor of a layer.
type paramDecl struct {
	suffix string // "weight" or "bias"
	shape  []int
	fanIn  int // inputs that feed one output; sets the initialisation's scale
}

// scratch is the per-layer workspace a Trainer or Evaluator owns.
type scratch struct {
	f     []float32 // float scratch (im2col columns, dropout masks)
	i     []int32   // int scratch (max-pool argmax)
	rng   *rand.Rand
	train bool
}

// layer is one stage of a model. A layer holds only its configuration and
// shapes; weights, gradients and workspaces are passed in, so one model can be
// used by several trainers and evaluators at once.
type layer interface {
	// setup fixes the input shape and returns the output shape.
	setup(in Shape) (Shape, error)
	// params declares the layer's parameter tensors in order.
	params() []paramDecl
	// scratchSize returns the float and int scratch needed for n samples.
	scratchSize(n int) (floats, ints int)
	// forward computes y (n*outSize) from x (n*inSize) with weights w.
	forward(s *scratch, w, x, y []float32, n int)
	// backward overwrites the parameter gradients g and, when dx is not nil,
	// writes the input gradient. x, y are the forward input and output.
	backward(s *scratch, w, g, x, y, dy, dx []float32, n int)
	// kind names the layer type for summaries.
	kind() string
}

// gemm computes c = op(a)·op(b) + beta·c with alpha = 1 through the blas32
// implementation in use (gonum's by default, kernels.Implementation in wasm).
func gemm(tA, tB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	blas32.Implementation().Sgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
}
