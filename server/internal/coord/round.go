package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// Model versions kept in the store: the newest keepModels, every
// keepEveryModel-th and always the initial one (version 0 is a multiple).
const (
	keepModels     = 5
	keepEveryModel = 10
)

// openRound is the round in progress.
type openRound struct {
	n        int
	version  int64 // model version the round trains from
	started  time.Time
	deadline time.Time // zero = none
	selected map[string]bool
	pending  map[string]bool // selected, connected, not answered yet
	answered map[string]bool // sent an update (accepted or not)
	agg      fl.Aggregation
	ids      []int64 // store ids of the accepted updates, in Add order
	accepted int
	received int
	bytesUp  int64
	bytesDn  int64
	frame    []byte           // the encoded global model, for clients without a usable base
	deltas   map[int64][]byte // model_delta frames by base version, encoded on first use
	sent     map[string]int   // bytes of model sent to each client this round
}

func (r *Run) fitBase() fl.FitConfig {
	return fl.FitConfig{Epochs: r.cfg.LocalEpochs, Batch: r.cfg.Batch, LR: r.cfg.LR, Mu: r.cfg.Mu}
}

// maybeStartRound opens the next round when none is open and enough clients
// are connected.
func (r *Run) maybeStartRound(ctx context.Context) {
	if r.open != nil || (r.status != StatusWaiting && r.status != StatusRunning) {
		return
	}
	ids := r.connected()
	need := r.cfg.MinClients
	if r.roundNo == 0 {
		need = r.cfg.StartClients
	}
	if len(ids) < need {
		return
	}
	k := r.cfg.ClientsPerRound
	if k == 0 {
		k = max(int(math.Ceil(r.cfg.Fraction*float64(len(ids)))), r.cfg.MinClients)
	}
	k = min(k, len(ids))
	n := r.roundNo + 1
	rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(n)))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	chosen := ids[:k]
	if err := r.startRound(ctx, n, chosen); err != nil {
		r.fail(ctx, err)
	}
}

// startRound opens round n for the chosen clients and sends them the model.
func (r *Run) startRound(ctx context.Context, n int, chosen []string) error {
	now := r.c.deps.Now()
	o := &openRound{n: n, version: r.version, started: now, selected: map[string]bool{},
		pending: map[string]bool{}, answered: map[string]bool{}}
	if d := time.Duration(r.cfg.RoundDeadline); d > 0 {
		o.deadline = now.Add(d)
	}
	for _, id := range chosen {
		o.selected[id], o.pending[id] = true, true
	}
	if err := r.c.deps.Store.OpenRound(ctx, &store.Round{RunID: r.id, Round: n, StartedAt: now, DeadlineAt: o.deadline, Selected: chosen}); err != nil {
		return fmt.Errorf("opening round %d: %w", n, err)
	}
	if r.status == StatusWaiting {
		r.status = StatusRunning
		if err := r.c.deps.Store.SetRunStatus(ctx, r.id, StatusRunning, ""); err != nil {
			return err
		}
	}
	o.agg = r.strategy.Begin(o.n, r.global)
	return r.openWith(ctx, o, false)
}

// openWith makes o the open round: it encodes the model once and sends it to
// the pending clients that are connected. A resumed round keeps waiting for
// pending clients that have not reconnected yet.
func (r *Run) openWith(ctx context.Context, o *openRound, resumed bool) error {
	r.open, r.roundNo = o, o.n
	o.deltas, o.sent = map[int64][]byte{}, map[string]int{}
	full := r.downPipe
	full.Delta = false
	var err error
	if o.frame, err = r.modelFrame(o, full, wire.KindModel, o.version, nil); err != nil {
		return fmt.Errorf("encoding the global model: %w", err)
	}
	r.cur.Store(&roundRef{round: o.n, version: o.version, global: r.global})
	r.c.deps.Log.Info("round started", "run", r.id, "round", o.n, "selected", len(o.selected), "model_bytes", len(o.frame))
	for id := range o.pending {
		if cl := r.clients[id]; cl.peer != nil {
			r.sendRound(ctx, cl)
		} else if !resumed {
			delete(o.pending, id)
		}
	}
	for _, id := range r.connected() {
		if !o.selected[id] {
			r.sendWait(r.clients[id])
		}
	}
	r.publish(EvRoundStarted, r.roundView(o, nil))
	if len(o.pending) == 0 {
		r.closeRound(ctx, "no selected client is connected")
	}
	return nil
}

