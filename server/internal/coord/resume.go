package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/wire"
)

// resumeGrace is how long a resumed round without a deadline waits for its
// selected clients to come back.
const resumeGrace = 2 * time.Minute

// resumeRun rebuilds a stored, unfinished run: configuration, latest model,
// strategy state and clients (those whose slice was released stay
// forgotten). An open round is resumed by the loop.
func (c *Coordinator) resumeRun(ctx context.Context, sr *store.Run) (*Run, error) {
	var cfg Config
	if err := json.Unmarshal(sr.Config, &cfg); err != nil {
		return nil, fmt.Errorf("stored configuration: %w", err)
	}
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	sp, _, err := newSpec(cfg, sr.ID, sr.JoinToken, sr.CreatedAt, &c.deps)
	if err != nil {
		return nil, err
	}
	r := c.newRun(sp)
	st := r.st
	st.status, st.roundNo = sr.Status, sr.CurrentRound
	m, err := c.deps.Store.Model(ctx, sr.ID, -1)
	if err != nil {
		return nil, fmt.Errorf("latest model: %w", err)
	}
	w, err := store.DecodeFloat32s(m.Weights, sp.numParams)
	if err != nil {
		return nil, fmt.Errorf("model version %d: %w", m.Version, err)
	}
	st.current = r.models.add(int64(m.Version), w)
	st.lastAcc = m.TestAccuracy
	if s, ok := fl.StateOf(sp.strategy); ok && len(sr.StrategyState) > 0 {
		if err := s.UnmarshalState(sr.StrategyState); err != nil {
			return nil, fmt.Errorf("strategy state: %w", err)
		}
	}
	clients, err := c.deps.Store.Clients(ctx, sr.ID)
	if err != nil {
		return nil, err
	}
	for _, sc := range clients {
		if sc.Released {
			continue
		}
		if sc.SliceIndex < 0 || sc.SliceIndex >= len(sp.parts) || st.bySlice[sc.SliceIndex] != "" {
			return nil, fmt.Errorf("client %s has slice %d, which is out of range or taken", sc.ID, sc.SliceIndex)
		}
		cl := &client{id: sc.ID, secretHash: sc.SecretHash, slice: sc.SliceIndex, kind: sc.Kind, firstSeen: sc.FirstSeen,
			lastSeen: sc.LastSeen, speed: sc.SamplesPerS, updates: sc.Updates, accepted: sc.Accepted,
			bytesUp: sc.BytesUp, bytesDown: sc.BytesDown, profile: sc.Profile, keyExchange: sc.KeyExchange, samples: len(sp.parts[sc.SliceIndex])}
		json.Unmarshal(sc.Device, &cl.device)
		st.clients[cl.id] = cl
		st.bySlice[cl.slice] = cl.id
		r.slices.Store(cl.id, cl.slice)
	}
	return r, nil
}

// resumeOpenRound reopens the round that was open when the server stopped:
// the accepted updates stored for it are replayed into a fresh aggregation,
// and its selected clients that had not answered get until the deadline to
// reconnect and send theirs.
func (r *Run) resumeOpenRound(ctx context.Context) error {
	st, sp := r.st, r.sp
	if st.roundNo == 0 {
		return nil
	}
	db := r.c.deps.Store
	sr, err := db.Round(ctx, sp.id, st.roundNo)
	if err != nil || sr.Status != store.RoundOpen {
		return nil // no round row yet, or the round was closed
	}
	if sp.cfg.SecureAgg != nil { // a secure round cannot resume (secagg.go)
		return r.dropSecureRound(sr)
	}
	// Resumed runs keep only the latest version in memory: clients get the
	// whole model once, then deltas again.
	grace := time.Duration(sp.cfg.RoundDeadline)
	if grace == 0 {
		grace = resumeGrace
	}
	now := r.c.now()
	var selected []string
	for _, id := range sr.Selected {
		if st.clients[id] != nil {
			selected = append(selected, id)
		}
	}
	st.inSliceOrder(selected)
	deadline, target := now.Add(grace), 0
	if sp.cfg.Async() {
		// The step's buffer goes on filling from whoever connects; the
		// tasks in flight before the restart are gone.
		deadline, selected, target = time.Time{}, nil, sp.cfg.Buffer
	}
	o := newRound(sr.Round, st.current, sr.StartedAt, deadline, selected, target, sp.strategy.Begin(sr.Round, st.current.w))
	o.resumed = true
	o.received = sr.NReceived
	o.bytesUp = sr.BytesUp
	o.bytesDown.Store(sr.BytesDown)
	ups, err := db.PendingUpdates(ctx, sp.id, o.n)
	if err != nil {
		return err
	}
	for _, u := range ups {
		if u.Lost != nil {
			// Its payload did not survive (a damaged disk, or a database
			// restored without its payload files): the client answers again.
			r.c.deps.Log.Warn("an accepted update's payload is lost; its client may send it again",
				"run", sp.id, "round", o.n, "client", u.ClientID, "err", u.Lost)
			if err := db.Do(ctx, "lose_update", func(t *store.Tx) error { return t.LoseUpdate(u.ID, "payload lost: "+u.Lost.Error()) }); err != nil {
				return err
			}
			continue
		}
		if err := r.replay(ctx, o, &u); err != nil {
			return fmt.Errorf("replaying update %d of round %d: %w", u.ID, o.n, err)
		}
	}
	// Edge shards' stored partials (shard_round.go).
	if err := r.replayPartials(ctx, o, true); err != nil {
		return fmt.Errorf("replaying the partials of round %d: %w", o.n, err)
	}
	r.c.deps.Log.Info("resumed open round", "run", sp.id, "round", o.n, "replayed_updates", len(ups), "waiting_for", o.pending())
	return r.open(o)
}

