package wire

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestFloat16Bits(t *testing.T) {
	for _, tc := range []struct {
		f    float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                 // largest half
		{65519, 0x7bff},                 // just below the midpoint to Inf
		{65520, 0x7c00},                 // midpoint: ties to even, which is Inf
		{1e6, 0x7c00},                   // overflow
		{float32(math.Inf(-1)), 0xfc00}, // -Inf
		{0x1p-14, 0x0400},               // smallest normal
		{0x1p-24, 0x0001},               // smallest subnormal
		{0x3ffp-24, 0x03ff},             // largest subnormal
		{0x1p-25, 0x0000},               // half the smallest subnormal: tie to even 0
		{0x1.8p-25, 0x0001},             // above the midpoint
		{0x3p-25, 0x0002},               // 1.5 subnormal steps: tie to even 2
		{0x5p-25, 0x0002},               // 2.5 steps: tie to even 2
		{0x7ffp-25, 0x0400},             // rounds up out of the subnormals
		{1 + 0x1p-11, 0x3c00},           // tie between 0x3c00 and 0x3c01: even
		{1 + 0x3p-11, 0x3c02},           // tie between 0x3c01 and 0x3c02: even
		{1 + 0x1p-11 + 0x1p-20, 0x3c01}, // just above the tie
		{float32(1.0 / 3), 0x3555},      // 0.333251953125
		{-0x1p-30, 0x8000},              // underflow keeps the sign
		{0x1.ffcp15, 0x7bff},            // 65504 spelled in hex
		{2048 + 1, 0x6800},              // integers above 2048 round to even
		{2048 + 3, 0x6802},
		{float32(math.Float32frombits(0x387fe000)), 0x0400}, // largest subnormal + half step: tie goes to even 0x0400
	} {
		if got := f32ToF16(tc.f); got != tc.want {
			t.Errorf("f32ToF16(%v) = %#04x; want %#04x", tc.f, got, tc.want)
		}
	}
	for _, f := range []float32{float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc00000)} {
		h := f32ToF16(f)
		if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
			t.Errorf("f32ToF16(NaN %#08x) = %#04x; want a NaN", math.Float32bits(f), h)
		}
		if g := f16ToF32(h); g == g {
			t.Errorf("f16ToF32(%#04x) = %v; want NaN", h, g)
		}
	}
}

// halfValue computes a half's value from its fields, independently of
// f16ToF32.
func halfValue(h uint16) float64 {
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	v := 0.0
	switch exp {
	case 0:
		v = math.Ldexp(mant, -24)
	case 0x1f:
		if mant != 0 {
			return math.NaN()
		}
		v = math.Inf(1)
	default:
		v = math.Ldexp(1+mant/1024, exp-15)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return v
}

func TestFloat16AllPatterns(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		want := halfValue(h)
		got := f16ToF32(h)
		if math.IsNaN(want) {
			if got == got {
				t.Errorf("f16ToF32(%#04x) = %v; want NaN", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Errorf("f16ToF32(%#04x) = %v; want %v", h, got, want)
		}
		if back := f32ToF16(got); back != h {
			t.Errorf("f32ToF16(f16ToF32(%#04x)) = %#04x", h, back)
		}
	}
}

// refF16 rounds |x| to the nearest half by search, ties to the even
// pattern: an independent reference for f32ToF16.
func refF16(x float32) uint16 {
	a := math.Abs(float64(x))
	var sign uint16
	if math.Signbit(float64(x)) {
		sign = 0x8000
	}
	if a >= 65520 {
		return sign | 0x7c00
	}
	// Patterns 0..0x7bff are increasing in value.
	hi := sort.Search(0x7c00, func(i int) bool { return halfValue(uint16(i)) >= a })
	if hi == 0 || halfValue(uint16(hi)) == a {
		return sign | uint16(hi)
	}
	lo := hi - 1
	dl, dh := a-halfValue(uint16(lo)), halfValue(uint16(hi))-a
	if dl < dh || dl == dh && lo%2 == 0 {
		return sign | uint16(lo)
	}
	return sign | uint16(hi)
}

// refBF16 rounds x to the nearest bfloat16, ties to even, by comparing the
// two candidates exactly in float64.
func refBF16(x float32) uint16 {
	b := math.Float32bits(x)
	lo := b &^ 0xffff
	hi := lo + 0x10000
	a := math.Abs(float64(x))
	dl := a - math.Abs(float64(math.Float32frombits(lo)))
	dh := math.Abs(float64(math.Float32frombits(hi))) - a
	if hi&0x7f800000 == 0x7f800000 && hi&0x7fffff != 0 {
		dh = math.Inf(1) // never round into a NaN pattern
	}
	if dl < dh || dl == dh && (lo>>16)%2 == 0 {
		return uint16(lo >> 16)
	}
	return uint16(hi >> 16)
}

func TestHalfAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		// Random bits in the finite float32 range, with half-relevant
		// exponents drawn often.
		b := r.Uint32()
		if r.IntN(2) == 0 {
			exp := uint32(127 - 27 + r.IntN(45)) // 2^-27 .. 2^17
			b = b&0x807fffff | exp<<23
		}
		f := math.Float32frombits(b)
		if f-f != 0 {
			continue
		}
		if got, want := f32ToF16(f), refF16(f); got != want {
			t.Errorf("f32ToF16(%v [%#08x]) = %#04x; want %#04x", f, b, got, want)
		}
		if got, want := f32ToBF16(f), refBF16(f); got != want {
			t.Errorf("f32ToBF16(%v [%#08x]) = %#04x; want %#04x", f, b, got, want)
		}
	}
}