// modelFrame encodes the open round's model with pipeline p: the whole
// model (base nil), or a delta from base (the version the client holds).
func (r *Run) modelFrame(o *openRound, p wire.Pipeline, kind string, version int64, base []float32) ([]byte, error) {
	payload, err := wire.NewEncoder(p, r.shapes, r.cfg.Seed^uint64(o.n)).Encode(nil, r.global, base)
	if err != nil {
		return nil, err
	}
	return wire.AppendFrame(nil, &wire.FrameHeader{Kind: kind, Run: r.id, Round: o.n, ModelVersion: version,
		Codec: p.String(), Params: r.numParams, Model: r.modelName}, payload)
}

// frameFor picks the model frame for cl: with a delta down codec, the change
// from the version cl holds when that is smaller than the whole model.
func (r *Run) frameFor(o *openRound, cl *client) []byte {
	base, ok := r.recent[cl.version]
	if !r.downPipe.Delta || !ok || cl.version == 0 {
		return o.frame
	}
	df, ok := o.deltas[cl.version]
	if !ok {
		var err error
		if df, err = r.modelFrame(o, r.downPipe, wire.KindModelDelta, cl.version, base); err != nil {
			r.c.deps.Log.Error("encoding a model delta", "run", r.id, "base", cl.version, "err", err)
		}
		o.deltas[cl.version] = df
	}
	if df != nil && len(df) < len(o.frame) {
		return df
	}
	return o.frame
}

// sendRound sends the open round's start message and model to cl.
func (r *Run) sendRound(ctx context.Context, cl *client) {
	o := r.open
	fit := r.strategy.ConfigureFit(o.n, r.fitBase())
	rs := &wire.RoundStart{Round: o.n, ModelVersion: o.version, Epochs: fit.Epochs, Batch: fit.Batch, LR: fit.LR,
		Mu: fit.Mu, Seed: clientSeed(r.cfg.Seed, o.n, cl.slice)}
	if !o.deadline.IsZero() {
		rs.DeadlineUnixMS = o.deadline.UnixMilli()
	}
	frame := r.frameFor(o, cl)
	cl.peer.sendMsg(rs)
	cl.peer.send(link.Message{Binary: true, Data: frame})
	cl.version = o.version // what it holds once it decodes the frame
	o.sent[cl.id] += len(frame)
	o.bytesDn += int64(len(frame))
	cl.bytesDown += int64(len(frame))
	r.c.deps.Store.TouchClient(ctx, r.id, cl.id, r.c.deps.Now(), int64(len(frame)))
	r.c.deps.Store.AddRoundBytes(ctx, r.id, o.n, int64(len(frame)))
}

// maxLoss is the largest test loss reported (a diverged model's loss is
// capped at it).
const maxLoss = 1e30

func firstNonFinite(w []float32) int {
	for i, v := range w {
		if v-v != 0 { // NaN or ±Inf
			return i
		}
	}
	return -1
}

// clientSeed derives a client's per-round seed (shuffling, dropout,
// stochastic rounding) from the run seed.
func clientSeed(seed uint64, round, slice int) uint64 {
	return rand.New(rand.NewPCG(seed, uint64(round)<<32|uint64(slice))).Uint64()
}

