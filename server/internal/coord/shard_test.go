package coord_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/shard"
	"github.com/qflare/qflare/server/internal/shardwire"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// Edge shards in-process: the real shard (package shard, over link.Conn
// pipes) linked to the real coordinator, with scripted tabs and the fake
// clock. The same shard runs in a Durable Object under workerd in
// server/edge's tests.

// shardClock is the fake clock as a shard.Clock.
type shardClock struct{ c *fakeClock }

func (s shardClock) Now() time.Time                                    { return s.c.Now() }
func (s shardClock) AfterFunc(d time.Duration, f func()) shard.Stopper { return s.c.AfterFunc(d, f) }

// edgeShard is a shard linked to the engine's coordinator.
type edgeShard struct {
	e      *engine
	conns  *shard.Conns
	cancel context.CancelFunc
	done   chan struct{}
}

// shard starts a shard called name and waits until it is linked.
func (e *engine) shard(name string) *edgeShard {
	e.t.Helper()
	a, b := link.Pipe(256)
	ctx, cancel := context.WithCancel(e.ctx)
	sh := &edgeShard{e: e, conns: shard.NewConns(shard.Options{Name: name, Clock: shardClock{e.clock}}),
		cancel: cancel, done: make(chan struct{})}
	go e.c.ServeShard(ctx, a, coord.ShardInfo{Remote: "test"})
	go func() { defer close(sh.done); sh.conns.Link(ctx, b) }()
	waitFor(e.t, "the shard to link", func() bool { return sh.conns.Shard().Stats().Linked })
	e.t.Cleanup(sh.kill)
	return sh
}

// kill ends the shard as an evicted Durable Object ends: its link and its
// tabs' connections close at once, and what it held is gone.
func (sh *edgeShard) kill() {
	sh.cancel()
	<-sh.done
}

// dialVia connects a tab through sh and says hello (as as, when not nil).
func (e *engine) dialVia(sh *edgeShard, run *coord.Run, as *client) *client {
	e.t.Helper()
	a, b := link.Pipe(64)
	cl := &client{e: e, run: run, conn: b, done: make(chan error, 1)}
	go func() { sh.conns.Tab(e.ctx, a, "203.0.113.7"); cl.done <- nil }()
	h := &wire.Hello{V: wire.Version, Run: run.ID(), Token: run.Token(),
		Device: wire.Device{Kind: wire.DeviceBrowser, UserAgent: "test"}}
	if as != nil {
		h.ClientID, h.Secret = as.welcome.ClientID, as.secret
	}
	cl.send(h)
	cl.shapes = mlp4Shapes(e.t)
	e.t.Cleanup(func() { b.Close() })
	return cl
}

// joinVia joins run through sh.
func (e *engine) joinVia(sh *edgeShard, run *coord.Run, as *client) *client {
	e.t.Helper()
	cl := e.dialVia(sh, run, as)
	w := expect[*wire.Welcome](cl)
	cl.welcome, cl.secret = w, w.Secret
	if w.Secret == "" && as != nil {
		cl.secret = as.secret
	}
	return cl
}

func mlp4Shapes(t *testing.T) [][]int {
	t.Helper()
	return [][]int{{4, 784}, {4}, {10, 4}, {10}}
}

// sendRaw sends a binary frame as it is.
func (cl *client) sendRaw(frame []byte) {
	cl.e.t.Helper()
	if err := cl.conn.Send(cl.e.ctx, link.Message{Binary: true, Data: frame}); err != nil {
		cl.e.t.Fatal(err)
	}
}

// trained returns w moved by a seeded random step, as a client's training
// would, with another size per coordinate.
func trained(w []float32, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 77))
	out := make([]float32, len(w))
	for i, v := range w {
		out[i] = v + float32(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(5)-4)))
	}
	return out
}

