//go:build goexperiment.simd && wasm

package kernels

import "simd/archsimd"

// active is the kernel that Implementation uses: with SIMD128, the vector one.
var active = &simd128Kernel

// available lists every kernel of this build, the active one first.
var available = []*kernel{&simd128Kernel, &scalarKernel}

// simd128Kernel computes 4×8 tiles with 128-bit vectors: 8 vector accumulators (4 rows
// of two Float32x4), two vectors of B and one broadcast value of A, 11 of the 16 vector
// registers of the Go wasm back end. In node 20, 6×8 tiles (12 accumulators) ran the
// GEMM no faster and 4×4 tiles (4 accumulators, bound by the latency of the adds) ran a
// micro-benchmark at a third of the speed. wasm SIMD128 has no fused multiply-add
// (archsimd's MulAdd is a Mul and an Add there), so each step is a Mul and an Add.
// Two steps per iteration of the k loop ran the dense layers' GEMMs 10 to 15% faster
// than one; four, no faster than two.
//
// Its dot products run 2×4 at a time, four values of p per step: 8 vector accumulators,
// one vector of each of the 2 rows of A and of the 4 rows of B; each accumulator's
// four lanes are added up at the end.
//
// The thresholds were measured in node 20 on the dense layers' shapes (n, k of 200 and
// 784): reading B in place ran 1.2 to 4 times as fast as packing it up to m = 16 and as
// fast at m = 24; the dot products ran 1.4 to 4 times as fast as packing B up to m = 4,
// about as fast at m = 8 and 10, and slower from m = 16 on.
var simd128Kernel = kernel{
	name: "qflare-simd128", mr: 4, nr: 8, tile: simd128Tile, rows: simd128Rows,
	dmr: 2, dnr: 4, dot: simd128Dot,
	smallM: 16, dotM: 8,
}

// simd128Tile is the tile function of simd128Kernel.
func simd128Tile(kc int, a []float32, lda int, b []float32, alpha, beta float32, c []float32, ldc int) {
	var c00, c01, c10, c11, c20, c21, c30, c31 archsimd.Float32x4
	a0 := a[:kc]
	a1 := a[lda : lda+kc]
	a2 := a[2*lda : 2*lda+kc]
	a3 := a[3*lda : 3*lda+kc]
	a1, a2, a3 = a1[:len(a0)], a2[:len(a0)], a3[:len(a0)] // for bounds-check elimination
	b = b[:8*kc]
	p := 0
	for ; p+2 <= len(a0) && len(b) >= 16; p += 2 {
		b0 := archsimd.LoadFloat32x4(b)
		b1 := archsimd.LoadFloat32x4(b[4:])
		x := archsimd.BroadcastFloat32x4(a0[p])
		c00 = c00.Add(x.Mul(b0))
		c01 = c01.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a1[p])
		c10 = c10.Add(x.Mul(b0))
		c11 = c11.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a2[p])
		c20 = c20.Add(x.Mul(b0))
		c21 = c21.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a3[p])
		c30 = c30.Add(x.Mul(b0))
		c31 = c31.Add(x.Mul(b1))
		b0 = archsimd.LoadFloat32x4(b[8:])
		b1 = archsimd.LoadFloat32x4(b[12:])
		x = archsimd.BroadcastFloat32x4(a0[p+1])
		c00 = c00.Add(x.Mul(b0))
		c01 = c01.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a1[p+1])
		c10 = c10.Add(x.Mul(b0))
		c11 = c11.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a2[p+1])
		c20 = c20.Add(x.Mul(b0))
		c21 = c21.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a3[p+1])
		c30 = c30.Add(x.Mul(b0))
		c31 = c31.Add(x.Mul(b1))
		b = b[16:]
	}
	for ; p < len(a0) && len(b) >= 8; p++ {
		b0 := archsimd.LoadFloat32x4(b)
		b1 := archsimd.LoadFloat32x4(b[4:])
		x := archsimd.BroadcastFloat32x4(a0[p])
		c00 = c00.Add(x.Mul(b0))
		c01 = c01.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a1[p])
		c10 = c10.Add(x.Mul(b0))
		c11 = c11.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a2[p])
		c20 = c20.Add(x.Mul(b0))
		c21 = c21.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a3[p])
		c30 = c30.Add(x.Mul(b0))
		c31 = c31.Add(x.Mul(b1))
		b = b[8:]
	}
	va := archsimd.BroadcastFloat32x4(alpha)
	if beta == 0 {
		storeRow(c[0:8], c00.Mul(va), c01.Mul(va))
		storeRow(c[ldc:ldc+8], c10.Mul(va), c11.Mul(va))
		storeRow(c[2*ldc:2*ldc+8], c20.Mul(va), c21.Mul(va))
		storeRow(c[3*ldc:3*ldc+8], c30.Mul(va), c31.Mul(va))
		return
	}
	vb := archsimd.BroadcastFloat32x4(beta)
	updateRow(c[0:8], c00.Mul(va), c01.Mul(va), vb)
	updateRow(c[ldc:ldc+8], c10.Mul(va), c11.Mul(va), vb)
	updateRow(c[2*ldc:2*ldc+8], c20.Mul(va), c21.Mul(va), vb)
	updateRow(c[3*ldc:3*ldc+8], c30.Mul(va), c31.Mul(va), vb)
}