func TestBFloat16Bits(t *testing.T) {
	for _, tc := range []struct {
		f    float32
		want uint16
	}{
		{0, 0x0000},
		{1, 0x3f80},
		{-2, 0xc000},
		{1 + 0x1p-8, 0x3f80},                       // tie: even
		{1 + 0x3p-8, 0x3f82},                       // tie: even
		{1 + 0x1p-8 + 0x1p-20, 0x3f81},             // above the tie
		{math.MaxFloat32, 0x7f80},                  // rounds to Inf
		{float32(math.Inf(1)), 0x7f80},             //
		{math.Float32frombits(0x00000001), 0x0000}, // tiny subnormal rounds to 0
		{math.Float32frombits(0x00018000), 0x0002}, // subnormal tie: even
		{math.Float32frombits(0x7f7f0000), 0x7f7f}, // largest finite bfloat16
		{float32(math.Copysign(0, -1)), 0x8000},    //
		{math.Float32frombits(0xbf808000), 0xbf80}, // negative tie: even
		{math.Float32frombits(0xbf818000), 0xbf82}, //
		{math.Float32frombits(0x3f80ffff), 0x3f81}, // just below the next tie
		{math.Float32frombits(0x7f7fffff), 0x7f80}, // max float32: Inf
		{math.Float32frombits(0x7f7f7fff), 0x7f7f}, // stays finite
		{math.Float32frombits(0x80000001), 0x8000}, //
		{math.Float32frombits(0x3e2aaaab), 0x3e2b}, // 1/6
		{math.Float32frombits(0x40490fdb), 0x4049}, // pi
		{math.Float32frombits(0x42f6e979), 0x42f7}, // 123.456
	} {
		if got := f32ToBF16(tc.f); got != tc.want {
			t.Errorf("f32ToBF16(%v) = %#04x; want %#04x", tc.f, got, tc.want)
		}
	}
	for _, b := range []uint32{0x7fc00000, 0x7f800001, 0xff800001, 0x7fff0000} {
		h := f32ToBF16(math.Float32frombits(b))
		if g := bf16ToF32(h); g == g {
			t.Errorf("f32ToBF16(NaN %#08x) = %#04x, which is not a NaN", b, h)
		}
	}
	for i := range 1 << 16 {
		h := uint16(i)
		f := bf16ToF32(h)
		if f != f {
			continue
		}
		if back := f32ToBF16(f); back != h {
			t.Errorf("f32ToBF16(bf16ToF32(%#04x)) = %#04x", h, back)
		}
	}
}
