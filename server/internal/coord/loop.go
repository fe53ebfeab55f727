package coord

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/wire"
)

// Events the loop handles. Sessions post joins, leaves, progress, updates,
// folds, refusals and declines; the API posts stops and snapshot requests;
// timers post ticks; the round closer posts its result.
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
		p     *peer
		u     *decoded
		reply chan verdict
	}
	// evFolded: the session stored (or failed to store) an accepted update
	// and folded it in.
	evFolded struct {
		p     *peer
		round int // the round (async: step) it was accepted into
		task  int // the round of the task it answers
		rec   *store.Update
		err   error
	}
	// evRefused: the session refused an update or message before the loop
	// saw it; the loop records it.
	evRefused struct {
		p   *peer
		rec *store.Update
		rej *rejection
	}
	evDecline struct {
		p *peer
		m *wire.Decline
	}
	evStop struct {
		reason string
		reply  chan error
	}
	evTick     struct{}
	evClosed   struct{ res *closeResult }
	evSnapshot struct{ reply chan RunView }
)

func (evJoin) isEvent()     {}
func (evLeave) isEvent()    {}
func (evProgress) isEvent() {}
func (evUpdate) isEvent()   {}
func (evFolded) isEvent()   {}
func (evRefused) isEvent()  {}
func (evDecline) isEvent()  {}
func (evStop) isEvent()     {}
func (evTick) isEvent()     {}
func (evClosed) isEvent()   {}
func (evSnapshot) isEvent() {}

// joinReply is the loop's answer to a hello.
type joinReply struct {
	welcome *wire.Welcome
	reject  *wire.Rejected
}

// verdict is the loop's answer to a decoded update: refused, or accepted,
// in which case the session stores rec and folds the update, weighted by
// scale (the staleness weight of an async update, see Run.weigh; 1 for
// synchronous rounds), into agg.
type verdict struct {
	rej   *rejection
	agg   fl.Aggregation
	rec   *store.Update
	scale float32
}

// Rows stored for refused updates, per client and round: enough to see what
// a client did wrong, not enough for it to fill the disk.
const maxRefusedRows = 3

// loop is the run's owner goroutine: it handles events until the run ends
// or ctx is done (shutdown: the run stays resumable). It only decides: disk
// writes are queued to the store's group commit, and aggregation,
// evaluation and commits of a round run in a closer goroutine.
func (r *Run) loop(ctx context.Context) {
	defer r.end()
	var wake Timer
	defer func() {
		if wake != nil {
			wake.Stop()
		}
	}()
	if err := r.resumeOpenRound(ctx); err != nil {
		r.fail(err)
		return
	}
	var armed time.Time
	handled := 0 // events handled since the last take
	defer func() {
		for range handled {
			r.c.track.Release()
		}
	}()
	for r.st.active() {
		r.step(ctx)
		r.publishView()
		// Wake at the open round's deadline, or the first async task's.
		at := r.nextExpiry()
		if o := r.st.round; o != nil && !o.deadline.IsZero() {
			at = o.deadline
		}
		if !at.IsZero() && !at.Equal(armed) {
			if wake != nil {
				wake.Stop()
			}
			armed = at
			wake = r.c.deps.Clock.AfterFunc(at.Sub(r.c.now()), func() { r.post(evTick{}) })
		}
		if !r.st.active() {
			break
		}
		evs := r.take(ctx, handled)
		handled = len(evs)
		if ctx.Err() != nil {
			return
		}
		for _, ev := range evs {
			r.handle(ctx, ev)
		}
	}
	r.publishView()
}

// step closes the open round when it is due and opens the next one when
// the policy is ready.
func (r *Run) step(ctx context.Context) {
	st := r.st
	now := r.c.now()
	if o := st.round; o != nil {
		r.secureStep(o, now) // secure aggregation's phases (secagg.go)
		r.edgeStep(o, now)   // edge shards: flush, or drop what missed the round (shard_round.go)
		if due, why := r.policy.Due(o, now); due {
			r.closeRound(ctx, o, why)
		}
	}
	if st.round == nil && st.closing == nil && st.active() {
		r.openRound(ctx, now)
	}
}