// simd128Rows is the rows function of simd128Kernel.
func simd128Rows(r, kc int, a []float32, lda int, b []float32, ldb int, alpha, beta float32, c []float32, ldc int) {
	switch r {
	case 4:
		simd4x8(kc, a, lda, b, ldb, alpha, beta, c, ldc)
	case 1:
		simd1x8(kc, a, b, ldb, alpha, beta, c)
	case 2:
		simd2x8(kc, a, lda, b, ldb, alpha, beta, c, ldc)
	case 3:
		simd2x8(kc, a, lda, b, ldb, alpha, beta, c, ldc)
		simd1x8(kc, a[2*lda:], b, ldb, alpha, beta, c[2*ldc:])
	default:
		panic("kernels: simd128Rows of more than 4 rows")
	}
}

// simd4x8 computes a tile of 4 rows. It is simd128Tile with B of any row stride,
// indexed at an offset that grows by ldb, which costs one bounds check per step.
func simd4x8(kc int, a []float32, lda int, b []float32, ldb int, alpha, beta float32, c []float32, ldc int) {
	var c00, c01, c10, c11, c20, c21, c30, c31 archsimd.Float32x4
	a0 := a[:kc]
	a1 := a[lda : lda+kc][:len(a0)]
	a2 := a[2*lda : 2*lda+kc][:len(a0)]
	a3 := a[3*lda : 3*lda+kc][:len(a0)]
	o := 0
	for p := range a0 {
		bp := b[o : o+8 : o+8]
		b0 := archsimd.LoadFloat32x4(bp)
		b1 := archsimd.LoadFloat32x4(bp[4:])
		x := archsimd.BroadcastFloat32x4(a0[p])
		c00 = c00.Add(x.Mul(b0))
		c01 = c01.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a1[p])
		c10 = c10.Add(x.Mul(b0))
		c11 = c11.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a2[p])
		c20 = c20.Add(x.Mul(b0))
		c21 = c21.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a3[p])
		c30 = c30.Add(x.Mul(b0))
		c31 = c31.Add(x.Mul(b1))
		o += ldb
	}
	va := archsimd.BroadcastFloat32x4(alpha)
	putRow(c[0:8], c00.Mul(va), c01.Mul(va), beta)
	putRow(c[ldc:ldc+8], c10.Mul(va), c11.Mul(va), beta)
	putRow(c[2*ldc:2*ldc+8], c20.Mul(va), c21.Mul(va), beta)
	putRow(c[3*ldc:3*ldc+8], c30.Mul(va), c31.Mul(va), beta)
}

