package wire

import (
	"errors"
	"reflect"
	"testing"
)

func FuzzParseMessage(f *testing.F) {
	for _, m := range validMessages() {
		b, err := Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `null`, `{"type":"bye","reason":{"x":[1,2]}}`, `{"type":"progress","loss":"NaN"}`, `{"type":"hello","v":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b, 4096)
		if err != nil {
			if m != nil {
				t.Fatalf("ParseMessage returned %v with error %v", m, err)
			}
			return
		}
		// What parses must marshal and parse back to the same message.
		again, err := Marshal(m)
		if err != nil {
			t.Fatalf("Marshal(ParseMessage(%q)) = %v", b, err)
		}
		m2, err := ParseMessage(again, 1<<20)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("ParseMessage(%s) = %+v, %v; want %+v", again, m2, err, m)
		}
	})
}

func FuzzParseFrame(f *testing.F) {
	x := normalVec(testN, 0, 1, 1)
	for _, s := range []string{"float32", "delta+int8+zstd", "topk:0.1+float16+shuffle+zstd:9"} {
		h := validHeader()
		h.Codec = s
		b, err := AppendFrame(nil, h, encodeOnce(f, s, testShapes, x, x, 1))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("QFL\x02\x00\x00\x00\x00"))
	f.Add([]byte("QFL\x01\xff\xff\xff\xff{}"))
	lim := Limits{MaxFrameBytes: 1 << 16, MaxHeaderBytes: 1024, MaxParams: 1000}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := ParseFrame(b, lim)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrNotFinite) {
				t.Fatalf("ParseFrame error %v matches no sentinel", err)
			}
			return
		}
		// A frame that parses can be rebuilt and parses the same.
		again, err := AppendFrame(nil, &h, payload)
		if err != nil {
			t.Fatalf("AppendFrame(ParseFrame(%q)) = %v", b, err)
		}
		h2, p2, err := ParseFrame(again, lim)
		if err != nil || h2 != h || string(p2) != string(payload) {
			t.Fatalf("ParseFrame(AppendFrame(h)) = %+v, %v; want %+v", h2, err, h)
		}
	})
}

// fuzzPipelines are the pipelines FuzzDecode picks from with its first byte.
var fuzzPipelines = []string{
	"float32", "float32+zstd", "float16+shuffle", "bfloat16+shuffle+zstd:9", "int8", "int8:row+zstd",
	"delta+int8:nearest", "topk:0.2+float32", "delta+topk:0.1+int8+zstd", "topk:0.5+int8:row+shuffle",
}

func FuzzDecode(f *testing.F) {
	x := normalVec(testN, 0, 1, 1)
	ref := normalVec(testN, 0, 1, 2)
	for i, s := range fuzzPipelines {
		f.Add(uint8(i), encodeOnce(f, s, testShapes, x, ref, 1))
	}
	lim := Limits{MaxParams: 1000}
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		p := mustParse(t, fuzzPipelines[int(which)%len(fuzzPipelines)])
		out, err := Decode(p, payload, testShapes, ref, nil, lim)
		if err != nil {
			return
		}
		if len(out) != testN {
			t.Fatalf("Decode returned %d values; want %d", len(out), testN)
		}
		for i, v := range out {
			if v-v != 0 {
				t.Fatalf("Decode returned non-finite %v at %d without error", v, i)
			}
		}
	})
}
