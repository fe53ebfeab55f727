package kernels

// scalarKernel computes 2×4 tiles in plain Go. It is the kernel of every build without
// SIMD128, and tests and benchmarks run it in every build.
//
// Its shape fits the Go wasm back end, which has 16 float32 registers (wasm locals): 8
// accumulators, 2 values of A and 4 of B fit, while 3×4 and 4×4 tiles spill
// accumulators to the Go stack in linear memory on every step and ran the GEMM 1.4 to
// 2.6 times slower in node 20. Unrolling the k loop gained nothing. The loop walks B by
// re-slicing and indexes the rows of A with the loop counter, which leaves no bounds
// checks inside it.
var scalarKernel = kernel{name: "qflare-scalar", mr: 2, nr: 4, tile: scalarTile}

// scalarTile is the tile function of scalarKernel.
func scalarTile(kc int, a []float32, lda int, b []float32, alpha, beta float32, c []float32, ldc int) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	a0 := a[:kc]
	a1 := a[lda : lda+kc]
	b = b[:4*kc]
	for p := 0; p < len(a0) && len(b) >= 4; p++ {
		x0, x1 := a0[p], a1[p]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		c00 += x0 * b0
		c01 += x0 * b1
		c02 += x0 * b2
		c03 += x0 * b3
		c10 += x1 * b0
		c11 += x1 * b1
		c12 += x1 * b2
		c13 += x1 * b3
		b = b[4:]
	}
	r0 := c[:4:4]
	r1 := c[ldc : ldc+4 : ldc+4]
	if beta == 0 {
		r0[0], r0[1], r0[2], r0[3] = alpha*c00, alpha*c01, alpha*c02, alpha*c03
		r1[0], r1[1], r1[2], r1[3] = alpha*c10, alpha*c11, alpha*c12, alpha*c13
		return
	}
	r0[0] = alpha*c00 + beta*r0[0]
	r0[1] = alpha*c01 + beta*r0[1]
	r0[2] = alpha*c02 + beta*r0[2]
	r0[3] = alpha*c03 + beta*r0[3]
	r1[0] = alpha*c10 + beta*r1[0]
	r1[1] = alpha*c11 + beta*r1[1]
	r1[2] = alpha*c12 + beta*r1[2]
	r1[3] = alpha*c13 + beta*r1[3]
}