// simd2x8 computes a tile of 2 rows.
func simd2x8(kc int, a []float32, lda int, b []float32, ldb int, alpha, beta float32, c []float32, ldc int) {
	var c00, c01, c10, c11 archsimd.Float32x4
	a0 := a[:kc]
	a1 := a[lda : lda+kc][:len(a0)]
	o := 0
	for p := range a0 {
		bp := b[o : o+8 : o+8]
		b0 := archsimd.LoadFloat32x4(bp)
		b1 := archsimd.LoadFloat32x4(bp[4:])
		x := archsimd.BroadcastFloat32x4(a0[p])
		c00 = c00.Add(x.Mul(b0))
		c01 = c01.Add(x.Mul(b1))
		x = archsimd.BroadcastFloat32x4(a1[p])
		c10 = c10.Add(x.Mul(b0))
		c11 = c11.Add(x.Mul(b1))
		o += ldb
	}
	va := archsimd.BroadcastFloat32x4(alpha)
	putRow(c[0:8], c00.Mul(va), c01.Mul(va), beta)
	putRow(c[ldc:ldc+8], c10.Mul(va), c11.Mul(va), beta)
}

// simd1x8 computes a tile of 1 row.
func simd1x8(kc int, a []float32, b []float32, ldb int, alpha, beta float32, c []float32) {
	var c0, c1 archsimd.Float32x4
	o := 0
	for _, v := range a[:kc] {
		bp := b[o : o+8 : o+8]
		x := archsimd.BroadcastFloat32x4(v)
		c0 = c0.Add(x.Mul(archsimd.LoadFloat32x4(bp)))
		c1 = c1.Add(x.Mul(archsimd.LoadFloat32x4(bp[4:])))
		o += ldb
	}
	va := archsimd.BroadcastFloat32x4(alpha)
	putRow(c[0:8], c0.Mul(va), c1.Mul(va), beta)
}

// putRow sets the 8 values of row to (x, y) + beta*row, or to (x, y) without reading
// row when beta is 0.
func putRow(row []float32, x, y archsimd.Float32x4, beta float32) {
	if beta == 0 {
		storeRow(row, x, y)
		return
	}
	updateRow(row, x, y, archsimd.BroadcastFloat32x4(beta))
}

// storeRow stores x and y into the 8 values of row.
func storeRow(row []float32, x, y archsimd.Float32x4) {
	row = row[:8]
	x.Store(row[:4])
	y.Store(row[4:])
}

// updateRow sets the 8 values of row to (x, y) + beta*row.
func updateRow(row []float32, x, y, beta archsimd.Float32x4) {
	row = row[:8]
	x.Add(archsimd.LoadFloat32x4(row[:4]).Mul(beta)).Store(row[:4])
	y.Add(archsimd.LoadFloat32x4(row[4:]).Mul(beta)).Store(row[4:])
}

// simd128Dot is the dot function of simd128Kernel.
func simd128Dot(r, q, kc int, a []float32, lda int, b []float32, ldb int, alpha, beta float32, c []float32, ldc int) {
	if r == 2 && q == 4 {
		dot2x4(kc, a, lda, b, ldb, alpha, beta, c, ldc)
		return
	}
	for i := range r {
		j := 0
		for ; j+4 <= q; j += 4 {
			dot1x4(kc, a[i*lda:], b[j*ldb:], ldb, alpha, beta, c[i*ldc+j:])
		}
		for ; j < q; j++ {
			store(&c[i*ldc+j], dot1x1(a[i*lda:i*lda+kc], b[j*ldb:j*ldb+kc]), alpha, beta)
		}
	}
}

