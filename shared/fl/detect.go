package fl

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
)

// DefaultDetectThreshold is the anomaly score above which Detector excludes
// an update: 3.5, the cut-off Iglewicz and Hoaglin (1993) recommend for
// modified z-scores.
const DefaultDetectThreshold = 3.5

// Detection constants. The floors keep the robust spreads from collapsing when
// honest updates happen to agree closely, so that tiny differences are never
// called anomalies.
const (
	minDetectUpdates = 3      // fewer updates: no detection
	madToSigma       = 1.4826 // MAD of a normal distribution times this = sigma
	cosineFloor      = 0.05   // smallest spread of cosines
	logNormFloor     = 0.25   // smallest spread of log norm ratios
	maxLogNorm       = 50.0   // clamp for zero norms
)

// Detector wraps a strategy with Byzantine-update detection. At Finish it
// computes, for each update, the cosine similarity between its delta and a
// robust reference (the coordinate-wise median of the round's deltas) and its
// norm ratio ||delta_i|| / median_j ||delta_j||. Its anomaly score is the larger
// of two modified z-scores (Iglewicz and Hoaglin 1993) over the round:
//
//	cosine: (median(cos) − cos_i) / max(1.4826·MAD(cos), 0.05)   (only low cosines count)
//	norm:   |log r_i − median(log r)| / max(1.4826·MAD(log r), 0.25)
//
// Once a round has finished, the norm score compares each norm with the
// updates the previous round kept instead (a history an attacker cannot
// move within one round):
//
//	norm:   |log(||delta_i|| / previous median norm)| / max(previous 1.4826·MAD(log norm), 0.25)
//
// so that a round in which attackers are half or more of the clients, which
// corrupts the round's own medians, still cannot pass amplified updates.
// The history starts empty (also after a restart) and is updated only by
// rounds that finish.
//
// Updates scoring above the threshold are excluded, with a reason, and the
// rest go to the inner strategy. Sign-flipped updates fail the cosine test,
// scaled ones the norm test, and noise both. With fewer than 3 updates nothing
// is excluded. Detector buffers a copy of every delta (handed on without
// another copy to the inner robust strategies of this package).
//
// Detector is safe for concurrent use.
type Detector struct {
	inner     Strategy
	threshold float64

	mu       sync.Mutex
	prevNorm float64 // median norm of the updates the last finished round kept; 0 = none yet
	prevSD   float64 // robust spread of their log norms
}

// NewDetector returns a Detector around inner that excludes updates whose
// score exceeds threshold (0 selects DefaultDetectThreshold).
func NewDetector(inner Strategy, threshold float64) (*Detector, error) {
	if inner == nil {
		return nil, fmt.Errorf("fl: detector needs an inner strategy")
	}
	if threshold == 0 {
		threshold = DefaultDetectThreshold
	}
	if !(threshold > 0) || math.IsInf(threshold, 0) {
		return nil, fmt.Errorf("fl: detection threshold %v must be positive and finite", threshold)
	}
	return &Detector{inner: inner, threshold: threshold}, nil
}

// Name returns the inner strategy's name followed by "+detect".
func (d *Detector) Name() string { return d.inner.Name() + "+detect" }

// ConfigureFit returns the inner strategy's configuration.
func (d *Detector) ConfigureFit(round int, base FitConfig) FitConfig {
	return d.inner.ConfigureFit(round, base)
}

// Unwrap returns the inner strategy.
func (d *Detector) Unwrap() Strategy { return d.inner }

// Threshold returns the score above which updates are excluded.
func (d *Detector) Threshold() float64 { return d.threshold }

// Begin starts the inner aggregation and a buffer for detection.
func (d *Detector) Begin(round int, global []float32) Aggregation {
	checkGlobal(global)
	return &detectAgg{d: d, inner: d.inner.Begin(round, global), n: len(global)}
}

// adopter is implemented by aggregations that can take ownership of a delta
// instead of copying it.
type adopter interface {
	adopt(ctx context.Context, u Update) error
}

type detectAgg struct {
	d     *Detector
	inner Aggregation
	n     int

	mu   sync.Mutex
	ups  []Update
	done bool
}

// Add validates u and buffers a copy.
func (a *detectAgg) Add(ctx context.Context, u Update) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if _, err := checkUpdate(u, a.n); err != nil {
		return err
	}
	u.Delta = slices.Clone(u.Delta)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return ErrFinished
	}
	a.ups = append(a.ups, u)
	return nil
}

