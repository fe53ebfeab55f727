package fl

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// blockSize is the number of coordinates a worker takes at a time; the
// context is checked between blocks.
const blockSize = 1 << 14

// parallelBlocks calls fn on consecutive blocks [lo, hi) of [0, n), from up
// to GOMAXPROCS goroutines, each with its own scratch of length k. It returns
// the context's error if the context is done before all blocks ran. The result
// of a coordinate-wise fn does not depend on how the blocks are scheduled.
func parallelBlocks(ctx context.Context, n, k int, fn func(lo, hi int, scratch []float32)) error {
	blocks := (n + blockSize - 1) / blockSize
	workers := min(runtime.GOMAXPROCS(0), blocks)
	var next atomic.Int64
	var stopped atomic.Bool
	run := func() {
		scratch := make([]float32, k)
		for !stopped.Load() {
			b := int(next.Add(1) - 1)
			if b >= blocks {
				return
			}
			if ctxErr(ctx) != nil {
				stopped.Store(true)
				return
			}
			fn(b*blockSize, min(n, (b+1)*blockSize), scratch)
		}
	}
	if workers <= 1 {
		run()
	} else {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(run)
		}
		wg.Wait()
	}
	if stopped.Load() {
		return ctxErr(ctx)
	}
	return nil
}

// sortSmall sorts x (which holds no NaN): insertion sort for the 10–30 values
// of a typical round, slices.Sort beyond.
func sortSmall(x []float32) {
	if len(x) > 32 {
		slices.Sort(x)
		return
	}
	for i := 1; i < len(x); i++ {
		v := x[i]
		j := i
		for j > 0 && x[j-1] > v {
			x[j] = x[j-1]
			j--
		}
		x[j] = v
	}
}

// gather copies coordinate i of each delta into scratch and sorts it.
func gather(scratch []float32, deltas [][]float32, i int) {
	for j, d := range deltas {
		scratch[j] = d[i]
	}
	sortSmall(scratch)
}

// sortedMedian returns the median of sorted x in float64.
func sortedMedian(x []float32) float64 {
	k := len(x)
	if k%2 == 1 {
		return float64(x[k/2])
	}
	return (float64(x[k/2-1]) + float64(x[k/2])) / 2
}

// coordMedian writes dst[i] = base[i] + median_j deltas[j][i] for every
// coordinate (base nil counts as zero), rounding once to float32. dst may
// alias base.
func coordMedian(ctx context.Context, dst, base []float32, deltas [][]float32) error {
	return parallelBlocks(ctx, len(dst), len(deltas), func(lo, hi int, s []float32) {
		for i := lo; i < hi; i++ {
			gather(s, deltas, i)
			m := sortedMedian(s)
			if base != nil {
				m += float64(base[i])
			}
			dst[i] = float32(m)
		}
	})
}

// coordTrimmedMean writes dst[i] = base[i] + the mean of coordinate i of
// deltas after dropping the trim smallest and trim largest values (Yin et
// al. 2018). Summing the sorted values makes the result exactly independent of
// the order of deltas. dst may alias base.
func coordTrimmedMean(ctx context.Context, dst, base []float32, deltas [][]float32, trim int) error {
	k := len(deltas)
	den := float64(k - 2*trim)
	return parallelBlocks(ctx, len(dst), k, func(lo, hi int, s []float32) {
		for i := lo; i < hi; i++ {
			gather(s, deltas, i)
			var sum float64
			for _, v := range s[trim : k-trim] {
				sum += float64(v)
			}
			dst[i] = float32(float64(base[i]) + sum/den)
		}
	})
}
