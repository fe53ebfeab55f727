package shard

import (
	"fmt"
	"time"

	"github.com/qflare/qflare/server/internal/shardwire"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/wire"
)

// run is what the shard knows of one of the origin's runs.
type run struct {
	info    shardwire.Run
	limits  wire.Limits
	round   shardwire.Round // the latest round
	base    []float32       // the weights of round.Version (nil: none yet)
	buf     []float32       // decode buffer
	pending map[int]int     // tabs holding a task, by round
	open    map[int]*fl.Partial
	spare   *fl.Partial // a sent partial, emptied for the next
	ended   int         // the last round whose round_end the shard relayed
	seal    Stopper
}

func (r *run) stop() {
	if r.seal != nil {
		r.seal.Stop()
	}
}

// setRun takes a run's description (again, after a restart of the origin:
// it may have changed only if the run is new).
func (s *Shard) setRun(ri *shardwire.Run) {
	if r := s.runs[ri.Run]; r != nil && r.info.Params == ri.Params {
		r.info = *ri
		r.limits = wire.Limits{MaxParams: ri.Params, MaxFrameBytes: ri.MaxFrameBytes}
		return
	}
	s.runs[ri.Run] = &run{info: *ri, limits: wire.Limits{MaxParams: ri.Params, MaxFrameBytes: ri.MaxFrameBytes},
		pending: map[int]int{}, open: map[int]*fl.Partial{}}
}

// setRound takes a round: it decodes the round's model from its frame (the
// base every update of the round is decoded against) and arms the seal
// before the deadline.
func (s *Shard) setRound(rd *shardwire.Round) error {
	r := s.runs[rd.Run]
	if r == nil {
		return fmt.Errorf("shard: round %d of run %s came before the run", rd.Round, rd.Run)
	}
	f := s.frame(rd.Frame)
	if f == nil {
		return fmt.Errorf("shard: round %d of run %s names frame %d, which the shard does not hold", rd.Round, rd.Run, rd.Frame)
	}
	h, payload, err := wire.ParseFrame(f, wire.Limits{MaxParams: r.info.Params, MaxFrameBytes: shardwire.MaxMessage})
	if err != nil {
		return fmt.Errorf("shard: round %d's model frame: %w", rd.Round, err)
	}
	p, err := h.Pipeline()
	if err != nil || h.Kind != wire.KindModel || h.ModelVersion != rd.Version || p.Delta {
		return fmt.Errorf("shard: round %d's model frame is a %s of version %d (%v); want the whole model of version %d",
			rd.Round, h.Kind, h.ModelVersion, err, rd.Version)
	}
	if r.base == nil || r.round.Version != rd.Version {
		w, err := wire.Decode(p, payload, r.info.Shapes, nil, r.base, wire.Limits{MaxParams: r.info.Params})
		if err != nil {
			r.base = nil
			return fmt.Errorf("shard: decoding round %d's model: %w", rd.Round, err)
		}
		r.base = w
	}
	r.round = *rd
	r.stop()
	r.seal = nil
	if rd.DeadlineUnixMS > 0 {
		at := time.UnixMilli(rd.DeadlineUnixMS).Add(-s.opt.SealLead)
		round := rd.Round
		r.seal = s.opt.Clock.AfterFunc(max(0, at.Sub(s.opt.Clock.Now())), func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.runs[rd.Run] == r {
				s.seal(r, round)
			}
		})
	}
	return nil
}

func (s *Shard) setTask(r *run, t *tab, tk *task) {
	t.task = tk
	r.pending[tk.round]++
}

func (s *Shard) clearTask(r *run, t *tab) {
	if t.task == nil {
		return
	}
	if r.pending[t.task.round]--; r.pending[t.task.round] <= 0 {
		delete(r.pending, t.task.round)
	}
	t.task = nil
}

