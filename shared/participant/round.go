package participant

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/wire"
)

// join takes the run's welcome: it fetches the data slice (unless the
// person's own data is used), builds the model and the update encoder.
func (c *Client) join(ctx context.Context, w *wire.Welcome) error {
	prev := c.welcome
	if w.ClientID != c.id || w.Secret != "" { // a new identity (first join, or the old one was not recognised)
		c.secret = w.Secret
	}
	c.id, c.welcome = w.ClientID, w
	c.state(StateJoined, 0)
	c.emit(Event{Type: EventWelcome, ClientID: w.ClientID, Secret: c.secret, Model: w.Run.Model, Rounds: w.Run.Rounds})
	sameRun := prev != nil && prev.Run == w.Run && prev.Slice.Index == w.Slice.Index
	if c.set == nil || !sameRun {
		set := c.opt.Data
		if set == nil {
			if c.opt.Fetch == nil {
				return fmt.Errorf("participant: no data: neither Fetch nor Data is set")
			}
			c.state(StateFetching, 0)
			var err error
			if set, err = c.opt.Fetch(ctx, w); err != nil {
				return fmt.Errorf("participant: fetching data slice: %w", err)
			}
		}
		c.set = set
		c.trainer = nil
	}
	c.emit(Event{Type: EventSlice, Samples: c.set.Len(), LabelCounts: c.set.LabelCounts(), Local: c.opt.Data != nil})
	if c.trainer != nil && sameRun {
		return nil
	}
	m, err := nn.New(w.Run.Model, nn.Shape{H: c.set.H, W: c.set.W, C: c.set.C}, c.set.Classes, w.Run.Seed)
	if err != nil {
		return fmt.Errorf("participant: run's model does not fit the data: %w", err)
	}
	p, err := wire.ParsePipeline(w.Run.Codec)
	if err != nil {
		return fmt.Errorf("participant: run's codec: %w", err)
	}
	tr, err := c.opt.NewTrainer(m, c.set)
	if err != nil {
		return err
	}
	c.trainer, c.shapes, c.modelName = tr, m.TensorShapes(), m.Name
	c.guard = newGuard(m, c.set, c.opt.Yield)
	c.flopsPerSample = m.TrainFLOPs(1)
	c.enc = wire.NewEncoder(p, c.shapes, w.Run.Seed)
	putFloats(c.global)
	c.global, c.version = nil, 0
	c.emit(Event{Type: EventWelcome, ClientID: w.ClientID, Secret: c.secret, Model: m.Name, Params: m.NumParams(), Rounds: w.Run.Rounds})
	return nil
}

// numParams is the model's parameter count.
func (c *Client) numParams() int {
	n := 0
	for _, s := range c.shapes {
		k := 1
		for _, d := range s {
			k *= d
		}
		n += k
	}
	return n
}

// round downloads the round's model, trains and uploads the update, each
// taking as long as the emulated device would (pace.go); then it hands back
// the round's buffers.
func (c *Client) round(ctx context.Context, conn link.Conn, rs *wire.RoundStart, seq uint64) error {
	if c.welcome.Run.SecureAgg != nil {
		return c.secureRound(ctx, conn, rs, seq) // secure aggregation (secure.go)
	}
	defer c.between()
	began := c.opt.Clock.Now()
	c.state(StateDownloading, rs.Round)
	c.emit(Event{Type: EventRoundStart, Round: rs.Round, ModelVersion: rs.ModelVersion})
	it, err := c.next(ctx)
	if err != nil {
		return err
	}
	if it.msg != nil { // the server moved on before sending the model
		return c.handle(ctx, conn, it)
	}
	if err := c.receiveModel(it.frame, rs); err != nil {
		return err
	}
	rctx, release := c.roundContext(ctx, rs, seq)
	defer release()
	if p := c.opt.Profile; p != nil {
		if err := c.wait(rctx, rs.Round, PhaseDownload, p.Download(len(it.frame))-c.opt.Clock.Now().Sub(began)); err != nil {
			return c.stopped(ctx, rs.Round, err, "the model arrived")
		}
	}
	c.emit(Event{Type: EventDownload, Round: rs.Round, Bytes: len(it.frame)})

	st, err := c.train(rctx, conn, rs)
	if worse := (*worseError)(nil); errors.As(err, &worse) {
		return c.decline(ctx, conn, rs.Round, worse.Error())
	}
	if err != nil {
		return c.stopped(ctx, rs.Round, err, "training finished")
	}
	return c.upload(ctx, rctx, conn, rs, st)
}