// takeUpdate stores an update (accepted or rejected, with the reason),
// folds an accepted one into the aggregation and answers the client.
func (r *Run) takeUpdate(ctx context.Context, ev evUpdate) {
	defer ev.u.release()
	cl := r.clients[ev.p.clientID]
	if cl == nil {
		return
	}
	rej := ev.rejects
	if rej == nil {
		rej = r.checkUpdate(cl, ev.u)
	}
	u := ev.u
	rec := &store.Update{RunID: r.id, Round: u.h.Round, ClientID: cl.id, ReceivedAt: r.c.deps.Now(), Bytes: u.size,
		BytesDown: r.sentTo(cl.id),
		Codec:     u.h.Codec, BaseVersion: int(u.h.ModelVersion), Samples: u.h.Samples, Loss: u.h.Loss, Accuracy: u.h.Accuracy,
		TrainMS: u.h.TrainMS, SamplesPerS: u.h.SamplesPerS}
	if rej != nil {
		// Record it under the round it claims when that round exists, else
		// under the round in progress (an unreadable frame claims none).
		if rec.Round < 1 || rec.Round > r.roundNo {
			rec.Round = r.roundNo
		}
		r.reject(ctx, cl, rec, rej)
		return
	}
	o := r.open
	rec.Accepted, rec.Blob = true, u.payload
	id, err := r.c.deps.Store.AddUpdate(ctx, rec)
	if err != nil {
		code := "store"
		if errors.Is(err, store.ErrDuplicate) {
			code = "duplicate"
		}
		rec.Accepted, rec.Blob = false, nil
		r.reject(ctx, cl, rec, &rejection{code: code, reason: "the server could not store the update: " + err.Error()})
		return
	}
	if err := o.agg.Add(ctx, fl.Update{Client: cl.id, Samples: u.h.Samples, Delta: u.delta}); err != nil {
		// checkUpdate and decode validated the update; Add can only refuse
		// what they let through by mistake.
		r.c.deps.Log.Error("aggregation refused a stored update", "run", r.id, "client", cl.id, "err", err)
	} else {
		o.ids = append(o.ids, id)
		o.accepted++
	}
	o.received++
	o.answered[cl.id] = true
	delete(o.pending, cl.id)
	o.bytesUp += int64(u.size)
	cl.updates++
	cl.accepted++
	cl.bytesUp += int64(u.size)
	cl.speed, cl.progress = u.h.SamplesPerS, nil
	cl.peer.sendMsg(&wire.Accepted{Round: o.n, Bytes: u.size})
	r.publish(EvUpdate, updateView(rec, true))
	r.publish(EvClient, r.clientView(cl))
	if len(o.pending) == 0 {
		r.closeRound(ctx, "every selected client answered or left")
	}
}

// sentTo returns the model bytes sent to a client in the open round.
func (r *Run) sentTo(id string) int {
	if r.open == nil {
		return 0
	}
	return r.open.sent[id]
}

// checkUpdate applies the loop-side checks: is the update for the open
// round, from a selected client, and its first?
func (r *Run) checkUpdate(cl *client, u *decoded) *rejection {
	o := r.open
	switch {
	case o == nil || u.h.Round < o.n:
		return &rejection{code: wire.CodeLate, reason: fmt.Sprintf("late: round %d is already closed", u.h.Round)}
	case u.h.Round > o.n:
		return &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("round %d has not started (the open round is %d)", u.h.Round, o.n)}
	case !o.selected[cl.id]:
		return &rejection{code: wire.CodeNotSelected, reason: fmt.Sprintf("this client was not selected for round %d", o.n)}
	case o.answered[cl.id]:
		return &rejection{code: "duplicate", reason: fmt.Sprintf("this client already sent an update for round %d", o.n)}
	}
	return nil
}

