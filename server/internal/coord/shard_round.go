package coord

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qflare/qflare/server/internal/shardwire"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/wire"
)

// The loop's side of edge shards (see shard.go): a run's open round as
// links describe it, the updates shards accepted that wait for their
// partial, and the events links post.

// edgeState is a run's state for edge shards: round is set by the loop
// and read by links; the rest is the loop's.
type edgeState struct {
	round atomic.Pointer[edgeRound]

	once    sync.Once // computes refusal and dp (edgeAllowed)
	refusal string
	dp      bool

	exactMu sync.Mutex
	exact   *exactFrame // the last lossless frame encoded for shards

	seats   map[string]*edgeSeat     // client id → its update accepted at a shard
	flushed map[*shardLink]time.Time // shards asked to flush the open round
	timer   Timer
}

// edgeRound is the open round as a link describes it to its shard.
type edgeRound struct {
	n        int
	base     *version
	deadline time.Time
	clip     float64 // DP: the round's clip norm; 0 without DP
}

// exactFrame is a lossless frame of one version, encoded once.
type exactFrame struct {
	v    int64
	once sync.Once
	b    []byte
	err  error
}

// edgeSeat is an update a shard accepted and folded: its client's seat is
// storing until the partial holding it is durable.
type edgeSeat struct {
	l       *shardLink
	rec     *store.Update
	clipped bool
}

// Events links post.
type (
	// evEdgeUpdate: a shard validated an update (accepted and folded, or
	// refused).
	evEdgeUpdate struct {
		l  *shardLink
		vc *shardConn // nil once the tab's connection is gone
		u  *shardwire.Update
	}
	// evEdgePartial: a shard's partial arrived (part nil: it did not
	// decode); the loop answers whether and where to merge it.
	evEdgePartial struct {
		l     *shardLink
		round int
		part  *fl.Partial
		reply chan edgeVerdict
	}
	// evEdgeFolded: a partial was merged and stored (or not).
	evEdgeFolded struct {
		round int
		rows  []*store.Update
		err   error
	}
	// evEdgeGone: a link broke.
	evEdgeGone struct{ l *shardLink }
)

// edgeVerdict is the loop's answer to a partial: refused (why), or the
// aggregation to merge it into and its updates' rows, in fold order.
type edgeVerdict struct {
	refused string
	mean    fl.PartialAdder
	dp      fl.ClippedPartialAdder
	clipped []bool // with DP, per update
	rows    []*store.Update
}

// edgeEvent is an event of edge shards; the loop hands it to apply.
type edgeEvent interface {
	event
	apply(ctx context.Context, r *Run)
}

func (evEdgeUpdate) isEvent()  {}
func (evEdgePartial) isEvent() {}
func (evEdgeFolded) isEvent()  {}
func (evEdgeGone) isEvent()    {}

func (ev evEdgeUpdate) apply(_ context.Context, r *Run)  { r.edgeUpdate(ev) }
func (ev evEdgePartial) apply(_ context.Context, r *Run) { ev.reply <- r.edgePartial(ev) }
func (ev evEdgeGone) apply(_ context.Context, r *Run) {
	r.edgeDrop(ev.l, wire.CodeStore, "the edge shard lost its connection to the server before the partial holding this update arrived", true)
}
func (ev evEdgeFolded) apply(_ context.Context, r *Run) {
	for _, rec := range ev.rows {
		var p *peer
		if cl := r.st.clients[rec.ClientID]; cl != nil {
			p = cl.peer
		}
		r.folded(evFolded{p: p, round: ev.round, task: ev.round, rec: rec, err: ev.err})
	}
}

// edgeOpened describes a new open round to links and forgets the last
// round's shard state (loop).
func (r *Run) edgeOpened(o *round) {
	e := &r.edge
	clip := 0.0
	if c, ok := o.agg.(fl.ClippedPartialAdder); ok {
		clip = c.ClipNorm()
	}
	e.round.Store(&edgeRound{n: o.n, base: o.base, deadline: o.deadline, clip: clip})
	e.seats, e.flushed = map[string]*edgeSeat{}, map[*shardLink]time.Time{}
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
}

