package wire

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// testShapes is a small model: a 6x5 matrix, its bias, a 3x2x2 kernel and a
// scalar, 30+6+12+1 = 49 values.
var testShapes = [][]int{{6, 5}, {6}, {3, 2, 2}, {}}

const testN = 49

// mlpShapes are the tensor shapes of the 2NN of McMahan et al. 2017
// (784-200-200-10), 199,210 parameters.
var mlpShapes = [][]int{{200, 784}, {200}, {200, 200}, {200}, {10, 200}, {10}}

const mlpN = 199210

// normalVec returns n values drawn from N(mean, sigma^2) with a seeded
// source.
func normalVec(n int, mean, sigma float64, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(mean + sigma*r.NormFloat64())
	}
	return v
}

// mustParse parses a pipeline or fails the test.
func mustParse(t testing.TB, s string) Pipeline {
	t.Helper()
	p, err := ParsePipeline(s)
	if err != nil {
		t.Fatalf("ParsePipeline(%q) = %v", s, err)
	}
	return p
}

// encodeOnce encodes x with a fresh encoder.
func encodeOnce(t testing.TB, s string, shapes [][]int, x, ref []float32, seed uint64) []byte {
	t.Helper()
	b, err := NewEncoder(mustParse(t, s), shapes, seed).Encode(nil, x, ref)
	if err != nil {
		t.Fatalf("Encode(%q) = %v", s, err)
	}
	return b
}

// allocated returns the bytes one call of f allocates on the heap, on
// average over 20 calls.
func allocated(f func()) uint64 {
	const runs = 20
	var before, after runtime.MemStats
	f()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

func clone32(v []float32) []float32 { return append([]float32(nil), v...) }

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
