package coord

import (
	"sync/atomic"
	"time"

	"github.com/qflare/qflare/shared/fl"
)

// seatState is where a selected client is in a round.
type seatState uint8

const (
	// seatPending: it holds the round's task and has not answered; the
	// round waits for it.
	seatPending seatState = iota
	// seatAway: it left before answering; the round no longer waits for
	// it, and it gets the task again if it comes back in time.
	seatAway
	// seatStoring: its update was accepted and is being made durable and
	// folded; the round cannot close until that is done.
	seatStoring
	// seatDone: it answered (an update folded in, a decline, a refusal).
	seatDone
)

// seat is one selected client's place in a round.
type seat struct {
	state seatState
	sent  atomic.Int64 // model bytes sent to it for the round
}

// round is one round of a run: which clients were selected and where each
// one is, the aggregation their updates fold into, and the round's counts.
// It is owned by the run's loop goroutine, and its methods are the only
// way a client is marked as answered and the only way it is decided that
// the round is over (due). The policy decides who sits in it and its
// target; the loop moves clients through it.
type round struct {
	n        int
	base     *version // the model it trains from
	started  time.Time
	deadline time.Time // zero: none
	seats    map[string]*seat
	order    []string // selected ids, in slice order
	// target > 0 closes the round once that many updates are in (with
	// over-selection); 0 waits for every selected client.
	target int
	agg    fl.Aggregation
	ids    updateIDs // stored ids of the folded updates, per client

	received, accepted, storing int
	waiting                     int  // seats in seatPending
	tainted                     bool // an accepted update failed to store: rebuild the aggregate
	bytesUp                     int64
	bytesDown                   atomic.Int64
	resumed                     bool
	// contributed (async) holds the clients with an update in the buffer;
	// staleSum and staleMax sum up the buffer's staleness.
	contributed        map[string]bool
	staleSum, staleMax int
	sec                *secRound // secure aggregation's phases (secagg.go); nil in a plain round
}

func newRound(n int, base *version, started, deadline time.Time, order []string, target int, agg fl.Aggregation) *round {
	o := &round{n: n, base: base, started: started, deadline: deadline, order: order, target: target, agg: agg,
		seats: make(map[string]*seat, len(order)), contributed: map[string]bool{}}
	for _, id := range order {
		o.seats[id] = &seat{}
	}
	o.waiting = len(order)
	return o
}

// move puts s in state to, keeping the count of waited-for seats.
func (o *round) move(s *seat, to seatState) {
	if s.state == seatPending {
		o.waiting--
	}
	if to == seatPending {
		o.waiting++
	}
	s.state = to
}

// version is the model version the round trains from.
func (o *round) version() int64 { return o.base.v }

// seat returns id's seat, nil when id was not selected.
func (o *round) seat(id string) *seat { return o.seats[id] }

// waitsFor reports whether id holds the round's task and has not answered.
func (o *round) waitsFor(id string) bool {
	s := o.seats[id]
	return s != nil && s.state == seatPending
}

// leave records that id left; the round stops waiting for it.
func (o *round) leave(id string) {
	if s := o.seats[id]; s != nil && s.state == seatPending {
		o.move(s, seatAway)
	}
}

// back records that id, selected, reconnected: it reports whether id should
// get the task (again): it had not answered yet.
func (o *round) back(id string) bool {
	s := o.seats[id]
	if s == nil || (s.state != seatAway && s.state != seatPending) {
		return false
	}
	o.move(s, seatPending)
	return true
}

// accept takes id's update: it is counted, folded in by its session and
// made durable (stored) before the round can close.
func (o *round) accept(id string) {
	o.move(o.seats[id], seatStoring)
	o.storing++
	o.received++
}

// stored records that id's accepted update is durable (store id), or, with
// ok false, that storing it failed: the update was folded in already, so
// the aggregate must be rebuilt from the stored updates before it is used.
func (o *round) stored(id string, storeID int64, bytes int, ok bool) {
	s := o.seats[id]
	if s == nil || s.state != seatStoring {
		return
	}
	o.move(s, seatDone)
	o.storing--
	if ok {
		o.ids.add(id, storeID)
		o.accepted++
		o.bytesUp += int64(bytes)
	} else {
		o.tainted = true
	}
}