// edgeUpdate takes a shard's verdict on an update. A refusal is recorded
// as a session's is. An accepted update is checked against the open round
// (the shard folded it; only the origin knows the round) and its seat goes
// to storing until its partial arrives; a client whose connection was
// replaced meanwhile still answered the round through the shard.
func (r *Run) edgeUpdate(ev evEdgeUpdate) {
	st, u := r.st, ev.u
	now := r.c.now()
	rec := &store.Update{RunID: r.sp.id, Round: u.Round, ClientID: u.Client, ReceivedAt: now, Bytes: u.Bytes,
		Codec: u.Codec, BaseVersion: int(u.BaseVersion), Samples: u.Samples, Loss: u.Loss, Accuracy: u.Accuracy,
		TrainMS: u.TrainMS, SamplesPerS: u.SamplesPerS}
	cl := st.clients[u.Client]
	var p *peer
	if cl != nil && cl.peer != nil && ev.vc != nil && cl.peer.conn == ev.vc {
		p = cl.peer
	}
	if cl != nil {
		r.measure(cl, u.Round, now) // as takeUpdate: a late update shows a slow client too
	}
	if !u.Accepted {
		if p != nil {
			r.refuse(p, rec, &rejection{code: u.Code, reason: u.Reason})
		}
		return
	}
	o := st.round
	var rej *rejection
	switch {
	case cl == nil:
		rej = &rejection{code: wire.CodeLate, reason: "this client's slice went back to the pool"}
	case o == nil || u.Round != o.n:
		rej = &rejection{code: wire.CodeLate, reason: fmt.Sprintf("late: round %d is already closed", u.Round)}
	case o.seat(cl.id) == nil:
		rej = &rejection{code: wire.CodeNotSelected, reason: fmt.Sprintf("this client was not selected for round %d", o.n)}
	case !o.waitsFor(cl.id) && o.seat(cl.id).state != seatAway:
		rej = &rejection{code: wire.CodeDuplicate, reason: fmt.Sprintf("this client already answered round %d", o.n)}
	case u.BaseVersion != o.version():
		rej = &rejection{code: wire.CodeLate, reason: fmt.Sprintf("trained from model version %d, but round %d trains version %d", u.BaseVersion, o.n, o.version())}
	}
	if rej != nil {
		// The shard folded it; its partial will be refused (late) or
		// found not to match what the round accepted.
		if p != nil {
			r.refuse(p, rec, rej)
		}
		return
	}
	if s := o.seat(cl.id); s.state == seatAway {
		o.move(s, seatPending) // it left, but its update had reached the shard
	}
	o.accept(cl.id)
	if p != nil {
		p.task.Store(nil)
	}
	if t := cl.task; t != nil {
		rec.TaskAt = t.sent
	}
	r.dropTask(cl)
	rec.Accepted, rec.BytesDown, rec.Profile = true, int(o.seat(cl.id).sent.Load()), cl.profile
	cl.updates++
	cl.bytesUp += int64(u.Bytes)
	cl.speed, cl.progress, cl.lastSeen, cl.dirty = u.SamplesPerS, nil, now, true
	cl.lastLoss = u.Loss // utility selection reads it
	if r.edge.seats == nil {
		r.edge.seats = map[string]*edgeSeat{}
	}
	r.edge.seats[cl.id] = &edgeSeat{l: ev.l, rec: rec, clipped: u.Clipped}
	r.publishClient(cl)
}

// edgePartial decides on a partial: it must be of the open round and hold
// exactly updates its shard announced and the round accepted; otherwise
// the shard's pending updates are dropped.
func (r *Run) edgePartial(ev evEdgePartial) edgeVerdict {
	o, e := r.st.round, &r.edge
	if o == nil || o.n != ev.round {
		return edgeVerdict{refused: fmt.Sprintf("round %d is closed", ev.round)}
	}
	if ev.part == nil {
		r.edgeDrop(ev.l, wire.CodeStore, "the edge shard's partial holding this update could not be read", false)
		return edgeVerdict{refused: "the partial does not decode"}
	}
	seen := map[string]bool{}
	for _, c := range ev.part.Clients {
		if s := e.seats[c]; s == nil || s.l != ev.l || seen[c] {
			r.edgeDrop(ev.l, wire.CodeStore, "the edge shard's partial holding this update did not match the updates it announced", false)
			return edgeVerdict{refused: fmt.Sprintf("it holds an update of %s that the round did not accept from this shard", c)}
		}
		seen[c] = true
	}
	v := edgeVerdict{}
	var ok bool
	r.edgeAllowed() // sets edge.dp, once
	if r.edge.dp {
		v.dp, ok = o.agg.(fl.ClippedPartialAdder)
		v.clipped = make([]bool, 0, len(ev.part.Clients))
	} else {
		v.mean, ok = o.agg.(fl.PartialAdder)
	}
	if !ok {
		r.edgeDrop(ev.l, wire.CodeStore, "the round's aggregation cannot merge an edge shard's partial", false)
		return edgeVerdict{refused: fmt.Sprintf("the aggregation %T merges no partials", o.agg)}
	}
	for _, c := range ev.part.Clients {
		s := e.seats[c]
		v.rows = append(v.rows, s.rec)
		if v.clipped != nil {
			v.clipped = append(v.clipped, s.clipped)
		}
		delete(e.seats, c)
	}
	if !r.edgeHolds(ev.l) {
		delete(e.flushed, ev.l)
	}
	return v
}

// edgeHolds reports whether shard l holds updates the open round waits for.
func (r *Run) edgeHolds(l *shardLink) bool {
	for _, s := range r.edge.seats {
		if s.l == l {
			return true
		}
	}
	return false
}

