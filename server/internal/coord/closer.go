package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/wire"
)

// Model versions kept in the store: the newest keepModels, every
// keepEveryModel-th and always the initial one (version 0 is a multiple).
const (
	keepModels     = 5
	keepEveryModel = 10
)

// maxLoss is the largest test loss reported (a diverged model's loss is
// capped at it).
const maxLoss = 1e30

// closeJob is what the closer needs, taken from the loop's state when the
// round closes.
type closeJob struct {
	o     *round
	why   string
	from  *version            // the global model the round trained from
	stats []store.ClientStats // telemetry to write with the round
	// keepFrom is the oldest model version a task in flight trains from
	// (async; 0: none): the store keeps it, to decode the task's update
	// after a restart.
	keepFrom int
}

// closeResult is what closing a round produced.
type closeResult struct {
	o         *round
	why       string
	next      *version // the new global model; nil when the round failed
	loss, acc float64
	labelAcc  []float64 // test accuracy on each label
	epsilon   *float64
	metrics   map[string]float64
	verdicts  []VerdictView
	final     bool
	failed    string // the round produced no model, and why
	err       error  // the run cannot go on
	abandoned bool   // shut down before the commit: the round stays open in the store
}

// closeRound ends o on the loop: from now on no update can join it, and
// the selected clients that never answered count a missed round. The
// aggregation, the evaluation (on all cores), the encoding of the new model
// and the commit run in a closer goroutine, which reports back with
// evClosed; meanwhile the loop goes on answering hellos and messages.
func (r *Run) closeRound(ctx context.Context, o *round, why string) {
	st := r.st
	st.round, st.closing = nil, o
	for _, id := range o.order {
		if cl := st.clients[id]; cl != nil {
			if cl.task != nil && cl.task.round == o.n {
				r.dropTask(cl)
			}
			if cl.peer != nil {
				if t := cl.peer.task.Load(); t != nil && t.round == o.n {
					cl.peer.task.Store(nil)
				}
			}
		}
	}
	for _, id := range o.unanswered() {
		if r.secureExcused(o, id) { // secure aggregation (secagg.go)
			continue
		}
		if cl := st.clients[id]; cl != nil {
			cl.missed++
			cl.skipUntil = o.n + skipFor(cl.missed)
			cl.dirty = true
		}
	}
	job := &closeJob{o: o, why: why, from: st.current, stats: st.dirtyStats(), keepFrom: r.oldestBase()}
	r.closers.Add(1)
	r.c.track.Hold()
	go func() {
		defer r.closers.Done()
		defer r.c.track.Release()
		r.post(evClosed{res: r.aggregate(ctx, job)})
	}()
}

