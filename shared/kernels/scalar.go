package kernels

// scalarKernel computes 2×4 tiles and 2×4 blocks of dot products in plain Go. It is the
// kernel of every build without SIMD128, and tests and benchmarks run it in every build.
//
// Its shape fits the Go wasm back end, which has 16 float32 registers (wasm locals): 8
// accumulators, 2 values of A and 4 of B fit, while 3×4 and 4×4 tiles spill
// accumulators to the Go stack in linear memory on every step and ran the GEMM 1.4 to
// 2.6 times slower in node 20. Unrolling the k loop gained nothing. The tile loop walks
// the packed panel by re-slicing and indexes the rows of A with the loop counter, which
// leaves no bounds checks inside it.
//
// The thresholds were measured in node 20 on the dense layers' shapes (n, k of 200 and
// 784): reading B in place ran up to m = 8 about twice as fast as packing it, and as
// fast at m = 16; the dot products ran 10 to 30% faster than packing B up to m = 8, and
// as fast at m = 16, where each value of B is used too few times for the packing to pay.
var scalarKernel = kernel{
	name: "qflare-scalar", mr: 2, nr: 4, tile: scalarTile, rows: scalarRows,
	dmr: 2, dnr: 4, dot: scalarDot,
	smallM: 16, dotM: 8,
}

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
	// The stores are written out here and in scalarRows, not a call of store2x4, which
	// is too large to inline: a call costs as much as a short k loop.
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

// scalarRows is the rows function of scalarKernel. Its loops index B at an offset that
// grows by ldb, which costs one bounds check per step.
func scalarRows(r, kc int, a []float32, lda int, b []float32, ldb int, alpha, beta float32, c []float32, ldc int) {
	if r == 1 {
		scalar1x4(kc, a, b, ldb, alpha, beta, c)
		return
	}
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	a0 := a[:kc]
	a1 := a[lda : lda+kc]
	a1 = a1[:len(a0)] // for bounds-check elimination
	o := 0
	for p := range a0 {
		bp := b[o : o+4 : o+4]
		x0, x1 := a0[p], a1[p]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += x0 * b0
		c01 += x0 * b1
		c02 += x0 * b2
		c03 += x0 * b3
		c10 += x1 * b0
		c11 += x1 * b1
		c12 += x1 * b2
		c13 += x1 * b3
		o += ldb
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

// store2x4 sets the 2×4 tile C (row stride ldc) to alpha*(c00 … c13) + beta*C, or to
// alpha*(c00 … c13) without reading C when beta is 0.
func store2x4(c []float32, ldc int, c00, c01, c02, c03, c10, c11, c12, c13, alpha, beta float32) {
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

// scalar1x4 is scalarRows for one row.
func scalar1x4(kc int, a []float32, b []float32, ldb int, alpha, beta float32, c []float32) {
	var c0, c1, c2, c3 float32
	o := 0
	for _, x := range a[:kc] {
		bp := b[o : o+4 : o+4]
		c0 += x * bp[0]
		c1 += x * bp[1]
		c2 += x * bp[2]
		c3 += x * bp[3]
		o += ldb
	}
	storeRow4(c[:4:4], c0, c1, c2, c3, alpha, beta)
}

// storeRow4 sets the 4 values of row to alpha*(v0, v1, v2, v3) + beta*row, or to
// alpha*(v0, v1, v2, v3) without reading row when beta is 0.
func storeRow4(row []float32, v0, v1, v2, v3, alpha, beta float32) {
	row = row[:4]
	if beta == 0 {
		row[0], row[1], row[2], row[3] = alpha*v0, alpha*v1, alpha*v2, alpha*v3
		return
	}
	row[0] = alpha*v0 + beta*row[0]
	row[1] = alpha*v1 + beta*row[1]
	row[2] = alpha*v2 + beta*row[2]
	row[3] = alpha*v3 + beta*row[3]
}

// scalarDot is the dot function of scalarKernel: 2×4 blocks, and one product at a time
// at the edges.
func scalarDot(r, q, kc int, a []float32, lda int, b []float32, ldb int, alpha, beta float32, c []float32, ldc int) {
	if r < 2 || q < 4 {
		for i := range r {
			for j := range q {
				store(&c[i*ldc+j], scalarDot1(a[i*lda:i*lda+kc], b[j*ldb:j*ldb+kc]), alpha, beta)
			}
		}
		return
	}
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	a0 := a[:kc]
	a1 := a[lda : lda+kc][:len(a0)]
	b0 := b[:kc][:len(a0)]
	b1 := b[ldb : ldb+kc][:len(a0)]
	b2 := b[2*ldb : 2*ldb+kc][:len(a0)]
	b3 := b[3*ldb : 3*ldb+kc][:len(a0)]
	for p, x0 := range a0 {
		x1 := a1[p]
		y0, y1, y2, y3 := b0[p], b1[p], b2[p], b3[p]
		c00 += x0 * y0
		c01 += x0 * y1
		c02 += x0 * y2
		c03 += x0 * y3
		c10 += x1 * y0
		c11 += x1 * y1
		c12 += x1 * y2
		c13 += x1 * y3
	}
	store2x4(c, ldc, c00, c01, c02, c03, c10, c11, c12, c13, alpha, beta)
}

// scalarDot1 returns the dot product of x and y[:len(x)], summed in two halves (even
// and odd p) to shorten the chain of dependent adds.
func scalarDot1(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1 float32
	p := 0
	for ; p+2 <= len(x); p += 2 {
		s0 += x[p] * y[p]
		s1 += x[p+1] * y[p+1]
	}
	if p < len(x) {
		s0 += x[p] * y[p]
	}
	return s0 + s1
}