// frameWith encodes weights w as an update for rs with samples.
func (cl *client) frameWith(rs *wire.RoundStart, w []float32, samples int) []byte {
	cl.e.t.Helper()
	p, _ := wire.ParsePipeline("float32+zstd")
	payload, err := wire.NewEncoder(p, cl.shapes, 1).Encode(nil, w, nil)
	if err != nil {
		cl.e.t.Fatal(err)
	}
	f, err := wire.AppendFrame(nil, &wire.FrameHeader{Kind: wire.KindUpdate, Run: cl.run.ID(), Round: rs.Round,
		ModelVersion: rs.ModelVersion, Codec: p.String(), Params: len(w), Samples: samples, Loss: 0.5}, payload)
	if err != nil {
		cl.e.t.Fatal(err)
	}
	return f
}

// modelBytes returns the stored weights of a run's model version, as
// stored: equal bytes are equal models, bit for bit.
func (e *engine) modelBytes(run *coord.Run, version int) []byte {
	e.t.Helper()
	m, err := e.st.Model(e.ctx, run.ID(), version)
	if err != nil {
		e.t.Fatal(err)
	}
	return m.Weights
}

// TestShardPartialsMatchDirect: two rounds of six clients, once directly
// and once through two shards (three tabs each) sending the same updates:
// the models are the same, bit for bit; every shard client hears
// "accepted", every update is stored, and the origin got one partial per
// shard per round.
func TestShardPartialsMatchDirect(t *testing.T) {
	e := newEngine(t)
	cfg := coord.Config{Fraction: 1, StartClients: 6, MinClients: 1, Rounds: 2, RoundDeadline: coord.Duration(time.Hour)}
	direct, edged := e.run(cfg), e.run(cfg)
	eu, us := e.shard("eu"), e.shard("us")
	var dc, ec []*client
	for i := range 6 {
		dc = append(dc, e.join(direct, nil))
		sh := eu
		if i%2 == 1 {
			sh = us
		}
		ec = append(ec, e.joinVia(sh, edged, nil))
	}
	for n := 1; n <= 2; n++ {
		for _, set := range [][]*client{dc, ec} {
			for _, cl := range set {
				rs, w := cl.task()
				slice := uint64(cl.welcome.Slice.Index)
				cl.sendRaw(cl.frameWith(rs, trained(w, slice*10+uint64(n)), 20+int(slice)))
			}
		}
		for _, cl := range ec {
			if a := expect[*wire.Accepted](cl); a.Round != n {
				t.Fatalf("a shard client was told round %d accepted; want %d", a.Round, n)
			}
		}
		rd, re := e.waitRound(direct, n), e.waitRound(edged, n)
		if rd.NAccepted != 6 || re.NAccepted != 6 || re.Status != store.RoundAggregated {
			t.Fatalf("round %d: %d accepted directly, %d through shards (%s); want 6 and 6", n, rd.NAccepted, re.NAccepted, re.Status)
		}
		if !bytes.Equal(e.modelBytes(direct, n), e.modelBytes(edged, n)) {
			t.Fatalf("round %d: the model merged from shards' partials differs from plain FedAvg over the same updates", n)
		}
		ps, err := e.st.Partials(e.ctx, edged.ID(), n)
		if err != nil || len(ps) != 2 {
			t.Errorf("round %d: %d partials stored (%v); want one per shard", n, len(ps), err)
		}
		ups := e.updates(edged, n)
		if len(ups) != 6 || !ups[0].Accepted || ups[0].Samples < 20 {
			t.Errorf("round %d through shards stored %s; want six accepted updates with their metadata", n, describe(ups))
		}
	}
	if bytes.Equal(e.modelBytes(edged, 1), e.modelBytes(edged, 0)) {
		t.Fatal("the model did not move: the comparison means nothing")
	}
}

