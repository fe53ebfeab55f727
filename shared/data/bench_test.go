package data

import (
	"bytes"
	"testing"
)

func BenchmarkFill(b *testing.B) {
	s := &Set{Name: "mnist", H: 28, W: 28, C: 1, Classes: 10,
		Images: make([]uint8, 1000*784), Labels: make([]uint8, 1000)}
	idx := []int{3, 999, 0, 500, 17, 42, 7, 600, 100, 1}
	dst := make([]float32, len(idx)*s.Dim())
	b.SetBytes(int64(len(idx) * s.Dim()))
	b.ReportAllocs()
	for b.Loop() {
		s.Fill(dst, idx)
	}
}

func BenchmarkPartition(b *testing.B) {
	labels := mnistLikeLabels(false)
	for _, scheme := range []string{"iid", "dirichlet:0.5", "shards:2"} {
		b.Run(scheme, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Partition(labels, 10, 100, scheme, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadSet(b *testing.B) {
	s := &Set{Name: "mnist", H: 28, W: 28, C: 1, Classes: 10,
		Images: make([]uint8, 600*784), Labels: make([]uint8, 600)}
	in := setBytes(b, s)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadSet(bytes.NewReader(in), 600); err != nil {
			b.Fatal(err)
		}
	}
}
