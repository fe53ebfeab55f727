//go:build !js

package main

// The edge shard as it runs on Cloudflare: the bundle (build/edge.sh:
// edge.wasm and the glue) in workerd, linked to a real origin (store,
// coordinator, HTTP API) in this process, with tabs over real WebSockets.
// The tests skip, saying why, where workerd is missing (npm ci --prefix
// build/edge installs it; .ci/run does).

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qflare/qflare/server/edge/workerd"
	"github.com/qflare/qflare/server/internal/api"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/wire"
	"github.com/qflare/qflare/wasmclient/headless"
)

const (
	adminToken = "edge-test-admin-token"
	shardToken = "edge-test-shard-token-0123"
)

var (
	workerdBin string // empty: the tests skip
	skipWhy    string
	bundle     string // the built bundle
	repoRoot   string
)

func TestMain(m *testing.M) { os.Exit(setup(m)) }

func setup(m *testing.M) int {
	wd, _ := os.Getwd()
	repoRoot = filepath.Join(wd, "..", "..")
	workerdBin, skipWhy = workerd.Find(repoRoot)
	if workerdBin == "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "qflare-edge-bundle-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("sh", "build/edge.sh", dir)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "edge: build/edge.sh failed: %v\n%s", err, out)
		return 1
	}
	bundle = dir
	return m.Run()
}

func needWorkerd(t *testing.T) {
	t.Helper()
	if workerdBin == "" {
		t.Skip(skipWhy)
	}
}

// origin is a real server in this process, with edge shards allowed.
type origin struct {
	t   *testing.T
	URL string
	c   *coord.Coordinator
	st  *store.Store
}

func newOrigin(t *testing.T) *origin {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "qflare.db"))
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "origin.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logf, nil))
	c := coord.New(coord.Deps{Store: st, Log: log,
		Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, "") }})
	srv := httptest.NewServer(api.New(api.Options{Coord: c, AdminToken: adminToken, ShardToken: shardToken, Log: log}))
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		st.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("the origin's log (last 4000 bytes):\n%s", tail(b, 4000))
		}
	})
	return &origin{t: t, URL: srv.URL, c: c, st: st}
}

// run creates a run on the origin.
func (o *origin) run(cfg coord.Config) *coord.Run {
	o.t.Helper()
	r, err := o.c.CreateRun(context.Background(), cfg)
	if err != nil {
		o.t.Fatal(err)
	}
	return r
}

// shard starts a shard under workerd linked to o and waits for the link.
func (o *origin) shard(name string) *workerd.Shard {
	o.t.Helper()
	logf, err := os.Create(filepath.Join(o.t.TempDir(), "workerd-"+name+".log"))
	if err != nil {
		o.t.Fatal(err)
	}
	s, err := workerd.Start(context.Background(), workerd.Options{Bin: workerdBin, Bundle: bundle, Name: name,
		Origin: o.URL, Token: shardToken, Log: logf})
	if err != nil {
		o.t.Fatal(err)
	}
	o.t.Cleanup(func() {
		s.Kill()
		if o.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			o.t.Logf("workerd %s's log (last 3000 bytes):\n%s", name, tail(b, 3000))
		}
	})
	if err := s.WaitLinked(20 * time.Second); err != nil {
		o.t.Fatal(err)
	}
	return s
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// rounds returns a run's stored rounds.
func (o *origin) rounds(run *coord.Run) []store.Round {
	rs, err := o.st.Rounds(context.Background(), run.ID())
	if err != nil {
		o.t.Fatal(err)
	}
	return rs
}