// edgeDrop gives up on the updates shard l holds for the open round: their
// clients' seats go back to away (a client that comes back in time gets
// the round again), and they are told and recorded with code and reason.
// With again, a client already back through another connection gets the
// round again at once (a shard that died, not one that missed the round:
// that round is over for its clients).
func (r *Run) edgeDrop(l *shardLink, code, reason string, again bool) {
	o, e := r.st.round, &r.edge
	if o == nil {
		return
	}
	for id, s := range e.seats {
		if s.l != l {
			continue
		}
		delete(e.seats, id)
		o.unstore(id)
		rec := *s.rec
		rec.Accepted, rec.Code, rec.Reason = false, code, reason
		row := rec // the writer stamps row's ID; the loop goes on reading rec
		r.submit("add_update", func(t *store.Tx) error { _, err := t.AddUpdate(&row); return err })
		r.c.deps.Observer.Update("rejected", code)
		if cl := r.st.clients[id]; cl != nil && cl.peer != nil {
			cl.peer.sendMsg(&wire.Rejected{Round: o.n, Reason: reason, Code: code})
			if vc, viaL := cl.peer.conn.(*shardConn); again && !(viaL && vc.l == l) && r.policy.Assign(o, cl) {
				r.sendTask(o, cl)
			}
		}
		r.publish(Event{Type: EvUpdate, Update: updateView(&rec)})
	}
	delete(e.flushed, l)
	r.c.deps.Log.Warn("dropped an edge shard's pending updates", "run", r.sp.id, "round", o.n, "shard", l.name, "why", reason)
}

// unstore returns id's seat, accepted at an edge shard whose partial never
// came, to away: the round no longer waits for it, and it gets the round
// again if it comes back in time.
func (o *round) unstore(id string) {
	s := o.seats[id]
	if s == nil || s.state != seatStoring {
		return
	}
	o.move(s, seatAway)
	o.storing--
	o.received--
}

// edgeStep runs before the policy decides whether the open round is due:
// when it would be but for updates shards hold (the deadline passed, every
// other seat answered, or the target is in counting them), those shards are
// asked to flush; edgeGrace later, what has not arrived is dropped.
func (r *Run) edgeStep(o *round, now time.Time) {
	e := &r.edge
	if len(e.seats) == 0 {
		return
	}
	wants := (!o.deadline.IsZero() && !now.Before(o.deadline)) || o.pending() == 0 ||
		(o.target > 0 && o.accepted+o.storing >= o.target)
	if !wants {
		return
	}
	links := map[*shardLink]bool{}
	for _, s := range e.seats {
		links[s.l] = true
	}
	for l := range links {
		at, asked := e.flushed[l]
		switch {
		case !asked:
			e.flushed[l] = now
			go l.flush(r, o.n)
			if e.timer == nil {
				e.timer = r.c.deps.Clock.AfterFunc(edgeGrace, func() { r.post(evTick{}) })
			}
		case !now.Before(at.Add(edgeGrace)):
			r.edgeDrop(l, wire.CodeLate, fmt.Sprintf("the edge shard's partial holding this update did not reach the server within %s of the round's end", edgeGrace), false)
		}
	}
	if e.timer != nil && len(e.flushed) == 0 {
		e.timer.Stop()
		e.timer = nil
	}
}

// replayPartials merges the partials stored for round o into its
// aggregation: at resume (resumed: their clients have answered) or when
// the aggregate is rebuilt. A partial whose payload is lost gives its
// clients the round back.
func (r *Run) replayPartials(ctx context.Context, o *round, resumed bool) error {
	db := r.c.deps.Store
	ps, err := db.PendingPartials(ctx, r.sp.id, o.n)
	if err != nil {
		return err
	}
	for _, sp := range ps {
		var part *fl.Partial
		if sp.Lost == nil && len(sp.Updates) == sp.Count {
			part, sp.Lost = shardwire.DecodePartial(sp.Blob, r.sp.numParams, sp.Count)
		}
		if part == nil {
			if len(sp.Updates) == 0 {
				continue // lost before
			}
			if sp.Lost == nil {
				sp.Lost = fmt.Errorf("%d of its %d updates are stored", len(sp.Updates), sp.Count)
			}
			r.c.deps.Log.Warn("an edge shard's stored partial is lost; its clients may send again",
				"run", r.sp.id, "round", o.n, "partial", sp.ID, "err", sp.Lost)
			if err := db.Do(ctx, "lose_partial", func(t *store.Tx) error { return t.LosePartial(sp.ID, "partial lost: "+sp.Lost.Error()) }); err != nil {
				return err
			}
			continue
		}
		switch agg := o.agg.(type) {
		case fl.ClippedPartialAdder:
			err = agg.AddClippedPartial(ctx, part, sp.Clipped)
		case fl.PartialAdder:
			err = agg.AddPartial(ctx, part)
		default:
			err = fmt.Errorf("the aggregation %T merges no partials", o.agg)
		}
		if err != nil {
			return fmt.Errorf("partial %d: %w", sp.ID, err)
		}
		for _, u := range sp.Updates {
			if resumed {
				o.replayed(u.ClientID, u.ID, u.Staleness)
			} else {
				o.ids.add(u.ClientID, u.ID)
			}
		}
	}
	return nil
}
