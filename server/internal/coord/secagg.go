package coord

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/secagg"
	"github.com/qflare/qflare/shared/wire"
)

// Secure rounds. In a run with secure_agg, every round is a phase machine
// layered on the synchronous round (SecurePolicy): the round opens and
// selects as usual and sends each selected client the model; then
//
//	keys     the selected clients advertise signed round keys; at the phase
//	         deadline (or once all have) the roster is fixed and each member
//	         gets its roster
//	shares   members send sealed envelopes for their neighbours; then each
//	         gets its inbox
//	masked   members train and send masked inputs, which sessions fold into
//	         a running sum modulo 2^32 (never decoded: there is nothing to
//	         decode); until the round's deadline or all are in
//	unmask   the survivors reveal shares; once all have (or at the phase
//	         deadline) the round is due
//
// and the closer, off the loop, recovers the secrets, removes the masks
// from the sum and folds the result into the strategy's aggregation as one
// fl.Partial. A phase that leaves too few members aborts the round (it
// fails, and the run goes on with the next one). The server never holds
// an individual update: masked inputs are folded into the sum and dropped,
// and their rows in the store carry no payload.
//
// Hooks into the engine (each marked with a comment where it is): the
// loop's step calls secureStep, its handler routes evSecure, a session
// routes secure aggregation frames to secureFrame and refuses plain update
// frames in a secure run, the closer calls secureFinish, the round's view
// carries secureView, and a resumed run fails a secure round it finds
// open (its members' keys died with the connections).

// secPhase is where a secure round is.
type secPhase uint8

const (
	secKeys secPhase = iota
	secShares
	secMasked
	secUnmask
	secDone
)

var secPhaseNames = [...]string{"keys", "shares", "masked", "unmask", "done"}

func (p secPhase) String() string { return secPhaseNames[p] }

// secRound is a secure round's state, owned by the run's loop like its
// round (round.sec); sum is the one part sessions touch (it locks).
type secRound struct {
	srv     *secagg.Server
	cfg     *SecureAggSettings
	phase   secPhase
	until   time.Time // the phase's deadline; zero: none
	armed   time.Time
	timer   Timer
	sum     *secagg.Sum
	abort   string // why the round aborted; "" while it goes on
	members []string
	// peers are the members' connections when the roster was fixed: a
	// member that reconnected since holds no round keys and is gone.
	peers    []*peer
	shared   int
	survived int
	closed   bool // the masked-input phase is closed: survived is known
	// Bytes of secure aggregation messages: received from the members
	// (masked inputs included), and sent to them (models excluded).
	bytesUp, bytesDown int64
	unmaskMS           float64
}

// evSecure is a secure aggregation message from a client's session: keys,
// shares and reveals are taken by the loop; a masked input asks for a
// verdict (reply), then is folded by the session.
type evSecure struct {
	p     *peer
	m     wire.SecAggMessage
	size  int
	reply chan secVerdict
}

func (evSecure) isEvent() {}

// secVerdict is the loop's answer to a masked input: refused, or accepted,
// in which case the session folds it into sum and stores rec (no payload).
type secVerdict struct {
	rej *rejection
	sum *secagg.Sum
	rec *store.Update
}

// SecurePolicy is SyncPolicy for secure runs: the same selection (at least
// two clients, at most wire.MaxSecAggMembers), no reassignment of a round
// to a client that reconnects (its round keys died with its connection),
// and a round is over when its phase machine has finished or aborted.
type SecurePolicy struct {
	SyncPolicy
}

// Name returns "sync".
func (SecurePolicy) Name() string { return ModeSync }

// Open selects as SyncPolicy does, once at least two clients are there.
// When passing over the clients that keep missing rounds leaves fewer than
// the two a secure sum needs, it picks two or more among all the connected
// clients instead: waiting would not help, since the clients are passed
// over for a number of rounds and no round would open (after a round in
// which its members stopped answering, say).
func (p SecurePolicy) Open(st *state, n int, now time.Time) ([]string, int, bool) {
	if st.online < 2 {
		return nil, 0, false
	}
	sel, _, ok := p.SyncPolicy.Open(st, n, now)
	if !ok {
		return nil, 0, false
	}
	if len(sel) < 2 {
		ids := st.connected()
		rng := rand.New(rand.NewPCG(p.cfg.Seed, uint64(n)))
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		sel = ids[:max(2, len(sel))]
		st.inSliceOrder(sel)
	}
	return sel[:min(len(sel), wire.MaxSecAggMembers)], 0, true
}

