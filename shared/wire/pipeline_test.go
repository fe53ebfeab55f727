package wire

import (
	"strings"
	"testing"
)

func TestParsePipeline(t *testing.T) {
	for _, tc := range []struct {
		in, canonical string
		want          Pipeline
	}{
		{"float32", "float32", Pipeline{}},
		{"zstd", "float32+zstd", Pipeline{Zstd: 3}},
		{"float32+zstd", "float32+zstd", Pipeline{Zstd: 3}},
		{"float32+zstd:3", "float32+zstd", Pipeline{Zstd: 3}},
		{"int8+zstd", "int8+zstd", Pipeline{Format: Int8, Zstd: 3}},
		{"float16", "float16", Pipeline{Format: Float16}},
		{"bfloat16+shuffle+zstd:9", "bfloat16+shuffle+zstd:9", Pipeline{Format: BFloat16, Shuffle: true, Zstd: 9}},
		{"delta+topk:0.01+int8+zstd", "delta+topk:0.01+int8+zstd", Pipeline{Delta: true, TopK: 0.01, Format: Int8, Zstd: 3}},
		{"int8:nearest:row", "int8:row:nearest", Pipeline{Format: Int8, RowScales: true, Nearest: true}},
		{"int8:row", "int8:row", Pipeline{Format: Int8, RowScales: true}},
		{"delta", "delta+float32", Pipeline{Delta: true}},
		{"topk:1", "topk:1+float32", Pipeline{TopK: 1}},
		{"topk:1e-3+shuffle", "topk:0.001+float32+shuffle", Pipeline{TopK: 0.001, Shuffle: true}},
		{"delta+zstd:22", "delta+float32+zstd:22", Pipeline{Delta: true, Zstd: 22}},
	} {
		got, err := ParsePipeline(tc.in)
		if err != nil {
			t.Errorf("ParsePipeline(%q) = %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParsePipeline(%q) = %+v; want %+v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.canonical {
			t.Errorf("ParsePipeline(%q).String() = %q; want %q", tc.in, s, tc.canonical)
		}
		if again, err := ParsePipeline(got.String()); err != nil || again != got {
			t.Errorf("ParsePipeline(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
}

func TestParsePipelineErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty pipeline"},
		{"float32+", "empty stage"},
		{"+zstd", "empty stage"},
		{"gzip", "unknown stage"},
		{"float64", "unknown stage"},
		{"FLOAT32", "unknown stage"},
		{"float32+float16", "more than one value format"},
		{"int8+int8", "more than one value format"},
		{"zstd+zstd", "more than one zstd"},
		{"delta+delta", "more than one delta"},
		{"zstd+int8", "value format after zstd"},
		{"int8+delta", "delta after value format"},
		{"shuffle+float16", "value format after shuffle"},
		{"int8+topk:0.1", "topk after value format"},
		{"topk", "0 < F <= 1"},
		{"topk:", "0 < F <= 1"},
		{"topk:0", "0 < F <= 1"},
		{"topk:1.5", "0 < F <= 1"},
		{"topk:-0.1", "0 < F <= 1"},
		{"topk:NaN", "0 < F <= 1"},
		{"topk:inf", "0 < F <= 1"},
		{"topk:abc", "0 < F <= 1"},
		{"zstd:0", "LEVEL in 1..22"},
		{"zstd:23", "LEVEL in 1..22"},
		{"zstd:", "LEVEL in 1..22"},
		{"zstd:x", "LEVEL in 1..22"},
		{"float16:2", "takes no parameter"},
		{"delta:", "takes no parameter"},
		{"shuffle:1", "takes no parameter"},
		{"int8:", "empty parameter"},
		{"int8:col", "unknown int8 option"},
		{"int8:row:row", "repeats option"},
		{"int8:row:", "unknown int8 option"},
		{" float32", "unknown stage"},
		{strings.Repeat("delta+", 60), "limit 256"},
	} {
		_, err := ParsePipeline(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePipeline(%q) = %v; want error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestPipelineValidate(t *testing.T) {
	for _, tc := range []struct {
		p    Pipeline
		okay bool
	}{
		{Pipeline{}, true},
		{Pipeline{Delta: true, TopK: 0.5, Format: Int8, RowScales: true, Nearest: true, Shuffle: true, Zstd: 22}, true},
		{Pipeline{TopK: 1.5}, false},
		{Pipeline{TopK: -1}, false},
		{Pipeline{Format: 9}, false},
		{Pipeline{Format: Float16, Nearest: true}, false},
		{Pipeline{Zstd: 23}, false},
	} {
		if err := tc.p.Validate(); (err == nil) != tc.okay {
			t.Errorf("Pipeline%+v.Validate() = %v; want ok=%v", tc.p, err, tc.okay)
		}
	}
}

func TestKeep(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		n    int
		want int
	}{
		{0, 10, 10},
		{0.3, 10, 3},
		{0.31, 10, 4},
		{0.01, 199210, 1993},
		{0.001, 100, 1},
		{1e-9, 5, 1},
		{1, 7, 7},
		{0.7, 10, 7},
	} {
		if got := (Pipeline{TopK: tc.f}).keep(tc.n); got != tc.want {
			t.Errorf("Pipeline{TopK: %v}.keep(%d) = %d; want %d", tc.f, tc.n, got, tc.want)
		}
	}
}
