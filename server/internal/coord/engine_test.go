package coord_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/wire"
)

// The round state machine, driven by scripted clients over in-memory pipes
// and a fake clock: each case runs in milliseconds.

// TestDeadlineAndLate: the round closes at its deadline with what came in;
// an update after that is refused as late and recorded.
func TestDeadlineAndLate(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Fraction: 1, StartClients: 2, MinClients: 1, Rounds: 3, RoundDeadline: coord.Duration(30 * time.Second)})
	a, b := e.join(run, nil), e.join(run, nil)
	rsA, wA := a.task()
	rsB, wB := b.task()
	a.update(rsA, wA)
	expect[*wire.Accepted](a)
	e.clock.Advance(29 * time.Second)
	if r := e.rounds(run)[0]; r.Status != store.RoundOpen {
		t.Fatalf("round 1 is %s before its deadline; want open", r.Status)
	}
	e.clock.Advance(2 * time.Second)
	r1 := e.waitRound(run, 1)
	if r1.Status != store.RoundAggregated || r1.NAccepted != 1 {
		t.Errorf("round 1 after the deadline: %s with %d accepted; want aggregated with 1", r1.Status, r1.NAccepted)
	}
	b.update(rsB, wB)
	if rej := expect[*wire.Rejected](b); rej.Code != wire.CodeLate {
		t.Errorf("update after the deadline answered %+v; want code late", rej)
	}
	waitFor(t, "the late update to be recorded", func() bool {
		for _, u := range e.updates(run, 1) {
			if u.ClientID == b.id() && u.Code == wire.CodeLate {
				return true
			}
		}
		return false
	})
}

// TestDeclineEndsTheWait: a selected client that declines is not waited
// for; its decline is recorded.
func TestDeclineEndsTheWait(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Fraction: 1, StartClients: 2, MinClients: 1, Rounds: 3, RoundDeadline: coord.Duration(time.Hour)})
	a, b := e.join(run, nil), e.join(run, nil)
	rsA, wA := a.task()
	rsB, _ := b.task()
	b.send(&wire.Decline{Round: rsB.Round, Reason: "diverged"})
	a.update(rsA, wA)
	r1 := e.waitRound(run, 1)
	if r1.Status != store.RoundAggregated || r1.NAccepted != 1 || r1.NReceived != 2 {
		t.Errorf("round 1: %s, %d received, %d accepted; want aggregated, 2, 1 (without waiting an hour)", r1.Status, r1.NReceived, r1.NAccepted)
	}
	ups := e.updates(run, 1)
	if !slices.ContainsFunc(ups, func(u store.Update) bool { return u.ClientID == b.id() && u.Code == wire.CodeDeclined }) {
		t.Errorf("round 1 updates %s; want b's decline recorded", describe(ups))
	}
}

// TestLeaveAndRejoin: a selected client that leaves is not waited for; one
// that comes back (with its secret) before the round closes gets its task
// again and keeps its id and slice.
func TestLeaveAndRejoin(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Fraction: 1, StartClients: 3, MinClients: 1, Rounds: 3, RoundDeadline: coord.Duration(time.Hour)})
	a, b, c := e.join(run, nil), e.join(run, nil), e.join(run, nil)
	rsA, wA := a.task()
	b.task()
	c.task()
	b.close() // leaves for good
	c.close() // comes back
	c2 := e.join(run, c)
	if c2.id() != c.id() || c2.welcome.Slice.Index != c.welcome.Slice.Index {
		t.Errorf("rejoin got id %s slice %d; want %s slice %d", c2.id(), c2.welcome.Slice.Index, c.id(), c.welcome.Slice.Index)
	}
	rsC, wC := c2.task()
	if rsC.Round != rsA.Round {
		t.Fatalf("rejoined client got round %d; want the open round %d again", rsC.Round, rsA.Round)
	}
	a.update(rsA, wA)
	c2.update(rsC, wC)
	r1 := e.waitRound(run, 1)
	if r1.NAccepted != 2 {
		t.Errorf("round 1 accepted %d; want 2 (a and the rejoined c), without waiting for b", r1.NAccepted)
	}
}