// Assign gives no task to a client that connects mid-round.
func (SecurePolicy) Assign(*round, *client) bool { return false }

// Due reports whether the phase machine is done or aborted (and no masked
// input is still being folded).
func (SecurePolicy) Due(o *round, now time.Time) (bool, string) {
	s := o.sec
	switch {
	case s == nil || o.storing > 0:
		return false, ""
	case s.abort != "":
		return true, "secure aggregation aborted: " + s.abort
	case s.phase == secDone:
		return true, "every secure aggregation phase is done"
	}
	return false, ""
}

// secureOf returns o's secure state, starting it on first use.
func (r *Run) secureOf(o *round) *secRound {
	if o.sec == nil {
		cfg := r.sp.cfg.SecureAgg
		graph, _ := secagg.ParseGraph(cfg.Graph) // validated
		o.sec = &secRound{cfg: cfg, sum: secagg.NewSum(r.sp.numParams + 1),
			srv: secagg.NewServer(secagg.Round{Run: r.sp.id, Round: o.n, Length: r.sp.numParams + 1,
				Threshold: cfg.Threshold, Graph: graph, Clip: cfg.Clip, MaxWeight: r.sp.maxSamples})}
		o.sec.setPhase(secKeys, r.c.now().Add(time.Duration(cfg.PhaseTimeout)))
	}
	return o.sec
}

func (s *secRound) setPhase(p secPhase, until time.Time) { s.phase, s.until = p, until }

// secureStep advances o's phases (called by the loop's step before the
// policy's Due): a phase ends when every member it waits for has answered
// or left, or at its deadline.
func (r *Run) secureStep(o *round, now time.Time) {
	if r.sp.cfg.SecureAgg == nil {
		return
	}
	s := r.secureOf(o)
	for s.abort == "" && s.phase != secDone && (r.phaseComplete(o, s) || !s.until.IsZero() && !now.Before(s.until)) {
		if o.storing > 0 {
			break // a masked input is being folded: the sum must hold it
		}
		r.c.deps.Log.Debug("secure phase done", "run", r.sp.id, "round", o.n, "phase", s.phase.String(),
			"seconds", r.c.now().Sub(o.started).Seconds())
		if err := r.nextPhase(o, s, now); err != nil {
			s.abort = fmt.Sprintf("in the %s phase: %v", s.phase, err)
			r.c.deps.Log.Warn("secure round aborted", "run", r.sp.id, "round", o.n, "why", s.abort)
		}
	}
	if !s.until.IsZero() && !s.until.Equal(s.armed) && s.abort == "" && s.phase != secDone {
		if s.timer != nil {
			s.timer.Stop()
		}
		s.armed = s.until
		s.timer = r.c.deps.Clock.AfterFunc(s.until.Sub(now), func() { r.post(evTick{}) })
	}
}

// secureExcused reports whether id, a member of the secure round o that
// aborted before its masked input, answered the phase the round aborted in:
// it did what the round asked of it, so it misses no round and is not
// passed over. (A member that masked its input was accepted; one that did
// not answer the failing phase did miss the round.)
func (r *Run) secureExcused(o *round, id string) bool {
	s := o.sec
	if s == nil || s.abort == "" {
		return false
	}
	switch s.phase {
	case secKeys:
		return s.srv.Advertised(id)
	case secShares:
		if i := slices.Index(s.members, id); i >= 0 {
			return s.srv.Shared(i)
		}
	}
	return false
}

// waiting reports whether the keys phase still waits for client id: it is
// connected, holds its seat, and has not answered the phase.
func (r *Run) waiting(o *round, id string, answered bool) bool {
	cl := r.st.clients[id]
	st := o.seat(id)
	return !answered && cl != nil && cl.peer != nil && st != nil && st.state == seatPending
}

