package coord

import "time"

// Observer is told what the engine does, for metrics
// (server/internal/metrics.Metrics implements it). Its methods are called
// from the engine's goroutines (loops, sessions, closers) and must be quick
// and safe for concurrent use.
type Observer interface {
	// ObserveDecode reports one update decode.
	ObserveDecode(d time.Duration)
	// ObserveAggregate reports one round's aggregate (the strategy's
	// Finish).
	ObserveAggregate(d time.Duration)
	// ObserveEvaluate reports one model evaluation.
	ObserveEvaluate(d time.Duration)
	// RoundEnded reports a closed round: how long it was open, and
	// whether it failed (produced no model).
	RoundEnded(d time.Duration, failed bool)
	// Excluded reports how many of a round's updates the aggregator left
	// out.
	Excluded(n int)
	// Update reports an update's verdict ("accepted", "rejected" with its
	// reject code, or "declined").
	Update(verdict, code string)
	// RunEnded reports that a run ended with status (finished, stopped,
	// failed).
	RunEnded(status string)
}

// nopObserver is the Observer of a coordinator without one.
type nopObserver struct{}

func (nopObserver) ObserveDecode(time.Duration)    {}
func (nopObserver) ObserveAggregate(time.Duration) {}
func (nopObserver) ObserveEvaluate(time.Duration)  {}
func (nopObserver) RoundEnded(time.Duration, bool) {}
func (nopObserver) Excluded(int)                   {}
func (nopObserver) Update(string, string)          {}
func (nopObserver) RunEnded(string)                {}