// roundEnded drops what the shard still holds of round n (and older): the
// origin closed it without that.
func (s *Shard) roundEnded(r *run, n int) {
	if n <= r.ended {
		return
	}
	r.ended = n
	for round, p := range r.open {
		if round <= n {
			if p.Count > 0 {
				s.opt.Log.Warn("dropping a partial of a round the origin closed", "run", r.info.Run, "round", round, "updates", p.Count)
			}
			delete(r.open, round)
		}
	}
	for _, t := range s.tabs {
		if t.run == r.info.Run && t.task != nil && t.task.round <= n {
			s.clearTask(r, t)
		}
	}
}

// maybeSeal sends round's partial once no tab of the run holds a task for
// it any more.
func (s *Shard) maybeSeal(r *run, round int) {
	if r.pending[round] == 0 {
		s.seal(r, round)
	}
}

// seal sends round's partial, if it holds anything; later updates of the
// round start another.
func (s *Shard) seal(r *run, round int) {
	p := r.open[round]
	if p == nil || p.Count == 0 {
		return
	}
	delete(r.open, round)
	s.seq++
	start := time.Now()
	err := s.enc.Encode(p, shardwire.PartialHeader{Run: r.info.Run, Round: round, Seq: s.seq}, s.sendOrigin)
	if err != nil {
		s.opt.Log.Error("sending a partial", "run", r.info.Run, "round", round, "err", err)
		return
	}
	s.stats.Partials++
	s.sealTime += time.Since(start)
	s.opt.Log.Info("partial sent", "run", r.info.Run, "round", round, "updates", p.Count, "seq", s.seq,
		"ms", time.Since(start).Milliseconds())
	p.Reset()
	r.spare = p
}

// rejection is why an update was refused: the origin's code and reason.
type rejection struct{ code, reason string }

func refuse(code, format string, args ...any) *rejection {
	return &rejection{code: code, reason: fmt.Sprintf(format, args...)}
}

// update validates an update frame from t against its task, exactly as the
// origin does (server/internal/coord, session.go: precheck and decode, in
// the same order, with the same codes and reasons), folds an accepted one
// into its round's partial, and tells the origin either way.
func (s *Shard) update(t *tab, frame []byte) {
	start := time.Now()
	defer func() { s.foldTime += time.Since(start) }()
	s.stats.Updates++
	s.stats.BytesIn += int64(len(frame))
	r := s.runs[t.run]
	meta := shardwire.Update{Run: t.run, Client: t.client, Bytes: len(frame)}
	var rej *rejection
	var h wire.FrameHeader
	if r == nil {
		rej = refuse(wire.CodeNotSelected, "this client was not selected for any round of its run yet")
	} else {
		var payload []byte
		h, payload, rej = s.precheck(t, r, frame)
		meta.Round, meta.Samples, meta.Codec, meta.BaseVersion = h.Round, h.Samples, h.Codec, h.ModelVersion
		meta.Loss, meta.Accuracy, meta.TrainMS, meta.SamplesPerS = h.Loss, h.Accuracy, h.TrainMS, h.SamplesPerS
		if rej == nil {
			meta.Samples = min(h.Samples, r.info.MaxSamples)
			rej = s.fold(t, r, &h, payload, &meta)
		}
	}
	if rej != nil {
		s.stats.Refused++
		meta.Accepted, meta.Code, meta.Reason = false, rej.code, wire.ClipText(rej.reason)
		// As the origin: a refusal for the round the tab trains answers
		// its task, unless it is late or a duplicate.
		if r != nil && t.task != nil && rej.code != wire.CodeLate && rej.code != wire.CodeDuplicate &&
			(h.Round == t.task.round || h.Round == 0 && t.task.round == r.round.Round) {
			round := t.task.round
			s.clearTask(r, t)
			defer s.maybeSeal(r, round)
		}
	} else {
		s.stats.Folded++
		meta.Accepted = true
		t.answered = h.Round
		s.clearTask(r, t)
		defer s.maybeSeal(r, h.Round)
	}
	b, err := shardwire.Encode(nil, shardwire.KindUpdate, t.id, &meta)
	if err != nil {
		s.opt.Log.Error("an update's metadata does not encode", "client", t.client, "err", err)
		return
	}
	s.sendOrigin(b)
}