// replayed records id's update, stored before a restart, as folded in.
func (o *round) replayed(id string, storeID int64, staleness int) {
	if s := o.seats[id]; s != nil {
		o.move(s, seatDone)
	}
	o.ids.add(id, storeID)
	o.accepted++
	o.buffered(id, staleness)
}

// acceptAsync takes an update into an async step's buffer; like accept, it
// is stored before the step can close.
func (o *round) acceptAsync(id string, staleness int) {
	o.storing++
	o.received++
	o.buffered(id, staleness)
}

// buffered counts an update in the buffer's contributors and staleness.
func (o *round) buffered(id string, staleness int) {
	o.contributed[id] = true
	o.staleSum += staleness
	o.staleMax = max(o.staleMax, staleness)
}

// storedAsync records that an update of the async buffer is durable (or,
// with ok false, failed to store: the aggregate must be rebuilt).
func (o *round) storedAsync(client string, storeID int64, bytes int, ok bool) {
	o.storing--
	if ok {
		o.ids.add(client, storeID)
		o.accepted++
		o.bytesUp += int64(bytes)
	} else {
		o.tainted = true
	}
}

// answer records that id answered without an update for the round (it
// declined, or its update was refused).
func (o *round) answer(id string) {
	if s := o.seats[id]; s != nil && (s.state == seatPending || s.state == seatAway) {
		o.move(s, seatDone)
		o.received++
	}
}

// unanswered returns the selected clients that never answered.
func (o *round) unanswered() []string {
	var ids []string
	for _, id := range o.order {
		if st := o.seats[id].state; st == seatPending || st == seatAway {
			ids = append(ids, id)
		}
	}
	return ids
}

// pending counts the seats the round waits for.
func (o *round) pending() int { return o.waiting }

// due reports whether the round is over at now, and why: every selected
// client answered or left, or the target number of updates is in, or the
// deadline passed. Never while an accepted update is still being stored:
// what was acknowledged must be in the aggregate.
func (o *round) due(now time.Time) (bool, string) {
	if o.storing > 0 {
		return false, ""
	}
	switch {
	case o.target > 0 && o.accepted >= o.target:
		return true, "the target number of updates is in"
	case o.pending() == 0:
		return true, "every selected client answered or left"
	case !o.deadline.IsZero() && !now.Before(o.deadline):
		return true, "the deadline passed"
	}
	return false, ""
}

// view returns the round's state (result nil) or outcome.
func (o *round) view(now time.Time) *RoundView {
	v := &RoundView{Round: o.n, BaseVersion: o.version(), StartedAt: o.started, Selected: o.order, Target: o.target,
		Pending: o.pending(), Received: o.received, Accepted: o.accepted, BytesUp: o.bytesUp,
		BytesDown: o.bytesDown.Load(), Seconds: now.Sub(o.started).Seconds()}
	if !o.deadline.IsZero() {
		d := o.deadline
		v.Deadline = &d
	}
	if o.accepted > 0 && len(o.contributed) > 0 {
		v.MeanStaleness = float64(o.staleSum) / float64(o.received)
		v.MaxStaleness = o.staleMax
	}
	v.Secure = o.sec.view() // secure aggregation (secagg.go)
	return v
}

// updateIDs pairs the verdicts of a round's aggregation with the stored
// rows of the updates they judge. Verdicts come one per Add, in Add order,
// each naming its client; the rows become durable in another order (each
// session folds its update, then stores it, concurrently with the others),
// so position alone pairs one client's verdict with another's row. One
// client's updates are folded and stored by one session, one after the
// other (and replayed in stored order), so its k-th verdict judges its
// k-th row.
type updateIDs map[string][]int64

// add records client's next stored row.
func (u *updateIDs) add(client string, id int64) {
	if *u == nil {
		*u = updateIDs{}
	}
	(*u)[client] = append((*u)[client], id)
}

// pairer returns a function that gives, for each verdict's client in turn,
// the id of that client's next row (false when it has none left). It does
// not change u.
func (u updateIDs) pairer() func(client string) (int64, bool) {
	next := map[string]int{}
	return func(client string) (int64, bool) {
		k := next[client]
		if k >= len(u[client]) {
			return 0, false
		}
		next[client] = k + 1
		return u[client][k], true
	}
}
