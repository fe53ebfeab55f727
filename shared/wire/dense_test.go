package wire

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The dense int8 loop must give exactly what the value-at-a-time loop
// gives: the same float32 bits, and on a bad value the same error.
func TestDenseInt8MatchesEach(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := [][]int{{7, 5}, {5}, {3, 2, 2}, {1}}
	n, _ := shapeSize(shapes)
	for _, rows := range []bool{false, true} {
		p := Pipeline{Format: Int8, RowScales: rows, Delta: true}
		g := groupCount(shapes, rows)
		for trial := range 200 {
			s := stream{scales: make([]byte, 4*g), vals: make([]byte, n)}
			for i := range g {
				scale := float32(rng.ExpFloat64() * 0.01)
				if trial%10 == 1 && i == g-1 {
					scale = math.MaxFloat32 / 2 // 127·scale overflows
				}
				binary.LittleEndian.PutUint32(s.scales[4*i:], math.Float32bits(scale))
			}
			for i := range s.vals {
				s.vals[i] = byte(rng.IntN(255) - 127)
			}
			if trial%10 == 2 {
				s.vals[rng.IntN(n)] = 0x80
			}
			var ref []float32
			if trial%2 == 0 {
				ref = make([]float32, n)
				for i := range ref {
					ref[i] = float32(rng.NormFloat64())
				}
			}
			want, got := make([]float32, n), make([]float32, n)
			errWant := s.decodeEach(p, shapes, ref, want)
			errGot := s.decodeDenseInt8(p, shapes, ref, got)
			if (errWant == nil) != (errGot == nil) || errWant != nil && errWant.Error() != errGot.Error() {
				t.Fatalf("rows %v trial %d: decodeDenseInt8 error %v; decodeEach %v", rows, trial, errGot, errWant)
			}
			if errWant == nil && !slices.EqualFunc(got, want, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
				t.Fatalf("rows %v trial %d: decodeDenseInt8 values differ from decodeEach", rows, trial)
			}
		}
	}
}

func BenchmarkDecodeValuesInt8(b *testing.B) {
	shapes := [][]int{{200, 784}, {200}, {200, 200}, {200}, {10, 200}, {10}}
	n, _ := shapeSize(shapes)
	s := stream{scales: make([]byte, 4*len(shapes)), vals: make([]byte, n)}
	for i := range shapes {
		binary.LittleEndian.PutUint32(s.scales[4*i:], math.Float32bits(0.001))
	}
	for i := range s.vals {
		s.vals[i] = byte(i%255 - 127)
	}
	ref, dst := make([]float32, n), make([]float32, n)
	p := Pipeline{Format: Int8, Delta: true}
	for _, c := range []struct {
		name string
		f    func(Pipeline, [][]int, []float32, []float32) error
	}{{"dense", s.decodeDenseInt8}, {"each", s.decodeEach}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				if err := c.f(p, shapes, ref, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
