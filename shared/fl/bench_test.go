package fl_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/qflare/qflare/shared/fl/fltest"
)

// cnnParams is the size of McMahan et al.'s MNIST CNN.
const cnnParams = 1663370

var benchRound = func() func() fltest.Round {
	var r fltest.Round
	return func() fltest.Round {
		if r.Global == nil {
			_, r = fltest.Honest(rand.New(rand.NewPCG(1, 1)), 10, cnnParams, 0.01, 1)
		}
		return r
	}
}()

// BenchmarkFedAvgAdd folds one 1.6M-parameter update into the running sum.
func BenchmarkFedAvgAdd(b *testing.B) {
	r := benchRound()
	agg := mustParse(b, "fedavg").Begin(1, r.Global)
	ctx := context.Background()
	b.SetBytes(4 * cnnParams)
	b.ReportAllocs()
	for b.Loop() {
		if err := agg.Add(ctx, r.Updates[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFinish aggregates 10 buffered updates of 1.6M parameters
// (the Adds, which copy, are outside the timer).
func BenchmarkFinish(b *testing.B) {
	r := benchRound()
	for _, spec := range []string{"median", "trimmed-mean:0.2", "multi-krum:2", "fedavg,detect"} {
		b.Run(spec, func(b *testing.B) {
			s := mustParse(b, spec)
			dst := make([]float32, cnnParams)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				agg := s.Begin(1, r.Global)
				for _, u := range r.Updates {
					if err := agg.Add(ctx, u); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if _, err := agg.Finish(ctx, dst); err != nil {
					b.Fatal(fmt.Errorf("%s: %w", spec, err))
				}
			}
		})
	}
}

// BenchmarkDPFinish noises a 1.6M-parameter average (one Gaussian draw per
// coordinate).
func BenchmarkDPFinish(b *testing.B) {
	r := benchRound()
	s := mustParse(b, "fedavg,dp-clip=1,dp-noise=1,dp-clients=10,dp-total=100,dp-seed=1")
	dst := make([]float32, cnnParams)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		agg := s.Begin(1, r.Global)
		if err := agg.Add(ctx, r.Updates[0]); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := agg.Finish(ctx, dst); err != nil {
			b.Fatal(err)
		}
	}
}