// TestShardRefusesLikeTheOrigin: each corrupt or hostile update gets the
// same code and reason from a shard as from the origin.
func TestShardRefusesLikeTheOrigin(t *testing.T) {
	e := newEngine(t)
	sh := e.shard("eu")
	cfg := coord.Config{Fraction: 1, StartClients: 2, MinClients: 1, Rounds: 3, MaxUpdateNorm: 5,
		RoundDeadline: coord.Duration(time.Hour)}
	type build func(cl *client, rs *wire.RoundStart, w []float32) [][]byte
	header := func(cl *client, rs *wire.RoundStart, w []float32, edit func(*wire.FrameHeader), payload []byte) []byte {
		h := &wire.FrameHeader{Kind: wire.KindUpdate, Run: cl.run.ID(), Round: rs.Round, ModelVersion: rs.ModelVersion,
			Codec: "float32", Params: len(w), Samples: 10}
		if payload == nil {
			payload = make([]byte, 4*len(w))
			for i, v := range w {
				binary.LittleEndian.PutUint32(payload[4*i:], math.Float32bits(v))
			}
		}
		edit(h)
		f, err := wire.AppendFrame(nil, h, payload)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	nop := func(*wire.FrameHeader) {}
	cases := map[string]build{
		"checksum": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			f := cl.frameWith(rs, w, 10)
			f[len(f)-1] ^= 0x55
			return [][]byte{f}
		},
		"garbage": func(*client, *wire.RoundStart, []float32) [][]byte { return [][]byte{[]byte("QFL\x01garbage")} },
		"too large": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			return [][]byte{header(cl, rs, w, func(h *wire.FrameHeader) { h.Params++ }, nil)}
		},
		"shape": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			return [][]byte{header(cl, rs, w[1:], nop, nil)}
		},
		"not finite": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			bad := append([]float32(nil), w...)
			bad[3] = float32(math.NaN())
			return [][]byte{header(cl, rs, bad, nop, nil)}
		},
		"norm": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			far := append([]float32(nil), w...)
			for i := range far {
				far[i] += 1
			}
			return [][]byte{header(cl, rs, far, nop, nil)}
		},
		"huge weight": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			far := append([]float32(nil), w...)
			far[0] += 1e6
			return [][]byte{header(cl, rs, far, nop, nil)}
		},
		"old version": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			return [][]byte{header(cl, rs, w, func(h *wire.FrameHeader) { h.ModelVersion = 9 }, nil)}
		},
		"future round": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			return [][]byte{header(cl, rs, w, func(h *wire.FrameHeader) { h.Round = 2 }, nil)}
		},
		"other run": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			return [][]byte{header(cl, rs, w, func(h *wire.FrameHeader) { h.Run = "run-elsewhere" }, nil)}
		},
		"no samples": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			return [][]byte{header(cl, rs, w, func(h *wire.FrameHeader) { h.Samples = 0 }, nil)}
		},
		"a model": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			return [][]byte{header(cl, rs, w, func(h *wire.FrameHeader) { h.Kind = wire.KindModel }, nil)}
		},
		"duplicate": func(cl *client, rs *wire.RoundStart, w []float32) [][]byte {
			return [][]byte{cl.frameWith(rs, w, 10), cl.frameWith(rs, w, 10)}
		},
	}
	for name, mk := range cases {
		got := map[string]*wire.Rejected{}
		for _, via := range []string{"direct", "shard"} {
			run := e.run(cfg)
			var cl *client
			if via == "direct" {
				cl = e.join(run, nil)
			} else {
				cl = e.joinVia(sh, run, nil)
			}
			e.join(run, nil) // a second client, silent: the round stays open
			rs, w := cl.task()
			for _, f := range mk(cl, rs, w) {
				cl.sendRaw(f)
			}
			rej := expect[*wire.Rejected](cl)
			rej.Reason = strings.ReplaceAll(rej.Reason, run.ID(), "RUN")
			got[via] = rej
		}
		if *got["direct"] != *got["shard"] {
			t.Errorf("%s: the origin answered %+v, the shard %+v; want the same", name, *got["direct"], *got["shard"])
		}
	}
}