func (r *Run) handle(ctx context.Context, ev event) {
	switch ev := ev.(type) {
	case evJoin:
		ev.reply <- r.join(ev.p, ev.hello)
	case evLeave:
		r.leave(ev.p)
	case evProgress:
		if cl := r.st.clients[ev.p.clientID]; cl != nil && cl.peer == ev.p {
			cl.progress, cl.speed = ev.m, ev.m.SamplesPerS
			r.publishClient(cl)
		}
	case evUpdate:
		if st := r.st; st.round == nil && st.closing != nil && r.sp.cfg.Async() {
			// The step is being taken: the update joins the next buffer.
			st.parked = append(st.parked, ev)
			return
		}
		ev.reply <- r.takeUpdate(ev.p, ev.u)
	case evFolded:
		r.folded(ev)
	case evRefused:
		r.refuse(ev.p, ev.rec, ev.rej)
	case evDecline:
		r.decline(ev.p, ev.m)
	case evStop:
		r.stop(ev.reason, ev.reply)
	case evTick:
		r.expireTasks()
	case evClosed:
		r.closed(ctx, ev.res)
	case evSnapshot:
		ev.reply <- r.snapshot()
	case evSecure: // secure aggregation (secagg.go)
		r.secureEvent(ev)
	case edgeEvent: // edge shards' events (shard_round.go)
		ev.apply(ctx, r)
	}
}

// join admits a client. A hello that claims a known id must show that
// client's secret: then the client keeps its slice (and replaces an older
// connection of itself). Anyone else is a newcomer and gets a new id, a new
// secret and a free slice, or the slice of the client that has been away
// longest once it has been away longer than the run's grace period.
func (r *Run) join(p *peer, h *wire.Hello) joinReply {
	st, sp := r.st, r.sp
	if !st.active() {
		return joinReply{reject: &wire.Rejected{Code: wire.CodeRunOver, Reason: fmt.Sprintf("run %s is %s", sp.id, st.status)}}
	}
	now := r.c.now()
	cl := st.clients[h.ClientID]
	if h.ClientID != "" && (cl == nil || !cl.secretOK(h.Secret)) {
		if cl != nil {
			r.c.deps.Log.Warn("a hello claimed a client id without its secret; joining it as a new client",
				"run", sp.id, "claimed", h.ClientID, "remote", p.info.Remote)
		}
		cl = nil
	}
	var secret string
	if cl == nil {
		slice, old, wait, ok := st.freeSlice(now, time.Duration(sp.cfg.SliceGrace))
		if !ok {
			reason := fmt.Sprintf("run %s is full: all %d data slices are held by connected clients", sp.id, len(sp.parts))
			if wait > 0 {
				reason = fmt.Sprintf("run %s is full: all %d data slices are held; the next frees in %s",
					sp.id, len(sp.parts), wait.Round(time.Second))
			}
			return joinReply{reject: &wire.Rejected{Code: wire.CodeFull, Reason: reason}}
		}
		if old != nil {
			r.release(old)
		}
		secret = rand.Text()
		sum := sha256.Sum256([]byte(secret))
		cl = &client{id: newID("c"), secretHash: sum[:], slice: slice, firstSeen: now}
		st.clients[cl.id] = cl
		st.bySlice[slice] = cl.id
		r.slices.Store(cl.id, slice)
	} else if old := cl.peer; old != nil {
		r.detach(cl)
		old.closeWith(&wire.Bye{Reason: "replaced by a newer connection of the same client"})
	}
	cl.peer, cl.device, cl.lastSeen, cl.kind = p, h.Device, now, p.kind(h)
	cl.profile, cl.samples = h.Device.Profile, len(sp.parts[cl.slice])
	cl.keyExchange = p.info.KeyExchange
	cl.dirty = true
	st.online++
	cl.version = 0
	if r.models.get(h.ResumeVersion) != nil && h.ResumeVersion > 0 {
		cl.version = h.ResumeVersion // it can get a delta from there
	}
	p.clientID = cl.id
	if secret != "" || h.ClientID != cl.id {
		dev, _ := json.Marshal(h.Device)
		row := &store.Client{RunID: sp.id, ID: cl.id, Kind: cl.kind, Device: dev, SliceIndex: cl.slice,
			Samples: len(sp.parts[cl.slice]), LabelCounts: sp.labels[cl.slice], FirstSeen: cl.firstSeen, LastSeen: now,
			SecretHash: cl.secretHash, Profile: cl.profile, KeyExchange: cl.keyExchange}
		r.submit("upsert_client", func(t *store.Tx) error { return t.UpsertClient(row) })
	}
	r.c.deps.Log.Info("client joined", "run", sp.id, "client", cl.id, "slice", cl.slice, "kind", cl.kind,
		"key_exchange", cl.keyExchange)
	w := &wire.Welcome{ClientID: cl.id, Secret: secret, Run: sp.runInfo(),
		Limits: wire.UploadLimits{MaxUpdateBytes: sp.limits.MaxFrameBytes},
		Slice: wire.SliceInfo{Index: cl.slice, Samples: len(sp.parts[cl.slice]), LabelCounts: sp.labels[cl.slice],
			URL: r.c.deps.SliceURL(sp.id, cl.id)}}
	// The welcome goes first in the peer's queue; then the client gets work
	// if the policy has some for it (a selected client reconnecting
	// mid-round), or is told to wait.
	p.sendMsg(w)
	if o := st.round; o != nil && r.policy.Assign(o, cl) {
		r.sendTask(o, cl)
	} else if !r.fill() || cl.task == nil {
		r.sendWait(cl)
	}
	r.publishClient(cl)
	return joinReply{welcome: w}
}

