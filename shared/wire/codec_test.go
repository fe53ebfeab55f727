package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// errBound returns the largest error decoding may introduce on value v for
// a pipeline, given the int8 scale of v's group.
func errBound(p Pipeline, v, scale float32) float64 {
	a := math.Abs(float64(v))
	switch p.Format {
	case Float16:
		return math.Max(a*0x1p-11, 0x1p-25)
	case BFloat16:
		return math.Max(a*0x1p-8, 0x1p-134)
	case Int8:
		if p.Nearest {
			return float64(scale)/2 + a*1e-6
		}
		return float64(scale) + a*1e-6
	}
	return 0
}

// groupScales returns, for each element, maxabs/127 of its group among
// the entries in keep (all entries when keep is nil).
func groupScales(v []float32, shapes [][]int, perRow bool, keep map[int]bool) []float32 {
	s := make([]float32, len(v))
	g := newGroups(shapes, perRow)
	for g.next() {
		var m float32
		for i := g.start; i < g.start+g.size; i++ {
			if keep == nil || keep[i] {
				m = max(m, abs32(v[i]))
			}
		}
		for i := g.start; i < g.start+g.size; i++ {
			s[i] = m / 127
		}
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	pipelines := []string{
		"float32", "float32+zstd", "float32+shuffle+zstd:1", "float16", "float16+shuffle",
		"bfloat16+shuffle+zstd:9", "int8", "int8:nearest+zstd", "int8:row", "int8:row:nearest+zstd:22",
		"int8+shuffle+zstd", "delta+float32", "delta+float16+zstd", "delta+int8:row+zstd",
		"topk:0.2+float32", "topk:1+float16+zstd", "delta+topk:0.1+int8+zstd",
		"delta+topk:0.3+int8:row:nearest", "delta+topk:0.05+bfloat16+shuffle+zstd:19",
	}
	x := normalVec(testN, 0.1, 1, 1)
	ref := normalVec(testN, 0, 1, 2)
	x[7], x[20] = 0, 1e-30 // a zero and a value below half precision
	for _, s := range pipelines {
		t.Run(s, func(t *testing.T) {
			p := mustParse(t, s)
			xc, rc := clone32(x), clone32(ref)
			b := encodeOnce(t, s, testShapes, x, ref, 7)
			if !equalBits(x, xc) || !equalBits(ref, rc) {
				t.Fatalf("Encode(%q) modified its inputs", s)
			}
			got, err := Decode(p, b, testShapes, ref, nil, DefaultLimits())
			if err != nil {
				t.Fatalf("Decode(%q) = %v", s, err)
			}
			if len(got) != testN {
				t.Fatalf("Decode(%q) returned %d values; want %d", s, len(got), testN)
			}
			checkDecoded(t, p, x, ref, got)
		})
	}
}

// checkDecoded checks a first encoding's decoded values against x: the
// kept entries within the format's error bound, the others equal to the
// reference (or zero), the kept ones the largest.
func checkDecoded(t *testing.T, p Pipeline, x, ref, got []float32) {
	t.Helper()
	v := make([]float32, len(x))
	for i := range x {
		v[i] = x[i]
		if p.Delta {
			v[i] = x[i] - ref[i]
		}
	}
	var keep map[int]bool
	if p.TopK != 0 {
		keep = map[int]bool{}
		for _, i := range selectTopK(nil, v, make([]float32, len(v)), p.keep(len(v))) {
			keep[int(i)] = true
		}
	}
	scales := groupScales(v, testShapes, p.RowScales, keep)
	var minKept, maxDropped float32 = math.MaxFloat32, 0
	for i := range x {
		base := float32(0)
		if p.Delta {
			base = ref[i]
		}
		d := got[i] - base
		if keep != nil && !keep[i] {
			maxDropped = max(maxDropped, abs32(v[i]))
			if d != 0 {
				t.Errorf("value %d (not kept) decodes to delta %v; want 0", i, d)
			}
			continue
		}
		minKept = min(minKept, abs32(v[i]))
		// float32 rounding of x-ref and ref+d adds a few ulps.
		tol := errBound(p, v[i], scales[i]) + 4*ulp(x[i]) + 4*ulp(base)
		if e := math.Abs(float64(got[i]) - float64(x[i])); e > tol {
			t.Errorf("value %d: decoded %v; want %v within %g (error %g)", i, got[i], x[i], tol, e)
		}
	}
	if keep != nil && maxDropped > minKept {
		t.Errorf("topk dropped |v| = %v but kept |v| = %v", maxDropped, minKept)
	}
}

func ulp(f float32) float64 {
	a := math.Abs(float64(f))
	return float64(math.Nextafter32(float32(a), math.MaxFloat32)) - a
}

func TestTopKKeepsLargest(t *testing.T) {
	x := []float32{0.1, -5, 0.2, 3, -0.05, 0, 4, -3, 0.3, 1}
	shapes := [][]int{{10}}
	for _, tc := range []struct {
		f    string
		want []float32
	}{
		{"0.1", []float32{0, -5, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"0.2", []float32{0, -5, 0, 0, 0, 0, 4, 0, 0, 0}},
		{"0.3", []float32{0, -5, 0, 3, 0, 0, 4, 0, 0, 0}}, // tie 3 / -3: lower index
		{"0.4", []float32{0, -5, 0, 3, 0, 0, 4, -3, 0, 0}},
		{"0.41", []float32{0, -5, 0, 3, 0, 0, 4, -3, 0, 1}}, // ceil(4.1) = 5
		{"1", x},
	} {
		s := "topk:" + tc.f + "+float32"
		b := encodeOnce(t, s, shapes, x, nil, 0)
		got, err := Decode(mustParse(t, s), b, shapes, nil, nil, Limits{})
		if err != nil {
			t.Fatalf("Decode(%q) = %v", s, err)
		}
		if !equalBits(got, tc.want) {
			t.Errorf("Decode(Encode(%q)) = %v; want %v", s, got, tc.want)
		}
	}
}

func TestKthLargest(t *testing.T) {
	for _, tc := range []struct {
		a    []float32
		k    int
		want float32
	}{
		{[]float32{1}, 1, 1},
		{[]float32{3, 1, 2}, 1, 3},
		{[]float32{3, 1, 2}, 3, 1},
		{[]float32{0, 0, 0, 0, 5, 0}, 2, 0},
		{[]float32{2, 2, 2, 1, 1, 3}, 4, 2},
		{[]float32{5, 4, 3, 2, 1, 0, -1}, 3, 3},
	} {
		a := clone32(tc.a)
		if got := kthLargest(a, tc.k); got != tc.want {
			t.Errorf("kthLargest(%v, %d) = %v; want %v", tc.a, tc.k, got, tc.want)
		}
	}
	v := normalVec(10001, 0, 1, 3)
	for _, k := range []int{1, 17, 5000, 10001} {
		sorted := clone32(v)
		sortDesc(sorted)
		if got := kthLargest(clone32(v), k); got != sorted[k-1] {
			t.Errorf("kthLargest(normal 10001, %d) = %v; want %v", k, got, sorted[k-1])
		}
	}
}

func sortDesc(a []float32) {
	slices.Sort(a)
	slices.Reverse(a)
}

func TestErrorFeedback(t *testing.T) {
	const n, rounds = 1000, 200
	shapes := [][]int{{n}}
	for _, s := range []string{"topk:0.05+float32", "topk:0.02+int8+zstd", "delta+topk:0.1+float16"} {
		t.Run(s, func(t *testing.T) {
			p := mustParse(t, s)
			e := NewEncoder(p, shapes, 11)
			ref := normalVec(n, 0, 1, 5)
			sumIn := make([]float64, n)
			sumOut := make([]float64, n)
			var maxIn float64
			var out []float32
			for r := range rounds {
				d := normalVec(n, 0.001, 0.01, uint64(100+r)) // a small bias every round
				x := d
				if p.Delta {
					x = make([]float32, n)
					for i := range x {
						x[i] = ref[i] + d[i]
						d[i] = x[i] - ref[i] // what the encoder sees
					}
				}
				for i := range d {
					sumIn[i] += float64(d[i])
					maxIn = max(maxIn, math.Abs(float64(d[i])))
				}
				b, err := e.Encode(nil, x, ref)
				if err != nil {
					t.Fatalf("Encode round %d = %v", r, err)
				}
				out, err = Decode(p, b, shapes, ref, out, Limits{})
				if err != nil {
					t.Fatalf("Decode round %d = %v", r, err)
				}
				for i := range out {
					got := float64(out[i])
					if p.Delta {
						got = float64(out[i] - ref[i])
					}
					sumOut[i] += got
				}
			}
			// Everything sent plus the residual is everything put in.
			var worstGap, worstRes float64
			for i := range sumIn {
				res := float64(e.Residual()[i])
				worstGap = max(worstGap, math.Abs(sumIn[i]-sumOut[i]-res))
				worstRes = max(worstRes, math.Abs(res))
			}
			if worstGap > 1e-3 {
				t.Errorf("max |sum(in) - sum(out) - residual| = %g; want < 1e-3", worstGap)
			}
			// The residual stays within a few inputs' size, far below the
			// sums (the bias alone adds up to 0.2 over 200 rounds).
			t.Logf("max |residual| %.4g, max |input| %.4g, max |sum(in)| %.4g", worstRes, maxIn, maxAbs(sumIn))
			if worstRes > 4*maxIn {
				t.Errorf("max |residual| = %g; want <= %g", worstRes, 4*maxIn)
			}
			e.Reset()
			for i, r := range e.Residual() {
				if r != 0 {
					t.Fatalf("after Reset, residual[%d] = %v; want 0", i, r)
				}
			}
		})
	}
}

func TestStochasticRoundingUnbiased(t *testing.T) {
	const n, trials = 64, 4000
	shapes := [][]int{{n}}
	x := normalVec(n, 0, 1, 9)
	x[0] = 3 // maxabs: scale = 3/127
	p := mustParse(t, "int8")
	e := NewEncoder(p, shapes, 42)
	mean := make([]float64, n)
	var out []float32
	var b []byte
	for range trials {
		var err error
		b, err = e.Encode(b[:0], x, nil)
		if err != nil {
			t.Fatal(err)
		}
		if out, err = Decode(p, b, shapes, nil, out, Limits{}); err != nil {
			t.Fatal(err)
		}
		for i, f := range out {
			mean[i] += float64(f) / trials
		}
	}
	scale := 3.0 / 127
	// Each decoding is within one scale step, so the standard error of the
	// mean is below scale/(2*sqrt(trials)) ~ 1.9e-4; allow 5 of those.
	tol := 5 * scale / (2 * math.Sqrt(trials))
	var worstNearest float64
	for i := range x {
		if d := math.Abs(mean[i] - float64(x[i])); d > tol {
			t.Errorf("mean decoded x[%d] = %v; want %v within %g", i, mean[i], x[i], tol)
		}
		q := math.RoundToEven(float64(x[i]) / float64(float32(scale)))
		worstNearest = max(worstNearest, math.Abs(q*scale-float64(x[i])))
	}
	// Nearest rounding is biased by up to half a step; the test would see it.
	if worstNearest < 2*tol {
		t.Fatalf("test too weak: nearest-rounding bias %g below tolerance", worstNearest)
	}
}

func TestEncodeDeterministic(t *testing.T) {
	x := normalVec(testN, 0, 1, 4)
	a := encodeOnce(t, "int8+zstd", testShapes, x, nil, 5)
	b := encodeOnce(t, "int8+zstd", testShapes, x, nil, 5)
	c := encodeOnce(t, "int8+zstd", testShapes, x, nil, 6)
	if !bytes.Equal(a, b) {
		t.Errorf("Encode with equal seeds gave different bytes")
	}
	if bytes.Equal(a, c) {
		t.Errorf("Encode with seeds 5 and 6 gave equal bytes")
	}
	e := NewEncoder(mustParse(t, "int8"), testShapes, 5)
	first, _ := e.Encode(nil, x, nil)
	e.Seed(5)
	again, _ := e.Encode(nil, x, nil)
	if !bytes.Equal(first, again) {
		t.Errorf("Encode after Seed(5) differs from a fresh encoder's")
	}
}

func TestRowScales(t *testing.T) {
	// Row 0 is large, row 1 small: per-tensor scales drown row 1.
	shapes := [][]int{{2, 4}, {3}}
	x := []float32{100, -50, 25, 12, 0.01, -0.02, 0.03, 0.04, 1, 2, -4}
	for _, tc := range []struct {
		pipeline string
		scales   []float32
	}{
		{"int8:nearest", []float32{100.0 / 127, 4.0 / 127}},
		{"int8:row:nearest", []float32{100.0 / 127, 0.04 / 127, 4.0 / 127}},
	} {
		b := encodeOnce(t, tc.pipeline, shapes, x, nil, 1)
		for g, want := range tc.scales {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(b[4*g:])); got != want {
				t.Errorf("%s: scale %d = %v; want %v", tc.pipeline, g, got, want)
			}
		}
		got, err := Decode(mustParse(t, tc.pipeline), b, shapes, nil, nil, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		rowErr := 0.0
		for i := 4; i < 8; i++ {
			rowErr = max(rowErr, math.Abs(float64(got[i]-x[i])))
		}
		want := float64(tc.scales[len(tc.scales)-2]) / 2 // row 1's scale
		if rowErr > want*1.0001 {
			t.Errorf("%s: row 1 error %g; want <= %g", tc.pipeline, rowErr, want)
		}
	}
}

func TestDecodeReusesDst(t *testing.T) {
	x := normalVec(testN, 0, 1, 1)
	b := encodeOnce(t, "float16+zstd", testShapes, x, nil, 0)
	dst := make([]float32, 0, 100)
	got, err := Decode(mustParse(t, "float16+zstd"), b, testShapes, nil, dst, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &dst[:1][0] {
		t.Errorf("Decode allocated a new dst although cap(dst) = 100")
	}
}

func TestEncodeErrors(t *testing.T) {
	x := normalVec(testN, 0, 1, 1)
	nan := clone32(x)
	nan[5] = float32(math.NaN())
	big := clone32(x)
	big[3] = 70000
	for _, tc := range []struct {
		name, pipeline string
		x, ref         []float32
		want           error
	}{
		{"short x", "float32", x[:10], nil, ErrShape},
		{"missing ref", "delta+float32", x, nil, ErrShape},
		{"NaN", "float32+zstd", nan, nil, ErrNotFinite},
		{"NaN in ref", "delta+int8", x, nan, ErrNotFinite},
		{"NaN with topk", "topk:0.5+int8", nan, nil, ErrNotFinite},
		{"float16 overflow", "float16", big, nil, ErrNotFinite},
		{"float16 overflow with topk", "topk:0.5+float16", big, nil, ErrNotFinite},
		{"bfloat16 overflow", "bfloat16", []float32{math.MaxFloat32}, nil, ErrNotFinite},
	} {
		shapes := [][]int{{len(tc.x)}}
		if tc.name == "short x" {
			shapes = testShapes
		}
		e := NewEncoder(mustParse(t, tc.pipeline), shapes, 0)
		dst := []byte("kept")
		got, err := e.Encode(dst, tc.x, tc.ref)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Encode(%q) error = %v; want %v", tc.name, tc.pipeline, err, tc.want)
		}
		if string(got) != "kept" {
			t.Errorf("%s: Encode(%q) returned %q on error; want dst unchanged", tc.name, tc.pipeline, got)
		}
		for i, r := range e.Residual() {
			if r != 0 {
				t.Fatalf("%s: residual[%d] = %v after a failed Encode; want 0", tc.name, i, r)
			}
		}
	}
}

func TestNewEncoderPanics(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      Pipeline
		shapes [][]int
	}{
		{"no shapes", Pipeline{}, nil},
		{"zero dim", Pipeline{}, [][]int{{3, 0}}},
		{"bad pipeline", Pipeline{Format: Float16, RowScales: true}, testShapes},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewEncoder(%s) did not panic", tc.name)
				}
			}()
			NewEncoder(tc.p, tc.shapes, 0)
		}()
	}
}

func TestEncodeDecodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts under the race detector")
	}
	x := normalVec(mlpN, 0, 0.01, 1)
	ref := normalVec(mlpN, 0, 0.1, 2)
	for _, s := range []string{"float32", "float32+zstd", "int8:row+zstd", "delta+topk:0.01+int8+zstd"} {
		p := mustParse(t, s)
		e := NewEncoder(p, mlpShapes, 1)
		buf, _ := e.Encode(nil, x, ref)
		out, _ := Decode(p, buf, mlpShapes, ref, nil, Limits{})
		enc := testing.AllocsPerRun(3, func() {
			buf, _ = e.Encode(buf[:0], x, ref)
		})
		dec := testing.AllocsPerRun(3, func() {
			out, _ = Decode(p, buf, mlpShapes, ref, out, Limits{})
		})
		t.Logf("%s: warm Encode %v allocs, Decode %v allocs", s, enc, dec)
		if enc > 0 || dec > 0 {
			t.Errorf("%s: warm Encode allocs %v, Decode allocs %v; want 0", s, enc, dec)
		}
	}
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, f := range v {
		m = max(m, math.Abs(f))
	}
	return m
}

func TestDecodeConcurrent(t *testing.T) {
	x := normalVec(testN, 0, 1, 8)
	ref := normalVec(testN, 0, 1, 9)
	pipelines := []string{"float32+zstd", "int8:row+shuffle+zstd", "delta+topk:0.2+float16+shuffle+zstd", "bfloat16+shuffle"}
	type job struct {
		p       Pipeline
		payload []byte
		want    []float32
	}
	var jobs []job
	for _, s := range pipelines {
		p := mustParse(t, s)
		b := encodeOnce(t, s, testShapes, x, ref, 3)
		want, err := Decode(p, b, testShapes, ref, nil, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job{p, b, want})
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var out []float32
			for i := range 200 {
				j := jobs[(g+i)%len(jobs)]
				var err error
				if out, err = Decode(j.p, j.payload, testShapes, ref, out, Limits{}); err != nil {
					errs <- err
					return
				}
				if !equalBits(out, j.want) {
					errs <- errors.New("concurrent Decode gave a different result")
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestEncodeGolden pins the bytes of seeded encodings, so that native and
// js/wasm builds (which both run it) provably encode alike.
func TestEncodeGolden(t *testing.T) {
	x := make([]float32, testN)
	for i := range x {
		x[i] = float32(int(uint32(i)*2654435761%2001)-1000) / 337
	}
	for _, tc := range []struct {
		pipeline string
		crc      uint32
	}{
		{"int8", 0x0372d8d5},
		{"int8:row", 0x097b14dd},
		{"topk:0.3+int8", 0xde66a598},
		{"float16+shuffle", 0xdc2379d6},
		{"bfloat16", 0x141624ae},
	} {
		b := encodeOnce(t, tc.pipeline, testShapes, x, nil, 12345)
		if got := crc32.Checksum(b, castagnoli); got != tc.crc {
			t.Errorf("crc32c(Encode(%q)) = %#08x; want %#08x", tc.pipeline, got, tc.crc)
		}
	}
}

// TestEncoderRelease: an encoder that drops its scratch between calls
// encodes the same bytes, and keeps its top-k residual.
func TestEncoderRelease(t *testing.T) {
	shapes := [][]int{{300}, {7, 11}}
	n := 377
	rng := rand.New(rand.NewPCG(3, 4))
	for _, spec := range []string{"float32+zstd", "float16+shuffle+zstd", "delta+topk:0.1+int8+zstd"} {
		p, _ := ParsePipeline(spec)
		a, b := NewEncoder(p, shapes, 1), NewEncoder(p, shapes, 1)
		for range 3 {
			x, ref := make([]float32, n), make([]float32, n)
			for i := range x {
				x[i], ref[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			wa, err := a.Encode(nil, x, ref)
			if err != nil {
				t.Fatal(err)
			}
			b.Release()
			wb, err := b.Encode(nil, x, ref)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wa, wb) {
				t.Errorf("%s: an encoder released between calls encodes other bytes", spec)
			}
		}
	}
}