// TestShardRefusedForRobustRuns: runs whose strategy needs each update
// (robust rules, anomaly detection), async runs and secure runs refuse tabs
// that come through a shard, saying why; the same run takes direct
// clients.
func TestShardRefusedForRobustRuns(t *testing.T) {
	e := newEngine(t)
	sh := e.shard("eu")
	for _, cfg := range []coord.Config{
		{Strategy: "krum", StartClients: 3, MinClients: 3},
		{Strategy: "median", StartClients: 3, MinClients: 3},
		{Strategy: "fedavg", Detect: new(true), StartClients: 3, MinClients: 3},
		{Mode: coord.ModeAsync, Buffer: 2, StartClients: 1, MinClients: 1},
		{Strategy: "fedavg", SecureAgg: &coord.SecureAggSettings{}, StartClients: 3, MinClients: 3},
	} {
		run := e.run(cfg)
		cl := e.dialVia(sh, run, nil)
		rej := expect[*wire.Rejected](cl)
		if rej.Code != wire.CodeShardRefused || !strings.Contains(rej.Reason, "join the server directly") {
			t.Errorf("%s (mode %s, detect %v) through a shard: %+v; want %s with the reason", cfg.Strategy, cfg.Mode, cfg.Detect != nil && *cfg.Detect, rej, wire.CodeShardRefused)
		}
		e.join(run, nil) // direct: welcome
	}
}

// waitReceived waits until the open round of run has received n updates.
func waitReceived(t *testing.T, run *coord.Run, n int) {
	t.Helper()
	waitFor(t, "the round to count the update", func() bool {
		o := run.View().Open
		return o != nil && o.Received >= n
	})
}

// TestShardDeathDoesNotStallTheRound: a shard that dies in the middle of
// a round, after it took an update and before its partial, does not hold
// the round up: the update is dropped (recorded, code store), and the
// round closes as soon as everyone else answered, long before its
// deadline.
func TestShardDeathDoesNotStallTheRound(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Fraction: 1, StartClients: 4, MinClients: 1, Rounds: 2, RoundDeadline: coord.Duration(time.Hour)})
	a, b := e.shard("a"), e.shard("b")
	d := e.join(run, nil)
	x, y := e.joinVia(b, run, nil), e.joinVia(b, run, nil)
	z := e.joinVia(a, run, nil)
	rsX, wX := x.task()
	y.task()
	rsD, wD := d.task()
	rsZ, wZ := z.task()
	x.sendRaw(x.frameWith(rsX, trained(wX, 1), 10))
	waitReceived(t, run, 1) // folded at b, waiting for b's partial (y holds it up)
	b.kill()
	d.sendRaw(d.frameWith(rsD, trained(wD, 2), 10))
	z.sendRaw(z.frameWith(rsZ, trained(wZ, 3), 10))
	r1 := e.waitRound(run, 1)
	if r1.Status != store.RoundAggregated || r1.NAccepted != 2 {
		t.Fatalf("round 1: %s, %d accepted; want aggregated from d and z without waiting for the dead shard", r1.Status, r1.NAccepted)
	}
	var dropped bool
	for _, u := range e.updates(run, 1) {
		if u.ClientID == x.id() {
			if u.Accepted {
				t.Errorf("x's update, lost with its shard, is stored as accepted")
			}
			dropped = dropped || u.Code == wire.CodeStore
		}
	}
	if !dropped {
		t.Errorf("round 1 updates %s; want x's update recorded as dropped (store)", describe(e.updates(run, 1)))
	}
}