// release returns a departed client's slice to the pool; the client is
// forgotten (its rows stay in the store, marked released).
func (r *Run) release(cl *client) {
	st := r.st
	if o := st.round; o != nil {
		o.leave(cl.id)
	}
	st.bySlice[cl.slice] = ""
	delete(st.clients, cl.id)
	r.slices.Delete(cl.id)
	stats := cl.stats()
	stats.Released = true
	runID := r.sp.id
	r.submit("release_slice", func(t *store.Tx) error { return t.SaveClientStats(runID, []store.ClientStats{stats}) })
	r.c.deps.Log.Info("slice returned to the pool", "run", runID, "client", cl.id, "slice", cl.slice,
		"away", r.c.now().Sub(cl.lastSeen).Round(time.Second))
}

// detach forgets cl's connection: it counts the bytes that connection sent
// and stops the round waiting for it.
func (r *Run) detach(cl *client) {
	r.st.online--
	cl.peer.task.Store(nil)
	r.dropTask(cl)
	cl.peer, cl.progress = nil, nil
	cl.lastSeen = r.c.now()
	cl.dirty = true
	if o := r.st.round; o != nil {
		o.leave(cl.id)
	}
}

// leave forgets a connection; a selected client that has not answered no
// longer holds up the round.
func (r *Run) leave(p *peer) {
	cl := r.st.clients[p.clientID]
	if cl == nil || cl.peer != p {
		return
	}
	r.detach(cl)
	r.c.deps.Log.Info("client left", "run", r.sp.id, "client", cl.id)
	r.publishClient(cl)
	r.fill() // an async slot it held is free
}

// openRound asks the policy for the next round and opens it: it is queued
// to the store, and the selected clients get their task.
func (r *Run) openRound(ctx context.Context, now time.Time) {
	st, sp := r.st, r.sp
	n := st.roundNo + 1
	chosen, target, ok := r.policy.Open(st, n, now)
	if !ok {
		return
	}
	var deadline time.Time
	if d := time.Duration(sp.cfg.RoundDeadline); d > 0 {
		deadline = now.Add(d)
	}
	o := newRound(n, st.current, now, deadline, chosen, target, sp.strategy.Begin(n, st.current.w))
	if err := r.open(o); err != nil {
		r.fail(err)
		return
	}
	for _, id := range chosen {
		r.sendTask(o, st.clients[id])
	}
	parked := st.parked
	st.parked = nil
	for _, ev := range parked {
		ev.reply <- r.takeUpdate(ev.p, ev.u)
	}
	async := r.fill()
	if async && o.n > 1 {
		return // the clients without a slot heard why when they got none
	}
	for _, id := range st.connected() {
		if cl := st.clients[id]; cl.task == nil {
			r.sendWait(cl)
		}
	}
}

