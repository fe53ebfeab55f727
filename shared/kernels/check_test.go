package kernels

import (
	"fmt"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// TestSgemmPanics checks that invalid arguments panic with gonum's message, in gonum's
// order, and that the quick returns of gonum do not panic.
func TestSgemmPanics(t *testing.T) {
	s := make([]float32, 100)
	const n, t_, x = blas.NoTrans, blas.Trans, blas.Transpose('X')
	for _, tc := range []struct {
		tA, tB        blas.Transpose
		m, n, k       int
		a, b, c       []float32
		lda, ldb, ldc int
		want          string
	}{
		{x, n, 2, 2, 2, s, s, s, 2, 2, 2, badTranspose},
		{n, x, 2, 2, 2, s, s, s, 2, 2, 2, badTranspose},
		{x, n, -1, 2, 2, s, s, s, 2, 2, 2, badTranspose},
		{n, n, -1, 2, 2, s, s, s, 2, 2, 2, mLT0},
		{n, n, 2, -1, 2, s, s, s, 2, 2, 2, nLT0},
		{n, n, 2, 2, -1, s, s, s, 2, 2, 2, kLT0},
		{n, n, 2, 2, 3, s, s, s, 2, 2, 2, badLdA},
		{t_, n, 3, 2, 2, s, s, s, 2, 2, 2, badLdA},
		{n, n, 2, 3, 2, s, s, s, 2, 2, 3, badLdB},
		{n, t_, 2, 2, 3, s, s, s, 3, 2, 2, badLdB},
		{n, n, 2, 3, 2, s, s, s, 2, 3, 2, badLdC},
		{n, n, 0, 0, 0, s, s, s, 0, 1, 1, badLdA},
		{n, n, 0, 3, 2, s, s, s, 2, 3, 2, badLdC},
		{n, n, 3, 2, 2, s[:5], s, s, 2, 2, 2, shortA},
		{t_, n, 3, 2, 2, s, s, s, 3, 2, 2, ""},
		{t_, n, 3, 2, 2, s[:5], s, s, 3, 2, 2, shortA},
		{n, n, 2, 2, 3, s, s[:5], s, 3, 2, 2, shortB},
		{n, t_, 2, 2, 3, s, s[:5], s, 3, 3, 2, shortB},
		{n, n, 2, 2, 2, s, s, s[:3], 2, 2, 2, shortC},
		{n, n, 0, 2, 2, nil, nil, nil, 2, 2, 2, ""},
		{n, n, 2, 0, 2, nil, nil, nil, 2, 1, 1, ""},
		{n, n, 2, 2, 0, s[:1], nil, s, 1, 2, 2, ""},
		{n, n, 2, 2, 2, s, s, s, 2, 2, 2, ""},
	} {
		call := func(impl sgemmer) func() {
			return func() {
				impl.Sgemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, 1, tc.a, tc.lda, tc.b, tc.ldb, 0.5, tc.c, tc.ldc)
			}
		}
		name := fmt.Sprintf("Sgemm(%c, %c, m=%d, n=%d, k=%d, len=%d/%d/%d, ld=%d/%d/%d)",
			tc.tA, tc.tB, tc.m, tc.n, tc.k, len(tc.a), len(tc.b), len(tc.c), tc.lda, tc.ldb, tc.ldc)
		if got := panicMessage(call(gonum.Implementation{})); got != tc.want {
			t.Errorf("gonum %s panicked with %q; want %q (the table is wrong)", name, got, tc.want)
		}
		for _, ks := range available {
			if got := panicMessage(call(withKernel{ks})); got != tc.want {
				t.Errorf("%s %s panicked with %q; want %q", ks.name, name, got, tc.want)
			}
		}
	}
}

// panicMessage returns the string that f panics with, or "" if it does not panic.
func panicMessage(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

// TestSgemmAllocs checks that Sgemm does not allocate once its buffers are warm.
func TestSgemmAllocs(t *testing.T) {
	for _, sh := range []shape{
		{"edges", blas.NoTrans, blas.Trans, 13, 11, 300},
		{"blocks", blas.Trans, blas.NoTrans, mcMax + 5, 70, kcMax + 9},
		{"wide", blas.NoTrans, blas.NoTrans, 3, ncMax + 9, 17},
		{"in place", blas.Trans, blas.NoTrans, 7, 13, kcMax + 9},
		{"dot", blas.Trans, blas.Trans, 5, 11, dotKcMax + 9},
	} {
		a, b, c := sh.operands()
		for _, ks := range available {
			f := func() {
				sgemm(ks, sh.tA, sh.tB, sh.m, sh.n, sh.k, 1, a, sh.lda(), b, sh.ldb(), 0, c, sh.n)
			}
			f()
			if got := testing.AllocsPerRun(5, f); got != 0 {
				t.Errorf("%s: allocations per Sgemm(%s) = %v; want 0", ks.name, sh.name, got)
			}
		}
	}
}

// TestRegistered checks that importing the package makes Implementation the blas32
// implementation in js/wasm programs, and only there.
func TestRegistered(t *testing.T) {
	_, ours := blas32.Implementation().(Implementation)
	want := runtime.GOOS == "js" && runtime.GOARCH == "wasm"
	if ours != want {
		t.Errorf("blas32.Implementation() is %T on %s/%s; want ours: %v", blas32.Implementation(), runtime.GOOS, runtime.GOARCH, want)
	}
}

func TestName(t *testing.T) {
	if got := Name(); got != "qflare-simd128" && got != "qflare-scalar" {
		t.Errorf("Name() = %q; want qflare-simd128 or qflare-scalar", got)
	}
	if got, want := Name(), available[0].name; got != want {
		t.Errorf("Name() = %q; want the first available kernel %q", got, want)
	}
}