// decodeStored decodes a stored update's payload into its delta from base.
func (r *Run) decodeStored(u *store.Update, base []float32) ([]float32, error) {
	p, err := wire.ParsePipeline(u.Codec)
	if err != nil {
		return nil, err
	}
	w, err := wire.Decode(p, u.Blob, r.sp.shapes, base, nil, r.sp.limits)
	if err != nil {
		return nil, err
	}
	for i := range w {
		w[i] -= base[i]
	}
	return w, nil
}

// replay folds a stored accepted update back into o's aggregation; its
// client has answered.
func (r *Run) replay(ctx context.Context, o *round, u *store.Update) error {
	up, err := r.storedUpdate(ctx, o, u)
	if err != nil {
		return err
	}
	if err := o.agg.Add(ctx, up); err != nil {
		return err
	}
	o.replayed(u.ClientID, u.ID, u.Staleness)
	return nil
}

// storedUpdate decodes a stored accepted update of round o into the update
// its session folded in: its delta against the model version it was
// trained from (in memory, or else from the store), weighted by its
// staleness in an async run (see weigh).
func (r *Run) storedUpdate(ctx context.Context, o *round, u *store.Update) (fl.Update, error) {
	base := o.base.w
	if v := int64(u.BaseVersion); v != o.version() {
		if ver := r.models.get(v); ver != nil {
			base = ver.w
		} else {
			m, err := r.c.deps.Store.Model(ctx, r.sp.id, u.BaseVersion)
			if err != nil {
				return fl.Update{}, fmt.Errorf("the model version %d it was trained from: %w", v, err)
			}
			if base, err = store.DecodeFloat32s(m.Weights, r.sp.numParams); err != nil {
				return fl.Update{}, fmt.Errorf("model version %d: %w", v, err)
			}
		}
	}
	w, err := r.decodeStored(u, base)
	if err != nil {
		return fl.Update{}, err
	}
	up := fl.Update{Client: u.ClientID, Samples: u.Samples, Delta: w}
	if r.sp.cfg.Async() {
		r.weigh(&up, float32(r.staleness.Weight(u.Staleness)))
	}
	return up, nil
}

// weigh applies an async update's staleness weight scale to up, as the
// run's staleness_norm says: with "weights", as up's Weight, so that the
// step is the mean of the buffer's deltas weighted by samples times
// staleness weight; with "samples", by multiplying the delta, so that the
// weighted sum is divided by the buffer's sample total and stale updates
// shrink the step (FedBuff as published). Both fold the same way live
// and when a restart or a failed store rebuilds the step's aggregate.
func (r *Run) weigh(up *fl.Update, scale float32) {
	switch {
	case scale == 1:
	case r.sp.cfg.StalenessNorm == StaleNormWeights:
		up.Weight = scale
	default:
		for i := range up.Delta {
			up.Delta[i] *= scale
		}
		up.Norm = 0 // Add computes the scaled delta's
	}
}