// fill gives the policy's choice of idle clients a task in the open round;
// it reports whether the policy hands out work that way (async).
func (r *Run) fill() bool {
	o := r.st.round
	if !r.sp.cfg.Async() {
		return false
	}
	if o == nil || !r.st.active() {
		return true
	}
	now := r.c.now()
	if due, _ := r.policy.Due(o, now); due {
		return true // the step is about to be taken: the next one hands out its version
	}
	for _, id := range r.policy.Fill(r.st, o, now) {
		r.sendTask(o, r.st.clients[id])
	}
	return true
}

// dropTask forgets the task cl holds, if any, freeing its slot.
func (r *Run) dropTask(cl *client) {
	if cl.task != nil {
		cl.task = nil
		r.st.busy--
	}
}

// expireTasks takes back the async tasks whose time is up: the client
// counts a missed task (and is passed over for a while, as in sync runs)
// and its slot goes to another client. An update it sends for the task
// later is refused as late.
func (r *Run) expireTasks() {
	st := r.st
	if !r.sp.cfg.Async() || st.round == nil {
		return
	}
	now := r.c.now()
	for _, cl := range st.clients {
		if t := cl.task; t != nil && !t.deadline.IsZero() && !now.Before(t.deadline) {
			r.dropTask(cl)
			if cl.peer != nil {
				cl.peer.task.Store(nil)
			}
			cl.missed++
			cl.skipUntil = st.roundNo + skipFor(cl.missed)
			cl.dirty = true
			r.c.deps.Log.Info("task expired", "run", r.sp.id, "client", cl.id, "round", t.round, "version", t.version)
			r.publishClient(cl)
		}
	}
	r.fill()
}

// nextExpiry returns when the earliest async task expires (zero: none).
func (r *Run) nextExpiry() time.Time {
	var at time.Time
	if !r.sp.cfg.Async() || r.sp.cfg.RoundDeadline == 0 {
		return at
	}
	for _, cl := range r.st.clients {
		if t := cl.task; t != nil && !t.deadline.IsZero() && (at.IsZero() || t.deadline.Before(at)) {
			at = t.deadline
		}
	}
	return at
}

// open makes o the open round and queues it to the store.
func (r *Run) open(o *round) error {
	st, sp := r.st, r.sp
	st.round, st.roundNo = o, o.n
	r.edgeOpened(o) // edge shards: describe the round to their links (shard_round.go)
	row := &store.Round{RunID: sp.id, Round: o.n, StartedAt: o.started, DeadlineAt: o.deadline, Selected: o.order}
	first := st.status == StatusWaiting
	st.status = StatusRunning
	resumed := o.resumed
	r.submit("open_round", func(t *store.Tx) error {
		if first {
			if err := t.SetRunStatus(row.RunID, StatusRunning, ""); err != nil {
				return err
			}
		}
		if err := t.OpenRound(row); err != nil && !(resumed && errors.Is(err, store.ErrResumed)) {
			return err
		}
		return nil
	})
	r.c.deps.Log.Info("round started", "run", sp.id, "round", o.n, "selected", len(o.order), "target", o.target,
		"version", o.version())
	r.publish(Event{Type: EvRoundStarted, Round: o.view(r.c.now())})
	if first {
		r.publishStatus()
	}
	return nil
}

// sendTask sends cl the open round's start message and model, and gives
// its session the task to check the update against.
func (r *Run) sendTask(o *round, cl *client) {
	if cl == nil || cl.peer == nil {
		return
	}
	sp := r.sp
	fit := sp.strategy.ConfigureFit(o.n, sp.fitBase())
	now := r.c.now()
	t := &inflight{round: o.n, version: o.version(), sent: now, deadline: o.deadline}
	seed := clientSeed(sp.cfg.Seed, o.n, cl.slice)
	if sp.cfg.Async() {
		if d := time.Duration(sp.cfg.RoundDeadline); d > 0 {
			t.deadline = now.Add(d)
		}
		// A client can get several tasks in one step: each its own seed.
		seed = clientSeed(seed, cl.updates, cl.slice)
	}
	if cl.task == nil {
		r.st.busy++
	}
	cl.task, cl.last = t, t
	rs := &wire.RoundStart{Round: o.n, ModelVersion: o.version(), Epochs: fit.Epochs, Batch: fit.Batch, LR: fit.LR,
		Mu: fit.Mu, Seed: seed}
	if !t.deadline.IsZero() {
		rs.DeadlineUnixMS = t.deadline.UnixMilli()
	}
	cl.peer.task.Store(&task{round: o.n, version: o.version(), base: o.base.w})
	cl.peer.lastTask.Store(int64(o.n))
	cl.peer.sendMsg(rs)
	counts := []*atomic.Int64{&cl.down, &o.bytesDown, &t.down}
	if s := o.seat(cl.id); s != nil {
		counts = append(counts, &s.sent)
	}
	cl.peer.sendModel(&modelSend{models: r.models, target: o.base, base: cl.version, counts: counts})
	cl.version = o.version() // what it holds once it decodes the frame
	r.publishClient(cl)
}

