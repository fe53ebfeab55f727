package fl

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// krum is Krum and Multi-Krum (Blanchard et al. 2017). Each update is scored
// by the sum of squared L2 distances to its k = n − f − 2 nearest other
// updates; Krum keeps the lowest-scoring update, Multi-Krum averages the m
// lowest (unweighted, as in the paper). f = 0 selects the largest f the round
// allows, ⌊(n−3)/2⌋; an explicit f needs n ≥ 2f + 3 updates.
type krum struct {
	multi bool
	f     int // assumed byzantine count; 0 = automatic
	m     int // updates averaged by Multi-Krum; 0 = n − 2f
}

// Name returns "krum" or "multi-krum".
func (s *krum) Name() string {
	if s.multi {
		return "multi-krum"
	}
	return "krum"
}

// ConfigureFit returns base unchanged.
func (s *krum) ConfigureFit(_ int, base FitConfig) FitConfig { return base }

// Begin starts buffering the round's deltas.
func (s *krum) Begin(_ int, global []float32) Aggregation { return newBufferAgg(global, s.reduce) }

// params returns f and the number of updates kept for a round of n updates.
func (s *krum) params(n int) (f, keep int, err error) {
	f = s.f
	if f == 0 {
		f = max(0, (n-3)/2)
	} else if n < 2*f+3 {
		return 0, 0, fmt.Errorf("%w: %s with f=%d needs at least %d updates, got %d", ErrTooFewUpdates, s.Name(), f, 2*f+3, n)
	}
	keep = 1
	if s.multi {
		// n − 2f rather than Blanchard et al.'s n − f: rounds are sampled,
		// so some hold more attackers than f, and averaging only the
		// best-scored n − 2f keeps one more of them out (at f = 3 of 10,
		// four attackers no longer get one update into the average).
		keep = max(1, n-2*f)
		if s.m > 0 {
			keep = min(s.m, n)
		}
	}
	return f, keep, nil
}

func (s *krum) reduce(ctx context.Context, ups []Update, global, dst []float32, verdicts []Verdict, met map[string]float64) (int, error) {
	n := len(ups)
	f, keep, err := s.params(n)
	if err != nil {
		return 0, err
	}
	dist, err := pairwiseSquared(ctx, deltasOf(ups))
	if err != nil {
		return 0, err
	}
	neighbours := max(1, n-f-2)
	scores := make([]float64, n)
	row := make([]float64, 0, n)
	for i := range n {
		row = row[:0]
		for j := range n {
			if j != i {
				row = append(row, dist[i*n+j])
			}
		}
		slices.Sort(row)
		for _, d := range row[:min(neighbours, len(row))] {
			scores[i] += d
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := cmp.Compare(scores[a], scores[b]); c != 0 {
			return c
		}
		return compareUpdates(ups[a], ups[b])
	})
	sum := make([]float64, len(global))
	for _, i := range order[:keep] {
		for j, v := range ups[i].Delta {
			sum[j] += float64(v)
		}
	}
	for j := range sum {
		sum[j] /= float64(keep)
	}
	applyDelta(dst, global, sum)
	for rank, i := range order {
		if rank >= keep {
			verdicts[i].Excluded = true
			verdicts[i].Reason = fmt.Sprintf("%s score %.4g ranks %d of %d; keeps %d (f=%d)", s.Name(), scores[i], rank+1, n, keep, f)
		}
	}
	met["krum_f"] = float64(f)
	met["krum_m"] = float64(keep)
	met["agg_norm"] = norm64(sum)
	return keep, nil
}

// compareUpdates orders updates with equal Krum scores by content, so that
// selection does not depend on the order of Adds.
func compareUpdates(a, b Update) int {
	if c := cmp.Compare(a.Client, b.Client); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Samples, b.Samples); c != 0 {
		return c
	}
	return slices.Compare(a.Delta, b.Delta)
}

// pairwiseSquared returns the n×n matrix of squared L2 distances between
// deltas, computing each pair once (in float64) from up to GOMAXPROCS
// goroutines.
func pairwiseSquared(ctx context.Context, deltas [][]float32) ([]float64, error) {
	n := len(deltas)
	type pair struct{ i, j int }
	var pairs []pair
	for i := range n {
		for j := i + 1; j < n; j++ {
			pairs = append(pairs, pair{i, j})
		}
	}
	dist := make([]float64, n*n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(1, len(pairs))) {
		wg.Go(func() {
			for {
				p := int(next.Add(1) - 1)
				if p >= len(pairs) || ctxErr(ctx) != nil {
					return
				}
				a, b := deltas[pairs[p].i], deltas[pairs[p].j]
				var s float64
				for k, v := range a {
					d := float64(v) - float64(b[k])
					s += d * d
				}
				dist[pairs[p].i*n+pairs[p].j] = s
				dist[pairs[p].j*n+pairs[p].i] = s
			}
		})
	}
	wg.Wait()
	return dist, ctxErr(ctx)
}
