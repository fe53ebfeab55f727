package participant

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/wire"
)

// join takes the run's welcome: it fetches the data slice (unless the
// person's own data is used), builds the model and the update encoder.
func (c *Client) join(ctx context.Context, w *wire.Welcome) error {
	prev := c.welcome
	c.id, c.welcome = w.ClientID, w
	c.state(StateJoined, 0)
	c.emit(Event{Type: EventWelcome, ClientID: w.ClientID, Model: w.Run.Model, Rounds: w.Run.Rounds})
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
		c.model = nil
	}
	c.emit(Event{Type: EventSlice, Samples: c.set.Len(), LabelCounts: c.set.LabelCounts(), Local: c.opt.Data != nil})
	if c.model != nil && sameRun {
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
	c.model, c.trainer = m, tr
	c.guard = newGuard(m, c.set, c.opt.Yield)
	c.enc = wire.NewEncoder(p, m.TensorShapes(), w.Run.Seed)
	c.global = make([]float32, m.NumParams())
	c.local = make([]float32, m.NumParams())
	c.version = 0
	c.emit(Event{Type: EventWelcome, ClientID: w.ClientID, Model: m.Name, Params: m.NumParams(), Rounds: w.Run.Rounds})
	return nil
}

// round downloads the round's model, trains and uploads the update.
func (c *Client) round(ctx context.Context, conn link.Conn, rs *wire.RoundStart, seq uint64) error {
	c.state(StateDownloading, rs.Round)
	c.emit(Event{Type: EventRoundStart, Round: rs.Round})
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
	c.emit(Event{Type: EventDownload, Round: rs.Round, Bytes: len(it.frame)})

	st, err := c.train(ctx, conn, rs, seq)
	var worse *worseError
	switch {
	case errors.As(err, &worse):
		return c.decline(ctx, conn, rs.Round, worse.Error())
	case errors.Is(err, errDropped):
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		c.emit(Event{Type: EventError, Round: rs.Round, Message: "the round's deadline passed before training finished; skipping this round"})
		return nil
	case errors.Is(err, context.Canceled):
		c.emit(Event{Type: EventError, Round: rs.Round, Message: "the server ended the round before training finished"})
		return nil
	case err != nil:
		return err
	}
	return c.upload(ctx, conn, rs, st)
}

// receiveModel decodes a model frame into c.global.
func (c *Client) receiveModel(frame []byte, rs *wire.RoundStart) error {
	n := len(c.global)
	h, payload, err := wire.ParseFrame(frame, wire.Limits{MaxParams: n})
	if err != nil {
		return fmt.Errorf("participant: model frame: %w", err)
	}
	if h.Round != rs.Round || h.Params != n || (h.Kind != wire.KindModel && h.Kind != wire.KindModelDelta) {
		return fmt.Errorf("participant: got %s frame for round %d with %d parameters; want a model for round %d with %d",
			h.Kind, h.Round, h.Params, rs.Round, n)
	}
	p, err := h.Pipeline()
	if err != nil {
		return err
	}
	if h.Kind == wire.KindModelDelta && h.ModelVersion != c.version {
		return fmt.Errorf("participant: model delta from version %d, but this client holds version %d", h.ModelVersion, c.version)
	}
	// Decode into local (free until training) so global stays the delta base.
	dst, err := wire.Decode(p, payload, c.model.TensorShapes(), c.global, c.local, wire.Limits{MaxParams: n})
	if err != nil {
		return fmt.Errorf("participant: decoding the model: %w", err)
	}
	c.global, c.local = dst, c.global
	c.version = rs.ModelVersion
	return nil
}