// stopped turns what ended a round's work early into the session's
// result: an emulated drop or the end of the session ends the session; the
// round's deadline or the server ending the round only skips the round,
// and says so before what.
func (c *Client) stopped(ctx context.Context, round int, err error, before string) error {
	switch {
	case errors.Is(err, errDropped):
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		c.emit(Event{Type: EventError, Round: round, Message: "the round's deadline passed before " + before + "; skipping this round"})
		return nil
	case errors.Is(err, context.Canceled):
		c.emit(Event{Type: EventError, Round: round, Message: "the server ended the round before " + before})
		return nil
	}
	return err
}

// between hands back what a round used: the trained model, the encoder's
// scratch and, unless the run sends model deltas (whose base it is), the
// global model.
func (c *Client) between() {
	putFloats(c.local)
	c.local = nil
	if c.enc != nil {
		c.enc.Release()
	}
	if c.welcome != nil && !strings.HasPrefix(c.welcome.Run.DownCodec, "delta") {
		putFloats(c.global)
		c.global, c.version = nil, 0
	}
}

// receiveModel decodes a model frame into c.global: a whole model of the
// round's version, or a delta from the version the client holds.
func (c *Client) receiveModel(frame []byte, rs *wire.RoundStart) error {
	n := c.numParams()
	h, payload, err := wire.ParseFrame(frame, wire.Limits{MaxParams: n})
	if err != nil {
		return fmt.Errorf("participant: model frame: %w", err)
	}
	if h.Params != n || (h.Kind != wire.KindModel && h.Kind != wire.KindModelDelta) {
		return fmt.Errorf("participant: got a %s frame with %d parameters; want a model with %d", h.Kind, h.Params, n)
	}
	p, err := h.Pipeline()
	if err != nil {
		return err
	}
	switch {
	case h.Kind == wire.KindModel && h.ModelVersion != rs.ModelVersion:
		return fmt.Errorf("participant: got model version %d for round %d, which trains version %d", h.ModelVersion, rs.Round, rs.ModelVersion)
	case h.Kind == wire.KindModelDelta && (h.ModelVersion != c.version || c.global == nil):
		return fmt.Errorf("participant: model delta from version %d, but this client holds version %d", h.ModelVersion, c.version)
	}
	// Decode into a fresh buffer so global stays the delta base.
	dst, err := wire.Decode(p, payload, c.shapes, c.global, getFloats(n), wire.Limits{MaxParams: n})
	if err != nil {
		return fmt.Errorf("participant: decoding the model: %w", err)
	}
	putFloats(c.global)
	c.global, c.version = dst, rs.ModelVersion
	return nil
}