// TestMaxFailedRounds: rounds that produce no model fail, and the run fails
// after max_failed_rounds of them in a row.
func TestMaxFailedRounds(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Fraction: 1, StartClients: 1, MinClients: 1, Rounds: 10, MaxFailedRounds: 3})
	a := e.join(run, nil)
	for n := 1; n <= 3; n++ {
		rs, _ := a.task()
		a.send(&wire.Decline{Round: rs.Round, Reason: "nothing to send"})
	}
	select {
	case <-run.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not end after 3 failed rounds")
	}
	rs := e.rounds(run)
	if len(rs) != 3 || rs[2].Status != store.RoundFailed {
		t.Errorf("rounds %+v; want 3 failed", rs)
	}
	sr, _ := e.st.Run(e.ctx, run.ID())
	if sr.Status != coord.StatusFailed || !strings.Contains(sr.Error, "3 rounds in a row") {
		t.Errorf("run is %s (%q); want failed after 3 rounds in a row", sr.Status, sr.Error)
	}
	if _, err := e.c.Run(run.ID()); !errors.Is(err, coord.ErrUnknownRun) {
		t.Errorf("the failed run is still in memory (%v); want it gone", err)
	}
}

// TestStopMidRound: Stop ends the open round (failed, in the store), tells
// the clients, and answers at once; a second Stop answers ErrNotRunning at
// once instead of hanging.
func TestStopMidRound(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Fraction: 1, StartClients: 1, MinClients: 1, Rounds: 3})
	a := e.join(run, nil)
	a.task()
	if err := run.Stop(e.ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if end := expect[*wire.RunEnd](a); !strings.Contains(end.Reason, "stopped") {
		t.Errorf("client told %q; want the run stopped", end.Reason)
	}
	if r := e.rounds(run)[0]; r.Status != store.RoundFailed || !strings.Contains(r.Error, "stopped") {
		t.Errorf("round 1 is %s (%q); want failed because the run stopped", r.Status, r.Error)
	}
	for range 20 {
		start := time.Now()
		if err := run.Stop(e.ctx, "again"); !errors.Is(err, coord.ErrNotRunning) {
			t.Fatalf("second Stop = %v; want ErrNotRunning", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("second Stop took %v; want an answer at once", d)
		}
	}
}

// TestResumeAfterRestart: an accepted update survives a restart in the
// middle of its round; the client that had not answered comes back with its
// secret, gets the round again, and the round closes with both.
func TestResumeAfterRestart(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Fraction: 1, StartClients: 2, MinClients: 1, Rounds: 3, RoundDeadline: coord.Duration(time.Hour)})
	a, b := e.join(run, nil), e.join(run, nil)
	rsA, wA := a.task()
	b.task()
	a.update(rsA, wA)
	expect[*wire.Accepted](a)
	e.restart()
	run2, err := e.c.Run(run.ID())
	if err != nil {
		t.Fatal(err)
	}
	b2 := e.join(run2, b)
	if b2.id() != b.id() {
		t.Fatalf("after the restart b rejoined as %s; want %s", b2.id(), b.id())
	}
	rs, w := b2.task()
	if rs.Round != 1 {
		t.Fatalf("after the restart b got round %d; want round 1 again", rs.Round)
	}
	b2.update(rs, w)
	r1 := e.waitRound(run2, 1)
	if r1.Status != store.RoundAggregated || r1.NAccepted != 2 || !strings.Contains(string(r1.Metrics), `"used":2`) {
		t.Errorf("round 1 after the restart: %s, %d accepted, metrics %s; want aggregated from both updates", r1.Status, r1.NAccepted, r1.Metrics)
	}
}

