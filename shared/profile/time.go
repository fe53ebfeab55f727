package profile

import (
	"math"
	"time"
)

// duration converts nanoseconds to a Duration, saturating instead of
// overflowing; NaN and negative values give 0.
func duration(ns float64) time.Duration {
	switch {
	case !(ns > 0):
		return 0
	case ns >= math.MaxInt64:
		return math.MaxInt64
	}
	return time.Duration(ns)
}

// Compute returns how long the device takes for flops floating-point
// operations of training (see nn.Model.TrainFLOPs). It is 0 for a profile
// without a speed.
func (p Profile) Compute(flops float64) time.Duration {
	if !(p.TrainGFLOPS > 0) {
		return 0
	}
	return duration(flops / p.TrainGFLOPS) // GFLOP/s = FLOP/ns
}

// Upload returns how long sending bytes takes: half a round trip of latency
// plus the transfer at UpMbps.
func (p Profile) Upload(bytes int) time.Duration { return transfer(bytes, p.UpMbps, p.RTT) }

// Download returns how long receiving bytes takes: half a round trip of
// latency plus the transfer at DownMbps.
func (p Profile) Download(bytes int) time.Duration { return transfer(bytes, p.DownMbps, p.RTT) }

func transfer(bytes int, mbps float64, rtt time.Duration) time.Duration {
	d := rtt / 2
	if mbps > 0 && bytes > 0 {
		d += duration(float64(bytes) * 8 * 1e3 / mbps) // Mbit/s = 1e-3 bit/ns
	}
	return d
}
