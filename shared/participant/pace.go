package participant

import (
	"context"
	"fmt"
	"time"

	"github.com/qflare/qflare/shared/wire"
)

// Device emulation (Options.Profile). A client with a profile takes as long
// as the profile's device would for each step of a round, measured on
// Options.Clock:
//
//   - receiving the model: Download(frame bytes), counted from the
//     round_start, so real network time counts towards it;
//   - training: Compute(the round's training FLOPs), counted from the
//     start of training, so real compute time counts towards it (on a
//     virtual clock that does not move while the client computes, the
//     whole Compute time is waited);
//   - sending the update: Upload(frame bytes), waited before sending; the
//     bytes leave out the digits of the speed measured on the host, so
//     that the wait does not depend on real time.
//
// The client waits out whatever the real work left of that time: a tab
// must, because DevTools CPU throttling does not slow Web Workers. A
// profile only slows a client down; on a host slower than the profile the
// real time stands. Every wait ends when the round does (round_end,
// run_end, the round's deadline, a lost connection).

// Emulated phases, in Event.Phase.
const (
	PhaseDownload = "download"
	PhaseCompute  = "compute"
	PhaseUpload   = "upload"
)

// roundContext returns the context of a round's work (waits and training):
// it ends at the round's deadline, or when the server ends the round or
// the run, or the connection fails (cancelTraining), including before this
// call. release must be called when the round's work is over.
func (c *Client) roundContext(ctx context.Context, rs *wire.RoundStart, seq uint64) (rctx context.Context, release func()) {
	rctx, cancel := context.WithCancel(ctx)
	cancelDeadline := func() {}
	if rs.DeadlineUnixMS > 0 {
		// On the client's clock: a simulation's deadlines are virtual.
		rctx, cancelDeadline = context.WithTimeout(rctx, time.UnixMilli(rs.DeadlineUnixMS).Sub(c.opt.Clock.Now()))
	}
	c.mu.Lock()
	c.trainSeq, c.trainCancel = seq, cancel
	if seq <= c.cancelled { // ended while the model was on its way
		cancel()
	}
	c.mu.Unlock()
	return rctx, func() {
		c.mu.Lock()
		c.trainCancel = nil
		c.mu.Unlock()
		cancelDeadline()
		cancel()
	}
}

// wait spends d on the clock as the profile's device would in phase, and
// tells the page so. It returns ctx's error if ctx ends first; d ≤ 0
// returns nil at once.
func (c *Client) wait(ctx context.Context, round int, phase string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	name := c.opt.Profile.Name
	c.emit(Event{Type: EventEmulate, Round: round, Phase: phase, Profile: name, WaitSeconds: d.Seconds(),
		Message: fmt.Sprintf("emulating %s: %.1f s of %s left", name, d.Seconds(), phase)})
	return c.sleep(ctx, d)
}

// roundFLOPs is the training FLOPs of a round of the given epochs on the
// client's data.
func (c *Client) roundFLOPs(epochs int) float64 {
	return c.flopsPerSample * float64(c.set.Len()) * float64(epochs)
}