// TestClaimedIDNeedsSecret: a hello that claims another client's id
// without its secret joins as a newcomer (another id, another slice) and
// does not disturb the real client; with the secret it replaces the old
// connection.
func TestClaimedIDNeedsSecret(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{StartClients: 5, MinClients: 5, Rounds: 3})
	a := e.join(run, nil)
	thief := e.dial(run, nil, a.id())
	w := expect[*wire.Welcome](thief)
	if w.ClientID == a.id() || w.Slice.Index == a.welcome.Slice.Index {
		t.Errorf("a hello claiming %s without its secret got id %s slice %d; want another client", a.id(), w.ClientID, w.Slice.Index)
	}
	if m, err := a.recv(100 * time.Millisecond); err == nil {
		if bye, ok := m.(*wire.Bye); ok {
			t.Errorf("the real client was told %q; want it undisturbed", bye.Reason)
		}
	}
	again := e.join(run, a)
	if again.id() != a.id() {
		t.Errorf("with its secret, %s rejoined as %s", a.id(), again.id())
	}
	if bye := expect[*wire.Bye](a); !strings.Contains(bye.Reason, "replaced") {
		t.Errorf("old connection told %q; want it replaced", bye.Reason)
	}
}

// TestEveryRefusalCounts: a client that is not selected is refused before
// its update is decoded; each refusal counts, the connection is closed
// after maxRejects of them, and only a few rows are stored.
func TestEveryRefusalCounts(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{ClientsPerRound: 1, StartClients: 1, MinClients: 1, Rounds: 3, RoundDeadline: coord.Duration(time.Hour)})
	a := e.join(run, nil)
	rs, w := a.task()
	x := e.join(run, nil) // joins mid-round: not selected
	expect[*wire.Wait](x)
	frame := x.frame(rs, w)
	refused, closed := 0, false
	for range 300 {
		if err := x.conn.Send(e.ctx, link.Message{Binary: true, Data: frame}); err != nil {
			closed = true
			break
		}
	}
	for !closed {
		m, err := x.recv(2 * time.Second)
		if err != nil {
			closed = true
			break
		}
		if rej, ok := m.(*wire.Rejected); ok {
			refused++
			if rej.Code != wire.CodeNotSelected {
				t.Errorf("refused with %+v; want not_selected", rej)
			}
		}
	}
	if refused > 9 {
		t.Errorf("%d updates were refused before the connection closed; want it closed after 8", refused)
	}
	waitFor(t, "the refusals to be stored", func() bool { return len(e.updates(run, 1)) > 0 })
	rows := 0
	for _, u := range e.updates(run, 1) {
		if u.ClientID == x.id() {
			rows++
		}
	}
	if rows > 3 {
		t.Errorf("%d rows stored for the refused client's round; want at most 3", rows)
	}
	if sr := e.rounds(run)[0]; sr.Status != store.RoundOpen {
		t.Errorf("the refused updates closed round 1 (%s)", sr.Status)
	}
}

// TestSliceReturnsToPool: clients that connect and leave hold their slices
// for the grace period only; then a newcomer gets the slice of the one
// away longest, also after a restart.
func TestSliceReturnsToPool(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Clients: 2, StartClients: 2, MinClients: 2, Rounds: 3, SliceGrace: coord.Duration(time.Minute)})
	// The view is published after the event that sent the welcome: wait
	// for it to count the client, or a stale 0 passes gone() before the
	// client left, and it leaves after the clock moved.
	joined := func() { waitFor(t, "the client to be counted", func() bool { return run.View().Connected == 1 }) }
	gone := func() { waitFor(t, "the client to be gone", func() bool { return run.View().Connected == 0 }) }
	a := e.join(run, nil)
	joined()
	a.close()
	gone()
	e.clock.Advance(10 * time.Second)
	b := e.join(run, nil)
	joined()
	b.close()
	gone()
	full := e.dial(run, nil, "")
	if rej := expect[*wire.Rejected](full); rej.Code != wire.CodeFull || !strings.Contains(rej.Reason, "frees in") {
		t.Errorf("a newcomer to a run whose slices are all held was answered %+v; want full, with when a slice frees", rej)
	}
	e.clock.Advance(55 * time.Second) // a is away 65 s, b 55 s
	e.restart()
	run2, _ := e.c.Run(run.ID())
	c := e.join(run2, nil)
	if c.welcome.Slice.Index != a.welcome.Slice.Index {
		t.Errorf("the newcomer got slice %d; want a's slice %d, away longest", c.welcome.Slice.Index, a.welcome.Slice.Index)
	}
	waitFor(t, "a's slice to be released in the store", func() bool {
		sc, err := e.st.Client(e.ctx, run.ID(), a.id())
		return err == nil && sc.Released
	})
	// a, released, comes back: it is a newcomer now, and b (away 55 s)
	// still holds the other slice.
	back := e.dial(run2, a, "")
	if rej := expect[*wire.Rejected](back); rej.Code != wire.CodeFull {
		t.Errorf("released client %s coming back was answered %+v; want full (it no longer holds a slice)", a.id(), rej)
	}
}

