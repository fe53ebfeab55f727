package wire

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// updateVectors returns a realistic update for the 2NN: reference weights
// w ~ N(0, 0.05^2) and an SGD-like delta d ~ N(0, 0.001^2).
func updateVectors() (w, d []float32) {
	return normalVec(mlpN, 0, 0.05, 21), normalVec(mlpN, 0, 0.001, 22)
}

func TestCompressionFigures(t *testing.T) {
	w, d := updateVectors()
	x := make([]float32, mlpN)
	for i := range x {
		x[i] = w[i] + d[i]
	}
	raw := 4 * mlpN
	for _, tc := range []struct {
		pipeline string
		check    func(size int) bool
		rule     string
		maxRMSE  float64 // relative to the delta's sigma
	}{
		{"float32", func(s int) bool { return s == raw }, "== 4n", 0},
		{"float32+zstd", func(s int) bool { return float64(raw)/float64(s) >= 1.05 }, ">= 1.05x", 0},
		{"float32+shuffle+zstd", func(s int) bool { return float64(raw)/float64(s) >= 1.1 }, ">= 1.1x", 0},
		{"float16", func(s int) bool { return s == raw/2 }, "== 2n", 0.001},
		{"float16+shuffle+zstd", func(s int) bool { return float64(raw)/float64(s) >= 2.2 }, ">= 2.2x", 0.001},
		{"bfloat16", func(s int) bool { return s == raw/2 }, "== 2n", 0.005},
		{"bfloat16+shuffle+zstd", func(s int) bool { return float64(raw)/float64(s) >= 2.3 }, ">= 2.3x", 0.005},
		{"int8", func(s int) bool { return s == mlpN+4*len(mlpShapes) }, "== n + 4*tensors", 0.03},
		{"int8:nearest+zstd", func(s int) bool { return float64(raw)/float64(s) >= 3.9 }, ">= 3.9x", 0.02},
		{"int8+zstd", func(s int) bool { return float64(raw)/float64(s) >= 4.4 }, ">= 4.4x (entropy-coded)", 0.03},
		{"int8+zstd:19", func(s int) bool { return float64(raw)/float64(s) >= 3.9 }, ">= 3.9x", 0.03},
		{"int8:row+zstd", func(s int) bool { return float64(raw)/float64(s) >= 4.1 }, ">= 4.1x", 0.03},
		{"delta+int8+zstd", func(s int) bool { return float64(raw)/float64(s) >= 3.9 }, ">= 3.9x", 0.03},
		{"delta+topk:0.1+int8+zstd", func(s int) bool { return float64(raw)/float64(s) >= 20 }, ">= 20x", 0},
		{"delta+topk:0.01+float16+zstd", func(s int) bool { return float64(raw)/float64(s) >= 40 }, ">= 40x", 0},
		{"delta+topk:0.01+int8+zstd", func(s int) bool { return float64(raw)/float64(s) >= 50 }, ">= 50x", 0},
		{"delta+topk:0.001+int8+zstd", func(s int) bool { return float64(raw)/float64(s) >= 400 }, ">= 400x", 0},
	} {
		p := mustParse(t, tc.pipeline)
		in, ref := d, []float32(nil)
		if p.Delta {
			in, ref = x, w
		}
		b := encodeOnce(t, tc.pipeline, mlpShapes, in, ref, 1)
		out, err := Decode(p, b, mlpShapes, ref, nil, Limits{MaxParams: mlpN})
		if err != nil {
			t.Fatalf("Decode(%q) = %v", tc.pipeline, err)
		}
		var se float64
		for i := range out {
			e := float64(out[i]) - float64(in[i])
			se += e * e
		}
		rmse := math.Sqrt(se/mlpN) / 0.001
		t.Logf("%-30s %8d bytes %7.1fx  rmse %.4f sigma", tc.pipeline, len(b), float64(raw)/float64(len(b)), rmse)
		if !tc.check(len(b)) {
			t.Errorf("Encode(%q) = %d bytes (%.2fx smaller than %d); want %s", tc.pipeline, len(b), float64(raw)/float64(len(b)), raw, tc.rule)
		}
		// topk's error is what it did not send (kept as residual): not bounded here.
		if p.TopK == 0 && rmse > tc.maxRMSE+1e-6 {
			t.Errorf("Decode(Encode(%q)) rmse %.4g sigma; want <= %g", tc.pipeline, rmse, tc.maxRMSE)
		}
	}
}

