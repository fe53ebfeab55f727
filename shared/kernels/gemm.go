package kernels

// Cache blocking. A kc×nr panel of packed B (8 KiB with kc = 256 and nr = 8) stays in
// L1 while the micro-kernel walks an mc×kc block of A (128 KiB) held in L2; the kc×nc
// block of packed B (1 MiB) is reused for every mc-row block of A. These are upper
// bounds: blocks are split evenly (k = 300 runs as two blocks of 150, not 256 and 44).
const (
	kcMax = 256
	mcMax = 128
	ncMax = 1024
)

// kernel is a register-blocked micro-kernel and the tile shape it computes.
type kernel struct {
	name   string
	mr, nr int // tile rows and columns
	// tile sets the mr×nr tile C (row stride ldc) to alpha*A*Bp + beta*C, or to
	// alpha*A*Bp without reading C when beta is 0. A is mr×kc, row-major with row
	// stride lda; Bp is a kc×nr panel of B packed row by row (see pack.go).
	tile func(kc int, a []float32, lda int, b []float32, alpha, beta float32, c []float32, ldc int)
}

// gemm computes C = alpha*op(A)*op(B) + beta*C for valid, non-empty arguments with
// alpha != 0 and k > 0, using ks for the tiles.
func gemm(ks *kernel, aT, bT bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	s := getScratch()
	nc := split(n, ncMax, ks.nr)
	kc := split(k, kcMax, 1)
	mc := split(m, mcMax, ks.mr)
	for j0 := 0; j0 < n; j0 += nc {
		nb := min(nc, n-j0)
		for p0 := 0; p0 < k; p0 += kc {
			kb := min(kc, k-p0)
			bp := s.packB(ks.nr, bT, b, ldb, p0, kb, j0, nb)
			bet := beta
			if p0 > 0 {
				bet = 1
			}
			for i0 := 0; i0 < m; i0 += mc {
				mb := min(mc, m-i0)
				// The kernel reads A by rows: op(A) as it is when A is not transposed,
				// else a transposed copy.
				if aT {
					at := s.transposeA(a, lda, i0, mb, p0, kb)
					s.block(ks, mb, nb, kb, alpha, at, kb, bp, bet, c[i0*ldc+j0:], ldc)
				} else {
					s.block(ks, mb, nb, kb, alpha, a[i0*lda+p0:], lda, bp, bet, c[i0*ldc+j0:], ldc)
				}
			}
		}
	}
	putScratch(s)
}

// split returns the block size for a dimension of length n cut into the fewest blocks
// of at most limit, as even as the multiple q allows.
func split(n, limit, q int) int {
	blocks := (n + limit - 1) / limit
	size := (n + blocks - 1) / blocks
	return (size + q - 1) / q * q
}

// block updates the m×n block C with alpha*A*Bp + beta*C tile by tile, where A is
// m×kc with row stride lda and Bp is packed with zero padding up to whole tiles. Tiles
// cut by the bottom of C read their rows of A from a copy padded with zeros; tiles cut
// by either edge are computed into a scratch tile and then merged into C.
func (s *scratch) block(ks *kernel, m, n, kc int, alpha float32, a []float32, lda int, bp []float32, beta float32, c []float32, ldc int) {
	mr, nr := ks.mr, ks.nr
	tile := grow(&s.tile, mr*nr)
	full := m / mr * mr
	var edge []float32
	if full < m {
		edge = s.edgeRows(mr, a[full*lda:], lda, m-full, kc)
	}
	for j := 0; j < n; j += nr {
		bj := bp[j*kc:]
		for i := 0; i < m; i += mr {
			ci := c[i*ldc+j:]
			switch {
			case i < full && j+nr <= n:
				ks.tile(kc, a[i*lda:], lda, bj, alpha, beta, ci, ldc)
			case i < full:
				ks.tile(kc, a[i*lda:], lda, bj, 1, 0, tile, nr)
				merge(mr, n-j, alpha, tile, nr, beta, ci, ldc)
			default:
				ks.tile(kc, edge, kc, bj, 1, 0, tile, nr)
				merge(m-i, min(nr, n-j), alpha, tile, nr, beta, ci, ldc)
			}
		}
	}
}

// merge sets the m×n matrix C to alpha*T + beta*C, or to alpha*T when beta is 0.
func merge(m, n int, alpha float32, t []float32, ldt int, beta float32, c []float32, ldc int) {
	for i := range m {
		ti := t[i*ldt : i*ldt+n]
		ci := c[i*ldc : i*ldc+n]
		for j, v := range ti {
			if beta == 0 {
				ci[j] = alpha * v
			} else {
				ci[j] = alpha*v + beta*ci[j]
			}
		}
	}
}
