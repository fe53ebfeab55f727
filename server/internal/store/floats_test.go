package store

import (
	"bytes"
	"math"
	"testing"
)

func TestFloat32sRoundTrip(t *testing.T) {
	t.Parallel()
	tests := [][]float32{
		nil,
		{1},
		{0, float32(math.Copysign(0, -1)), -1.5, math.MaxFloat32, math.SmallestNonzeroFloat32,
			float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc00001)},
	}
	for _, w := range tests {
		prefix := []byte("hdr")
		b := EncodeFloat32s(prefix, w)
		if !bytes.Equal(b[:3], []byte("hdr")) || len(b) != 3+4*len(w) {
			t.Fatalf("EncodeFloat32s(%q, %d floats) = %d bytes; want the prefix and %d more", "hdr", len(w), len(b), 4*len(w))
		}
		got, err := DecodeFloat32s(b[3:], len(w))
		if err != nil {
			t.Fatalf("DecodeFloat32s(%d floats): %v", len(w), err)
		}
		for i := range w {
			if math.Float32bits(got[i]) != math.Float32bits(w[i]) {
				t.Errorf("DecodeFloat32s[%d] = %#x; want %#x", i, math.Float32bits(got[i]), math.Float32bits(w[i]))
			}
		}
	}
	if b := EncodeFloat32s(nil, []float32{1}); !bytes.Equal(b, []byte{0, 0, 0x80, 0x3f}) {
		t.Errorf("EncodeFloat32s(1) = % x; want little-endian 00 00 80 3f", b)
	}
}

func TestDecodeFloat32sLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		size, n int
	}{
		{7, 2}, {9, 2}, {8, 3}, {0, 1}, {4, -1}, {8, math.MaxInt/4 + 1}, {8, math.MaxInt},
	}
	for _, tt := range tests {
		if w, err := DecodeFloat32s(make([]byte, tt.size), tt.n); err == nil {
			t.Errorf("DecodeFloat32s(%d bytes, %d) = %d floats; want an error", tt.size, tt.n, len(w))
		}
	}
}
