package fl

import (
	"context"
	"errors"
)

// Update is one client's contribution to a round. Aggregators never modify it.
type Update struct {
	// Client names the client, for verdicts and logs.
	Client string
	// Samples is the number of local examples, the weight for sample-weighted
	// averaging; it must be positive.
	Samples int
	// Delta is w_client − w_global; its length must equal the model size.
	Delta []float32
	// Norm, when positive, is Delta's L2 norm as the caller computed it
	// while it checked Delta (wire.ToDelta returns it, summed exactly as
	// the aggregations sum it): a finite norm of at most MaxDeltaValue
	// also vouches that every value is finite and within ±MaxDeltaValue.
	// Add then trusts it and skips its own pass over Delta. Leave it 0
	// unless it is exactly that.
	Norm float64
	// Weight, when not 0, multiplies the update's say in the aggregate
	// (an asynchronous update's staleness weight): the mean-based
	// strategies fold Samples·Weight·Delta and divide by the sum of
	// Samples·Weight, so that the aggregate stays a weighted mean; the
	// strategies that do not weight by sample count (the robust rules,
	// DP's fixed denominator) multiply the delta by Weight instead. 0
	// means 1; otherwise it must be in [MinWeight, 1].
	Weight float32
}

// MinWeight is the smallest non-zero Update.Weight. With it, every
// Samples·Weight is an exact multiple of 2^-47, so the mean-based
// strategies sum the weights exactly.
const MinWeight = 1.0 / (1 << 24)

// FitConfig is what a round asks of each client.
type FitConfig struct {
	// Epochs is the number of local epochs.
	Epochs int
	// Batch is the local batch size.
	Batch int
	// LR is the client learning rate.
	LR float64
	// Mu is the FedProx proximal coefficient; 0 turns the term off.
	Mu float64
}

// Strategy configures rounds and starts per-round aggregations. The
// coordinator owns the round loop. The strategies of this package are safe for
// concurrent use; state that persists across rounds (server optimizer moments,
// DP clip norm and privacy spent) changes only when an Aggregation's Finish
// succeeds.
type Strategy interface {
	// Name returns the strategy's name: one that New accepts, followed by
	// "+dp" and "+detect" for the wrappers.
	Name() string
	// ConfigureFit returns the configuration to send to clients in round,
	// derived from base.
	ConfigureFit(round int, base FitConfig) FitConfig
	// Begin starts aggregating round, whose current global model is global.
	// The Aggregation reads global until Finish returns; the caller must not
	// change it in between (except by passing it as Finish's dst). Begin panics
	// if global is empty.
	Begin(round int, global []float32) Aggregation
}

// Aggregation collects one round's updates. The aggregations of this package
// are safe for concurrent use (calls are serialised). An Aggregation is
// single-use: once Finish has started aggregating (it did not return
// ErrNoUpdates, or a context error before any work), Add and Finish return
// ErrFinished.
type Aggregation interface {
	// Add folds in (streaming strategies) or buffers (robust ones) one update.
	// It returns an error, and leaves the aggregation as it was, for a delta
	// whose length differs from the model's, a non-positive sample count, or a
	// non-finite value. Add never keeps a reference to u.Delta: buffering
	// strategies copy it, so callers may reuse their decode buffers as soon as
	// Add returns.
	Add(ctx context.Context, u Update) error
	// Finish writes the new global model into dst and reports per-update
	// outcomes. dst must have the model's length (Finish panics otherwise); it
	// may be the global slice given to Begin (an in-place update) but must not
	// overlap any delta given to Add. With no updates Finish returns
	// ErrNoUpdates and leaves dst untouched; on other errors the contents of
	// dst are unspecified.
	Finish(ctx context.Context, dst []float32) (Result, error)
}

// Result reports the outcome of one round's aggregation.
type Result struct {
	// Used is the number of updates that went into the aggregate.
	Used int
	// Verdicts has one entry per successful Add, in Add order.
	Verdicts []Verdict
	// Epsilon is the DP epsilon spent so far, at Delta (0 without DP).
	Epsilon float64
	// Delta is the DP delta Epsilon is stated at (0 without DP).
	Delta float64
	// Metrics holds named figures of the round, such as "mean_norm",
	// "agg_norm" or "dp_noise_std". It is not nil when Finish succeeds.
	Metrics map[string]float64
}

// Verdict is the outcome for one update.
type Verdict struct {
	// Client is the update's client.
	Client string
	// Score is the anomaly score (higher is more suspicious); 0 when detection
	// is off.
	Score float64
	// Cosine is the cosine similarity of the delta to the round's robust
	// reference (coordinate-wise median); 0 when detection is off.
	Cosine float64
	// NormRatio is the delta's L2 norm over the round's median norm; 0 when
	// detection is off.
	NormRatio float64
	// Excluded reports whether the update was left out of the aggregate.
	Excluded bool
	// Reason explains an exclusion (or a transformation such as DP clipping)
	// in words.
	Reason string
}

// Stateful is implemented by strategies whose state persists across rounds, so
// that a restarted server can restore it. UnmarshalState validates its input
// and leaves the strategy unchanged on error. Use StateOf to find it through
// wrappers.
type Stateful interface {
	// MarshalState encodes the persistent state.
	MarshalState() ([]byte, error)
	// UnmarshalState replaces the persistent state with a decoded one.
	UnmarshalState([]byte) error
}

// Wrapper is implemented by strategies that wrap another (DP, Detector).
type Wrapper interface {
	// Unwrap returns the wrapped strategy.
	Unwrap() Strategy
}

// StateOf returns the outermost Stateful in the chain s, s.Unwrap(), ...; a
// Stateful wrapper includes the state of what it wraps.
func StateOf(s Strategy) (Stateful, bool) {
	for s != nil {
		if st, ok := s.(Stateful); ok {
			return st, true
		}
		w, ok := s.(Wrapper)
		if !ok {
			return nil, false
		}
		s = w.Unwrap()
	}
	return nil, false
}

var (
	// ErrNoUpdates is returned by Finish when no update went into the
	// aggregate, instead of a nil or empty model.
	ErrNoUpdates = errors.New("fl: no updates to aggregate")
	// ErrFinished is returned by Add and Finish on an Aggregation whose
	// Finish has already been called.
	ErrFinished = errors.New("fl: aggregation already finished")
	// ErrTooFewUpdates is returned (wrapped) by Finish when a robust rule
	// cannot run with the round's number of updates, e.g. Krum with f
	// byzantine clients and fewer than 2f+3 updates.
	ErrTooFewUpdates = errors.New("fl: too few updates")
)