// sendWait tells cl that there is nothing for it to do now, and why.
func (r *Run) sendWait(cl *client) {
	if cl.peer == nil {
		return
	}
	st, cfg := r.st, r.sp.cfg
	need := cfg.MinClients
	if st.roundNo == 0 {
		need = cfg.StartClients
	}
	w := &wire.Wait{Round: st.roundNo, Clients: st.online, Needed: need}
	switch {
	case cfg.Async() && st.round != nil:
		w.Reason = fmt.Sprintf("all %d training slots are taken; this client gets work when one frees", cfg.Concurrency)
	case st.round != nil:
		w.Reason = fmt.Sprintf("round %d is in progress without this client; waiting for the next round", st.round.n)
	case st.closing != nil:
		w.Reason = fmt.Sprintf("round %d is being aggregated; waiting for the next round", st.closing.n)
	case st.online < need:
		w.Reason = fmt.Sprintf("waiting for %d more client(s) to start round %d", need-st.online, st.roundNo+1)
	default:
		w.Reason = "waiting for the next round"
	}
	cl.peer.sendMsg(w)
}

// takeUpdate decides on an update its session decoded: the authoritative
// checks against the open round, then accept (the session stores and folds
// it) or refuse.
func (r *Run) takeUpdate(p *peer, u *decoded) verdict {
	st := r.st
	cl := st.clients[p.clientID]
	rec := u.record(r.sp.id, p.clientID, r.c.now())
	if cl != nil {
		r.measure(cl, u.h.Round, rec.ReceivedAt)
	}
	if cl == nil || cl.peer != p {
		p.reject()
		return verdict{rej: &rejection{code: wire.CodeLate, reason: "this connection was replaced by a newer one of the same client"}}
	}
	if r.sp.cfg.Async() {
		return r.takeAsync(p, cl, u, rec)
	}
	o := st.round
	var rej *rejection
	switch {
	case o == nil || u.h.Round < o.n:
		rej = &rejection{code: wire.CodeLate, reason: fmt.Sprintf("late: round %d is already closed", u.h.Round)}
	case u.h.Round > o.n:
		rej = &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("round %d has not started (the open round is %d)", u.h.Round, o.n)}
	case o.seat(cl.id) == nil:
		rej = &rejection{code: wire.CodeNotSelected, reason: fmt.Sprintf("this client was not selected for round %d", o.n)}
	case !o.waitsFor(cl.id):
		rej = &rejection{code: wire.CodeDuplicate, reason: fmt.Sprintf("this client already answered round %d", o.n)}
	case u.h.ModelVersion != o.version():
		rej = &rejection{code: wire.CodeLate, reason: fmt.Sprintf("trained from model version %d, but round %d trains version %d", u.h.ModelVersion, o.n, o.version())}
	}
	if rej != nil {
		r.refuse(p, rec, rej)
		return verdict{rej: rej}
	}
	o.accept(cl.id)
	rec.BytesDown = int(o.seat(cl.id).sent.Load())
	return r.accepted(p, cl, u, rec, o.agg, 0, 1)
}

// accepted hands an update the loop took to its session: the client's task
// is done, and its measured task time and loss are kept for selection.
func (r *Run) accepted(p *peer, cl *client, u *decoded, rec *store.Update, agg fl.Aggregation, staleness int, scale float32) verdict {
	p.task.Store(nil)
	if t := cl.task; t != nil {
		rec.TaskAt = t.sent
		if rec.BytesDown == 0 {
			rec.BytesDown = int(t.down.Load()) // async: the task's model
		}
	}
	r.dropTask(cl)
	rec.Accepted, rec.Blob, rec.Staleness, rec.Profile = true, u.payload, staleness, cl.profile
	cl.updates++
	cl.bytesUp += int64(u.size)
	cl.speed, cl.progress, cl.lastSeen, cl.dirty = u.h.SamplesPerS, nil, rec.ReceivedAt, true
	cl.storing, cl.lastLoss = true, u.h.Loss
	return verdict{agg: agg, rec: rec, scale: scale}
}