// decline records that a selected client will send no update for the open
// round (its training diverged, say), so the round stops waiting for it.
func (r *Run) decline(ctx context.Context, p *peer, m *wire.Decline) {
	cl, o := r.clients[p.clientID], r.open
	if cl == nil || cl.peer != p || o == nil || m.Round != o.n || !o.selected[cl.id] || o.answered[cl.id] {
		return
	}
	rec := &store.Update{RunID: r.id, Round: o.n, ClientID: cl.id, ReceivedAt: r.c.deps.Now(), BytesDown: r.sentTo(cl.id),
		Code: "declined", Reason: "the client sent no update: " + m.Reason}
	if _, err := r.c.deps.Store.AddUpdate(ctx, rec); err != nil {
		r.c.deps.Log.Error("storing a declined round", "run", r.id, "client", cl.id, "err", err)
	}
	r.c.deps.Log.Warn("client declined the round", "run", r.id, "client", cl.id, "round", o.n, "reason", m.Reason)
	cl.updates++
	o.received++
	o.answered[cl.id] = true
	delete(o.pending, cl.id)
	r.publish(EvUpdate, updateView(rec, false))
	r.publish(EvClient, r.clientView(cl))
	if len(o.pending) == 0 {
		r.closeRound(ctx, "every selected client answered or left")
	}
}

// reject records a refused update and tells the client why.
func (r *Run) reject(ctx context.Context, cl *client, rec *store.Update, rej *rejection) {
	rec.Accepted, rec.Reason, rec.Code, rec.Blob = false, rej.reason, rej.code, nil
	if _, err := r.c.deps.Store.AddUpdate(ctx, rec); err != nil {
		r.c.deps.Log.Error("storing a rejected update", "run", r.id, "client", cl.id, "err", err)
	}
	cl.updates++
	if o := r.open; o != nil && rec.Round == o.n && o.selected[cl.id] && rej.code != wire.CodeLate {
		o.received++
		o.answered[cl.id] = true
		delete(o.pending, cl.id)
		defer func() {
			if len(o.pending) == 0 {
				r.closeRound(ctx, "every selected client answered or left")
			}
		}()
	}
	r.c.deps.Log.Warn("update rejected", "run", r.id, "client", cl.id, "round", rec.Round, "code", rej.code, "reason", rej.reason)
	if cl.peer != nil {
		cl.peer.sendMsg(&wire.Rejected{Round: rec.Round, Reason: rej.reason, Code: rej.code})
	}
	r.publish(EvUpdate, updateView(rec, false))
	r.publish(EvClient, r.clientView(cl))
}

// closeRound aggregates the open round (or fails it when nothing was
// accepted), evaluates, commits and announces, then starts the next.
func (r *Run) closeRound(ctx context.Context, why string) {
	o := r.open
	if o == nil {
		return
	}
	r.open = nil
	r.cur.Store(nil)
	var err error
	if o.accepted == 0 {
		err = r.failRound(ctx, o, fmt.Sprintf("no update was accepted (%s)", why))
	} else {
		err = r.aggregate(ctx, o, why)
	}
	if err != nil {
		r.fail(ctx, fmt.Errorf("round %d: %w", o.n, err))
		return
	}
	if r.status == StatusRunning {
		r.maybeStartRound(ctx)
	}
}

// failRound closes o without a new model: the run goes on from the current
// one with the next round.
func (r *Run) failRound(ctx context.Context, o *openRound, msg string) error {
	r.c.deps.Log.Warn("round failed", "run", r.id, "round", o.n, "why", msg)
	if err := r.c.deps.Store.FailRound(ctx, r.id, o.n, msg); err != nil {
		return err
	}
	r.publish(EvRoundEnded, r.roundView(o, &roundResult{failed: msg}))
	if r.failed++; r.failed >= r.cfg.MaxFailedRounds {
		r.fail(ctx, fmt.Errorf("%d rounds in a row produced no model; the last: %s", r.failed, msg))
		return nil
	}
	r.broadcast(&wire.Wait{Round: o.n, Reason: fmt.Sprintf("round %d failed: %s; a new round starts when clients are ready", o.n, msg)})
	return nil
}

// roundResult is what closing a round produced.
type roundResult struct {
	loss, acc float64
	epsilon   *float64
	metrics   map[string]float64
	verdicts  []VerdictView
	failed    string
	finished  time.Time
}