// aggregate finishes a round off the loop: the strategy's aggregate, a
// finiteness check, evaluation, the new model's frame, and one commit of
// model, round, verdicts and telemetry (or the round's failure).
func (r *Run) aggregate(ctx context.Context, j *closeJob) *closeResult {
	sp, o := r.sp, j.o
	st := r.c.deps.Store
	durable := context.WithoutCancel(ctx) // a started commit finishes
	res := &closeResult{o: o, why: j.why}
	if o.tainted {
		if err := r.rebuild(ctx, o); err != nil {
			res.err = fmt.Errorf("round %d: rebuilding the aggregate from the stored updates: %w", o.n, err)
			return res
		}
	}
	if o.sec != nil { // secure aggregation: the unmasked sum goes into the aggregation (secagg.go)
		failed, err := r.secureFinish(ctx, o)
		if err != nil {
			res.abandoned = true
			return res
		}
		if res.failed = failed; failed != "" {
			return r.failSecure(ctx, j, res)
		}
	}
	next := make([]float32, sp.numParams)
	start := time.Now()
	ares, err := o.agg.Finish(ctx, next)
	r.c.deps.Observer.ObserveAggregate(time.Since(start))
	switch {
	case ctx.Err() != nil:
		res.abandoned = true
		return res
	case errors.Is(err, fl.ErrNoUpdates) && o.accepted == 0:
		res.failed = fmt.Sprintf("no update was accepted (%s)", j.why)
	case errors.Is(err, fl.ErrNoUpdates), errors.Is(err, fl.ErrTooFewUpdates):
		res.failed = "the aggregator used no update: " + err.Error()
	case err != nil:
		res.err = fmt.Errorf("round %d: aggregating: %w", o.n, err)
		return res
	}
	if res.failed == "" {
		if i := firstNonFinite(next); i >= 0 {
			res.failed = fmt.Sprintf("the aggregate is not finite at parameter %d (the updates diverged or were hostile); the model stays at version %d", i, j.from.v)
		}
	}
	if res.failed != "" {
		if err := st.Do(durable, "fail_round", func(t *store.Tx) error {
			return t.FailRound(&store.Failure{RunID: sp.id, Round: o.n, Reason: res.failed,
				BytesDown: o.bytesDown.Load(), Clients: j.stats})
		}); err != nil {
			res.err = fmt.Errorf("round %d: %w", o.n, err)
		}
		return res
	}
	start = time.Now()
	rep, err := sp.report(ctx, next)
	loss, acc := rep.Loss, rep.Accuracy
	r.c.deps.Observer.ObserveEvaluate(time.Since(start))
	switch {
	case ctx.Err() != nil:
		res.abandoned = true
		return res
	case err != nil:
		res.err = fmt.Errorf("round %d: evaluating: %w", o.n, err)
		return res
	}
	if math.IsNaN(loss) || loss > maxLoss {
		loss = maxLoss // a diverged model: report it as very bad, not as NaN
	}
	res.loss, res.acc, res.metrics = loss, acc, ares.Metrics
	if ares.Epsilon > 0 {
		res.epsilon = &ares.Epsilon
	}
	res.metrics["used"] = float64(ares.Used)
	res.labelAcc = rep.LabelAccuracy()
	for i, a := range res.labelAcc {
		res.metrics[fmt.Sprintf("label_acc_%d", i)] = a
	}
	if o.received > 0 && sp.cfg.Async() {
		res.metrics["mean_staleness"] = float64(o.staleSum) / float64(o.received)
		res.metrics["max_staleness"] = float64(o.staleMax)
	}
	metrics, _ := json.Marshal(res.metrics)
	verdicts := make([]store.Verdict, 0, len(ares.Verdicts))
	rowOf := o.ids.pairer()
	for _, v := range ares.Verdicts {
		if id, ok := rowOf(v.Client); ok {
			verdicts = append(verdicts, store.Verdict{UpdateID: id, Score: v.Score, Cosine: v.Cosine,
				NormRatio: v.NormRatio, Excluded: v.Excluded, Reason: v.Reason})
		}
		res.verdicts = append(res.verdicts, VerdictView{Client: v.Client, Score: v.Score, Cosine: v.Cosine,
			NormRatio: v.NormRatio, Excluded: v.Excluded, Reason: v.Reason})
	}
	var state []byte
	if s, ok := fl.StateOf(sp.strategy); ok {
		if state, err = s.MarshalState(); err != nil {
			res.err = fmt.Errorf("round %d: saving strategy state: %w", o.n, err)
			return res
		}
	}
	ver := &version{v: j.from.v + 1, w: next, deltas: map[int64]*lazyFrame{}}
	// The new model's frame is encoded here, once, not on the loop and not
	// by every connection.
	if _, err := r.models.fullFrame(ver); err != nil {
		res.err = fmt.Errorf("round %d: encoding the new model: %w", o.n, err)
		return res
	}
	res.final = int(ver.v) >= sp.cfg.Rounds
	err = st.Do(durable, "commit_round", func(t *store.Tx) error {
		return t.CommitRound(&store.Commit{RunID: sp.id, Round: o.n, FinishedAt: r.c.now(),
			TestAccuracy: acc, TestLoss: loss, Epsilon: res.epsilon, Metrics: metrics, Verdicts: verdicts,
			Model: store.Model{Version: int(ver.v), Params: sp.numParams, Codec: store.CodecFloat32,
				Weights: store.EncodeFloat32s(nil, next), TestAccuracy: acc, TestLoss: loss},
			StrategyState: state, KeepBlobs: sp.cfg.KeepBlobs, Final: res.final, BytesDown: o.bytesDown.Load(),
			Clients: j.stats, KeepModels: keepModels, KeepEveryModel: keepEveryModel, KeepFrom: j.keepFrom})
	})
	if err != nil {
		res.err = fmt.Errorf("round %d: committing: %w", o.n, err)
		return res
	}
	res.next = ver
	return res
}