// TestSilentClientPassedOver: with fraction 1, a client that never answers
// makes a round wait for its deadline; after each miss it is passed over
// for 1, 2, 4 ... rounds, so most rounds do not wait.
func TestSilentClientPassedOver(t *testing.T) {
	e := newEngine(t)
	const rounds = 12
	run := e.run(coord.Config{Fraction: 1, StartClients: 3, MinClients: 1, Rounds: rounds, RoundDeadline: coord.Duration(10 * time.Second)})
	a, b := e.join(run, nil), e.join(run, nil)
	silent := e.join(run, nil)
	waited := 0
	for n := 1; n <= rounds; n++ {
		for _, cl := range []*client{a, b} {
			rs, w := cl.task()
			cl.update(rs, w)
		}
		waitFor(t, "the round's accepted updates", func() bool {
			r := e.rounds(run)
			return len(r) >= n && (r[n-1].NAccepted == 2 || r[n-1].Status != store.RoundOpen)
		})
		if slices.Contains(e.rounds(run)[n-1].Selected, silent.id()) {
			waited++
			e.clock.Advance(11 * time.Second)
		}
		e.waitRound(run, n)
	}
	if waited > 4 {
		t.Errorf("%d of %d rounds waited for the silent client's deadline; want at most 4 (rounds 1, 3, 6, 11)", waited, rounds)
	}
}

// TestOverSelection: over_select 1.5 selects 3 for a target of 2 and closes
// the round when 2 are in; the third is told the round is over.
func TestOverSelection(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{ClientsPerRound: 2, OverSelect: 1.5, StartClients: 4, MinClients: 1, Rounds: 3,
		RoundDeadline: coord.Duration(time.Hour)})
	cls := []*client{e.join(run, nil), e.join(run, nil), e.join(run, nil), e.join(run, nil)}
	waitFor(t, "round 1", func() bool { return len(e.rounds(run)) == 1 })
	sel := e.rounds(run)[0].Selected
	if len(sel) != 3 {
		t.Fatalf("selected %d clients; want 3 (2 × 1.5)", len(sel))
	}
	var chosen []*client
	for _, cl := range cls {
		if slices.Contains(sel, cl.id()) {
			chosen = append(chosen, cl)
		}
	}
	for _, cl := range chosen[:2] {
		rs, w := cl.task()
		cl.update(rs, w)
	}
	r1 := e.waitRound(run, 1)
	if r1.NAccepted != 2 {
		t.Errorf("round 1 closed with %d accepted; want 2 without waiting an hour for the third", r1.NAccepted)
	}
	rs, w := chosen[2].task()
	expect[*wire.RoundEnd](chosen[2])
	chosen[2].update(rs, w)
	if rej := expect[*wire.Rejected](chosen[2]); rej.Code != wire.CodeLate {
		t.Errorf("the third update answered %+v; want late", rej)
	}
}

