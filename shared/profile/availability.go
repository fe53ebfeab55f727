package profile

import (
	"math/rand/v2"
	"time"
)

// AlwaysOnline reports whether the device never goes offline (OfflineMean
// is 0), so there are no online or offline periods to draw.
func (p Profile) AlwaysOnline() bool { return p.OfflineMean <= 0 }

// OnlinePeriod draws how long the device stays online: exponentially
// distributed with mean OnlineMean. It returns 0 for an always-online
// device, which has no periods.
func (p Profile) OnlinePeriod(r *rand.Rand) time.Duration {
	if p.AlwaysOnline() {
		return 0
	}
	return exponential(r, p.OnlineMean)
}

// OfflinePeriod draws how long the device stays offline: exponentially
// distributed with mean OfflineMean (0 for an always-online device).
func (p Profile) OfflinePeriod(r *rand.Rand) time.Duration {
	if p.AlwaysOnline() {
		return 0
	}
	return exponential(r, p.OfflineMean)
}

func exponential(r *rand.Rand, mean time.Duration) time.Duration {
	return duration(r.ExpFloat64() * float64(mean))
}

// Drop draws whether the device abandons a task (chance DropProb) and, if
// it does, at which fraction of the task's compute, uniform in [0, 1). It
// draws nothing from r when DropProb is 0.
func (p Profile) Drop(r *rand.Rand) (at float64, drops bool) {
	if p.DropProb <= 0 || r.Float64() >= p.DropProb {
		return 0, false
	}
	return r.Float64(), true
}
