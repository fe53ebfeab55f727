package wire

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func validHeader() *FrameHeader {
	return &FrameHeader{Kind: KindUpdate, Run: "r1", Round: 3, ModelVersion: 3, Codec: "delta+int8+zstd",
		Params: testN, Model: "tiny", Samples: 600, Loss: 0.25, Accuracy: 0.93, TrainMS: 1200, SamplesPerS: 500}
}

func TestFrameRoundTrip(t *testing.T) {
	payload := []byte("123456789") // CRC-32C check value 0xe3069283
	h := validHeader()
	b, err := AppendFrame([]byte("prefix"), h, payload)
	if err != nil {
		t.Fatalf("AppendFrame = %v", err)
	}
	if h.PayloadCRC32 != 0 {
		t.Errorf("AppendFrame modified its header: crc %08x", h.PayloadCRC32)
	}
	if string(b[:6]) != "prefix" || string(b[6:10]) != "QFL\x01" {
		t.Fatalf("AppendFrame = %q...; want prefix, magic and version", b[:10])
	}
	got, gotPayload, err := ParseFrame(b[6:], DefaultLimits())
	if err != nil {
		t.Fatalf("ParseFrame = %v", err)
	}
	want := *h
	want.PayloadCRC32 = 0xe3069283
	if got != want {
		t.Errorf("ParseFrame header = %+v; want %+v", got, want)
	}
	if string(gotPayload) != string(payload) {
		t.Errorf("ParseFrame payload = %q; want %q", gotPayload, payload)
	}
	if p, err := got.Pipeline(); err != nil || p.String() != "delta+int8+zstd" {
		t.Errorf("header.Pipeline() = %v, %v", p, err)
	}
	if n, err := FrameLen(h, payload); err != nil || n != len(b)-6 {
		t.Errorf("FrameLen = %d, %v; want the frame's %d bytes", n, err, len(b)-6)
	}
	bad := *h
	bad.Params = 0
	if _, err := FrameLen(&bad, payload); err == nil {
		t.Error("FrameLen of a header AppendFrame refuses: no error")
	}
}

// frameWith builds a frame from raw parts, for hostile inputs.
func frameWith(magic string, version byte, hdrLen int, hdr, payload string) []byte {
	b := append([]byte(magic), version)
	b = binary.LittleEndian.AppendUint32(b, uint32(hdrLen))
	b = append(b, hdr...)
	return append(b, payload...)
}