// present reports whether member i is still on the connection it had when
// the roster was fixed.
func (r *Run) present(s *secRound, i int) bool {
	cl := r.st.clients[s.members[i]]
	return cl != nil && cl.peer != nil && cl.peer == s.peers[i]
}

// phaseComplete reports whether no member the phase waits for is left.
func (r *Run) phaseComplete(o *round, s *secRound) bool {
	switch s.phase {
	case secKeys:
		for _, id := range o.order {
			if r.waiting(o, id, s.srv.Advertised(id)) {
				return false
			}
		}
	case secShares:
		for i, id := range s.members {
			if r.present(s, i) && r.waiting(o, id, s.srv.Shared(i)) {
				return false
			}
		}
	case secMasked:
		for i, id := range s.members {
			if s.srv.MayMask(i) && r.present(s, i) && r.waiting(o, id, false) {
				return false
			}
		}
	case secUnmask:
		for _, i := range s.srv.Survivors() {
			if r.present(s, i) && !s.srv.Revealed(i) {
				return false
			}
		}
	}
	return true
}

// nextPhase closes the current phase and starts the next, sending each
// member what it needs.
func (r *Run) nextPhase(o *round, s *secRound, now time.Time) error {
	timeout := time.Duration(s.cfg.PhaseTimeout)
	switch s.phase {
	case secKeys:
		if err := s.srv.FixRoster(o.order); err != nil {
			return err
		}
		s.members = s.srv.Members()
		s.peers = make([]*peer, len(s.members))
		for i, id := range s.members {
			if cl := r.st.clients[id]; cl != nil {
				s.peers[i] = cl.peer
			}
		}
		frames := map[*wire.SARoster][]byte{}
		for i := range s.members {
			ros := s.srv.RosterFor(i)
			if frames[ros] == nil {
				b, err := wire.AppendSecAgg(nil, ros)
				if err != nil {
					return err
				}
				frames[ros] = b
			}
			r.sendSecure(s, i, frames[ros])
		}
		s.setPhase(secShares, now.Add(timeout))
	case secShares:
		if err := s.srv.CloseShares(); err != nil {
			return err
		}
		for i := range s.members {
			if in := s.srv.InboxFor(i); in != nil {
				s.shared++
				b, err := wire.AppendSecAgg(nil, in)
				if err != nil {
					return err
				}
				r.sendSecure(s, i, b)
			}
		}
		// Members train now: the phase waits for the round's deadline.
		s.setPhase(secMasked, o.deadline)
	case secMasked:
		err := s.srv.CloseMasked()
		s.survived, s.closed = len(s.srv.Survivors()), true
		if err != nil {
			return err
		}
		var frame []byte
		for _, i := range s.srv.Survivors() {
			if frame == nil {
				b, err := wire.AppendSecAgg(nil, s.srv.UnmaskFor(i))
				if err != nil {
					return err
				}
				frame = b
			}
			r.sendSecure(s, i, frame)
		}
		s.setPhase(secUnmask, now.Add(timeout))
	case secUnmask:
		if err := s.srv.Ready(); err != nil {
			return err
		}
		s.setPhase(secDone, time.Time{})
	}
	return nil
}

// sendSecure queues a secure aggregation frame to member i, if it is still
// on the connection it joined the round with.
func (r *Run) sendSecure(s *secRound, i int, frame []byte) {
	if !r.present(s, i) {
		return
	}
	cl := r.st.clients[s.members[i]]
	s.bytesDown += int64(len(frame))
	cl.down.Add(int64(len(frame)))
	cl.peer.send(outMsg{msg: link.Message{Binary: true, Data: frame}})
}

