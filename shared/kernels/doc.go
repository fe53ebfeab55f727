// Package kernels provides QFLARE's single-precision matrix multiply (Sgemm) for
// WebAssembly, as a gonum BLAS implementation.
//
// gonum's fast Sgemm is amd64 assembly; in a browser (GOOS=js GOARCH=wasm) gonum falls
// back to pure Go built on axpy and dot, which is several times slower than a blocked
// kernel. [Implementation] embeds gonum's implementation, so every BLAS routine works,
// and overrides Sgemm with a cache-blocked GEMM: blocks of B are packed into contiguous
// panels, and a register-blocked micro-kernel computes one small tile of C at a time
// from a panel of B and rows of A (read in place, or from a transposed copy when A is
// transposed).
//
// When op(A) has few rows (a dense layer's batch), packing all of B costs as much as the
// product itself, so B is not packed: a B that is not transposed is read in place by
// the same tiles, and for C = op(A)·Bᵀ each value of C is computed as the dot product
// of a row of op(A) and a row of B, both contiguous. The kernels say up to which m (see
// smallM and dotM in gemm.go); the limits were measured in node 20.
//
// # Kernels
//
// Two micro-kernels exist, chosen when the program is built; [Name] says which one runs:
//
//   - "qflare-simd128": 4×8 tiles and 2×4 blocks of dot products with 128-bit vectors
//     (simd/archsimd.Float32x4, which the compiler turns into wasm SIMD128). It is
//     built only by Go 1.27 or later with GOEXPERIMENT=simd for GOARCH=wasm (build
//     constraint goexperiment.simd && wasm), for example GOTOOLCHAIN=go1.27.3
//     GOEXPERIMENT=simd GOOS=js GOARCH=wasm go build. Such a module uses SIMD128
//     instructions and does not load where the engine lacks them.
//   - "qflare-scalar": 2×4 tiles and 2×4 blocks of dot products in plain Go, used by
//     every other build.
//
// # Plugging in
//
// Importing this package in a js/wasm program makes Implementation the blas32
// implementation (blas32.Use runs in an init function of a js/wasm-only file), so
// blas32.Gemm and everything built on it use it. Native builds keep gonum's default,
// whose assembly and goroutine parallelism are faster there; they can still call
// Implementation directly.
//
// # Numerics
//
// Products are accumulated in float32, in an order that differs from gonum's (and, for
// the dot products, in four partial sums per k block), so results agree with gonum to
// rounding, not bit for bit. beta == 0 overwrites C without
// reading it (NaN in C does not propagate); alpha == 0 or k == 0 only scales C, and then
// A and B are not read, as reference BLAS says (gonum v0.17.0 reads them unless beta is
// 1, so there NaN in A or B makes C NaN even with alpha == 0).
//
// # Concurrency
//
// Implementation is safe for concurrent use: each call takes its packing buffers from
// a small pool shared by the package and returns them when it is done, so Sgemm does not
// allocate once the pool is warm.
package kernels
