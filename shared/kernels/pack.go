package kernels

// The micro-kernels read A by rows, straight from the caller's matrix when A is not
// transposed (the copy would cost more than it saves: the kernel loads one value per
// row and step either way), else from a transposed copy of the block.
//
// When m is large, B is packed into panels that the kernel reads front to back: a
// panel of nr columns of op(B) holds, for each p of the block's kc, the nr values of
// row p. Past the last column a panel is padded with zeros. Depending on the transpose, the nr values of one
// p are either contiguous in b (gather: one short run per p) or come from nr rows of b,
// each contiguous over p (interleave). Both have loops for the kernels' widths 4 and 8
// that move a whole run at a time, because copy calls runtime.memmove, which costs more
// than moving a few values, and a loop over a variable width costs a branch per value.

// transposeA copies rows i0..i0+m and columns p0..p0+kc of op(A) = Aᵀ into s.at,
// row-major with row stride kc, and returns the copy. It reads four rows of a at a
// time (four values of p) and writes the four values of each i together.
func (s *scratch) transposeA(a []float32, lda, i0, m, p0, kc int) []float32 {
	dst := grow(&s.at, m*kc)
	row := func(p int) []float32 { return a[(p0+p)*lda+i0 : (p0+p)*lda+i0+m] }
	p := 0
	for ; p+4 <= kc; p += 4 {
		r0, r1, r2, r3 := row(p), row(p+1), row(p+2), row(p+3)
		r1, r2, r3 = r1[:len(r0)], r2[:len(r0)], r3[:len(r0)] // for bounds-check elimination
		for i, v := range r0 {
			t := (*[4]float32)(dst[i*kc+p:])
			t[0], t[1], t[2], t[3] = v, r1[i], r2[i], r3[i]
		}
	}
	for ; p < kc; p++ {
		for i, v := range row(p) {
			dst[i*kc+p] = v
		}
	}
	return dst
}

// packPanel packs the q < nr columns of the kc×q matrix src (row stride ld) into s.panel
// as one panel of width nr, padded with zeros, and returns it. gemm packs the last panel
// of a B it otherwise reads in place with it, because a tile reads nr columns.
func (s *scratch) packPanel(nr, q int, src []float32, ld, kc int) []float32 {
	d := grow(&s.panel, nr*kc)
	gather(d, nr, q, src, ld)
	return d
}

// packB packs rows p0..p0+kc and columns j0..j0+n of op(B) into s.b as panels of nr
// columns and returns the packed block.
func (s *scratch) packB(nr int, bT bool, b []float32, ldb, p0, kc, j0, n int) []float32 {
	panels := (n + nr - 1) / nr
	dst := grow(&s.b, panels*nr*kc)
	for r := range panels {
		d := dst[r*nr*kc : (r+1)*nr*kc]
		j := j0 + r*nr
		cols := min(nr, n-r*nr)
		if bT {
			// op(B)[p][j] = b[j*ldb+p]
			interleave(d, nr, cols, b[j*ldb+p0:], ldb, kc)
		} else {
			// op(B)[p][j] = b[p*ldb+j]
			gather(d, nr, cols, b[p0*ldb+j:], ldb)
		}
	}
	return dst
}

// gather sets panel d of width w from the runs src[p*ld : p*ld+n], one for each of the
// len(d)/w values of p, padding each run with w-n zeros.
//
// The whole-width loops copy value by value: an array assignment between the two
// slices compiles to a call of runtime.memmove, since the compiler cannot rule out
// overlap.
func gather(d []float32, w, n int, src []float32, ld int) {
	kc := len(d) / w
	if n == w {
		switch w {
		case 4:
			for p := range kc {
				s, t := (*[4]float32)(src[p*ld:]), (*[4]float32)(d[4*p:])
				t[0], t[1], t[2], t[3] = s[0], s[1], s[2], s[3]
			}
			return
		case 8:
			for p := range kc {
				s, t := (*[8]float32)(src[p*ld:]), (*[8]float32)(d[8*p:])
				t[0], t[1], t[2], t[3] = s[0], s[1], s[2], s[3]
				t[4], t[5], t[6], t[7] = s[4], s[5], s[6], s[7]
			}
			return
		}
	}
	for p := range kc {
		dp := d[p*w : p*w+w]
		copy(dp, src[p*ld:p*ld+n])
		clear(dp[n:])
	}
}

// interleave sets panel d of width w from the n rows src[q*ld : q*ld+kc]: d[p*w+q] is
// row q's value p, and zero for q >= n.
func interleave(d []float32, w, n int, src []float32, ld, kc int) {
	row := func(q int) []float32 { return src[q*ld : q*ld+kc] }
	if n == w {
		switch w {
		case 4:
			interleave4(d, 4, row(0), row(1), row(2), row(3))
			return
		case 8:
			interleave4(d, 8, row(0), row(1), row(2), row(3))
			interleave4(d[4:], 8, row(4), row(5), row(6), row(7))
			return
		}
	}
	clear(d)
	for q := range n {
		for p, v := range row(q) {
			d[p*w+q] = v
		}
	}
}

// interleave4 sets d[w*p+q] to sq[p] for q = 0..3 and every p of s0.
func interleave4(d []float32, w int, s0, s1, s2, s3 []float32) {
	kc := len(s0)
	s1, s2, s3 = s1[:kc], s2[:kc], s3[:kc]
	for p, v := range s0 {
		t := (*[4]float32)(d[w*p:])
		t[0], t[1], t[2], t[3] = v, s1[p], s2[p], s3[p]
	}
}