// measure keeps how long cl took for its last task, from the task's start
// to the arrival of its update for it (accepted or not: a late update
// shows a slow client too), per sample trained; selection reads it.
func (r *Run) measure(cl *client, round int, at time.Time) {
	t := cl.last
	if t == nil || t.round != round || cl.samples == 0 {
		return
	}
	d := at.Sub(t.sent).Seconds()
	if d <= 0 {
		return
	}
	per := d / float64(cl.samples*r.sp.cfg.LocalEpochs)
	if cl.secsPerSample > 0 {
		per = (per + cl.secsPerSample) / 2
	}
	cl.secsPerSample = per
	cl.last = nil // measured once
}

// takeAsync decides on an update of an asynchronous run: it must answer
// the task its client holds, and joins the open step's buffer weighted by
// its staleness, unless it is staler than the run allows.
func (r *Run) takeAsync(p *peer, cl *client, u *decoded, rec *store.Update) verdict {
	st, cfg := r.st, &r.sp.cfg
	o, t := st.round, cl.task
	var rej *rejection
	tau := 0
	switch {
	case o == nil:
		rej = &rejection{code: wire.CodeLate, reason: "the run is not taking updates"}
	case t == nil || u.h.Round < t.round:
		rej = &rejection{code: wire.CodeLate, reason: fmt.Sprintf("late: the task of round %d is over for this client (it expired, or the server restarted)", u.h.Round)}
	case u.h.Round > t.round:
		rej = &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("this client's task is of round %d, not %d", t.round, u.h.Round)}
	case u.h.ModelVersion != t.version:
		rej = &rejection{code: wire.CodeLate, reason: fmt.Sprintf("trained from model version %d, but the task was version %d", u.h.ModelVersion, t.version)}
	default:
		if tau = int(o.version() - t.version); tau > cfg.MaxStaleness {
			rej = &rejection{code: wire.CodeLate, reason: fmt.Sprintf("stale: trained from version %d, %d steps behind the model (the run takes at most %d)", t.version, tau, cfg.MaxStaleness)}
		}
	}
	if rej != nil {
		r.refuse(p, rec, rej)
		return verdict{rej: rej}
	}
	o.acceptAsync(cl.id, tau)
	rec.Round = o.n // the step whose buffer it joins
	return r.accepted(p, cl, u, rec, o.agg, tau, float32(r.staleness.Weight(tau)))
}

// folded finishes an accepted update: folded in and durable (answer the
// client), or not stored (refuse it; the round's aggregate will be rebuilt
// from what is stored).
func (r *Run) folded(ev evFolded) {
	st := r.st
	o := st.round
	cl := st.clients[ev.rec.ClientID]
	if cl != nil {
		cl.storing = false
	}
	if o == nil || o.n != ev.round {
		return // the round was stopped under it
	}
	if r.sp.cfg.Async() {
		o.storedAsync(ev.rec.ClientID, ev.rec.ID, ev.rec.Bytes, ev.err == nil)
		defer r.fill() // the client is free for its next task
	} else {
		o.stored(ev.rec.ClientID, ev.rec.ID, ev.rec.Bytes, ev.err == nil)
	}
	if ev.err != nil {
		r.c.deps.Log.Error("storing an accepted update", "run", r.sp.id, "client", ev.rec.ClientID, "err", ev.err)
		ev.rec.Accepted, ev.rec.Blob = false, nil
		ev.rec.Code, ev.rec.Reason = wire.CodeStore, "the server could not store the update: "+ev.err.Error()
		r.c.deps.Observer.Update("rejected", wire.CodeStore)
		if ev.p != nil {
			ev.p.sendMsg(&wire.Rejected{Round: ev.task, Reason: ev.rec.Reason, Code: ev.rec.Code})
		}
		r.publish(Event{Type: EvUpdate, Update: updateView(ev.rec)})
		return
	}
	r.c.deps.Observer.Update("accepted", "")
	if cl != nil {
		cl.accepted++
		cl.missed, cl.skipUntil, cl.lastRound = 0, 0, o.n
		if cl.peer != nil {
			cl.peer.sendMsg(&wire.Accepted{Round: ev.task, Bytes: ev.rec.Bytes, Staleness: ev.rec.Staleness})
		}
		r.publishClient(cl)
	}
	ev.rec.Blob = nil
	r.publish(Event{Type: EvUpdate, Update: updateView(ev.rec)})
}