// TestLoopAnswersDuringEvaluation: while a mnist-cnn model is evaluated
// after a round, the loop still welcomes newcomers: the welcome arrives
// while the run is still aggregating.
func TestLoopAnswersDuringEvaluation(t *testing.T) {
	n := 1500 // images: seconds of evaluation here
	if raceEnabled {
		n = 200 // as long, under the race detector
	}
	big := func(name string) (*data.Set, *data.Set, error) {
		train, _, _ := tinyData(name)
		test := &data.Set{Name: "mnist", H: 28, W: 28, C: 1, Classes: 10, Images: make([]uint8, n*784), Labels: make([]uint8, n)}
		return train, test, nil
	}
	st, err := store.Open(t.Context(), store.MemoryPath)
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{t: t, st: st, clock: newFakeClock(), ctx: t.Context()}
	e.c = coord.New(coord.Deps{Store: st, Data: big, Clock: e.clock})
	t.Cleanup(func() { e.c.Close(); st.Close() })
	run, err := e.c.CreateRun(e.ctx, coord.Config{Model: "mnist-cnn", Clients: 10, StartClients: 1, MinClients: 1, Rounds: 3})
	if err != nil {
		t.Fatal(err)
	}
	a := e.join(run, nil)
	a.shapes = cnnShapes(t)
	rs, w := a.task()
	a.update(rs, w)
	expect[*wire.Accepted](a)
	waitFor(t, "the round to be aggregating", func() bool { return run.View().Phase == "aggregating" })
	start := time.Now()
	b := e.join(run, nil)
	took := time.Since(start)
	if phase := run.View().Phase; phase != "aggregating" {
		t.Errorf("the welcome came after the evaluation (phase %q, %v): the loop waited for it", phase, took)
	}
	t.Logf("a hello was answered in %v during the evaluation of %d images", took, n)
	b.close()
}