// train runs local training in the round's context ctx, with progress
// reports, emulated slowness (Slowdown, or the profile's compute time) and
// drops.
func (c *Client) train(ctx context.Context, conn link.Conn, rs *wire.RoundStart) (nn.FitStats, error) {
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	c.state(StateTraining, rs.Round)
	prof, clock := c.opt.Profile, c.opt.Clock
	began := clock.Now()
	var work time.Duration // the emulated device's compute time
	if prof != nil {
		work = prof.Compute(c.roundFLOPs(rs.Epochs))
	}
	dropAt := -1.0 // fraction of the work at which the client drops (< 0: it does not)
	switch {
	case c.dropTraining: // a secure round drew this drop already (secure.go)
		dropAt = c.rng.Float64()
	case prof != nil:
		if at, ok := prof.Drop(c.rng); ok {
			dropAt = at
		}
	case c.welcome.Run.SecureAgg == nil && c.opt.DropProb > 0 && c.rng.Float64() < c.opt.DropProb:
		dropAt = c.rng.Float64()
	}
	dropTime := time.Duration(dropAt * float64(work))
	// dropped: the connection is closed. ahead: with a profile, the real
	// training has done the dropping device's share of the work before
	// its time; the rest of that time is waited below.
	var dropped, ahead bool
	lastSent, lastEvent, lastBatch := time.Time{}, time.Time{}, time.Duration(0)
	progress := func(p nn.Progress) {
		if prof == nil && c.opt.Slowdown > 1 {
			// Elapsed includes earlier sleeps: sleep in proportion to this
			// batch's own work only.
			sleep := time.Duration(float64(p.Elapsed-lastBatch) * (c.opt.Slowdown - 1))
			time.Sleep(sleep)
			lastBatch = p.Elapsed + sleep
		}
		done := float64((p.Epoch-1)*p.Batches+p.Batch) / float64(p.Epochs*p.Batches)
		if dropAt >= 0 && !dropped && !ahead {
			switch {
			case prof == nil && done >= dropAt, prof != nil && clock.Now().Sub(began) >= dropTime:
				dropped = true
				conn.Close()
				stop()
				return
			case prof != nil && done >= dropAt:
				ahead = true
				stop()
				return
			}
		}
		now := time.Now()
		last := p.Epoch == p.Epochs && p.Batch == p.Batches
		if now.Sub(lastEvent) >= 100*time.Millisecond || last {
			lastEvent = now
			eta := p.Elapsed.Seconds() / done * (1 - done)
			c.emit(Event{Type: EventProgress, Round: rs.Round, Epoch: p.Epoch, Epochs: p.Epochs, Batch: p.Batch,
				Batches: p.Batches, Loss: p.Loss, SamplesPerS: p.SamplesPerSecond(), ETASeconds: eta})
		}
		if now.Sub(lastSent) >= c.opt.ProgressEvery || last {
			lastSent = now
			c.sendMsg(tctx, conn, &wire.Progress{Round: rs.Round, Epoch: p.Epoch, Epochs: p.Epochs, Batch: p.Batch,
				Batches: p.Batches, Loss: finite(p.Loss), SamplesPerS: p.SamplesPerSecond()})
		}
	}
	w := c.welcome.Run
	cfg := RoundConfig{Round: rs.Round, Epochs: rs.Epochs, Batch: rs.Batch, LR: rs.LR, Momentum: w.Momentum,
		WeightDecay: w.WeightDecay, Mu: rs.Mu, Seed: rs.Seed}
	if a := c.opt.Attack; !a.IsNone() {
		classes := c.set.Classes
		cfg.Label = func(y uint8) uint8 { return a.FlipLabel(y, classes) }
	}
	if c.local == nil {
		c.local = getFloats(len(c.global))
	}
	st, err := c.trainer.Train(tctx, c.global, c.local, cfg, progress)
	switch {
	case dropped:
		return st, errDropped
	case prof != nil && dropAt >= 0 && (ahead || err == nil):
		// The device drops at dropTime into its compute (a trainer that
		// reports no progress finishes "ahead" too).
		if err := c.wait(ctx, rs.Round, PhaseCompute, dropTime-clock.Now().Sub(began)); err != nil {
			return st, err
		}
		conn.Close()
		return st, errDropped
	case err != nil:
		return st, err
	}
	if prof != nil {
		if err := c.wait(ctx, rs.Round, PhaseCompute, work-clock.Now().Sub(began)); err != nil {
			return st, err
		}
		c.emulated = clock.Now().Sub(began) // train_ms reports the emulated device's time
	}
	if c.opt.Attack.IsNone() { // an attacker sends what it likes
		if err := c.guard.check(c.global, c.local); err != nil {
			return st, err
		}
	}
	c.tamper(rs.Seed)
	return st, nil
}

