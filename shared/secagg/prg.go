package secagg

import (
	"crypto/sha3"
	"math/rand/v2"
)

// Masks. A mask is a vector of uint32 expanded from a full 32-byte seed
// (never folded to fewer bits) with ChaCha8 (Go's math/rand/v2.ChaCha8, the
// C2SP chacha8rand generator), keyed by SHA3-256 of a label, the mask's
// kind and the seed, so that a self mask and a pair mask never share a
// stream even if their seeds met. Masking is addition in Z_2^32.

// Mask kinds.
const (
	maskSelf = 's' // PRG(b_u): the self mask
	maskPair = 'p' // PRG(s_uv): a pairwise mask
)

var maskLabel = []byte("qflare/secagg/v1/mask")

// maskKey derives the ChaCha8 key of a mask.
func maskKey(kind byte, seed []byte) [32]byte {
	h := sha3.New256()
	h.Write(maskLabel)
	h.Write([]byte{kind})
	h.Write(seed)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// addMask adds (sub false) or subtracts (sub true) the mask of key to dst,
// modulo 2^32: each 64-bit output of the generator gives two values, low
// half first.
func addMask(dst []uint32, key [32]byte, sub bool) {
	g := rand.NewChaCha8(key)
	n := len(dst) &^ 1
	if sub {
		for i := 0; i < n; i += 2 {
			x := g.Uint64()
			dst[i] -= uint32(x)
			dst[i+1] -= uint32(x >> 32)
		}
		if n < len(dst) {
			dst[n] -= uint32(g.Uint64())
		}
		return
	}
	for i := 0; i < n; i += 2 {
		x := g.Uint64()
		dst[i] += uint32(x)
		dst[i+1] += uint32(x >> 32)
	}
	if n < len(dst) {
		dst[n] += uint32(g.Uint64())
	}
}

// Expand writes the mask of seed into dst (for tests and golden digests:
// the protocol only adds and subtracts masks).
func Expand(dst []uint32, seed []byte) {
	clear(dst)
	addMask(dst, maskKey(maskPair, seed), false)
}