// refuse records a refused update (at most maxRefusedRows per client and
// round), tells the client why, and counts it against the connection. A
// selected client whose update for the open round was refused has
// answered: the round stops waiting for it.
func (r *Run) refuse(p *peer, rec *store.Update, rej *rejection) {
	st := r.st
	rec.Accepted, rec.Reason, rec.Code, rec.Blob = false, rej.reason, rej.code, nil
	// Record it under the round it claims when that round exists, else
	// under the round in progress (an unreadable frame claims none).
	if rec.Round < 1 || rec.Round > st.roundNo {
		rec.Round = st.roundNo
	}
	cl := st.clients[p.clientID]
	stored := false
	if cl != nil && cl.peer == p {
		cl.updates++
		cl.dirty = true
		if cl.refusedRound != rec.Round {
			cl.refusedRound, cl.refusedRows = rec.Round, 0
		}
		cl.refusedRows++
		stored = cl.refusedRows <= maxRefusedRows
		if t := cl.task; t != nil && t.round == rec.Round && (rej.code != wire.CodeLate && rej.code != wire.CodeDuplicate || r.sp.cfg.Async()) {
			// It answered its task, with an update that cannot be taken.
			if o := st.round; o != nil && !r.sp.cfg.Async() {
				o.answer(cl.id)
			}
			p.task.Store(nil)
			r.dropTask(cl)
			defer r.fill()
		}
	}
	if stored && rec.Round >= 1 {
		row := *rec
		r.submit("add_update", func(t *store.Tx) error { _, err := t.AddUpdate(&row); return err })
	}
	r.c.deps.Observer.Update("rejected", rej.code)
	r.c.deps.Log.Warn("update refused", "run", r.sp.id, "client", p.clientID, "round", rec.Round, "code", rej.code, "reason", rej.reason)
	p.sendMsg(&wire.Rejected{Round: rec.Round, Reason: rej.reason, Code: rej.code})
	if p.reject() {
		r.c.deps.Log.Warn("closing a connection that earned too many refusals", "run", r.sp.id, "client", p.clientID)
	}
	r.publish(Event{Type: EvUpdate, Update: updateView(rec)})
	if cl != nil {
		r.publishClient(cl)
	}
}

// decline records that a selected client will send no update for the open
// round (its training diverged, say), so the round stops waiting for it.
func (r *Run) decline(p *peer, m *wire.Decline) {
	st := r.st
	cl, o := st.clients[p.clientID], st.round
	if cl == nil || cl.peer != p || o == nil || cl.task == nil || cl.task.round != m.Round {
		return
	}
	if !r.sp.cfg.Async() && (m.Round != o.n || !o.waitsFor(cl.id)) {
		return
	}
	rec := &store.Update{RunID: r.sp.id, Round: o.n, ClientID: cl.id, ReceivedAt: r.c.now(), TaskAt: cl.task.sent,
		BaseVersion: int(cl.task.version), Profile: cl.profile, Code: wire.CodeDeclined, Reason: "the client sent no update: " + m.Reason}
	if s := o.seat(cl.id); s != nil {
		rec.BytesDown = int(s.sent.Load())
	}
	o.answer(cl.id)
	p.task.Store(nil)
	r.dropTask(cl)
	defer r.fill()
	row := *rec // the writer sets its ID; the loop goes on reading rec
	r.submit("add_update", func(t *store.Tx) error { _, err := t.AddUpdate(&row); return err })
	r.c.deps.Observer.Update("declined", "")
	r.c.deps.Log.Warn("client declined the round", "run", r.sp.id, "client", cl.id, "round", o.n, "reason", m.Reason)
	cl.updates++
	cl.missed, cl.skipUntil, cl.dirty = 0, 0, true
	r.publish(Event{Type: EvUpdate, Update: updateView(rec)})
	r.publishClient(cl)
}

