package coord

import (
	"context"
	"fmt"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/wire"
)

// Events handled by a run's loop.
type (
	evJoin struct {
		p     *peer
		hello *wire.Hello
		reply chan joinReply
	}
	evLeave    struct{ p *peer }
	evProgress struct {
		p *peer
		m *wire.Progress
	}
	evUpdate struct {
		p       *peer
		u       *decoded
		rejects *rejection // set when the session already refused it
	}
	evDecline struct {
		p *peer
		m *wire.Decline
	}
	evStop struct {
		reason string
		reply  chan error
	}
)

type joinReply struct {
	welcome *wire.Welcome
	reject  *wire.Rejected
}

// loop is the run's owner goroutine: it handles events until the run ends
// or ctx is done.
func (r *Run) loop(ctx context.Context) {
	defer close(r.done)
	defer r.closePeers()
	if err := r.resumeOpenRound(ctx); err != nil {
		r.fail(ctx, err)
		return
	}
	r.maybeStartRound(ctx)
	for r.status == StatusWaiting || r.status == StatusRunning {
		var deadline <-chan time.Time
		var timer *time.Timer
		if r.open != nil && !r.open.deadline.IsZero() {
			timer = time.NewTimer(r.open.deadline.Sub(r.c.deps.Now()))
			deadline = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			r.closeRound(ctx, "the deadline passed")
		case ev := <-r.events:
			r.handle(ctx, ev)
		}
		if timer != nil {
			timer.Stop()
		}
		r.publishView()
	}
}

func (r *Run) handle(ctx context.Context, ev any) {
	switch ev := ev.(type) {
	case evJoin:
		ev.reply <- r.join(ctx, ev.p, ev.hello)
		r.maybeStartRound(ctx)
	case evLeave:
		r.leave(ctx, ev.p)
	case evProgress:
		if cl := r.clients[ev.p.clientID]; cl != nil && cl.peer == ev.p {
			cl.progress, cl.speed = ev.m, ev.m.SamplesPerS
			r.publish(EvClient, r.clientView(cl))
		}
	case evUpdate:
		r.takeUpdate(ctx, ev)
	case evDecline:
		r.decline(ctx, ev.p, ev.m)
	case evStop:
		ev.reply <- r.stop(ctx, ev.reason)
	}
}

// join admits a client: a known id keeps its slice (and replaces an older
// connection of the same client); a new one gets the first free slice.
func (r *Run) join(ctx context.Context, p *peer, h *wire.Hello) joinReply {
	if r.status != StatusWaiting && r.status != StatusRunning {
		return joinReply{reject: &wire.Rejected{Code: wire.CodeRunOver, Reason: fmt.Sprintf("run %s is %s", r.id, r.status)}}
	}
	now := r.c.deps.Now()
	cl := r.clients[h.ClientID]
	if cl == nil {
		slice := r.freeSlice()
		if slice < 0 {
			return joinReply{reject: &wire.Rejected{Code: wire.CodeFull, Reason: fmt.Sprintf("run %s is full: all %d data slices are taken", r.id, len(r.parts))}}
		}
		cl = &client{id: newID("c"), slice: slice, firstSeen: now}
		r.clients[cl.id] = cl
		r.bySlice[slice] = cl.id
		r.slices.Store(cl.id, slice)
	} else if cl.peer != nil {
		cl.peer.closeWith(&wire.Bye{Reason: "replaced by a newer connection of the same client"})
	}
	cl.peer, cl.device, cl.lastSeen, cl.kind = p, h.Device, now, p.kind(h)
	cl.version = 0
	if _, ok := r.recent[h.ResumeVersion]; ok && h.ResumeVersion > 0 {
		cl.version = h.ResumeVersion // it can get a delta from there
	}
	p.clientID = cl.id
	dev, _ := jsonRaw(h.Device)
	labels := r.train.Subset(r.parts[cl.slice]).LabelCounts()
	if err := r.c.deps.Store.UpsertClient(ctx, &store.Client{RunID: r.id, ID: cl.id, Kind: cl.kind, Device: dev,
		SliceIndex: cl.slice, Samples: len(r.parts[cl.slice]), LabelCounts: labels, FirstSeen: cl.firstSeen, LastSeen: now}); err != nil {
		r.c.deps.Log.Error("storing client", "run", r.id, "client", cl.id, "err", err)
	}
	r.c.deps.Log.Info("client joined", "run", r.id, "client", cl.id, "slice", cl.slice, "kind", cl.kind)
	r.publish(EvClient, r.clientView(cl))
	w := &wire.Welcome{ClientID: cl.id, Run: r.runInfo(), Limits: wire.UploadLimits{MaxUpdateBytes: r.limits.MaxFrameBytes},
		Slice: wire.SliceInfo{Index: cl.slice, Samples: len(r.parts[cl.slice]), LabelCounts: labels, URL: r.c.deps.SliceURL(r.id, cl.id)}}
	// The welcome goes first in the peer's queue; then a selected client that
	// has not answered yet (reconnecting mid-round) gets the round again, and
	// others are told to wait.
	p.sendMsg(w)
	if o := r.open; o != nil && o.selected[cl.id] && !o.answered[cl.id] {
		o.pending[cl.id] = true
		r.sendRound(ctx, cl)
	} else {
		r.sendWait(cl)
	}
	return joinReply{welcome: w}
}