// waitRound waits until round n of run is closed.
func (o *origin) waitRound(run *coord.Run, n int, timeout time.Duration) store.Round {
	o.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, r := range o.rounds(run) {
			if r.Round == n && r.Status != store.RoundOpen {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	o.t.Fatalf("round %d did not close within %v", n, timeout)
	return store.Round{}
}

func (o *origin) model(run *coord.Run, v int) []byte {
	o.t.Helper()
	m, err := o.st.Model(context.Background(), run.ID(), v)
	if err != nil {
		o.t.Fatal(err)
	}
	return m.Weights
}

// tab speaks the participant protocol by hand over a real WebSocket.
type tab struct {
	t       *testing.T
	conn    link.Conn
	run     *coord.Run
	welcome *wire.Welcome
	secret  string
	shapes  [][]int
}

// join dials base's /ws and joins run (as as, when not nil).
func join(t *testing.T, base string, run *coord.Run, as *tab) *tab {
	t.Helper()
	conn, err := headless.Dial(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	m, _ := nn.New(run.Config().Model, nn.Shape{H: 28, W: 28, C: 1}, 10, 0)
	tb := &tab{t: t, conn: conn, run: run, shapes: m.TensorShapes()}
	h := &wire.Hello{V: wire.Version, Run: run.ID(), Token: run.Token(), Device: wire.Device{Kind: wire.DeviceHeadless, UserAgent: "edge-test"}}
	if as != nil {
		h.ClientID, h.Secret = as.welcome.ClientID, as.secret
	}
	b, _ := wire.Marshal(h)
	if err := conn.Send(context.Background(), link.Message{Data: b}); err != nil {
		t.Fatal(err)
	}
	tb.welcome = expect[*wire.Welcome](tb)
	tb.secret = tb.welcome.Secret
	if tb.secret == "" && as != nil {
		tb.secret = as.secret
	}
	return tb
}

func (tb *tab) recv(wait time.Duration) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	m, err := tb.conn.Recv(ctx)
	if err != nil {
		return nil, err
	}
	if m.Binary {
		return m.Data, nil
	}
	return wire.ParseMessage(m.Data, wire.MaxMessageBytes)
}

// expect skips messages until one of type T arrives.
func expect[T any](tb *tab) T {
	tb.t.Helper()
	for {
		m, err := tb.recv(30 * time.Second)
		if err != nil {
			tb.t.Fatalf("tab: waiting for a %T: %v", *new(T), err)
		}
		if v, ok := m.(T); ok {
			return v
		}
	}
}

// task waits for a round_start and its model.
func (tb *tab) task() (*wire.RoundStart, []float32) {
	tb.t.Helper()
	rs := expect[*wire.RoundStart](tb)
	frame := expect[[]byte](tb)
	h, payload, err := wire.ParseFrame(frame, wire.DefaultLimits())
	if err != nil {
		tb.t.Fatal(err)
	}
	p, _ := h.Pipeline()
	w, err := wire.Decode(p, payload, tb.shapes, nil, nil, wire.DefaultLimits())
	if err != nil {
		tb.t.Fatal(err)
	}
	return rs, w
}

// frame encodes weights w as an update for rs with codec.
func (tb *tab) frame(rs *wire.RoundStart, w []float32, codec string) []byte {
	tb.t.Helper()
	p, err := wire.ParsePipeline(codec)
	if err != nil {
		tb.t.Fatal(err)
	}
	payload, err := wire.NewEncoder(p, tb.shapes, 1).Encode(nil, w, nil)
	if err != nil {
		tb.t.Fatal(err)
	}
	f, err := wire.AppendFrame(nil, &wire.FrameHeader{Kind: wire.KindUpdate, Run: tb.run.ID(), Round: rs.Round,
		ModelVersion: rs.ModelVersion, Codec: p.String(), Params: len(w), Samples: 50, Loss: 0.5}, payload)
	if err != nil {
		tb.t.Fatal(err)
	}
	return f
}

func (tb *tab) send(frame []byte) {
	tb.t.Helper()
	if err := tb.conn.Send(context.Background(), link.Message{Binary: true, Data: frame}); err != nil {
		tb.t.Fatal(err)
	}
}

// trained returns w moved by a seeded random step.
func trained(w []float32, seed uint64, scale float64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([]float32, len(w))
	for i, v := range w {
		out[i] = v + float32(rng.NormFloat64()*scale)
	}
	return out
}

// headlessClients runs n real headless clients against base until the run
// ends.
func headlessClients(t *testing.T, base string, run *coord.Run, n int) (wait func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := headless.Run(ctx, &headless.Options{Server: base, Run: run.ID(), Token: run.Token(), Clients: n,
			SlowMin: 1, SlowMax: 1, Seed: 1}); err != nil {
			t.Errorf("headless clients of %s: %v", base, err)
		}
	})
	return func() { wg.Wait(); cancel() }
}