// benchPipelines are the pipelines benchmarked on the 2NN update.
var benchPipelines = []string{
	"float32", "float32+zstd", "float16+shuffle+zstd", "bfloat16+shuffle+zstd",
	"int8+zstd", "int8:row+zstd", "delta+int8+zstd", "delta+topk:0.01+int8+zstd",
}

func benchName(s string) string { return strings.ReplaceAll(s, ":", "=") }

func BenchmarkEncode(b *testing.B) {
	w, d := updateVectors()
	for _, s := range benchPipelines {
		b.Run(benchName(s), func(b *testing.B) {
			p := mustParse(b, s)
			e := NewEncoder(p, mlpShapes, 1)
			var buf []byte
			b.SetBytes(4 * mlpN)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = e.Encode(buf[:0], d, w); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "payload-bytes")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	w, d := updateVectors()
	for _, s := range benchPipelines {
		b.Run(benchName(s), func(b *testing.B) {
			p := mustParse(b, s)
			payload, err := NewEncoder(p, mlpShapes, 1).Encode(nil, d, w)
			if err != nil {
				b.Fatal(err)
			}
			var out []float32
			b.SetBytes(4 * mlpN)
			b.ReportAllocs()
			for b.Loop() {
				if out, err = Decode(p, payload, mlpShapes, w, out, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseFrame(b *testing.B) {
	_, d := updateVectors()
	payload := encodeOnce(b, "int8+zstd", mlpShapes, d, nil, 1)
	h := &FrameHeader{Kind: KindUpdate, Run: "r1", Round: 1, Codec: "int8+zstd", Params: mlpN, Samples: 600}
	frame, err := AppendFrame(nil, h, payload)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseFrame(frame, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleParsePipeline() {
	p, err := ParsePipeline("delta+topk:0.01+int8:nearest:row+zstd:3")
	if err != nil {
		panic(err)
	}
	fmt.Println(p)
	_, err = ParsePipeline("zstd+int8")
	fmt.Println(err)
	// Output:
	// delta+topk:0.01+int8:row:nearest+zstd
	// wire: pipeline "zstd+int8" has value format after zstd; order is delta, topk, value format, shuffle, zstd
}

func ExampleEncoder() {
	shapes := [][]int{{2, 3}, {2}} // a 2x3 weight matrix and its bias
	global := []float32{0.5, -0.25, 1, 0, 0.75, -1, 0.1, 0.2}
	trained := []float32{0.5, -0.25, 1.5, 0, 0.75, -1, 0.1, -0.3}

	p, _ := ParsePipeline("delta+topk:0.25+float16+zstd")
	enc := NewEncoder(p, shapes, 1)
	payload, err := enc.Encode(nil, trained, global)
	if err != nil {
		panic(err)
	}
	got, err := Decode(p, payload, shapes, global, nil, DefaultLimits())
	if err != nil {
		panic(err)
	}
	fmt.Println(got)
	fmt.Println(enc.Residual()) // what was not sent this time
	// Output:
	// [0.5 -0.25 1.5 0 0.75 -1 0.1 -0.3]
	// [0 0 0 0 0 0 0 0]
}

func ExampleMarshal() {
	b, err := Marshal(&Rejected{Round: 4, Reason: "The update arrived after the round closed.", Code: CodeLate})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
	m, err := ParseMessage(b, MaxMessageBytes)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.(*Rejected).Code)
	// Output:
	// {"type":"rejected","round":4,"reason":"The update arrived after the round closed.","code":"late"}
	// late
}

func ExampleParseFrame() {
	h := &FrameHeader{Kind: KindModel, Run: "r1", Round: 1, ModelVersion: 1, Codec: "float32", Params: 2}
	frame, err := AppendFrame(nil, h, f32s(nil, 1.5, -2))
	if err != nil {
		panic(err)
	}
	lim := DefaultLimits()
	lim.MaxParams = 2 // the run's model has 2 parameters
	got, payload, err := ParseFrame(frame, lim)
	if err != nil {
		panic(err)
	}
	p, _ := got.Pipeline()
	w, err := Decode(p, payload, [][]int{{2}}, nil, nil, lim)
	fmt.Println(got.Kind, got.ModelVersion, w, err)
	// Output:
	// model 1 [1.5 -2] <nil>
}
