package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// f32s appends float32 values little-endian.
func f32s(b []byte, v ...float32) []byte {
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

// u16s appends uint16 values little-endian.
func u16s(b []byte, v ...uint16) []byte {
	for _, h := range v {
		b = binary.LittleEndian.AppendUint16(b, h)
	}
	return b
}

// uvs appends uvarints.
func uvs(b []byte, v ...uint64) []byte {
	for _, x := range v {
		b = binary.AppendUvarint(b, x)
	}
	return b
}

// zst compresses b with the package's encoder.
func zst(b []byte) []byte { return appendZstd(nil, b, 3) }

func TestDecodeHostile(t *testing.T) {
	vec4 := [][]int{{4}}
	rows := [][]int{{2, 2}}
	huge := float32(math.MaxFloat32)
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name, pipeline string
		shapes         [][]int
		ref            []float32
		payload        []byte
		lim            Limits
		want           error
		contains       string
	}{
		{"float32 ok", "float32", vec4, nil, f32s(nil, 1, 2, 3, 4), Limits{}, nil, ""},
		{"float32 truncated", "float32", vec4, nil, f32s(nil, 1, 2, 3, 4)[:15], Limits{}, ErrMalformed, "truncated"},
		{"float32 trailing", "float32", vec4, nil, append(f32s(nil, 1, 2, 3, 4), 0), Limits{}, ErrMalformed, "1 trailing bytes"},
		{"float32 empty", "float32", vec4, nil, nil, Limits{}, ErrMalformed, "truncated"},
		{"float32 NaN", "float32", vec4, nil, f32s(nil, 1, 2, nan, 4), Limits{}, ErrNotFinite, "index 2"},
		{"float32 Inf", "float32+shuffle", vec4, nil, shuffled(f32s(nil, 1, float32(math.Inf(-1)), 3, 4), 4), Limits{}, ErrNotFinite, "index 1"},
		{"float16 Inf", "float16", vec4, nil, u16s(nil, 0x3c00, 0x7c00, 0, 0), Limits{}, ErrNotFinite, "index 1"},
		{"float16 NaN", "float16", vec4, nil, u16s(nil, 0, 0, 0, 0x7e00), Limits{}, ErrNotFinite, "index 3"},
		{"bfloat16 NaN", "bfloat16", vec4, nil, u16s(nil, 0x7fc0, 0, 0, 0), Limits{}, ErrNotFinite, "index 0"},
		{"float16 truncated", "float16", vec4, nil, u16s(nil, 1, 2, 3), Limits{}, ErrMalformed, "truncated"},
		{"int8 ok", "int8", vec4, nil, append(f32s(nil, 0.5), 1, 2, 0xff, 127), Limits{}, nil, ""},
		{"int8 NaN scale", "int8", vec4, nil, append(f32s(nil, nan), 1, 2, 3, 4), Limits{}, ErrMalformed, "scale 0 is NaN"},
		{"int8 Inf scale", "int8", vec4, nil, append(f32s(nil, float32(math.Inf(1))), 1, 2, 3, 4), Limits{}, ErrMalformed, "scale 0"},
		{"int8 negative scale", "int8", vec4, nil, append(f32s(nil, -1), 1, 2, 3, 4), Limits{}, ErrMalformed, "non-negative"},
		{"int8 -128", "int8", vec4, nil, append(f32s(nil, 1), 1, 0x80, 3, 4), Limits{}, ErrMalformed, "-128 at index 1"},
		{"int8 overflowing value", "int8", vec4, nil, append(f32s(nil, huge), 1, 0, 0, 127), Limits{}, ErrNotFinite, "index 3"},
		{"int8 scales truncated", "int8", vec4, nil, []byte{0, 0, 0}, Limits{}, ErrMalformed, "inside its 1 int8 scales"},
		{"int8 values truncated", "int8", vec4, nil, append(f32s(nil, 1), 1, 2, 3), Limits{}, ErrMalformed, "truncated"},
		{"int8:row one scale short", "int8:row", rows, nil, append(f32s(nil, 1), 1, 2, 3, 4), Limits{}, ErrMalformed, "truncated"},
		{"int8:row second scale NaN", "int8:row", rows, nil, append(f32s(nil, 1, nan), 1, 2, 3, 4), Limits{}, ErrMalformed, "scale 1"},
		{"topk ok", "topk:0.5+float32", vec4, nil, f32s(uvs(nil, 2, 1, 2), 5, 6), Limits{}, nil, ""},
		{"topk count too big", "topk:0.5+float32", vec4, nil, f32s(uvs(nil, 3, 0, 1, 1), 5, 6, 7), Limits{}, ErrMalformed, "count 3; want 2"},
		{"topk huge count", "topk:0.5+float32", vec4, nil, uvs(nil, 1<<62), Limits{}, ErrMalformed, "count 4611686018427387904"},
		{"topk count overflow", "topk:0.5+float32", vec4, nil, bytes.Repeat([]byte{0xff}, 11), Limits{}, ErrMalformed, "bad top-k count"},
		{"topk repeated index", "topk:0.5+float32", vec4, nil, f32s(uvs(nil, 2, 1, 0), 5, 6), Limits{}, ErrMalformed, "strictly increasing"},
		{"topk index out of range", "topk:0.5+float32", vec4, nil, f32s(uvs(nil, 2, 4, 1), 5, 6), Limits{}, ErrMalformed, "out of range"},
		{"topk sum out of range", "topk:0.5+float32", vec4, nil, f32s(uvs(nil, 2, 3, 1), 5, 6), Limits{}, ErrMalformed, "index 1 is out of range"},
		{"topk huge gap", "topk:0.5+float32", vec4, nil, f32s(uvs(nil, 2, 1, 1<<63), 5, 6), Limits{}, ErrMalformed, "out of range"},
		{"topk non-minimal uvarint", "topk:0.5+float32", vec4, nil, f32s([]byte{2, 0x81, 0x00, 1}, 5, 6), Limits{}, ErrMalformed, "bad top-k index 0"},
		{"topk truncated indices", "topk:0.5+float32", vec4, nil, uvs(nil, 2, 1), Limits{}, ErrMalformed, "bad top-k index 1"},
		{"topk missing values", "topk:0.5+float32", vec4, nil, f32s(uvs(nil, 2, 1, 1), 5), Limits{}, ErrMalformed, "truncated"},
		{"delta overflow", "delta+float32", vec4, []float32{0, 0, huge, 0}, f32s(nil, 0, 0, huge, 0), Limits{}, ErrNotFinite, "index 2"},
		{"delta ref length", "delta+float32", vec4, []float32{1, 2, 3}, f32s(nil, 1, 2, 3, 4), Limits{}, ErrShape, "reference has 3"},
		{"bad shapes", "float32", [][]int{{4, 0}}, nil, f32s(nil, 1, 2, 3, 4), Limits{}, ErrShape, "dimension 0"},
		{"no shapes", "float32", nil, nil, f32s(nil, 1, 2, 3, 4), Limits{}, ErrShape, "no tensor shapes"},
		{"too many params", "float32", vec4, nil, f32s(nil, 1, 2, 3, 4), Limits{MaxParams: 3}, ErrTooLarge, "4 parameters exceed"},
		{"decoded bytes limit", "float32+zstd", vec4, nil, zst(f32s(nil, 1, 2, 3, 4)), Limits{MaxDecodedBytes: 15}, ErrTooLarge, "exceed"},
		{"zstd ok", "float32+zstd", vec4, nil, zst(f32s(nil, 1, 2, 3, 4)), Limits{}, nil, ""},
		{"zstd garbage", "float32+zstd", vec4, nil, []byte("definitely not zstd"), Limits{}, ErrMalformed, "zstd frame header"},
		{"zstd empty", "float32+zstd", vec4, nil, nil, Limits{}, ErrMalformed, "zstd frame header"},
		{"zstd short content", "float32+zstd", vec4, nil, zst(f32s(nil, 1, 2, 3)), Limits{}, ErrMalformed, "truncated"},
		{"zstd trailing content", "float32+zstd", vec4, nil, zst(append(f32s(nil, 1, 2, 3, 4), 9)), Limits{}, ErrTooLarge, "declares 17 bytes; limit 16"},
		{"zstd two frames", "float32+zstd", vec4, nil, append(zst(f32s(nil, 1, 2, 3, 4)), zst([]byte{1})...), Limits{}, ErrMalformed, "more than one frame"},
		{"zstd trailing garbage", "float32+zstd", vec4, nil, append(zst(f32s(nil, 1, 2, 3, 4)), 0, 0, 0), Limits{}, ErrMalformed, "zstd"},
		{"zstd skippable", "float32+zstd", vec4, nil, append([]byte{0x50, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, 0}, zst(f32s(nil, 1, 2, 3, 4))...), Limits{}, ErrMalformed, "skippable"},
		{"zstd without content size", "float32+zstd", vec4, nil, streamed(t, f32s(nil, 1, 2, 3, 4)), Limits{}, ErrMalformed, "content size"},
		{"zstd corrupt block", "float32+zstd", vec4, nil, corrupt(zst(bytes.Repeat([]byte("abcdefgh"), 100))), Limits{}, nil, "any error"},
		{"zstd NaN inside", "float32+zstd", vec4, nil, zst(f32s(nil, 1, nan, 3, 4)), Limits{}, ErrNotFinite, "index 1"},
	} {
		p := mustParse(t, tc.pipeline)
		got, err := Decode(p, tc.payload, tc.shapes, tc.ref, nil, tc.lim)
		switch {
		case tc.contains == "":
			if err != nil {
				t.Errorf("%s: Decode(%q) = %v; want success", tc.name, tc.pipeline, err)
			}
		case tc.want == nil:
			if err == nil {
				t.Errorf("%s: Decode(%q) = %v; want an error", tc.name, tc.pipeline, got)
			}
		case !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.contains):
			t.Errorf("%s: Decode(%q) = %v; want %v containing %q", tc.name, tc.pipeline, err, tc.want, tc.contains)
		}
	}
}