func cnnShapes(t *testing.T) [][]int {
	m, err := nn.New("mnist-cnn", nn.Shape{H: 28, W: 28, C: 1}, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m.TensorShapes()
}

// TestStoreFailureRebuildsAggregate: an accepted update that cannot be
// stored was already folded in; the round's aggregate is rebuilt from the
// stored updates, so the model holds exactly what is durable, and the
// client is told its update was not stored.
func TestStoreFailureRebuildsAggregate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qflare.db")
	e := newEngineAt(t, path)
	run := e.run(coord.Config{Fraction: 1, StartClients: 2, MinClients: 2, Rounds: 3})
	a, b := e.join(run, nil), e.join(run, nil)
	rsA, w := a.task()
	rsB, _ := b.task()
	// The disk refuses a's accepted update (a trigger, set up beside the
	// server's own connections); b's is stored.
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER refuse_a BEFORE INSERT ON updates
		WHEN NEW.client_id = '` + a.id() + `' AND NEW.accepted = 1 BEGIN SELECT RAISE(ABORT, 'the disk refused'); END`); err != nil {
		t.Fatal(err)
	}
	stored := make([]float32, len(w))
	for i := range stored {
		stored[i] = w[i] + 0.5
	}
	a.update(rsA, w) // w + 0.001 everywhere
	if rej := expect[*wire.Rejected](a); rej.Code != wire.CodeStore {
		t.Errorf("the update that could not be stored was answered %+v; want code store", rej)
	}
	if err := b.conn.Send(e.ctx, link.Message{Binary: true, Data: b.frame(rsB, stored)}); err != nil {
		t.Fatal(err)
	}
	r1 := e.waitRound(run, 1)
	m, err := e.st.Model(e.ctx, run.ID(), 1)
	if err != nil {
		t.Fatalf("round 1 (%s, %s) made no model: %v", r1.Status, r1.Error, err)
	}
	got, _ := store.DecodeFloat32s(m.Weights, len(w))
	for i := range got {
		if got[i] != stored[i] {
			t.Fatalf("model[%d] = %v; want %v, the stored update's (not the mean with the folded one's %v)", i, got[i], stored[i], w[i]+0.001)
		}
	}
}

// TestDeadlineAwareSelection: a client whose measured speed cannot finish
// a round before the deadline (its last update came 90 s after its task,
// the deadline is 60 s) is passed over in the next round; the others are
// selected.
func TestDeadlineAwareSelection(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Fraction: 1, StartClients: 3, MinClients: 2, Rounds: 5, Selection: coord.SelectDeadline,
		RoundDeadline: coord.Duration(60 * time.Second)})
	a, b, c := e.join(run, nil), e.join(run, nil), e.join(run, nil)
	rsA, wA := a.task()
	for _, cl := range []*client{b, c} {
		rs, w := cl.task()
		cl.update(rs, w)
		expect[*wire.Accepted](cl)
	}
	e.clock.Advance(61 * time.Second) // the deadline: round 1 closes without a
	e.waitRound(run, 1)
	e.clock.Advance(29 * time.Second)
	a.update(rsA, wA) // 90 s after its task
	if rej := expect[*wire.Rejected](a); rej.Code != wire.CodeLate {
		t.Fatalf("a's update after the deadline was answered %+v; want late", rej)
	}
	waitFor(t, "round 2", func() bool { return len(e.rounds(run)) == 2 })
	sel := e.rounds(run)[1].Selected
	if slices.Contains(sel, a.id()) || len(sel) != 2 {
		t.Errorf("round 2 selected %v; want b and c, not a (measured 90 s against a 60 s deadline)", sel)
	}
}

// TestStoredVerdictsMatchTheirUpdates: with detection, each stored update
// row carries the verdict the aggregator gave that update (score,
// exclusion), whatever order the concurrent sessions folded and stored
// them in. Verdicts come in fold order and updates are durable in another
// order; pairing them by position put one client's score and exclusion on
// another's row.
func TestStoredVerdictsMatchTheirUpdates(t *testing.T) {
	e := newEngine(t)
	const n, rounds = 8, 4
	run := e.run(coord.Config{Clients: n, StartClients: n, MinClients: n, Fraction: 1, Rounds: rounds, Detect: new(true)})
	sub := run.Subscribe(256)
	defer sub.Close()
	cls := make([]*client, n)
	for i := range cls {
		cls[i] = e.join(run, nil)
	}
	for round := 1; round <= rounds; round++ {
		frames := make([][]byte, n)
		for i, cl := range cls {
			rs, w := cl.task()
			step := float32(i+1) * 0.001 // every update scores differently
			if i == round%n {
				step = 5 // and one stands out: excluded
			}
			for j := range w {
				w[j] += step
			}
			frames[i] = cl.frame(rs, w)
		}
		for i, cl := range cls { // all at once: the sessions fold and store concurrently
			go cl.conn.Send(e.ctx, link.Message{Binary: true, Data: frames[i]})
		}
		var view *coord.RoundView
		for view == nil {
			select {
			case ev := <-sub.C:
				if ev.Type == coord.EvRoundEnded && ev.Round != nil && ev.Round.Round == round {
					view = ev.Round
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d did not end", round)
			}
		}
		e.waitRound(run, round)
		byClient := map[string]coord.VerdictView{}
		for _, v := range view.Verdicts {
			byClient[v.Client] = v
		}
		ups := e.updates(run, round)
		if len(ups) != n || len(byClient) != n {
			t.Fatalf("round %d: %d stored updates, %d verdicts; want %d of each", round, len(ups), len(byClient), n)
		}
		for _, u := range ups {
			v := byClient[u.ClientID]
			if u.Excluded != v.Excluded || u.Score != v.Score {
				t.Errorf("round %d: %s's stored row says excluded %v, score %v; the aggregator's verdict on it: excluded %v, score %v",
					round, u.ClientID, u.Excluded, u.Score, v.Excluded, v.Score)
			}
		}
	}
}

// TestRestartSeesQueuedWrites: a client's row is written after its join
// without the loop waiting for it; when the writer lags (a slow disk, a
// loaded machine), Close must still wait for that write, or the
// coordinator started next on the store resumes without the client, which
// then comes back as a stranger (and its slice is handed out without being
// released: TestSliceReturnsToPool failed that way under load).
func TestRestartSeesQueuedWrites(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Clients: 2, StartClients: 2, MinClients: 2, Rounds: 1})
	unblock := make(chan struct{})
	e.st.Submit(e.ctx, "slow disk", func(*store.Tx) error { <-unblock; return nil }, nil)
	a := e.join(run, nil)
	waitFor(t, "the client to be counted", func() bool { return run.View().Connected == 1 })
	go func() { time.Sleep(200 * time.Millisecond); close(unblock) }()
	e.restart()
	run2, err := e.c.Run(run.ID())
	if err != nil {
		t.Fatal(err)
	}
	back := e.join(run2, a)
	if back.id() != a.id() || back.welcome.Slice.Index != a.welcome.Slice.Index {
		t.Errorf("after a restart, client %s (slice %d) came back as %s with slice %d; want itself, with its slice",
			a.id(), a.welcome.Slice.Index, back.id(), back.welcome.Slice.Index)
	}
}