// train runs local training with progress reports, emulated slowness and
// drops, and the round's deadline.
func (c *Client) train(ctx context.Context, conn link.Conn, rs *wire.RoundStart, seq uint64) (nn.FitStats, error) {
	tctx, cancel := context.WithCancel(ctx)
	if rs.DeadlineUnixMS > 0 {
		var cancelDeadline context.CancelFunc
		tctx, cancelDeadline = context.WithDeadline(tctx, time.UnixMilli(rs.DeadlineUnixMS))
		defer cancelDeadline()
	}
	c.mu.Lock()
	c.trainSeq, c.trainCancel = seq, cancel
	if seq <= c.cancelled { // ended while the model was on its way
		cancel()
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.trainCancel = nil
		c.mu.Unlock()
		cancel()
	}()
	c.state(StateTraining, rs.Round)
	dropAt := -1.0
	if c.opt.DropProb > 0 && c.rng.Float64() < c.opt.DropProb {
		dropAt = c.rng.Float64()
	}
	var dropped bool
	lastSent, lastEvent, lastBatch := time.Time{}, time.Time{}, time.Duration(0)
	progress := func(p nn.Progress) {
		if c.opt.Slowdown > 1 {
			// Elapsed includes earlier sleeps: sleep in proportion to this
			// batch's own work only.
			sleep := time.Duration(float64(p.Elapsed-lastBatch) * (c.opt.Slowdown - 1))
			time.Sleep(sleep)
			lastBatch = p.Elapsed + sleep
		}
		done := float64((p.Epoch-1)*p.Batches+p.Batch) / float64(p.Epochs*p.Batches)
		if dropAt >= 0 && done >= dropAt && !dropped {
			dropped = true
			conn.Close()
			cancel()
			return
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
	st, err := c.trainer.Train(tctx, c.global, c.local, cfg, progress)
	if dropped {
		return st, errDropped
	}
	if err != nil {
		return st, err
	}
	if c.opt.Attack.IsNone() { // an attacker sends what it likes
		if err := c.guard.check(c.global, c.local); err != nil {
			return st, err
		}
	}
	c.tamper(rs.Seed)
	return st, tctx.Err()
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
// them.
func (c *Client) upload(ctx context.Context, conn link.Conn, rs *wire.RoundStart, st nn.FitStats) error {
	c.state(StateUploading, rs.Round)
	c.enc.Seed(rs.Seed)
	var err error
	if c.payload, err = c.enc.Encode(c.payload[:0], c.local, c.global); err != nil {
		if errors.Is(err, wire.ErrNotFinite) {
			return c.decline(ctx, conn, rs.Round, "training diverged: the trained weights are not finite")
		}
		return fmt.Errorf("participant: encoding the update: %w", err)
	}
	h := &wire.FrameHeader{Kind: wire.KindUpdate, Run: c.welcome.Run.ID, Round: rs.Round, ModelVersion: c.version,
		Codec: c.enc.Pipeline().String(), Params: len(c.local), Model: c.model.Name, Samples: st.Samples / max(1, rs.Epochs),
		Loss: finite(st.Loss), Accuracy: st.Accuracy, TrainMS: st.Duration.Milliseconds(), SamplesPerS: st.SamplesPerSecond()}
	if c.frame, err = wire.AppendFrame(c.frame[:0], h, c.payload); err != nil {
		return err
	}
	if lim := c.welcome.Limits.MaxUpdateBytes; lim > 0 && len(c.frame) > lim {
		return c.decline(ctx, conn, rs.Round, fmt.Sprintf("the update of %d bytes exceeds the server's limit of %d", len(c.frame), lim))
	}
	// The frame buffer is reused next round, so hand the connection a copy.
	if err := conn.Send(ctx, link.Message{Binary: true, Data: append([]byte(nil), c.frame...)}); err != nil {
		return err
	}
	c.emit(Event{Type: EventUpload, Round: rs.Round, Bytes: len(c.frame), LocalLoss: st.Loss,
		LocalAccuracy: st.Accuracy, SamplesPerS: st.SamplesPerSecond()})
	return nil
}

// decline tells the server (and the page) that this client sends no update
// for the round, so that the round does not wait for it.
func (c *Client) decline(ctx context.Context, conn link.Conn, round int, reason string) error {
	c.emit(Event{Type: EventError, Round: round, Message: reason + "; skipping this round"})
	c.state(StateWaiting, round)
	return c.sendMsg(ctx, conn, &wire.Decline{Round: round, Reason: reason})
}

func finite(v float64) float64 {
	if v != v || v > 1e300 || v < -1e300 {
		return 0
	}
	return v
}
