package kernels

// Cache blocking. A kc×nr panel of packed B (8 KiB with kc = 256 and nr = 8) stays in
// L1 while the micro-kernel walks an mc×kc block of A (128 KiB) held in L2; the kc×nc
// block of packed B (1 MiB) is reused for every mc-row block of A. These are upper
// bounds: blocks are split evenly (k = 300 runs as two blocks of 150, not 256 and 44).
//
// dotKcMax bounds the k blocks of the dot path (see dotGemm): an m×kc block of A and a
// few rows of B then stay in L1 and L2, and each dot product is reduced and added to C
// once per block.
const (
	kcMax    = 256
	mcMax    = 128
	ncMax    = 1024
	dotKcMax = 512
)

// tileFunc sets the mr×nr tile C (row stride ldc) to alpha*A*Bp + beta*C, or to
// alpha*A*Bp without reading C when beta is 0. A is mr×kc, row-major with row stride
// lda; Bp is a kc×nr panel of B packed row by row (see pack.go).
type tileFunc func(kc int, a []float32, lda int, b []float32, alpha, beta float32, c []float32, ldc int)

// rowsFunc is a tileFunc for a tile of r <= mr rows (A is r×kc, C is r×nr) and B of
// any row stride ldb: a packed panel (ldb = nr) or nr columns of the caller's B.
type rowsFunc func(r, kc int, a []float32, lda int, b []float32, ldb int, alpha, beta float32, c []float32, ldc int)

// dotFunc sets the r×q block C (row stride ldc), r <= dmr and q <= dnr, to
// alpha*A*Bᵀ + beta*C, or to alpha*A*Bᵀ without reading C when beta is 0. A is r×kc
// and B is q×kc, both row-major with row strides lda and ldb: each value of C is the
// dot product of a row of A and a row of B, both contiguous.
type dotFunc func(r, q, kc int, a []float32, lda int, b []float32, ldb int, alpha, beta float32, c []float32, ldc int)

// kernel is a set of micro-kernels, the shapes they compute and when gemm uses them.
type kernel struct {
	name   string
	mr, nr int      // tile rows and columns
	tile   tileFunc // whole tiles from packed B
	rows   rowsFunc // the others: fewer rows, or B read in place

	dmr, dnr int     // largest block of the dot function
	dot      dotFunc // nil if the kernel has none

	// Packing all of B (k×n values) costs too much next to the m×n×k product when m
	// is small. Up to m = smallM, gemm reads a B that is not transposed in place with
	// rows; up to m = dotM, it computes C = A*Bᵀ with dot.
	smallM, dotM int
}

