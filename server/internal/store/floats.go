package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// EncodeFloat32s appends w to dst as little-endian IEEE 754 float32s (the
// CodecFloat32 encoding, four bytes each) and returns the extended slice.
func EncodeFloat32s(dst []byte, w []float32) []byte {
	dst = slices.Grow(dst, 4*len(w))
	for _, v := range w {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
	}
	return dst
}

// DecodeFloat32s decodes n little-endian float32s from b into a new slice.
// b must hold exactly 4*n bytes.
func DecodeFloat32s(b []byte, n int) ([]float32, error) {
	if n < 0 || n > len(b)/4 || len(b) != 4*n {
		return nil, fmt.Errorf("store: %d bytes of float32 weights; want %d for %d params", len(b), 4*max(n, 0), n)
	}
	w := make([]float32, n)
	for i := range w {
		w[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return w, nil
}