func (r *Run) aggregate(ctx context.Context, o *openRound, why string) error {
	next := make([]float32, r.numParams)
	res, err := o.agg.Finish(ctx, next)
	switch {
	case errors.Is(err, fl.ErrNoUpdates), errors.Is(err, fl.ErrTooFewUpdates):
		return r.failRound(ctx, o, "the aggregator used no update: "+err.Error())
	case err != nil:
		return fmt.Errorf("aggregating: %w", err)
	}
	if i := firstNonFinite(next); i >= 0 {
		return r.failRound(ctx, o, fmt.Sprintf("the aggregate is not finite at parameter %d (the updates diverged or were hostile); the model stays at version %d", i, r.version))
	}
	loss, acc, err := r.evaluate(next)
	if err != nil {
		return fmt.Errorf("evaluating: %w", err)
	}
	if math.IsNaN(loss) || loss > maxLoss {
		loss = maxLoss // a diverged model: report it as very bad, not as NaN
	}
	rr := &roundResult{loss: loss, acc: acc, metrics: res.Metrics, finished: r.c.deps.Now()}
	if res.Epsilon > 0 {
		rr.epsilon = &res.Epsilon
	}
	rr.metrics["used"] = float64(res.Used)
	metrics, _ := json.Marshal(rr.metrics)
	verdicts := make([]store.Verdict, 0, len(res.Verdicts))
	for i, v := range res.Verdicts {
		if i < len(o.ids) {
			verdicts = append(verdicts, store.Verdict{UpdateID: o.ids[i], Score: v.Score, Cosine: v.Cosine,
				NormRatio: v.NormRatio, Excluded: v.Excluded, Reason: v.Reason})
		}
		rr.verdicts = append(rr.verdicts, VerdictView{Client: v.Client, Score: v.Score, Cosine: v.Cosine,
			NormRatio: v.NormRatio, Excluded: v.Excluded, Reason: v.Reason})
	}
	var state []byte
	if s, ok := fl.StateOf(r.strategy); ok {
		if state, err = s.MarshalState(); err != nil {
			return fmt.Errorf("saving strategy state: %w", err)
		}
	}
	version := r.version + 1
	final := int(version) >= r.cfg.Rounds
	err = r.c.deps.Store.CommitRound(ctx, &store.Commit{RunID: r.id, Round: o.n, FinishedAt: rr.finished,
		TestAccuracy: acc, TestLoss: loss, Epsilon: rr.epsilon, Metrics: metrics, Verdicts: verdicts,
		Model: store.Model{Version: int(version), Params: r.numParams, Codec: "float32",
			Weights: store.EncodeFloat32s(nil, next), TestAccuracy: acc, TestLoss: loss},
		StrategyState: state, KeepBlobs: r.cfg.KeepBlobs, Final: final})
	if err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	r.setGlobal(version, next)
	r.lastAcc, r.failed = acc, 0
	if _, err := r.c.deps.Store.PruneModels(ctx, r.id, keepModels, keepEveryModel); err != nil {
		r.c.deps.Log.Warn("pruning old model versions", "run", r.id, "err", err)
	}
	r.c.deps.Log.Info("round aggregated", "run", r.id, "round", o.n, "version", version, "accepted", o.accepted,
		"test_accuracy", acc, "test_loss", loss, "why", why, "seconds", rr.finished.Sub(o.started).Seconds())
	r.broadcast(&wire.RoundEnd{Round: o.n, TestAccuracy: acc, TestLoss: loss, Received: o.received,
		Accepted: o.accepted, ModelVersion: version})
	r.publish(EvRoundEnded, r.roundView(o, rr))
	if final {
		r.status = StatusFinished
		r.broadcast(&wire.RunEnd{Reason: fmt.Sprintf("all %d rounds are done", r.cfg.Rounds), FinalAccuracy: acc})
		r.publishStatus()
	}
	return nil
}