// secureFrame handles a secure aggregation frame a session read: a masked
// input is checked against the client's task, judged by the loop, folded
// into the round's sum and recorded; the other messages go to the loop.
func (r *Run) secureFrame(ctx context.Context, p *peer, msg link.Message) error {
	frame := msg.Data
	m, err := wire.ParseSecAgg(frame, wire.SecAggLimits{MaxMembers: wire.MaxSecAggMembers, MaxValues: r.sp.numParams + 1})
	mi, masked := m.(*wire.SAMasked)
	if err != nil || masked {
		// A masked input's values are copied out of the frame; the other
		// messages' keys and envelopes alias it, and the loop relays them
		// later, so their frames are not handed back.
		msg.Release()
	}
	if err == nil && r.sp.cfg.SecureAgg == nil {
		err = errors.New("this run does not aggregate securely")
	}
	if err != nil {
		p.sendMsg(&wire.Rejected{Code: wire.RejectCode(err), Reason: wire.ClipText("secure aggregation: " + err.Error())})
		p.reject()
		return nil
	}
	if !masked {
		return r.post(evSecure{p: p, m: m, size: len(frame)})
	}
	rec := &store.Update{RunID: r.sp.id, Round: mi.Round, ClientID: p.clientID, ReceivedAt: r.c.now(), Bytes: len(frame),
		Codec: "secagg", BaseVersion: int(mi.ModelVersion), Loss: mi.Loss, Accuracy: mi.Accuracy, TrainMS: mi.TrainMS,
		SamplesPerS: mi.SamplesPerS}
	t := p.task.Load()
	var rej *rejection
	switch {
	case t == nil || mi.Round < t.round:
		rej = &rejection{code: wire.CodeLate, reason: fmt.Sprintf("late: round %d is over for this client", mi.Round)}
	case mi.Round > t.round:
		rej = &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("round %d has not started (this client trains round %d)", mi.Round, t.round)}
	case mi.ModelVersion != t.version:
		rej = &rejection{code: wire.CodeLate, reason: fmt.Sprintf("trained from model version %d, but round %d trains version %d", mi.ModelVersion, t.round, t.version)}
	case len(mi.Values) != r.sp.numParams+1:
		rej = &rejection{code: wire.CodeShape, reason: fmt.Sprintf("a masked input of %d values; the run's have %d", len(mi.Values), r.sp.numParams+1)}
	}
	if rej != nil {
		return r.post(evRefused{p: p, rec: rec, rej: rej})
	}
	v, err := ask(ctx, r, func(c chan secVerdict) event { return evSecure{p: p, m: mi, size: len(frame), reply: c} })
	if err != nil || v.rej != nil {
		return err
	}
	// Accepted: fold it into the sum, then record it (metadata only: a
	// masked input is not kept).
	keep := context.WithoutCancel(ctx)
	if err := v.sum.Add(mi.Values); err != nil {
		r.c.deps.Log.Error("folding a masked input", "run", r.sp.id, "client", p.clientID, "err", err)
	}
	if _, err := r.c.deps.Store.AddUpdate(keep, v.rec); err != nil {
		r.c.deps.Log.Error("recording a masked input", "run", r.sp.id, "client", p.clientID, "err", err)
	}
	return r.post(evFolded{p: p, round: mi.Round, task: mi.Round, rec: v.rec})
}

// secureEvent takes a client's secure aggregation message on the loop.
func (r *Run) secureEvent(ev evSecure) {
	st := r.st
	cl, o := st.clients[ev.p.clientID], st.round
	var err error
	var s *secRound
	switch {
	case cl == nil || cl.peer != ev.p:
		err = errors.New("this connection was replaced by a newer one of the same client")
	case o == nil || ev.m.RoundNo() != o.n || o.seat(cl.id) == nil:
		// A message for a round that closed (or that this client is not
		// in): stale, not wrong; drop it quietly unless it asks for an
		// answer.
		if ev.reply != nil {
			ev.reply <- secVerdict{rej: &rejection{code: wire.CodeLate, reason: fmt.Sprintf("late: round %d is over", ev.m.RoundNo())}}
		}
		return
	default:
		s = r.secureOf(o)
		s.bytesUp += int64(ev.size)
		idx, member := s.srv.Index(cl.id)
		switch m := ev.m.(type) {
		case *wire.SAKeys:
			err = s.srv.AddKeys(cl.id, m)
		case *wire.SAShares:
			if err = errors.New("not a member of this round"); member {
				err = s.srv.AddShares(idx, m)
			}
		case *wire.SAReveal:
			if err = errors.New("not a member of this round"); member {
				err = s.srv.AddReveal(idx, m)
			}
		case *wire.SAMasked:
			ev.reply <- r.takeMasked(o, s, cl, ev, idx, member)
			return
		default:
			err = fmt.Errorf("a client may not send %s messages", m.Type())
		}
	}
	if err != nil {
		r.c.deps.Log.Warn("secure aggregation message refused", "run", r.sp.id, "client", ev.p.clientID, "type", ev.m.Type(), "err", err)
		ev.p.sendMsg(&wire.Rejected{Round: ev.m.RoundNo(), Code: wire.CodeBadFrame, Reason: wire.ClipText("secure aggregation: " + err.Error())})
		ev.p.reject()
		if ev.reply != nil {
			ev.reply <- secVerdict{rej: &rejection{code: wire.CodeBadFrame, reason: err.Error()}}
		}
	}
}

