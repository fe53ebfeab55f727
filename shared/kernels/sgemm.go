package kernels

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Panic messages, the same as gonum's (blas/gonum/errors.go), so that callers see the
// same message whichever implementation blas32 uses.
const (
	badTranspose = "blas: illegal transpose"
	mLT0         = "blas: m < 0"
	nLT0         = "blas: n < 0"
	kLT0         = "blas: k < 0"
	badLdA       = "blas: bad leading dimension of A"
	badLdB       = "blas: bad leading dimension of B"
	badLdC       = "blas: bad leading dimension of C"
	shortA       = "blas: insufficient length of a"
	shortB       = "blas: insufficient length of b"
	shortC       = "blas: insufficient length of c"
)

// Implementation is gonum's BLAS implementation with a faster Sgemm. Every other
// routine is gonum's. The zero value is ready to use and it is safe for concurrent use.
type Implementation struct {
	gonum.Implementation
}

// Name returns the name of the micro-kernel that Implementation uses in this build:
// "qflare-simd128" or "qflare-scalar".
func Name() string {
	return active.name
}

// Sgemm computes
//
//	C = alpha * op(A) * op(B) + beta * C
//
// where A, B and C are row-major matrices with leading dimensions lda, ldb and ldc,
// op(X) is X or Xᵀ as tA and tB say (blas.ConjTrans is the same as blas.Trans), op(A)
// is m×k, op(B) is k×n and C is m×n. When beta is zero C is overwritten without being
// read. It panics with gonum's messages when the arguments are invalid.
func (Implementation) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(active, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// sgemm is Sgemm with the micro-kernel given, so that tests and benchmarks can run
// every kernel that this build has.
func sgemm(ks *kernel, tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	aT, bT := checkSgemm(tA, tB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scale(m, n, beta, c, ldc)
		return
	}
	gemm(ks, aT, bT, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// checkSgemm panics, in gonum's order and with gonum's messages, if the arguments of
// Sgemm are invalid. It returns whether A and B are transposed.
func checkSgemm(tA, tB blas.Transpose, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) (aT, bT bool) {
	aT = transposed(tA)
	bT = transposed(tB)
	switch {
	case m < 0:
		panic(mLT0)
	case n < 0:
		panic(nLT0)
	case k < 0:
		panic(kLT0)
	case aT && lda < max(1, m), !aT && lda < max(1, k):
		panic(badLdA)
	case bT && ldb < max(1, k), !bT && ldb < max(1, n):
		panic(badLdB)
	case ldc < max(1, n):
		panic(badLdC)
	case m == 0 || n == 0:
		return aT, bT
	case aT && len(a) < (k-1)*lda+m, !aT && len(a) < (m-1)*lda+k:
		panic(shortA)
	case bT && len(b) < (n-1)*ldb+k, !bT && len(b) < (k-1)*ldb+n:
		panic(shortB)
	case len(c) < (m-1)*ldc+n:
		panic(shortC)
	}
	return aT, bT
}

// transposed reports whether t asks for a transpose. It panics if t is not a
// transpose value; checkSgemm calls it for tA before tB, as gonum checks them.
func transposed(t blas.Transpose) bool {
	switch t {
	case blas.NoTrans:
		return false
	case blas.Trans, blas.ConjTrans:
		return true
	}
	panic(badTranspose)
}

// scale sets the m×n matrix C to beta*C, or to zero without reading it when beta is 0.
func scale(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}