func (r *Run) freeSlice() int {
	for i, id := range r.bySlice {
		if id == "" {
			return i
		}
	}
	return -1
}

// leave forgets a connection; a selected client that has not answered no
// longer holds up the round.
func (r *Run) leave(ctx context.Context, p *peer) {
	cl := r.clients[p.clientID]
	if cl == nil || cl.peer != p {
		return
	}
	cl.peer, cl.progress = nil, nil
	cl.lastSeen = r.c.deps.Now()
	r.c.deps.Store.TouchClient(ctx, r.id, cl.id, cl.lastSeen, 0)
	r.c.deps.Log.Info("client left", "run", r.id, "client", cl.id)
	r.publish(EvClient, r.clientView(cl))
	if o := r.open; o != nil && o.pending[cl.id] {
		delete(o.pending, cl.id)
		if len(o.pending) == 0 {
			r.closeRound(ctx, "every selected client answered or left")
		}
	}
}

// connected returns the ids of connected clients in slice order, so that
// seeded selection does not depend on map order.
func (r *Run) connected() []string {
	var ids []string
	for _, id := range r.bySlice {
		if cl := r.clients[id]; id != "" && cl.peer != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

func (r *Run) sendWait(cl *client) {
	if cl.peer == nil {
		return
	}
	n := len(r.connected())
	need := r.cfg.MinClients
	if r.roundNo == 0 {
		need = r.cfg.StartClients
	}
	w := &wire.Wait{Round: r.roundNo, Clients: n, Needed: need}
	switch {
	case r.open != nil:
		w.Reason = fmt.Sprintf("round %d is in progress without this client; waiting for the next round", r.open.n)
	case n < need:
		w.Reason = fmt.Sprintf("waiting for %d more client(s) to start round %d", need-n, r.roundNo+1)
	default:
		w.Reason = "waiting for the next round"
	}
	cl.peer.sendMsg(w)
}

func (r *Run) runInfo() wire.RunInfo {
	c := r.cfg
	return wire.RunInfo{ID: r.id, Name: c.Name, Model: c.Model, Dataset: c.Dataset, Rounds: c.Rounds,
		LocalEpochs: c.LocalEpochs, Batch: c.Batch, LR: c.LR, Momentum: c.Momentum, WeightDecay: c.WeightDecay,
		Codec: r.upPipe.String(), DownCodec: r.downPipe.String(), Strategy: c.Strategy,
		Mu: r.strategy.ConfigureFit(1, r.fitBase()).Mu, Seed: c.Seed}
}

// stop ends the run on the host's request.
func (r *Run) stop(ctx context.Context, reason string) error {
	if r.status != StatusWaiting && r.status != StatusRunning {
		return fmt.Errorf("coord: run %s is already %s", r.id, r.status)
	}
	if r.open != nil {
		r.c.deps.Store.FailRound(ctx, r.id, r.open.n, "run stopped: "+reason)
		r.open = nil
		r.cur.Store(nil)
	}
	r.status = StatusStopped
	if err := r.c.deps.Store.SetRunStatus(ctx, r.id, StatusStopped, reason); err != nil {
		return err
	}
	r.broadcast(&wire.RunEnd{Reason: "stopped by the host: " + reason, FinalAccuracy: r.lastAcc})
	r.publishStatus()
	return nil
}

// fail ends the run after an error it cannot recover from.
func (r *Run) fail(ctx context.Context, err error) {
	r.c.deps.Log.Error("run failed", "run", r.id, "err", err)
	r.status = StatusFailed
	r.c.deps.Store.SetRunStatus(ctx, r.id, StatusFailed, err.Error())
	r.broadcast(&wire.RunEnd{Reason: "the run failed on the server: " + err.Error(), FinalAccuracy: r.lastAcc})
	r.publishStatus()
}

// broadcast sends m to every connected client.
func (r *Run) broadcast(m wire.Message) {
	for _, id := range r.connected() {
		r.clients[id].peer.sendMsg(m)
	}
}

// closePeers ends every connection once the loop stops.
func (r *Run) closePeers() {
	for _, cl := range r.clients {
		if cl.peer != nil {
			cl.peer.closeWith(nil)
		}
	}
}

func (r *Run) publish(typ string, data any) {
	r.c.deps.Bus.Publish(Event{Type: typ, Run: r.id, Time: r.c.deps.Now(), Data: data})
}