// dot2x4 computes the 2×4 dot products of 2 rows of A and 4 rows of B.
func dot2x4(kc int, a []float32, lda int, b []float32, ldb int, alpha, beta float32, c []float32, ldc int) {
	var s00, s01, s02, s03, s10, s11, s12, s13 archsimd.Float32x4
	a0 := a[:kc]
	a1 := a[lda : lda+kc][:len(a0)]
	b0 := b[:kc][:len(a0)]
	b1 := b[ldb : ldb+kc][:len(a0)]
	b2 := b[2*ldb : 2*ldb+kc][:len(a0)]
	b3 := b[3*ldb : 3*ldb+kc][:len(a0)]
	p := 0
	for ; p+4 <= len(a0); p += 4 {
		x0 := archsimd.LoadFloat32x4(a0[p:])
		x1 := archsimd.LoadFloat32x4(a1[p:])
		y := archsimd.LoadFloat32x4(b0[p:])
		s00 = s00.Add(x0.Mul(y))
		s10 = s10.Add(x1.Mul(y))
		y = archsimd.LoadFloat32x4(b1[p:])
		s01 = s01.Add(x0.Mul(y))
		s11 = s11.Add(x1.Mul(y))
		y = archsimd.LoadFloat32x4(b2[p:])
		s02 = s02.Add(x0.Mul(y))
		s12 = s12.Add(x1.Mul(y))
		y = archsimd.LoadFloat32x4(b3[p:])
		s03 = s03.Add(x0.Mul(y))
		s13 = s13.Add(x1.Mul(y))
	}
	c0 := [4]float32{sum4(s00), sum4(s01), sum4(s02), sum4(s03)}
	c1 := [4]float32{sum4(s10), sum4(s11), sum4(s12), sum4(s13)}
	for ; p < len(a0); p++ {
		x0, x1 := a0[p], a1[p]
		c0[0], c1[0] = c0[0]+x0*b0[p], c1[0]+x1*b0[p]
		c0[1], c1[1] = c0[1]+x0*b1[p], c1[1]+x1*b1[p]
		c0[2], c1[2] = c0[2]+x0*b2[p], c1[2]+x1*b2[p]
		c0[3], c1[3] = c0[3]+x0*b3[p], c1[3]+x1*b3[p]
	}
	storeRow4(c[:4:4], c0[0], c0[1], c0[2], c0[3], alpha, beta)
	storeRow4(c[ldc:ldc+4:ldc+4], c1[0], c1[1], c1[2], c1[3], alpha, beta)
}

// dot1x4 computes the 4 dot products of a row of A and 4 rows of B.
func dot1x4(kc int, a []float32, b []float32, ldb int, alpha, beta float32, c []float32) {
	var s0, s1, s2, s3 archsimd.Float32x4
	a0 := a[:kc]
	b0 := b[:kc][:len(a0)]
	b1 := b[ldb : ldb+kc][:len(a0)]
	b2 := b[2*ldb : 2*ldb+kc][:len(a0)]
	b3 := b[3*ldb : 3*ldb+kc][:len(a0)]
	p := 0
	for ; p+4 <= len(a0); p += 4 {
		x := archsimd.LoadFloat32x4(a0[p:])
		s0 = s0.Add(x.Mul(archsimd.LoadFloat32x4(b0[p:])))
		s1 = s1.Add(x.Mul(archsimd.LoadFloat32x4(b1[p:])))
		s2 = s2.Add(x.Mul(archsimd.LoadFloat32x4(b2[p:])))
		s3 = s3.Add(x.Mul(archsimd.LoadFloat32x4(b3[p:])))
	}
	v := [4]float32{sum4(s0), sum4(s1), sum4(s2), sum4(s3)}
	for ; p < len(a0); p++ {
		x := a0[p]
		v[0] += x * b0[p]
		v[1] += x * b1[p]
		v[2] += x * b2[p]
		v[3] += x * b3[p]
	}
	storeRow4(c[:4:4], v[0], v[1], v[2], v[3], alpha, beta)
}

// dot1x1 returns the dot product of x and y[:len(x)].
func dot1x1(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1 archsimd.Float32x4
	p := 0
	for ; p+8 <= len(x); p += 8 {
		s0 = s0.Add(archsimd.LoadFloat32x4(x[p:]).Mul(archsimd.LoadFloat32x4(y[p:])))
		s1 = s1.Add(archsimd.LoadFloat32x4(x[p+4:]).Mul(archsimd.LoadFloat32x4(y[p+4:])))
	}
	v := sum4(s0.Add(s1))
	for ; p < len(x); p++ {
		v += x[p] * y[p]
	}
	return v
}

// sum4 returns the sum of the four lanes of x, added in pairs.
func sum4(x archsimd.Float32x4) float32 {
	return (x.GetElem(0) + x.GetElem(1)) + (x.GetElem(2) + x.GetElem(3))
}