func TestParseFrameErrors(t *testing.T) {
	good, _ := AppendFrame(nil, validHeader(), []byte("payload"))
	hdrLen := int(binary.LittleEndian.Uint32(good[4:8]))
	hdr := string(good[8 : 8+hdrLen])
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 1
	small := Limits{MaxFrameBytes: 100}
	withField := func(old, new string) []byte {
		h := strings.Replace(hdr, old, new, 1)
		if h == hdr {
			panic("frameWith: no " + old)
		}
		return frameWith("QFL", 1, len(h), h, "payload")
	}
	for _, tc := range []struct {
		name     string
		in       []byte
		lim      Limits
		want     error
		contains string
	}{
		{"too large (checked first)", append([]byte("XXXX"), make([]byte, 200)...), small, ErrTooLarge, "frame of 204 bytes exceeds limit 100"},
		{"empty", nil, Limits{}, ErrMalformed, "shorter than"},
		{"short", []byte("QFL\x01\x00"), Limits{}, ErrMalformed, "shorter than"},
		{"bad magic", frameWith("QFX", 1, len(hdr), hdr, ""), Limits{}, ErrMalformed, "magic"},
		{"version 2", frameWith("QFL", 2, len(hdr), hdr, ""), Limits{}, ErrVersion, "protocol version 2; this side speaks version 1"},
		{"header too long", frameWith("QFL", 1, 1<<20, hdr, ""), Limits{}, ErrTooLarge, "header of 1048576 bytes exceeds limit 16384"},
		{"header overruns", frameWith("QFL", 1, len(hdr)+100, hdr, ""), Limits{}, ErrMalformed, "overruns"},
		{"empty header", frameWith("QFL", 1, 0, "", "x"), Limits{}, ErrMalformed, "bad frame header"},
		{"header not JSON", frameWith("QFL", 1, 5, "hello", ""), Limits{}, ErrMalformed, "bad frame header"},
		{"header array", frameWith("QFL", 1, 2, "[]", ""), Limits{}, ErrMalformed, "bad frame header"},
		{"unknown header field", withField(`"kind"`, `"extra":1,"kind"`), Limits{}, ErrMalformed, "unknown field"},
		{"header trailing data", frameWith("QFL", 1, len(hdr)+2, hdr+"{}", ""), Limits{}, ErrMalformed, "trailing"},
		{"unknown kind", withField(`"update"`, `"weights"`), Limits{}, ErrMalformed, "frame.kind"},
		{"zero params", withField(`"params":49`, `"params":0`), Limits{}, ErrMalformed, "frame.params = 0"},
		{"negative params", withField(`"params":49`, `"params":-5`), Limits{}, ErrMalformed, "frame.params = -5"},
		{"params over limit", withField(`"params":49`, `"params":50`), Limits{MaxParams: 49}, ErrTooLarge, "frame.params = 50 exceeds limit 49"},
		{"params as string", withField(`"params":49`, `"params":"49"`), Limits{}, ErrMalformed, "bad frame header"},
		{"bad codec", withField(`"delta+int8+zstd"`, `"int8+delta"`), Limits{}, ErrMalformed, "frame.codec"},
		{"model with delta codec", withField(`"update"`, `"model"`), Limits{}, ErrMalformed, "kind model has codec"},
		{"delta kind without delta", withField(`"update","run":"r1","round":3,"model_version":3,"codec":"delta+int8+zstd"`, `"model_delta","run":"r1","round":3,"model_version":3,"codec":"int8+zstd"`), Limits{}, ErrMalformed, "kind model_delta"},
		{"bad run", withField(`"r1"`, `"r 1"`), Limits{}, ErrMalformed, "frame.run"},
		{"infinite loss", withField(`"loss":0.25`, `"loss":1e999`), Limits{}, ErrMalformed, "bad frame header"},
		{"accuracy above 1", withField(`"accuracy":0.93`, `"accuracy":93`), Limits{}, ErrMalformed, "frame.accuracy"},
		{"negative samples", withField(`"samples":600`, `"samples":-1`), Limits{}, ErrMalformed, "frame.samples"},
		{"checksum", flipped, Limits{}, ErrMalformed, "checksum"},
	} {
		_, _, err := ParseFrame(tc.in, tc.lim)
		if err == nil || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("%s: ParseFrame = %v; want %v containing %q", tc.name, err, tc.want, tc.contains)
		}
	}
}

func TestParseFrameChecksBeforeAllocating(t *testing.T) {
	huge := make([]byte, 8<<20)
	copy(huge, "QFL\x01")
	binary.LittleEndian.PutUint32(huge[4:], 1<<30)
	for _, tc := range []struct {
		name string
		lim  Limits
	}{
		{"frame too large", Limits{MaxFrameBytes: 1 << 20}},
		{"header too large", Limits{}},
	} {
		n := allocated(func() { _, _, _ = ParseFrame(huge, tc.lim) })
		if n > 4096 {
			t.Errorf("%s: ParseFrame allocated %d bytes; want only its error", tc.name, n)
		}
	}
}

func TestAppendFrameErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*FrameHeader)
		want error
	}{
		{"no kind", func(h *FrameHeader) { h.Kind = "" }, ErrMalformed},
		{"bad codec", func(h *FrameHeader) { h.Codec = "lz4" }, ErrMalformed},
		{"too many params", func(h *FrameHeader) { h.Params = DefaultMaxParams + 1 }, ErrTooLarge},
		{"NaN loss", func(h *FrameHeader) { h.Loss = nan64() }, ErrNotFinite},
	} {
		h := validHeader()
		tc.edit(h)
		dst := []byte("kept")
		got, err := AppendFrame(dst, h, []byte("p"))
		if !errors.Is(err, tc.want) || string(got) != "kept" {
			t.Errorf("%s: AppendFrame = %q, %v; want dst unchanged and %v", tc.name, got, err, tc.want)
		}
	}
}

func nan64() float64 {
	z := 0.0
	return z / z
}