// TestShardEvictionLosesNothingAccepted: a shard evicted during an open
// round had folded an update its tab was never told is accepted (that
// waits for the partial to be durable at the origin); the tab reconnects
// through another shard, gets the round again, and its update is in the
// round.
func TestShardEvictionLosesNothingAccepted(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Fraction: 1, StartClients: 4, MinClients: 1, Rounds: 2, RoundDeadline: coord.Duration(time.Hour)})
	a, b := e.shard("a"), e.shard("b")
	d := e.join(run, nil)
	x, y, z := e.joinVia(b, run, nil), e.joinVia(b, run, nil), e.joinVia(a, run, nil)
	rsD, wD := d.task()
	rsX, wX := x.task()
	y.task() // holds b's partial back: b dies with x's update in it
	rsZ, wZ := z.task()
	x.sendRaw(x.frameWith(rsX, trained(wX, 1), 10))
	waitReceived(t, run, 1)
	b.kill()
	for {
		m, err := x.recv(5 * time.Second)
		if err != nil {
			break // closed: the shard is gone
		}
		if _, ok := m.(*wire.Accepted); ok {
			t.Fatal("x heard accepted before its update was durable at the origin")
		}
	}
	x2 := e.joinVia(a, run, x)
	if x2.id() != x.id() {
		t.Fatalf("x came back as %s; want %s", x2.id(), x.id())
	}
	rs, w := x2.task()
	if rs.Round != 1 {
		t.Fatalf("x got round %d back; want round 1", rs.Round)
	}
	x2.sendRaw(x2.frameWith(rs, trained(w, 1), 10))
	z.sendRaw(z.frameWith(rsZ, trained(wZ, 3), 10))
	expect[*wire.Accepted](x2)
	d.sendRaw(d.frameWith(rsD, trained(wD, 2), 10))
	if r1 := e.waitRound(run, 1); r1.NAccepted != 3 {
		t.Errorf("round 1 accepted %d; want 3, x's second update among them (y went with its shard)", r1.NAccepted)
	}
}

// TestShardDeathGivesTheRoundBack: a tab whose update a shard holds comes
// back directly before the shard dies; when it dies, the round is given
// back to the tab at once, and its new update is taken.
func TestShardDeathGivesTheRoundBack(t *testing.T) {
	e := newEngine(t)
	run := e.run(coord.Config{Fraction: 1, StartClients: 3, MinClients: 1, Rounds: 2, RoundDeadline: coord.Duration(time.Hour)})
	b := e.shard("b")
	d := e.join(run, nil)
	x, y := e.joinVia(b, run, nil), e.joinVia(b, run, nil)
	rsD, wD := d.task()
	rsX, wX := x.task()
	y.task() // holds b's partial back
	x.sendRaw(x.frameWith(rsX, trained(wX, 1), 10))
	waitReceived(t, run, 1)
	x2 := e.join(run, x) // directly, while b still holds its update: nothing to do yet
	if w := expect[*wire.Wait](x2); w.Round != 1 {
		t.Fatalf("x back directly was told %+v; want to wait", w)
	}
	b.kill()
	rs, w := x2.task()
	if rs.Round != 1 {
		t.Fatalf("x got round %d when its shard died; want round 1 again", rs.Round)
	}
	x2.update(rs, w)
	expect[*wire.Accepted](x2)
	d.update(rsD, wD)
	if r1 := e.waitRound(run, 1); r1.NAccepted != 2 {
		t.Errorf("round 1 accepted %d; want 2 (d and x's second update)", r1.NAccepted)
	}
}

// TestShardResumeReplaysPartials: a partial stored before a restart is
// merged into the resumed round; the round ends with the same model as
// plain FedAvg over the same updates.
func TestShardResumeReplaysPartials(t *testing.T) {
	e := newEngine(t)
	cfg := coord.Config{Fraction: 1, StartClients: 2, MinClients: 1, Rounds: 2, RoundDeadline: coord.Duration(time.Hour)}
	direct, edged := e.run(cfg), e.run(cfg)
	sh := e.shard("a")
	dd, dx := e.join(direct, nil), e.join(direct, nil)
	d, x := e.join(edged, nil), e.joinVia(sh, edged, nil)
	for _, pair := range [][2]*client{{dd, dx}, {d, x}} {
		pair[0].task()
		rs, w := pair[1].task()
		pair[1].sendRaw(pair[1].frameWith(rs, trained(w, 5), 30))
	}
	expect[*wire.Accepted](x)
	expect[*wire.Accepted](dx)
	e.restart()
	for _, pair := range []struct {
		run *coord.Run
		cl  *client
	}{{direct, dd}, {edged, d}} {
		run, err := e.c.Run(pair.run.ID())
		if err != nil {
			t.Fatal(err)
		}
		cl := e.join(run, pair.cl)
		rs, w := cl.task()
		cl.sendRaw(cl.frameWith(rs, trained(w, 6), 30))
		if r := e.waitRound(run, 1); r.NAccepted != 2 {
			t.Fatalf("round 1 after the restart accepted %d; want 2", r.NAccepted)
		}
	}
	if !bytes.Equal(e.modelBytes(direct, 1), e.modelBytes(edged, 1)) {
		t.Error("the round resumed with a stored partial differs from plain FedAvg over the same updates")
	}
}

