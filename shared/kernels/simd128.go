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
var simd128Kernel = kernel{name: "qflare-simd128", mr: 4, nr: 8, tile: simd128Tile}

// simd128Tile is the tile function of simd128Kernel.
func simd128Tile(kc int, a []float32, lda int, b []float32, alpha, beta float32, c []float32, ldc int) {
	var c00, c01, c10, c11, c20, c21, c30, c31 archsimd.Float32x4
	a0 := a[:kc]
	a1 := a[lda : lda+kc]
	a2 := a[2*lda : 2*lda+kc]
	a3 := a[3*lda : 3*lda+kc]
	a1, a2, a3 = a1[:len(a0)], a2[:len(a0)], a3[:len(a0)] // for bounds-check elimination
	b = b[:8*kc]
	for p := 0; p < len(a0) && len(b) >= 8; p++ {
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
