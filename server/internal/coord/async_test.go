package coord_test

import (
	"math"
	"testing"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// asyncRun is a FedBuff run of mlp:4 on the tiny data: steps of buffer
// updates, concurrency clients training at once.
func (e *engine) asyncRun(buffer, concurrency int, mod func(*coord.Config)) *coord.Run {
	cfg := coord.Config{Mode: coord.ModeAsync, Buffer: buffer, Concurrency: concurrency, StartClients: 2, MinClients: 1, Rounds: 10}
	if mod != nil {
		mod(&cfg)
	}
	return e.run(cfg)
}

// model returns version v of run's model from the store.
func (e *engine) model(run *coord.Run, v int) []float32 {
	e.t.Helper()
	m, err := e.st.Model(e.ctx, run.ID(), v)
	if err != nil {
		e.t.Fatalf("model version %d: %v", v, err)
	}
	w, err := store.DecodeFloat32s(m.Weights, m.Params)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// answer sends w + step everywhere for task rs and waits for "accepted".
func (cl *client) answer(rs *wire.RoundStart, w []float32, step float32) {
	cl.e.t.Helper()
	next := make([]float32, len(w))
	for i, v := range w {
		next[i] = v + step
	}
	if err := cl.conn.Send(cl.e.ctx, link.Message{Binary: true, Data: cl.frame(rs, next)}); err != nil {
		cl.e.t.Fatal(err)
	}
	if m := expect[*wire.Accepted](cl); m.Round != rs.Round {
		cl.e.t.Fatalf("accepted for round %d; want %d", m.Round, rs.Round)
	}
}

// near reports whether every got[i] is want[i] + d within float32 rounding.
func near(got, want []float32, d float64) (int, bool) {
	for i := range got {
		if math.Abs(float64(got[i])-(float64(want[i])+d)) > 1e-6 {
			return i, false
		}
	}
	return 0, true
}

// TestAsyncBufferedSteps: clients get new work as soon as an update is in;
// the server steps every K updates, whoever sent them; a task outlives its
// step, and its update joins the next step weighted by 1/sqrt(1+τ).
func TestAsyncBufferedSteps(t *testing.T) {
	e := newEngine(t)
	run := e.asyncRun(3, 2, nil)
	a, b := e.join(run, nil), e.join(run, nil)
	if run.Config().Staleness != "sqrt" || run.Config().MaxStaleness != 32 {
		t.Errorf("defaults: staleness %q, max_staleness %d; want sqrt, 32", run.Config().Staleness, run.Config().MaxStaleness)
	}
	rsA, w0 := a.task()
	rsB, _ := b.task()
	if rsA.ModelVersion != 0 || rsB.ModelVersion != 0 || a.welcome.Run.Mode != coord.ModeAsync {
		t.Fatalf("first tasks train versions %d, %d (mode %q); want 0, async", rsA.ModelVersion, rsB.ModelVersion, a.welcome.Run.Mode)
	}
	// a answers twice in the step; b holds its task across it.
	a.answer(rsA, w0, 0.001)
	rsA2, wA2 := a.task()
	if rsA2.ModelVersion != 0 || rsA2.Round != 1 || rsA2.Seed == rsA.Seed {
		t.Fatalf("a's second task: round %d version %d seed %d; want round 1, version 0, a new seed", rsA2.Round, rsA2.ModelVersion, rsA2.Seed)
	}
	a.answer(rsA2, wA2, 0.001)
	rsA3, wA3 := a.task()
	a.answer(rsA3, wA3, 0.001) // the third update: step 1 is taken
	end := expect[*wire.RoundEnd](b)
	if !end.Async || end.ModelVersion != 1 || end.Accepted != 3 {
		t.Fatalf("step 1 ended %+v; want async, version 1, 3 accepted", end)
	}
	v1 := e.model(run, 1)
	if i, ok := near(v1, w0, 0.001); !ok {
		t.Fatalf("version 1[%d] = %v; want %v (the mean step of 0.001)", i, v1[i], w0[i]+0.001)
	}
	// b's update of version 0 joins step 2 one step stale; two fresh ones
	// from a fill the buffer.
	if err := b.conn.Send(e.ctx, link.Message{Binary: true, Data: b.frame(rsB, plus(w0, 0.001))}); err != nil {
		t.Fatal(err)
	}
	expect[*wire.Accepted](b)
	for range 2 {
		rs, w := a.task()
		if rs.ModelVersion != 1 || rs.Round != 2 {
			t.Fatalf("a's task after step 1: round %d version %d; want round 2, version 1", rs.Round, rs.ModelVersion)
		}
		a.answer(rs, w, 0.001)
	}
	e.waitRound(run, 2)
	ups := e.updates(run, 2)
	stale := 0
	for _, u := range ups {
		if u.BytesDown <= 0 {
			t.Errorf("update %d records %d model bytes sent for its task; want the model's size", u.ID, u.BytesDown)
		}
		if u.ClientID == b.id() {
			stale = u.Staleness
			if u.BaseVersion != 0 {
				t.Errorf("b's update base version %d; want 0", u.BaseVersion)
			}
		}
	}
	if len(ups) != 3 || stale != 1 {
		t.Fatalf("step 2 stored %s with b's staleness %d; want 3 updates, b's 1 step stale", describe(ups), stale)
	}
	// v2 = v1 + (0.001/sqrt(2) + 0.001 + 0.001) / 3
	v2 := e.model(run, 2)
	if i, ok := near(v2, v1, (0.001/math.Sqrt2+0.002)/3); !ok {
		t.Fatalf("version 2[%d] - version 1 = %v; want %v (b's stale step weighted 1/sqrt 2)", i, v2[i]-v1[i], (0.001/math.Sqrt2+0.002)/3)
	}
}

func plus(w []float32, d float32) []float32 {
	out := make([]float32, len(w))
	for i, v := range w {
		out[i] = v + d
	}
	return out
}

// TestAsyncMaxStaleness: an update staler than max_staleness is refused as
// late, and its client gets a fresh task.
func TestAsyncMaxStaleness(t *testing.T) {
	e := newEngine(t)
	run := e.asyncRun(1, 2, func(c *coord.Config) { c.MaxStaleness = 1; c.Staleness = "constant" })
	a, b := e.join(run, nil), e.join(run, nil)
	rsA, w0 := a.task()
	for range 2 { // b takes two steps while a trains version 0
		rs, w := b.task()
		b.answer(rs, w, 0.001)
	}
	e.waitRound(run, 2)
	if err := a.conn.Send(e.ctx, link.Message{Binary: true, Data: a.frame(rsA, plus(w0, 0.001))}); err != nil {
		t.Fatal(err)
	}
	rej := expect[*wire.Rejected](a)
	if rej.Code != wire.CodeLate {
		t.Fatalf("a's update 2 steps stale was answered %+v; want late", rej)
	}
	rs, _ := a.task()
	if rs.ModelVersion != 2 {
		t.Errorf("a's next task trains version %d; want 2", rs.ModelVersion)
	}
}

// TestAsyncTaskExpires: an async task whose time is up frees its slot for
// another client, and the update that comes after is refused as late.
func TestAsyncTaskExpires(t *testing.T) {
	e := newEngine(t)
	run := e.asyncRun(5, 1, func(c *coord.Config) { c.StartClients = 1; c.RoundDeadline = coord.Duration(30 * time.Second) })
	a := e.join(run, nil)
	rsA, w0 := a.task()
	b := e.join(run, nil)
	if w := expect[*wire.Wait](b); w.Reason == "" {
		t.Fatal("b was told to wait without a reason")
	}
	e.clock.Advance(31 * time.Second)
	rsB, _ := b.task()
	if rsB.ModelVersion != 0 {
		t.Fatalf("b's task trains version %d; want 0", rsB.ModelVersion)
	}
	if err := a.conn.Send(e.ctx, link.Message{Binary: true, Data: a.frame(rsA, plus(w0, 0.001))}); err != nil {
		t.Fatal(err)
	}
	if rej := expect[*wire.Rejected](a); rej.Code != wire.CodeLate {
		t.Fatalf("a's update after its task expired was answered %+v; want late", rej)
	}
}

// TestAsyncDPOneUpdatePerStep: with DP a client contributes at most one
// update to a step (its sensitivity is one update): it waits for the next
// step before it gets another task.
func TestAsyncDPOneUpdatePerStep(t *testing.T) {
	e := newEngine(t)
	run := e.asyncRun(2, 2, func(c *coord.Config) {
		c.DP = &coord.DPSettings{NoiseMultiplier: 0.1, ClipNorm: 1}
	})
	a, b := e.join(run, nil), e.join(run, nil)
	rsA, wA := a.task()
	a.answer(rsA, wA, 0.001)
	if m, err := a.recv(100 * time.Millisecond); err == nil {
		if rs, ok := m.(*wire.RoundStart); ok {
			t.Fatalf("a got a second task (%+v) in the step it already has an update in", rs)
		}
	}
	rsB, wB := b.task()
	b.answer(rsB, wB, 0.001)
	rs, _ := a.task()
	if rs.Round != 2 || rs.ModelVersion != 1 {
		t.Fatalf("a's next task: round %d version %d; want round 2, version 1", rs.Round, rs.ModelVersion)
	}
}

// TestAsyncResumeMidBuffer: the updates acknowledged into a step's buffer
// survive a restart, stale ones with their weight; the step completes
// with the clients that come back.
func TestAsyncResumeMidBuffer(t *testing.T) {
	e := newEngine(t)
	run := e.asyncRun(2, 2, func(c *coord.Config) { c.Staleness = "constant" })
	a, v1 := staleStep(t, e, run)
	// Then the server stops.
	e.restart()
	run2, err := e.c.Run(run.ID())
	if err != nil {
		t.Fatal(err)
	}
	a2 := e.join(run2, a)
	rs, w := a2.task()
	if rs.Round != 2 || rs.ModelVersion != 1 {
		t.Fatalf("after the restart a's task: round %d version %d; want round 2, version 1", rs.Round, rs.ModelVersion)
	}
	a2.answer(rs, w, 0.002)
	e.waitRound(run2, 2)
	// v2 = v1 + (0.004 + 0.002) / 2: b's stored stale update counts.
	if i, ok := near(e.model(run2, 2), v1, 0.003); !ok {
		t.Fatalf("version 2[%d] after the restart is off: b's acknowledged update was lost", i)
	}
}

// TestAsyncStalenessWeightedMean: with staleness_norm "weights" a step is
// the mean of its buffer's deltas weighted by samples times staleness
// weight, so a buffer of stale updates still moves the model a full step;
// with "samples" (the default) the weighted sum is divided by the sample
// total (FedBuff as published) and a stale update shrinks the step.
// A restart mid-buffer rebuilds the same step from the stored updates.
func TestAsyncStalenessWeightedMean(t *testing.T) {
	w := 1 / math.Sqrt2 // b's update is 1 step stale
	for _, tc := range []struct {
		norm    string
		restart bool
		want    float64
	}{
		{"", false, (0.004*w + 0.002) / 2},
		{coord.StaleNormWeights, false, (0.004*w + 0.002) / (w + 1)},
		{coord.StaleNormWeights, true, (0.004*w + 0.002) / (w + 1)},
		{coord.StaleNormSamples, true, (0.004*w + 0.002) / 2},
	} {
		name := tc.norm
		if name == "" {
			name = "default"
		}
		if tc.restart {
			name += "/restart"
		}
		t.Run(name, func(t *testing.T) {
			e := newEngine(t)
			run := e.asyncRun(2, 2, func(c *coord.Config) { c.StalenessNorm = tc.norm })
			if tc.norm == "" && run.Config().StalenessNorm != coord.StaleNormSamples {
				t.Errorf("default staleness_norm %q; want %q", run.Config().StalenessNorm, coord.StaleNormSamples)
			}
			a, v1 := staleStep(t, e, run)
			if tc.restart {
				e.restart()
				var err error
				if run, err = e.c.Run(run.ID()); err != nil {
					t.Fatal(err)
				}
				a = e.join(run, a)
			}
			rs, wa := a.task()
			if rs.Round != 2 || rs.ModelVersion != 1 {
				t.Fatalf("a's task: round %d version %d; want round 2, version 1", rs.Round, rs.ModelVersion)
			}
			a.answer(rs, wa, 0.002)
			e.waitRound(run, 2)
			if i, ok := near(e.model(run, 2), v1, tc.want); !ok {
				t.Fatalf("version 2[%d] - version 1 = %v; want %v", i, e.model(run, 2)[i]-v1[i], tc.want)
			}
		})
	}
}

// staleStep plays the start both staleness tests share on an async run of
// buffer 2: clients a and b take version 0; a's two updates (+0.001 each)
// make step 1; then b's version-0 update (+0.004) is accepted into step 2,
// one step stale. It returns a, whose step-2 task is still to be read,
// and version 1.
func staleStep(t *testing.T, e *engine, run *coord.Run) (*client, []float32) {
	t.Helper()
	a, b := e.join(run, nil), e.join(run, nil)
	rsA, w0 := a.task()
	rsB, _ := b.task()
	a.answer(rsA, w0, 0.001)
	rs, w := a.task()
	a.answer(rs, w, 0.001) // step 1: a, a
	e.waitRound(run, 1)
	v1 := e.model(run, 1)
	if err := b.conn.Send(e.ctx, link.Message{Binary: true, Data: b.frame(rsB, plus(w0, 0.004))}); err != nil {
		t.Fatal(err)
	}
	expect[*wire.Accepted](b) // version 0 into step 2: 1 step stale
	return a, v1
}