// TestShardDP: with DP the shard clips and the origin adds the noise:
// without noise, the model through a shard is DP's model of the same
// updates given directly (to float64 rounding: DP sums in float64), and
// each clipped update's row says so.
func TestShardDP(t *testing.T) {
	e := newEngine(t)
	sh := e.shard("a")
	cfg := coord.Config{Fraction: 1, StartClients: 3, MinClients: 1, Rounds: 2, RoundDeadline: coord.Duration(time.Hour),
		DP: &coord.DPSettings{ClipNorm: 0.05, NoiseMultiplier: 0}}
	direct, edged := e.run(cfg), e.run(cfg)
	for _, run := range []*coord.Run{direct, edged} {
		var cls []*client
		for range 3 {
			if run == edged {
				cls = append(cls, e.joinVia(sh, run, nil))
			} else {
				cls = append(cls, e.join(run, nil))
			}
		}
		for i, cl := range cls {
			rs, w := cl.task()
			cl.sendRaw(cl.frameWith(rs, trained(w, uint64(i)), 10))
		}
		e.waitRound(run, 1)
	}
	a, b := e.modelBytes(direct, 1), e.modelBytes(edged, 1)
	for i := 0; i < len(a); i += 4 {
		x := math.Float32frombits(binary.LittleEndian.Uint32(a[i:]))
		y := math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))
		if math.Abs(float64(x-y)) > 1e-6 {
			t.Fatalf("parameter %d: DP directly %v, through a shard %v", i/4, x, y)
		}
	}
	clipped := 0
	for _, u := range e.updates(edged, 1) {
		if strings.Contains(u.Reason, "clipped") {
			clipped++
		}
	}
	if clipped != 3 {
		t.Errorf("%d of 3 updates through the shard are marked clipped; want 3 (their norms exceed 0.05)", clipped)
	}
}

// scriptedShard speaks the link protocol by hand, to misbehave.
type scriptedShard struct {
	t    *testing.T
	conn link.Conn
}

func (s *scriptedShard) send(b []byte) {
	s.t.Helper()
	if err := s.conn.Send(context.Background(), link.Message{Binary: true, Data: b}); err != nil {
		s.t.Fatal(err)
	}
}

// next returns the next message of one of kinds, skipping others.
func (s *scriptedShard) next(kinds ...shardwire.Kind) shardwire.Msg {
	s.t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m, err := s.conn.Recv(ctx)
		cancel()
		if err != nil {
			s.t.Fatalf("scripted shard: %v", err)
		}
		msg, err := shardwire.Parse(m.Data)
		if err != nil {
			s.t.Fatal(err)
		}
		for _, k := range kinds {
			if msg.Kind == k {
				return msg
			}
		}
	}
}