// takeMasked judges a masked input: accepted while the masked-input phase
// is open, once per member that shared.
func (r *Run) takeMasked(o *round, s *secRound, cl *client, ev evSecure, idx int, member bool) secVerdict {
	mi := ev.m.(*wire.SAMasked)
	rec := &store.Update{RunID: r.sp.id, Round: mi.Round, ClientID: cl.id, ReceivedAt: r.c.now(), Bytes: ev.size,
		Codec: "secagg", BaseVersion: int(mi.ModelVersion), Loss: mi.Loss, Accuracy: mi.Accuracy, TrainMS: mi.TrainMS,
		SamplesPerS: mi.SamplesPerS}
	r.measure(cl, mi.Round, rec.ReceivedAt) // selection's speed, as for a plain update
	var rej *rejection
	switch {
	case !member || s.phase != secMasked || !s.srv.MayMask(idx):
		rej = &rejection{code: wire.CodeLate, reason: fmt.Sprintf("round %d takes no masked input from this client now (phase %s)", o.n, s.phase)}
	case !o.waitsFor(cl.id):
		rej = &rejection{code: wire.CodeDuplicate, reason: fmt.Sprintf("this client already answered round %d", o.n)}
	}
	if rej != nil {
		r.refuse(ev.p, rec, rej)
		return secVerdict{rej: rej}
	}
	s.srv.Masked(idx)
	o.accept(cl.id)
	// The client's task is done, as in accepted (loop.go).
	ev.p.task.Store(nil)
	if t := cl.task; t != nil {
		rec.TaskAt = t.sent
	}
	r.dropTask(cl)
	rec.Accepted, rec.BytesDown, rec.Profile = true, int(o.seat(cl.id).sent.Load()), cl.profile
	cl.updates++
	cl.bytesUp += int64(ev.size)
	cl.speed, cl.progress, cl.lastSeen, cl.dirty = mi.SamplesPerS, nil, rec.ReceivedAt, true
	cl.storing, cl.lastLoss = true, mi.Loss
	return secVerdict{sum: s.sum, rec: rec}
}

// secureFinish runs in the closer: it removes the masks from the sum of
// the survivors' masked inputs and folds the result into o's aggregation
// as one partial, or says why the round fails. Its error is the context's.
func (r *Run) secureFinish(ctx context.Context, o *round) (failed string, err error) {
	s := o.sec
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.abort != "" {
		return "secure aggregation aborted " + s.abort, nil
	}
	sum, n := s.sum.Values()
	start := time.Now()
	if err := s.srv.Unmask(sum); err != nil {
		return "secure aggregation could not unmask the sum: " + err.Error(), nil
	}
	s.unmaskMS = float64(time.Since(start).Microseconds()) / 1000
	if err := ctx.Err(); err != nil {
		return "", err
	}
	num := make([]int64, r.sp.numParams)
	weight := secagg.Decode(num, sum, r.sp.maxSamples)
	clients := make([]string, 0, n)
	for _, i := range s.srv.Survivors() {
		clients = append(clients, s.members[i])
	}
	if n != len(clients) {
		return fmt.Sprintf("secure aggregation: the sum holds %d masked inputs but %d members survived", n, len(clients)), nil
	}
	part, err := fl.NewPartialFixed(num, s.srv.Exponent(), weight, n, clients)
	if err != nil {
		return "secure aggregation: the unmasked sum is out of range (a member sent a hostile input?): " + err.Error(), nil
	}
	pa, ok := o.agg.(fl.PartialAdder)
	if !ok {
		return "secure aggregation: the strategy cannot take a sum", nil // refused by validateSecure
	}
	if err := pa.AddPartial(ctx, part); err != nil {
		return "secure aggregation: " + err.Error(), nil
	}
	// The rows of the masked inputs get no verdicts: there is one sum.
	o.ids = nil
	o.agg = secAggregation{Aggregation: o.agg, s: s}
	return "", nil
}