// TestEdgeMatchesDirect: real headless clients train two rounds through
// two shards under workerd, and the same number directly; every client
// trains in every round and training is seeded by slice, so the updates
// are the same: the models merged from the shards' partials equal plain
// FedAvg's, bit for bit.
func TestEdgeMatchesDirect(t *testing.T) {
	needWorkerd(t)
	o := newOrigin(t)
	eu, us := o.shard("eu"), o.shard("us")
	cfg := coord.Config{Model: "mlp:16", Clients: 100, ClientsPerRound: 4, MinClients: 4, Rounds: 2, Batch: 20,
		EvalLimit: 500, Seed: 7}
	edged, direct := o.run(cfg), o.run(cfg)
	waits := []func(){headlessClients(t, eu.URL, edged, 2), headlessClients(t, us.URL, edged, 2),
		headlessClients(t, o.URL, direct, 4)}
	for _, w := range waits {
		w()
	}
	for n := 1; n <= 2; n++ {
		re, rd := o.waitRound(edged, n, time.Minute), o.waitRound(direct, n, time.Minute)
		if re.NAccepted != 4 || rd.NAccepted != 4 {
			t.Fatalf("round %d accepted %d through shards, %d directly; want 4 and 4", n, re.NAccepted, rd.NAccepted)
		}
		if !bytes.Equal(o.model(edged, n), o.model(direct, n)) {
			t.Errorf("round %d: the model merged from the shards' partials differs from plain FedAvg's", n)
		}
	}
	for _, s := range []*workerd.Shard{eu, us} {
		st, err := s.Status()
		if err != nil || st.Folded != 4 || st.Partials < 2 {
			t.Errorf("shard status %+v, %v; want 4 updates folded into at least 2 partials", st, err)
		}
	}
}