// scriptedTab opens a tab on the scripted shard, joins run with it and
// sends an accepted update's metadata for round 1, as a shard does after
// it folded it, without ever sending the partial.
func (s *scriptedShard) scriptedTab(run *coord.Run, id uint32) {
	s.t.Helper()
	open, _ := shardwire.Encode(nil, shardwire.KindTabOpen, id, &shardwire.TabOpen{Remote: "198.51.100.1"})
	s.send(open)
	h, _ := wire.Marshal(&wire.Hello{V: wire.Version, Run: run.ID(), Token: run.Token(), Device: wire.Device{Kind: "browser"}})
	s.send(shardwire.Append(nil, shardwire.KindTabText, id, h))
	m := s.next(shardwire.KindTabText)
	w, _ := wire.ParseMessage(m.Body, wire.MaxMessageBytes)
	client := w.(*wire.Welcome).ClientID
	s.next(shardwire.KindRound)
	meta, _ := shardwire.Encode(nil, shardwire.KindUpdate, id, &shardwire.Update{Run: run.ID(), Round: 1, Client: client,
		Accepted: true, Samples: 10, Bytes: 1000})
	s.send(meta)
}

// rejected waits for a Rejected relayed to one of the scripted shard's tabs.
func (s *scriptedShard) rejected() *wire.Rejected {
	s.t.Helper()
	for {
		m := s.next(shardwire.KindTabText)
		msg, _ := wire.ParseMessage(m.Body, wire.MaxMessageBytes)
		if rej, ok := msg.(*wire.Rejected); ok {
			return rej
		}
	}
}

func newScriptedShard(e *engine) *scriptedShard {
	a, b := link.Pipe(64)
	go e.c.ServeShard(e.ctx, a, coord.ShardInfo{})
	s := &scriptedShard{t: e.t, conn: b}
	hello, _ := shardwire.Encode(nil, shardwire.KindHello, 0, &shardwire.Hello{V: shardwire.Version, Shard: "slow"})
	s.send(hello)
	s.next(shardwire.KindWelcome)
	e.t.Cleanup(func() { b.Close() })
	return s
}

// TestShardMissingTheRound: a shard that announced an update and never
// sends its partial is asked to flush once the round would close without
// it (everyone else answered, or the deadline passed) and dropped edgeGrace
// later: the round closes with what it has, and the tab is told why.
func TestShardMissingTheRound(t *testing.T) {
	e := newEngine(t)
	cfg := coord.Config{Fraction: 1, StartClients: 2, MinClients: 1, Rounds: 2, RoundDeadline: coord.Duration(time.Minute)}
	// Everyone else answered.
	run := e.run(cfg)
	s := newScriptedShard(e)
	d := e.join(run, nil)
	s.scriptedTab(run, 1)
	waitReceived(t, run, 1)
	rs, w := d.task()
	d.sendRaw(d.frameWith(rs, trained(w, 1), 10))
	s.next(shardwire.KindFlush)
	e.clock.Advance(9 * time.Second)
	if o := run.View().Open; o == nil || o.Round != 1 {
		t.Fatalf("round 1 closed within the shard's grace; want it open")
	}
	e.clock.Advance(2 * time.Second)
	if r1 := e.waitRound(run, 1); r1.Status != store.RoundAggregated || r1.NAccepted != 1 {
		t.Errorf("round 1: %s with %d accepted; want aggregated from d alone", r1.Status, r1.NAccepted)
	}
	if rej := s.rejected(); rej.Code != wire.CodeLate || !strings.Contains(rej.Reason, "edge shard") {
		t.Errorf("the tab was told %+v; want late, because of its shard", rej)
	}
	// The deadline passed.
	run = e.run(cfg)
	s = newScriptedShard(e)
	e.join(run, nil) // silent
	s.scriptedTab(run, 1)
	waitReceived(t, run, 1)
	e.clock.Advance(61 * time.Second)
	s.next(shardwire.KindFlush)
	if o := run.View().Open; o == nil || o.Round != 1 {
		t.Fatalf("round 1 closed right after the deadline; want it open for the shard's grace")
	}
	e.clock.Advance(11 * time.Second)
	if r1 := e.waitRound(run, 1); r1.Status != store.RoundFailed {
		t.Errorf("round 1: %s; want failed (nothing arrived)", r1.Status)
	}
}