// oldestBase returns the oldest model version an async task in flight
// trains from (0: none, or a synchronous run).
func (r *Run) oldestBase() int {
	if !r.sp.cfg.Async() {
		return 0
	}
	oldest := 0
	for _, cl := range r.st.clients {
		if t := cl.task; t != nil && (oldest == 0 || int(t.version) < oldest) {
			oldest = max(int(t.version), 1)
		}
	}
	return oldest
}

// rebuild replaces o's aggregation with one of exactly the updates stored
// for the round (an accepted update that failed to store had been folded
// in already).
func (r *Run) rebuild(ctx context.Context, o *round) error {
	ups, err := r.c.deps.Store.PendingUpdates(ctx, r.sp.id, o.n)
	if err != nil {
		return err
	}
	r.c.deps.Log.Warn("rebuilding a round's aggregate from its stored updates", "run", r.sp.id, "round", o.n, "updates", len(ups))
	o.agg, o.ids = r.sp.strategy.Begin(o.n, o.base.w), nil
	for _, u := range ups {
		if u.Lost != nil {
			continue
		}
		up, err := r.storedUpdate(ctx, o, &u)
		if err != nil {
			return fmt.Errorf("update %d: %w", u.ID, err)
		}
		if err := o.agg.Add(ctx, up); err != nil {
			return err
		}
		o.ids.add(u.ClientID, u.ID)
	}
	return r.replayPartials(ctx, o, false) // edge shards' stored partials (shard_round.go)
}

// closed takes the closer's result on the loop: the new model becomes the
// global one and every client hears how the round went.
func (r *Run) closed(ctx context.Context, res *closeResult) {
	st, sp, o := r.st, r.sp, res.o
	st.closing = nil
	switch {
	case res.abandoned:
		return
	case res.err != nil:
		r.fail(res.err)
		return
	case res.failed != "":
		r.c.deps.Observer.RoundEnded(r.c.now().Sub(o.started), true)
		r.c.deps.Log.Warn("round failed", "run", sp.id, "round", o.n, "why", res.failed)
		v := o.view(r.c.now())
		v.Failed, v.Why = res.failed, res.why
		r.publish(Event{Type: EvRoundEnded, Round: v})
		if st.failed++; st.failed >= sp.cfg.MaxFailedRounds {
			r.fail(fmt.Errorf("%d rounds in a row produced no model; the last: %s", st.failed, res.failed))
			return
		}
		r.broadcast(&wire.Wait{Round: o.n, Reason: fmt.Sprintf("round %d failed: %s; a new round starts when clients are ready", o.n, res.failed)})
		return
	}
	r.models.put(res.next)
	st.current, st.lastAcc, st.failed = res.next, res.acc, 0
	excluded := 0
	for _, v := range res.verdicts {
		if v.Excluded {
			excluded++
		}
	}
	r.c.deps.Observer.RoundEnded(r.c.now().Sub(o.started), false)
	r.c.deps.Observer.Excluded(excluded)
	r.c.deps.Log.Info("round aggregated", "run", sp.id, "round", o.n, "version", res.next.v, "accepted", o.accepted,
		"test_accuracy", res.acc, "test_loss", res.loss, "why", res.why, "seconds", r.c.now().Sub(o.started).Seconds())
	end := &wire.RoundEnd{Round: o.n, TestAccuracy: res.acc, TestLoss: res.loss, Received: o.received,
		Accepted: o.accepted, ModelVersion: res.next.v, Async: sp.cfg.Async()}
	if end.Async && o.received > 0 {
		end.MeanStaleness = float64(o.staleSum) / float64(o.received)
	}
	r.broadcast(end)
	v := o.view(r.c.now())
	v.ModelVersion, v.TestAccuracy, v.TestLoss, v.Epsilon, v.Metrics = res.next.v, res.acc, res.loss, res.epsilon, res.metrics
	v.Verdicts, v.Why, v.LabelAccuracy = res.verdicts, res.why, res.labelAcc
	r.publish(Event{Type: EvRoundEnded, Round: v})
	if res.final {
		st.status = StatusFinished
		r.broadcast(&wire.RunEnd{Reason: fmt.Sprintf("all %d rounds are done", sp.cfg.Rounds), FinalAccuracy: res.acc})
		r.publishStatus()
	}
}

func firstNonFinite(w []float32) int {
	for i, v := range w {
		if v-v != 0 { // NaN or ±Inf
			return i
		}
	}
	return -1
}