// float32Payload encodes w as a raw float32 payload.
func float32Payload(w []float32) []byte {
	b := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// TestEdgeRefusesLikeTheOrigin: corrupt and hostile updates get the same
// code and reason from the shard under workerd as from the origin.
func TestEdgeRefusesLikeTheOrigin(t *testing.T) {
	needWorkerd(t)
	o := newOrigin(t)
	sh := o.shard("eu")
	cfg := coord.Config{Model: "mlp:16", Clients: 100, Fraction: 1, StartClients: 2, MinClients: 1, Rounds: 2,
		MaxUpdateNorm: 5, EvalLimit: 200, RoundDeadline: coord.Duration(time.Hour)}
	raw := func(tb *tab, rs *wire.RoundStart, w []float32, edit func(*wire.FrameHeader)) []byte {
		h := &wire.FrameHeader{Kind: wire.KindUpdate, Run: tb.run.ID(), Round: rs.Round, ModelVersion: rs.ModelVersion,
			Codec: "float32", Params: len(w), Samples: 10}
		edit(h)
		f, err := wire.AppendFrame(nil, h, float32Payload(w))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	nop := func(*wire.FrameHeader) {}
	cases := map[string]func(tb *tab, rs *wire.RoundStart, w []float32) [][]byte{
		"checksum": func(tb *tab, rs *wire.RoundStart, w []float32) [][]byte {
			f := tb.frame(rs, w, "float32+zstd")
			f[len(f)-1] ^= 0x55
			return [][]byte{f}
		},
		"shape": func(tb *tab, rs *wire.RoundStart, w []float32) [][]byte { return [][]byte{raw(tb, rs, w[1:], nop)} },
		"not finite": func(tb *tab, rs *wire.RoundStart, w []float32) [][]byte {
			bad := append([]float32(nil), w...)
			bad[5] = float32(math.Inf(1))
			return [][]byte{raw(tb, rs, bad, nop)}
		},
		"norm": func(tb *tab, rs *wire.RoundStart, w []float32) [][]byte {
			return [][]byte{raw(tb, rs, trained(w, 1, 1), nop)}
		},
		"old version": func(tb *tab, rs *wire.RoundStart, w []float32) [][]byte {
			return [][]byte{raw(tb, rs, w, func(h *wire.FrameHeader) { h.ModelVersion = 3 })}
		},
		"duplicate": func(tb *tab, rs *wire.RoundStart, w []float32) [][]byte {
			f := tb.frame(rs, w, "int8+zstd")
			return [][]byte{f, f}
		},
	}
	for name, mk := range cases {
		got := map[string]wire.Rejected{}
		for _, via := range []string{o.URL, sh.URL} {
			run := o.run(cfg)
			tb := join(t, via, run, nil)
			join(t, o.URL, run, nil) // silent: the round stays open
			rs, w := tb.task()
			for _, f := range mk(tb, rs, w) {
				tb.send(f)
			}
			rej := expect[*wire.Rejected](tb)
			rej.Reason = strings.ReplaceAll(rej.Reason, run.ID(), "RUN")
			got[via] = *rej
		}
		if got[o.URL] != got[sh.URL] {
			t.Errorf("%s: the origin answered %+v, the shard %+v; want the same", name, got[o.URL], got[sh.URL])
		}
	}
}

// waitReceived waits until run's open round has received n updates.
func waitReceived(t *testing.T, run *coord.Run, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if v := run.View().Open; v != nil && v.Received >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the round did not count %d updates", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEdgeShardDiesMidRound: workerd is killed (SIGKILL) with an update
// folded at its shard and not yet sent; the round does not wait for it: it
// closes as soon as the others answered, far from its 10-minute deadline.
// The shard comes back (a fresh Durable Object), its tab reconnects, gets
// the round again and its update is taken: nothing it was told is accepted
// was lost, because it was told nothing before its update was durable.
func TestEdgeShardDiesMidRound(t *testing.T) {
	needWorkerd(t)
	o := newOrigin(t)
	a, b := o.shard("a"), o.shard("b")
	run := o.run(coord.Config{Model: "mlp:16", Clients: 100, Fraction: 1, StartClients: 4, MinClients: 1, Rounds: 2,
		EvalLimit: 200, RoundDeadline: coord.Duration(10 * time.Minute)})
	d := join(t, o.URL, run, nil)
	x, y := join(t, b.URL, run, nil), join(t, b.URL, run, nil)
	z := join(t, a.URL, run, nil)
	rsX, wX := x.task()
	y.task() // silent: b holds x's update in its partial
	rsZ, wZ := z.task()
	rsD, wD := d.task()
	x.send(x.frame(rsX, trained(wX, 1, 0.01), "float32+zstd"))
	waitReceived(t, run, 1)
	start := time.Now()
	b.Kill()
	for {
		m, err := x.recv(10 * time.Second)
		if err != nil {
			break // the shard is gone, and the tab's socket with it
		}
		if _, ok := m.(*wire.Accepted); ok {
			t.Fatal("x heard accepted before its update was durable at the origin")
		}
	}
	if err := b.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitLinked(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	x2 := join(t, b.URL, run, x)
	rs, w := x2.task()
	if rs.Round != 1 || x2.welcome.ClientID != x.welcome.ClientID {
		t.Fatalf("x came back as %s with round %d; want %s with round 1 again", x2.welcome.ClientID, rs.Round, x.welcome.ClientID)
	}
	x2.send(x2.frame(rs, trained(w, 1, 0.01), "float32+zstd"))
	expect[*wire.Accepted](x2)
	z.send(z.frame(rsZ, trained(wZ, 2, 0.01), "float32+zstd"))
	d.send(d.frame(rsD, trained(wD, 3, 0.01), "float32+zstd"))
	r1 := o.waitRound(run, 1, time.Minute)
	if r1.Status != store.RoundAggregated || r1.NAccepted != 3 {
		t.Errorf("round 1: %s with %d accepted; want aggregated with x's, z's and d's updates", r1.Status, r1.NAccepted)
	}
	if took := time.Since(start); took > 2*time.Minute {
		t.Errorf("round 1 took %v after the shard died; want it not to wait for its deadline", took)
	}
}

// TestEdgeShardDeathAlone: with no one to come back, a dead shard's
// clients count as dropped and the round closes with the others.
func TestEdgeShardDeathAlone(t *testing.T) {
	needWorkerd(t)
	o := newOrigin(t)
	b := o.shard("b")
	run := o.run(coord.Config{Model: "mlp:16", Clients: 100, Fraction: 1, StartClients: 3, MinClients: 1, Rounds: 2,
		EvalLimit: 200, RoundDeadline: coord.Duration(10 * time.Minute)})
	d := join(t, o.URL, run, nil)
	x, y := join(t, b.URL, run, nil), join(t, b.URL, run, nil)
	rsX, wX := x.task()
	y.task()
	rsD, wD := d.task()
	x.send(x.frame(rsX, trained(wX, 1, 0.01), "float32+zstd"))
	waitReceived(t, run, 1)
	b.Kill()
	d.send(d.frame(rsD, trained(wD, 3, 0.01), "float32+zstd"))
	start := time.Now()
	r1 := o.waitRound(run, 1, time.Minute)
	if r1.Status != store.RoundAggregated || r1.NAccepted != 1 {
		t.Errorf("round 1: %s with %d accepted; want aggregated from d alone", r1.Status, r1.NAccepted)
	}
	t.Logf("round 1 closed %v after the last live client answered", time.Since(start).Round(time.Millisecond))
}

// TestEdgeCNNMemory: a mnist-cnn shard's Go memory (the Durable Object's
// wasm linear memory, which never shrinks) stays under the isolate's
// 128 MB while it folds three rounds of eight full-precision updates
// (6.65 MB each) and sends their partials.
func TestEdgeCNNMemory(t *testing.T) {
	needWorkerd(t)
	o := newOrigin(t)
	sh := o.shard("cnn")
	clients, rounds := 8, 3
	if raceEnabled {
		clients, rounds = 4, 2 // the origin is several times slower; the shard is the same
	}
	run := o.run(coord.Config{Model: "mnist-cnn", Clients: 100, ClientsPerRound: clients, MinClients: clients, Rounds: rounds,
		EvalLimit: 100, RoundDeadline: coord.Duration(10 * time.Minute), DownCodec: "float32"})
	var tabs []*tab
	for range clients {
		tabs = append(tabs, join(t, sh.URL, run, nil))
	}
	peak := 0.0
	for n := 1; n <= rounds; n++ {
		for i, tb := range tabs {
			rs, w := tb.task()
			tb.send(tb.frame(rs, trained(w, uint64(10*n+i), 0.001), "float32"))
			if st, err := sh.Status(); err == nil {
				peak = max(peak, st.MemoryMB)
			}
		}
		if r := o.waitRound(run, n, 5*time.Minute); r.NAccepted != clients {
			t.Fatalf("round %d accepted %d; want %d", n, r.NAccepted, clients)
		}
	}
	st, err := sh.Status()
	if err != nil {
		t.Fatal(err)
	}
	peak = max(peak, st.MemoryMB)
	t.Logf("mnist-cnn shard: wasm memory %.1f MB (Go heap %.1f MB, runtime %.1f MB), %d updates folded in %.0f ms (%.0f ms each), %d partials sent in %.0f ms (%.0f ms each)",
		st.MemoryMB, st.HeapMB, st.SysMB, st.Folded, st.FoldMS, st.FoldMS/float64(st.Folded), st.Partials, st.SealMS, st.SealMS/float64(st.Partials))
	if peak >= 128 {
		t.Errorf("the mnist-cnn shard's wasm memory reached %.1f MB; want it under Cloudflare's 128 MB isolate limit", peak)
	}
	if st.Folded != int64(rounds*clients) {
		t.Errorf("the shard folded %d updates; want %d", st.Folded, rounds*clients)
	}
}

// TestEdgeServesTheJoinPage: the shard's Worker serves the pages and
// client.wasm (byte for byte, as application/wasm, where make wasm built
// it) from the static assets and passes /api/ on to the origin.
func TestEdgeServesTheJoinPage(t *testing.T) {
	needWorkerd(t)
	o := newOrigin(t)
	logf, _ := os.Create(filepath.Join(t.TempDir(), "workerd.log"))
	s, err := workerd.Start(context.Background(), workerd.Options{Bin: workerdBin, Bundle: bundle, Name: "pages",
		Origin: o.URL, Token: shardToken, Log: logf, Assets: filepath.Join(repoRoot, "www", "static")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Kill()
	run := o.run(coord.Config{Model: "mlp:16", Clients: 100, EvalLimit: 100})
	for _, c := range []struct{ path, ctype, has string }{
		{"/join/" + run.ID() + "?token=" + run.Token(), "text/html", "<html"},
		{"/static/join.js", "text/javascript", "ws_url"},
		{"/api/runs/" + run.ID(), "application/json", run.ID()},
	} {
		res, err := http.Get(s.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), c.ctype) || !bytes.Contains(b, []byte(c.has)) {
			t.Errorf("GET %s through the shard = %s, %q, %d bytes; want 200, %s, with %q", c.path, res.Status,
				res.Header.Get("Content-Type"), len(b), c.ctype, c.has)
		}
	}
	if want, err := os.ReadFile(filepath.Join(repoRoot, "www", "static", "client.wasm")); err != nil {
		t.Logf("client.wasm not checked: %v (make wasm builds it)", err)
	} else {
		res, err := http.Get(s.URL + "/static/client.wasm")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || ct != "application/wasm" || !bytes.Equal(got, want) {
			t.Errorf("GET /static/client.wasm through the shard = %s, %q, %d bytes; want 200, application/wasm, the %d bytes of www/static/client.wasm",
				res.Status, ct, len(got), len(want))
		}
	}
	if res, err := http.Post(s.URL+"/api/runs", "application/json", strings.NewReader("{}")); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /api/runs through the shard = %s; want 405 (state changes go to the server itself)", res.Status)
		}
	}
}