// gemm computes C = alpha*op(A)*op(B) + beta*C for valid, non-empty arguments with
// alpha != 0 and k > 0, using the micro-kernels of ks.
func gemm(ks *kernel, aT, bT bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	s := getScratch()
	if bT && m <= ks.dotM && ks.dot != nil {
		s.dotGemm(ks, aT, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	} else {
		s.blocked(ks, aT, bT, bT || m > ks.smallM, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
	putScratch(s)
}

// blocked is gemm by cache blocks and tiles, with B packed block by block when pack is
// true, else (only when B is not transposed) read in place.
func (s *scratch) blocked(ks *kernel, aT, bT, pack bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	nc := split(n, ncMax, ks.nr)
	kc := split(k, kcMax, 1)
	mc := split(m, mcMax, ks.mr)
	for j0 := 0; j0 < n; j0 += nc {
		nb := min(nc, n-j0)
		for p0 := 0; p0 < k; p0 += kc {
			kb := min(kc, k-p0)
			var bp []float32
			ldp := ldb
			if pack {
				bp, ldp = s.packB(ks.nr, bT, b, ldb, p0, kb, j0, nb), ks.nr
			} else {
				bp = b[p0*ldb+j0:]
			}
			bet := beta
			if p0 > 0 {
				bet = 1
			}
			for i0 := 0; i0 < m; i0 += mc {
				mb := min(mc, m-i0)
				// The kernel reads A by rows: op(A) as it is when A is not transposed,
				// else a transposed copy.
				var ap []float32
				ldap := lda
				if aT {
					ap, ldap = s.transposeA(a, lda, i0, mb, p0, kb), kb
				} else {
					ap = a[i0*lda+p0:]
				}
				s.block(ks, mb, nb, kb, alpha, ap, ldap, bp, ldp, pack, bet, c[i0*ldc+j0:], ldc)
			}
		}
	}
}

// split returns the block size for a dimension of length n cut into the fewest blocks
// of at most limit, as even as the multiple q allows.
func split(n, limit, q int) int {
	blocks := (n + limit - 1) / limit
	size := (n + blocks - 1) / blocks
	return (size + q - 1) / q * q
}

// block updates the m×n block C with alpha*A*B + beta*C tile by tile, where A is m×kc
// with row stride lda. B is kc×n: packed with zero padding up to whole panels when
// packed is true, else the caller's B with row stride ldb, whose last panel, when it is
// cut by the edge of C, is packed here. Tiles cut by the right edge of C are computed
// into a scratch tile and then merged into C; the bottom row of tiles has fewer rows.
func (s *scratch) block(ks *kernel, m, n, kc int, alpha float32, a []float32, lda int, b []float32, ldb int, packed bool, beta float32, c []float32, ldc int) {
	mr, nr := ks.mr, ks.nr
	for j := 0; j < n; j += nr {
		q := min(nr, n-j)
		bj, ldbj := b[j:], ldb
		switch {
		case packed:
			bj = b[j*kc:]
		case q < nr:
			bj, ldbj = s.packPanel(nr, q, b[j:], ldb, kc), nr
		}
		for i := 0; i < m; i += mr {
			r := min(mr, m-i)
			ai, ci := a[i*lda:], c[i*ldc+j:]
			switch {
			case q < nr:
				tile := grow(&s.tile, mr*nr)
				ks.rows(r, kc, ai, lda, bj, ldbj, 1, 0, tile, nr)
				merge(r, q, alpha, tile, nr, beta, ci, ldc)
			case packed && r == mr:
				ks.tile(kc, ai, lda, bj, alpha, beta, ci, ldc)
			default:
				ks.rows(r, kc, ai, lda, bj, ldbj, alpha, beta, ci, ldc)
			}
		}
	}
}

// dotGemm is gemm for a transposed B without packing: each value of C is a dot product
// of a row of op(A) and a row of B. A is read in place, or from a transposed copy of
// each k block when it is transposed. The loops keep a few rows of B in L1 while they
// walk all of op(A), which is small since m <= smallM.
func (s *scratch) dotGemm(ks *kernel, aT bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	kc := split(k, dotKcMax, 4)
	for p0 := 0; p0 < k; p0 += kc {
		kb := min(kc, k-p0)
		var ap []float32
		ldap := lda
		if aT {
			ap, ldap = s.transposeA(a, lda, 0, m, p0, kb), kb
		} else {
			ap = a[p0:]
		}
		bet := beta
		if p0 > 0 {
			bet = 1
		}
		for j := 0; j < n; j += ks.dnr {
			q := min(ks.dnr, n-j)
			bj := b[j*ldb+p0:]
			for i := 0; i < m; i += ks.dmr {
				ks.dot(min(ks.dmr, m-i), q, kb, ap[i*ldap:], ldap, bj, ldb, alpha, bet, c[i*ldc+j:], ldc)
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

// store sets c to alpha*v + beta*c, or to alpha*v without reading c when beta is 0. The
// dot functions store their sums with it.
func store(c *float32, v, alpha, beta float32) {
	if beta == 0 {
		*c = alpha * v
	} else {
		*c = alpha*v + beta**c
	}
}
