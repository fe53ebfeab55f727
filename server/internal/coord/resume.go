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
// strategy state and clients. An open round is resumed by the loop.
func (c *Coordinator) resumeRun(ctx context.Context, sr *store.Run) (*Run, error) {
	var cfg Config
	if err := json.Unmarshal(sr.Config, &cfg); err != nil {
		return nil, fmt.Errorf("stored configuration: %w", err)
	}
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	r, err := c.newRun(ctx, cfg, sr.ID, sr.JoinToken)
	if err != nil {
		return nil, err
	}
	r.created, r.status, r.roundNo = sr.CreatedAt, sr.Status, sr.CurrentRound
	m, err := c.deps.Store.Model(ctx, sr.ID, -1)
	if err != nil {
		return nil, fmt.Errorf("latest model: %w", err)
	}
	w, err := store.DecodeFloat32s(m.Weights, r.numParams)
	if err != nil {
		return nil, fmt.Errorf("model version %d: %w", m.Version, err)
	}
	r.setGlobal(int64(m.Version), w)
	r.lastAcc = m.TestAccuracy
	if s, ok := fl.StateOf(r.strategy); ok && len(sr.StrategyState) > 0 {
		if err := s.UnmarshalState(sr.StrategyState); err != nil {
			return nil, fmt.Errorf("strategy state: %w", err)
		}
	}
	clients, err := c.deps.Store.Clients(ctx, sr.ID)
	if err != nil {
		return nil, err
	}
	for _, sc := range clients {
		if sc.SliceIndex < 0 || sc.SliceIndex >= len(r.parts) || r.bySlice[sc.SliceIndex] != "" {
			return nil, fmt.Errorf("client %s has slice %d, which is out of range or taken", sc.ID, sc.SliceIndex)
		}
		cl := &client{id: sc.ID, slice: sc.SliceIndex, kind: sc.Kind, firstSeen: sc.FirstSeen, lastSeen: sc.LastSeen,
			speed: sc.SamplesPerS, updates: sc.Updates, accepted: sc.Accepted, bytesUp: sc.BytesUp, bytesDown: sc.BytesDown}
		json.Unmarshal(sc.Device, &cl.device)
		r.clients[cl.id] = cl
		r.bySlice[cl.slice] = cl.id
		r.slices.Store(cl.id, cl.slice)
	}
	r.publishView()
	return r, nil
}

// resumeOpenRound reopens the round that was open when the server stopped:
// the accepted updates stored for it are replayed into a fresh aggregation,
// and its selected clients that had not answered get until the deadline to
// reconnect and send theirs.
func (r *Run) resumeOpenRound(ctx context.Context) error {
	if r.roundNo == 0 {
		return nil
	}
	st := r.c.deps.Store
	sr, err := st.Round(ctx, r.id, r.roundNo)
	if err != nil || sr.Status != store.RoundOpen {
		return nil // no round row yet, or the round was closed
	}
	o := &openRound{n: sr.Round, version: r.version, started: sr.StartedAt, selected: map[string]bool{},
		pending: map[string]bool{}, answered: map[string]bool{}, received: sr.NReceived,
		bytesUp: sr.BytesUp, bytesDn: sr.BytesDown}
	// Resumed runs keep only the latest version in memory: clients get the
	// whole model once, then deltas again.
	grace := time.Duration(r.cfg.RoundDeadline)
	if grace == 0 {
		grace = resumeGrace
	}
	o.deadline = r.c.deps.Now().Add(grace)
	o.agg = r.strategy.Begin(o.n, r.global)
	ups, err := st.PendingUpdates(ctx, r.id, o.n)
	if err != nil {
		return err
	}
	for _, u := range ups {
		if err := r.replay(ctx, o, &u); err != nil {
			return fmt.Errorf("replaying update %d of round %d: %w", u.ID, o.n, err)
		}
	}
	for _, id := range sr.Selected {
		o.selected[id] = true
		if !o.answered[id] && r.clients[id] != nil {
			o.pending[id] = true
		}
	}
	r.c.deps.Log.Info("resumed open round", "run", r.id, "round", o.n, "replayed_updates", len(ups), "waiting_for", len(o.pending))
	return r.openWith(ctx, o, true)
}

// replay folds a stored accepted update back into o's aggregation.
func (r *Run) replay(ctx context.Context, o *openRound, u *store.Update) error {
	p, err := wire.ParsePipeline(u.Codec)
	if err != nil {
		return err
	}
	w, err := wire.Decode(p, u.Blob, r.shapes, r.global, nil, r.limits)
	if err != nil {
		return err
	}
	for i := range w {
		w[i] -= r.global[i]
	}
	if err := o.agg.Add(ctx, fl.Update{Client: u.ClientID, Samples: u.Samples, Delta: w}); err != nil {
		return err
	}
	o.ids = append(o.ids, u.ID)
	o.accepted++
	o.answered[u.ClientID] = true
	return nil
}