// Finish scores the buffered updates, hands the accepted ones to the inner
// aggregation and finishes it. If every update is excluded it returns the
// verdicts with an error wrapping ErrNoUpdates, leaving dst untouched.
func (a *detectAgg) Finish(ctx context.Context, dst []float32) (Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return Result{}, ErrFinished
	}
	checkDst(dst, a.n)
	if err := ctxErr(ctx); err != nil {
		return Result{}, err
	}
	if len(a.ups) == 0 {
		return Result{Metrics: newMetrics()}, ErrNoUpdates
	}
	a.done = true
	ups := a.ups
	a.ups = nil
	verdicts, summary, err := a.d.judge(ctx, ups)
	if err != nil {
		return Result{}, err
	}
	var passed []int
	var keptNorms []float64
	for i, u := range ups {
		if verdicts[i].Excluded {
			continue
		}
		if ad, ok := a.inner.(adopter); ok {
			err = ad.adopt(ctx, u)
		} else {
			err = a.inner.Add(ctx, u)
		}
		if err != nil {
			return Result{}, err
		}
		passed = append(passed, i)
		keptNorms = append(keptNorms, norm(u.Delta))
	}
	if len(passed) == 0 {
		res := Result{Verdicts: verdicts, Metrics: summary}
		return res, fmt.Errorf("%w: detection excluded all %d updates", ErrNoUpdates, len(ups))
	}
	res, err := a.inner.Finish(ctx, dst)
	if err != nil {
		return res, err
	}
	a.d.remember(keptNorms)
	for k, i := range passed {
		iv := res.Verdicts[k]
		verdicts[i].Excluded, verdicts[i].Reason = iv.Excluded, iv.Reason
	}
	res.Verdicts = verdicts
	for k, v := range summary {
		res.Metrics[k] = v
	}
	return res, nil
}

// remember keeps the norms of a finished round's kept updates as the history
// the next round's norm scores use.
func (d *Detector) remember(norms []float64) {
	med := median(slices.Clone(norms))
	logs := make([]float64, len(norms))
	for i, n := range norms {
		_, logs[i] = normRatio(n, med)
	}
	_, sd := robustSpread(logs, logNormFloor)
	d.mu.Lock()
	d.prevNorm, d.prevSD = med, sd
	d.mu.Unlock()
}

// judge scores ups and marks those above the threshold as excluded.
func (d *Detector) judge(ctx context.Context, ups []Update) ([]Verdict, map[string]float64, error) {
	k := len(ups)
	verdicts := make([]Verdict, k)
	for i, u := range ups {
		verdicts[i].Client = u.Client
	}
	summary := map[string]float64{"detect_threshold": d.threshold, "detect_excluded": 0}
	ref := make([]float32, len(ups[0].Delta))
	if err := coordMedian(ctx, ref, nil, deltasOf(ups)); err != nil {
		return nil, nil, err
	}
	refNorm := norm(ref)
	norms := make([]float64, k)
	cos := make([]float64, k)
	for i, u := range ups {
		norms[i] = norm(u.Delta)
		cos[i] = cosine(dot(u.Delta, ref), norms[i], refNorm)
	}
	medNorm := median(slices.Clone(norms))
	logr := make([]float64, k)
	for i := range ups {
		verdicts[i].Cosine = cos[i]
		verdicts[i].NormRatio, logr[i] = normRatio(norms[i], medNorm)
	}
	medCos, sdCos := robustSpread(cos, cosineFloor)
	medLog, sdLog := robustSpread(logr, logNormFloor)
	summary["detect_median_norm"] = medNorm
	summary["detect_median_cosine"] = medCos
	d.mu.Lock()
	prev, prevSD := d.prevNorm, d.prevSD
	d.mu.Unlock()
	if prev > 0 {
		summary["detect_previous_norm"] = prev
	}
	for i := range verdicts {
		v := &verdicts[i]
		zc := max(0, (medCos-cos[i])/sdCos)
		zn := math.Abs(logr[i]-medLog) / sdLog
		if prev > 0 {
			var lr float64
			v.NormRatio, lr = normRatio(norms[i], prev)
			zn = math.Abs(lr) / prevSD
		}
		v.Score = max(zc, zn)
		if k < minDetectUpdates || v.Score <= d.threshold {
			continue
		}
		v.Excluded = true
		summary["detect_excluded"]++
		if zc >= zn {
			v.Reason = fmt.Sprintf("cosine %.2f to robust aggregate vs round median %.2f (score %.1f > threshold %.1f)",
				cos[i], medCos, v.Score, d.threshold)
		} else {
			ref := "the round median"
			if prev > 0 {
				ref = "the previous round's median"
			}
			v.Reason = fmt.Sprintf("norm %.3gx %s (score %.1f > threshold %.1f)", v.NormRatio, ref, v.Score, d.threshold)
		}
	}
	return verdicts, summary, nil
}

// cosine returns dot/(na·nb), 1 when both vectors are zero and 0 when one is.
func cosine(dot, na, nb float64) float64 {
	switch {
	case na == 0 && nb == 0:
		return 1
	case na == 0 || nb == 0:
		return 0
	}
	return max(-1, min(1, dot/(na*nb)))
}

// normRatio returns n/med and its logarithm, clamped so that zero norms give
// finite (JSON-safe) values.
func normRatio(n, med float64) (ratio, logRatio float64) {
	switch {
	case n == med:
		return 1, 0
	case med == 0:
		return math.Exp(maxLogNorm), maxLogNorm
	case n == 0:
		return 0, -maxLogNorm
	}
	return n / med, math.Log(n / med)
}

// robustSpread returns the median of x and 1.4826·MAD(x), at least floor.
func robustSpread(x []float64, floor float64) (med, sd float64) {
	med = median(slices.Clone(x))
	dev := make([]float64, len(x))
	for i, v := range x {
		dev[i] = math.Abs(v - med)
	}
	return med, max(floor, madToSigma*median(dev))
}
