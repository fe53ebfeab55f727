package fl

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// reduceFunc computes a robust aggregate of ups (owned copies, validated) and
// writes dst = global + aggregate. It fills Used, the Excluded and Reason
// fields of verdicts (one per update, Client already set) and metrics.
type reduceFunc func(ctx context.Context, ups []Update, global, dst []float32, verdicts []Verdict, m map[string]float64) (used int, err error)

// bufferAgg buffers copies of the round's deltas for a robust rule. Its
// memory grows with the number of updates (one model copy each).
type bufferAgg struct {
	mu     sync.Mutex
	global []float32
	ups    []Update
	reduce reduceFunc
	done   bool
}

func newBufferAgg(global []float32, reduce reduceFunc) *bufferAgg {
	checkGlobal(global)
	return &bufferAgg{global: global, reduce: reduce}
}

// Add validates u and buffers a copy of its delta.
func (a *bufferAgg) Add(ctx context.Context, u Update) error {
	if err := a.precheck(ctx, u); err != nil {
		return err
	}
	u.Delta = slices.Clone(u.Delta)
	return a.push(weighed(u))
}

// weighed multiplies u.Delta, a copy the aggregation owns, by u.Weight
// (the robust rules do not weight by sample count) and clears it.
func weighed(u Update) Update {
	if w := u.scale(); w != 1 {
		for i := range u.Delta {
			u.Delta[i] *= w
		}
	}
	u.Weight = 0
	return u
}

// adopt is Add without the copy: the aggregation takes ownership of u.Delta.
// Detector uses it to hand over its own buffered copies.
func (a *bufferAgg) adopt(ctx context.Context, u Update) error {
	if err := a.precheck(ctx, u); err != nil {
		return err
	}
	return a.push(weighed(u))
}

// precheck validates u outside the lock (it reads only immutable fields).
func (a *bufferAgg) precheck(ctx context.Context, u Update) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	_, err := checkUpdate(u, len(a.global))
	return err
}

func (a *bufferAgg) push(u Update) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return ErrFinished
	}
	a.ups = append(a.ups, u)
	return nil
}

// Finish runs the robust rule over the buffered deltas.
func (a *bufferAgg) Finish(ctx context.Context, dst []float32) (Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return Result{}, ErrFinished
	}
	checkDst(dst, len(a.global))
	if err := ctxErr(ctx); err != nil {
		return Result{}, err
	}
	if len(a.ups) == 0 {
		return Result{Metrics: newMetrics()}, ErrNoUpdates
	}
	verdicts := make([]Verdict, len(a.ups))
	var normSum float64
	for i, u := range a.ups {
		verdicts[i].Client = u.Client
		normSum += norm(u.Delta)
	}
	m := newMetrics()
	m["mean_norm"] = normSum / float64(len(a.ups))
	used, err := a.reduce(ctx, a.ups, a.global, dst, verdicts, m)
	a.done, a.ups = true, nil
	if err != nil {
		return Result{}, err
	}
	return Result{Used: used, Verdicts: verdicts, Metrics: m}, nil
}

// deltasOf returns the deltas of ups.
func deltasOf(ups []Update) [][]float32 {
	d := make([][]float32, len(ups))
	for i, u := range ups {
		d[i] = u.Delta
	}
	return d
}

// coordinate is the coordinate-wise median (Yin et al. 2018) or trimmed mean.
// Both are unweighted: a client's sample count cannot buy it influence.
type coordinate struct {
	name string  // "median" or "trimmed-mean"
	beta float64 // fraction trimmed from each end (trimmed mean)
}

// Name returns "median" or "trimmed-mean".
func (s *coordinate) Name() string { return s.name }

// ConfigureFit returns base unchanged.
func (s *coordinate) ConfigureFit(_ int, base FitConfig) FitConfig { return base }

// Begin starts buffering the round's deltas.
func (s *coordinate) Begin(_ int, global []float32) Aggregation {
	return newBufferAgg(global, s.reduce)
}

func (s *coordinate) reduce(ctx context.Context, ups []Update, global, dst []float32, _ []Verdict, m map[string]float64) (int, error) {
	deltas := deltasOf(ups)
	if s.name == "median" {
		return len(ups), coordMedian(ctx, dst, global, deltas)
	}
	trim := s.trimCount(len(ups))
	m["trim_per_end"] = float64(trim)
	return len(ups), coordTrimmedMean(ctx, dst, global, deltas, trim)
}

// trimCount is floor(beta·k), the number of values dropped at each end; it is
// always below k/2 because beta < 0.5.
func (s *coordinate) trimCount(k int) int {
	t := int(s.beta * float64(k))
	if 2*t >= k {
		panic(fmt.Sprintf("fl: trimmed mean beta %v drops all of %d values", s.beta, k))
	}
	return t
}