// stop ends the run on the host's request; reply gets nil once the stop is
// durable, or why it failed.
func (r *Run) stop(reason string, reply chan error) {
	st, sp := r.st, r.sp
	if !st.active() {
		reply <- fmt.Errorf("%w: run %s is already %s", ErrNotRunning, sp.id, st.status)
		return
	}
	o := st.round
	st.round, st.status = nil, StatusStopped
	r.refuseParked("the run was stopped")
	stats := st.dirtyStats()
	// The one place the loop waits for the disk: the run ends here, and the
	// answer must say that the stop is durable.
	err := r.c.deps.Store.Do(context.Background(), "stop_run", func(t *store.Tx) error {
		if o != nil {
			if err := t.FailRound(&store.Failure{RunID: sp.id, Round: o.n, Reason: "run stopped: " + reason,
				BytesDown: o.bytesDown.Load()}); err != nil {
				return err
			}
		}
		if err := t.SaveClientStats(sp.id, stats); err != nil {
			return err
		}
		return t.SetRunStatus(sp.id, StatusStopped, reason)
	})
	r.broadcast(&wire.RunEnd{Reason: "stopped by the host: " + reason, FinalAccuracy: st.lastAcc})
	r.publishStatus()
	reply <- err
}

// fail ends the run after an error it cannot recover from.
func (r *Run) fail(err error) {
	st, sp := r.st, r.sp
	r.c.deps.Log.Error("run failed", "run", sp.id, "err", err)
	st.status = StatusFailed
	r.refuseParked("the run failed")
	if o := st.round; o != nil {
		st.round = nil
		r.submit("fail_round", func(t *store.Tx) error {
			return t.FailRound(&store.Failure{RunID: sp.id, Round: o.n, Reason: "run failed: " + err.Error()})
		})
	}
	// Synchronous, as stop: the run ends here, and once it has left memory
	// the store must already say it failed.
	if err := r.c.deps.Store.Do(context.Background(), "set_run_status", func(t *store.Tx) error {
		return t.SetRunStatus(sp.id, StatusFailed, err.Error())
	}); err != nil {
		r.c.deps.Log.Error("storing a run's failure", "run", sp.id, "err", err)
	}
	msg := err.Error()
	r.broadcast(&wire.RunEnd{Reason: "the run failed on the server: " + msg, FinalAccuracy: st.lastAcc})
	r.publishStatus()
}

// end runs when the loop returns: it waits for a round being closed, writes
// the clients' telemetry, ends every connection and the event stream, and
// refuses further events.
func (r *Run) end() {
	r.refuseParked("the server is shutting down")
	r.closeMailbox()
	r.closers.Wait()
	st := r.st
	if stats := st.dirtyStats(); len(stats) > 0 {
		runID := r.sp.id
		r.submit("save_client_stats", func(t *store.Tx) error { return t.SaveClientStats(runID, stats) })
	}
	for _, cl := range st.clients {
		if cl.peer != nil {
			cl.peer.closeWith(nil)
		}
	}
	r.publishView()
	v := r.View()
	if !st.active() {
		r.c.deps.Observer.RunEnded(st.status)
	}
	r.hub.close(Event{Type: EvEnd, Run: r.sp.id, Time: r.c.now(), Status: &v})
	close(r.done)
}

// refuseParked answers the updates parked for the next async step, which
// will not come.
func (r *Run) refuseParked(why string) {
	for _, ev := range r.st.parked {
		ev.reply <- verdict{rej: &rejection{code: wire.CodeRunOver, reason: why}}
	}
	r.st.parked = nil
}

// broadcast sends m to every connected client.
func (r *Run) broadcast(m wire.Message) {
	for _, cl := range r.st.clients {
		if cl.peer != nil {
			cl.peer.sendMsg(m)
		}
	}
}

// submit queues a write, named op, whose failure is only worth a log line
// (the loop never waits for the disk).
func (r *Run) submit(op string, fn func(*store.Tx) error) {
	runID, log := r.sp.id, r.c.deps.Log
	r.c.deps.Store.Submit(context.Background(), op, fn, func(err error) {
		if err != nil {
			log.Error("a write failed", "op", op, "run", runID, "err", err)
		}
	})
}