func TestDecodeHostileValues(t *testing.T) {
	for _, tc := range []struct {
		name, pipeline string
		payload        []byte
		want           []float32
	}{
		{"int8", "int8", append(f32s(nil, 0.5), 1, 2, 0xff, 127), []float32{0.5, 1, -0.5, 63.5}},
		{"topk", "topk:0.5+float32", f32s(uvs(nil, 2, 1, 2), 5, 6), []float32{0, 5, 0, 6}},
		{"topk first index 0", "topk:0.5+float16", u16s(uvs(nil, 2, 0, 3), 0x3c00, 0xc000), []float32{1, 0, 0, -2}},
	} {
		got, err := Decode(mustParse(t, tc.pipeline), tc.payload, [][]int{{4}}, nil, nil, Limits{})
		if err != nil || !equalBits(got, tc.want) {
			t.Errorf("%s: Decode(%q) = %v, %v; want %v", tc.name, tc.pipeline, got, err, tc.want)
		}
	}
}

// shuffled byte-shuffles values of width w.
func shuffled(b []byte, w int) []byte {
	out := make([]byte, len(b))
	shuffleBytes(out, b, w)
	return out
}

// streamed compresses b with a streaming writer, which leaves the content
// size out of the frame header.
func streamed(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// corrupt flips bytes in the middle of a zstd frame.
func corrupt(b []byte) []byte {
	b = append([]byte(nil), b...)
	for i := len(b) / 2; i < len(b)/2+4 && i < len(b); i++ {
		b[i] ^= 0x5a
	}
	return b
}

func TestDecodeTruncations(t *testing.T) {
	x := normalVec(testN, 0, 1, 3)
	ref := normalVec(testN, 0, 1, 4)
	for _, s := range []string{"float32", "float16+shuffle", "int8:row", "delta+topk:0.2+int8+zstd", "topk:0.3+bfloat16+shuffle", "int8+zstd:19"} {
		p := mustParse(t, s)
		b := encodeOnce(t, s, testShapes, x, ref, 1)
		for cut := range len(b) {
			if _, err := Decode(p, b[:cut], testShapes, ref, nil, Limits{}); err == nil {
				t.Errorf("Decode(%q) of %d of %d bytes succeeded; want an error", s, cut, len(b))
			}
		}
		if _, err := Decode(p, append(b[:len(b):len(b)], 0), testShapes, ref, nil, Limits{}); err == nil {
			t.Errorf("Decode(%q) with a trailing byte succeeded; want an error", s)
		}
	}
}

func TestZstdBomb(t *testing.T) {
	// 4 MiB of zeros compress to a few hundred bytes; the shapes allow 16.
	bomb := zst(make([]byte, 4<<20))
	lying := append([]byte(nil), bomb...)
	var h zstd.Header
	if err := h.Decode(lying); err != nil || !h.SingleSegment || h.FrameContentSize != 4<<20 {
		t.Fatalf("zstd.Header.Decode(bomb) = %+v, %v; want a single segment of 4 MiB", h, err)
	}
	// Make the frame claim 16 bytes: the 4-byte content size follows the
	// 4-byte magic and the descriptor byte.
	binary.LittleEndian.PutUint32(lying[5:], 16)
	p := mustParse(t, "float32+zstd")
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"declared", bomb},
		{"lying content size", lying},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Logf("payload %d bytes", len(tc.payload))
			var err error
			n := allocated(func() {
				_, err = Decode(p, tc.payload, [][]int{{4}}, nil, nil, Limits{})
			})
			t.Logf("Decode: %v", err)
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("Decode(bomb) = %v; want ErrTooLarge", err)
			}
			if n > 64<<10 {
				t.Errorf("Decode(bomb) allocated %d bytes; want < 64 KiB", n)
			}
		})
	}
}