// tamper applies the configured attack to the trained update.
func (c *Client) tamper(seed uint64) {
	if c.opt.Attack.IsNone() {
		return
	}
	for i := range c.local {
		c.local[i] -= c.global[i]
	}
	c.opt.Attack.Apply(c.local, rand.New(rand.NewPCG(seed, 0xa77ac4)))
	for i := range c.local {
		c.local[i] += c.global[i]
	}
}

// upload encodes the trained weights against the round's model and sends
// them on ctx, after the emulated device's upload time, waited on the
// round's context rctx.
func (c *Client) upload(ctx, rctx context.Context, conn link.Conn, rs *wire.RoundStart, st nn.FitStats) error {
	c.state(StateUploading, rs.Round)
	c.enc.Seed(rs.Seed)
	payload, err := c.enc.Encode(nil, c.local, c.global)
	if err != nil {
		if errors.Is(err, wire.ErrNotFinite) {
			return c.decline(ctx, conn, rs.Round, "training diverged: the trained weights are not finite")
		}
		return fmt.Errorf("participant: encoding the update: %w", err)
	}
	h := &wire.FrameHeader{Kind: wire.KindUpdate, Run: c.welcome.Run.ID, Round: rs.Round, ModelVersion: c.version,
		Codec: c.enc.Pipeline().String(), Params: len(c.local), Model: c.modelName, Samples: st.Samples / max(1, rs.Epochs),
		Loss: finite(st.Loss), Accuracy: st.Accuracy, TrainMS: st.Duration.Milliseconds(), SamplesPerS: st.SamplesPerSecond()}
	if c.opt.Profile != nil {
		// The emulated device's compute time beside the speed really
		// measured on this hardware.
		h.TrainMS = c.emulated.Milliseconds()
	}
	frame, err := wire.AppendFrame(nil, h, payload)
	if err != nil {
		return err
	}
	if lim := c.welcome.Limits.MaxUpdateBytes; lim > 0 && len(frame) > lim {
		return c.decline(ctx, conn, rs.Round, fmt.Sprintf("the update of %d bytes exceeds the server's limit of %d", len(frame), lim))
	}
	if p := c.opt.Profile; p != nil {
		// The device sends the frame, less the digits of the speed measured
		// on this host: a real-time figure, with which two devices that
		// finish together on a virtual clock would finish in an order that
		// real time decides, and a seeded simulation would not repeat.
		timed := *h
		timed.SamplesPerS = 0
		n, err := wire.FrameLen(&timed, payload)
		if err != nil {
			return err
		}
		if err := c.wait(rctx, rs.Round, PhaseUpload, p.Upload(n)); err != nil {
			return c.stopped(ctx, rs.Round, err, "the update was sent")
		}
	}
	// The connection owns the frame from here.
	if err := conn.Send(ctx, link.Message{Binary: true, Data: frame}); err != nil {
		return err
	}
	c.emit(Event{Type: EventUpload, Round: rs.Round, Bytes: len(frame), LocalLoss: st.Loss,
		LocalAccuracy: st.Accuracy, SamplesPerS: st.SamplesPerSecond()})
	return nil
}

// decline tells the server (and the page) that this client sends no update
// for the round, so that the round does not wait for it.
func (c *Client) decline(ctx context.Context, conn link.Conn, round int, reason string) error {
	c.emit(Event{Type: EventError, Round: round, Message: reason + "; skipping this round"})
	c.state(StateWaiting, round)
	return c.sendMsg(ctx, conn, &wire.Decline{Round: round, Reason: wire.ClipText(reason)})
}

func finite(v float64) float64 {
	if v != v || v > 1e300 || v < -1e300 {
		return 0
	}
	return v
}