// precheck checks a frame against the tab's task before decoding.
func (s *Shard) precheck(t *tab, r *run, frame []byte) (wire.FrameHeader, []byte, *rejection) {
	h, payload, err := wire.ParseFrame(frame, r.limits)
	if err != nil {
		return wire.FrameHeader{}, nil, refuse(wire.RejectCode(err), "%s", err.Error())
	}
	tk := t.task
	switch {
	case h.Kind != wire.KindUpdate:
		return h, nil, refuse(wire.CodeBadFrame, "expected an update frame, got %q", h.Kind)
	case h.Run != r.info.Run:
		return h, nil, refuse(wire.CodeBadFrame, "update for run %q sent to run %q", h.Run, r.info.Run)
	case t.answered > 0 && h.Round == t.answered:
		return h, nil, refuse(wire.CodeDuplicate, "this client already sent an update for round %d", h.Round)
	case tk == nil || h.Round < tk.round:
		switch {
		case h.Round > r.round.Round:
			return h, nil, refuse(wire.CodeBadFrame, "round %d has not started", h.Round)
		case h.Round <= t.lastTask:
			return h, nil, refuse(wire.CodeLate, "late: round %d is over for this client", h.Round)
		}
		return h, nil, refuse(wire.CodeNotSelected, "this client was not selected for round %d", h.Round)
	case h.Round > tk.round:
		return h, nil, refuse(wire.CodeBadFrame, "round %d has not started (this client trains round %d)", h.Round, tk.round)
	case h.ModelVersion != tk.version:
		return h, nil, refuse(wire.CodeLate, "trained from model version %d, but round %d trains version %d", h.ModelVersion, tk.round, tk.version)
	case h.Params != r.info.Params:
		return h, nil, refuse(wire.CodeShape, "update has %d parameters; the model has %d", h.Params, r.info.Params)
	case h.Samples < 1 || h.Samples > data.MaxSamples:
		return h, nil, refuse(wire.CodeBadFrame, "sample count %d is not in 1..%d", h.Samples, data.MaxSamples)
	}
	return h, payload, nil
}

// fold decodes a prechecked update against its round's model, checks its
// values and norm as the origin does, and folds it into the round's
// partial (clipped, with DP).
func (s *Shard) fold(t *tab, r *run, h *wire.FrameHeader, payload []byte, meta *shardwire.Update) *rejection {
	p, err := h.Pipeline()
	if err != nil {
		return refuse(wire.CodeBadFrame, "%s", err.Error())
	}
	if r.base == nil || r.round.Version != h.ModelVersion {
		return refuse(wire.CodeLate, "the edge shard does not hold model version %d any more", h.ModelVersion)
	}
	w, err := wire.Decode(p, payload, r.info.Shapes, r.base, r.buf, r.limits)
	if err != nil {
		return refuse(wire.RejectCode(err), "%s", err.Error())
	}
	r.buf = w
	nrm, err := wire.ToDelta(w, r.base, fl.MaxDeltaValue, r.info.MaxUpdateNorm)
	if err != nil {
		return refuse(wire.RejectCode(err), "%s", err.Error())
	}
	part := r.open[h.Round]
	if part == nil {
		if part, r.spare = r.spare, nil; part == nil || part.Len() != r.info.Params {
			part = fl.NewPartial(r.info.Params)
		}
		r.open[h.Round] = part
	}
	u := fl.Update{Client: t.client, Samples: meta.Samples, Delta: w, Norm: nrm}
	if r.info.DP {
		meta.Clipped, err = part.AddClipped(u, r.round.Clip)
	} else {
		err = part.Add(u)
	}
	if err != nil {
		return refuse(wire.CodeBadFrame, "%s", err.Error())
	}
	return nil
}