// secAggregation adds a secure round's figures to its aggregate's metrics.
type secAggregation struct {
	fl.Aggregation
	s *secRound
}

func (a secAggregation) Finish(ctx context.Context, dst []float32) (fl.Result, error) {
	res, err := a.Aggregation.Finish(ctx, dst)
	if res.Metrics != nil {
		s := a.s
		res.Metrics["secagg_members"] = float64(len(s.members))
		res.Metrics["secagg_survivors"] = float64(s.survived)
		res.Metrics["secagg_dropped"] = float64(len(s.members) - s.survived)
		res.Metrics["secagg_bytes_up"] = float64(s.bytesUp)
		res.Metrics["secagg_bytes_down"] = float64(s.bytesDown)
		res.Metrics["secagg_unmask_ms"] = s.unmaskMS
		res.Metrics["secagg_exponent"] = float64(s.srv.Exponent())
		delete(res.Metrics, "mean_norm") // individual norms are not known
	}
	return res, err
}

// failSecure commits a secure round's failure (from the closer).
func (r *Run) failSecure(ctx context.Context, j *closeJob, res *closeResult) *closeResult {
	o := j.o
	if err := r.c.deps.Store.Do(context.WithoutCancel(ctx), "fail_round", func(t *store.Tx) error {
		return t.FailRound(&store.Failure{RunID: r.sp.id, Round: o.n, Reason: res.failed,
			BytesDown: o.bytesDown.Load(), Clients: j.stats})
	}); err != nil {
		res.err = fmt.Errorf("round %d: %w", o.n, err)
	}
	return res
}

// SecureView is a secure round's progress, in its RoundView.
type SecureView struct {
	Graph     string  `json:"graph"`
	Threshold float64 `json:"threshold"`
	Phase     string  `json:"phase"`
	Members   int     `json:"members"`   // clients whose keys are in the roster
	Shared    int     `json:"shared"`    // members that shared their keys
	Survivors int     `json:"survivors"` // members whose masked inputs are in the sum
	Dropped   int     `json:"dropped"`   // members that left after the roster was fixed
	Aborted   string  `json:"aborted,omitempty"`
	BytesUp   int64   `json:"bytes_up"`   // secure aggregation messages received, masked inputs included
	BytesDown int64   `json:"bytes_down"` // secure aggregation messages sent (models excluded)
	UnmaskMS  float64 `json:"unmask_ms,omitempty"`
}

// view returns the secure round's progress (nil for a plain round).
func (s *secRound) view() *SecureView {
	if s == nil {
		return nil
	}
	v := &SecureView{Graph: s.cfg.Graph, Threshold: s.cfg.Threshold, Phase: s.phase.String(), Members: len(s.members),
		Shared: s.shared, Survivors: s.survived, Aborted: s.abort, BytesUp: s.bytesUp, BytesDown: s.bytesDown,
		UnmaskMS: s.unmaskMS}
	switch {
	case s.closed:
		v.Dropped = len(s.members) - s.survived
	case s.phase >= secMasked:
		v.Dropped = len(s.members) - s.shared
	}
	return v
}

// dropSecureRound fails a secure round found open at resume: its members'
// round keys lived in their connections, so it cannot go on; the run goes
// on with the next round.
func (r *Run) dropSecureRound(sr *store.Round) error {
	reason := "the server restarted during this secure round; its members' round keys are gone"
	r.c.deps.Log.Warn("failing a secure round open at restart", "run", r.sp.id, "round", sr.Round)
	return r.c.deps.Store.Do(context.Background(), "fail_round", func(t *store.Tx) error {
		return t.FailRound(&store.Failure{RunID: r.sp.id, Round: sr.Round, Reason: reason})
	})
}
