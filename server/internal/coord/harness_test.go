package coord_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/wire"
)

// fakeClock is a Clock that moves only when a test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Time
	f    func()
	done bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) coord.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// Advance moves the clock by d and runs the timers that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		go f()
	}
}

// tinyData is an "mnist"-shaped dataset small enough that evaluating on it
// takes microseconds: 400 training and 40 test images of random pixels.
func tinyData(string) (*data.Set, *data.Set, error) {
	mk := func(n int, seed uint64) *data.Set {
		rng := rand.New(rand.NewPCG(seed, 1))
		s := &data.Set{Name: "mnist", H: 28, W: 28, C: 1, Classes: 10, Images: make([]uint8, n*784), Labels: make([]uint8, n)}
		for i := range s.Images {
			s.Images[i] = uint8(rng.IntN(256))
		}
		for i := range s.Labels {
			s.Labels[i] = uint8(i % 10)
		}
		return s
	}
	return mk(400, 1), mk(40, 2), nil
}

// engine is a coordinator on an in-memory store with a fake clock.
type engine struct {
	t     *testing.T
	c     *coord.Coordinator
	st    *store.Store
	clock *fakeClock
	ctx   context.Context
}

func newEngine(t *testing.T) *engine { return newEngineAt(t, store.MemoryPath) }

// newEngineAt is newEngine on the database at path.
func newEngineAt(t *testing.T, path string) *engine {
	t.Helper()
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{t: t, st: st, clock: newFakeClock(), ctx: t.Context()}
	e.c = coord.New(coord.Deps{Store: st, Data: tinyData, Clock: e.clock})
	t.Cleanup(func() { e.c.Close(); st.Close() })
	return e
}

// restart closes the coordinator (the runs stay resumable) and starts a
// new one on the same store, resuming them.
func (e *engine) restart() {
	e.t.Helper()
	e.c.Close()
	e.c = coord.New(coord.Deps{Store: e.st, Data: tinyData, Clock: e.clock})
	e.t.Cleanup(e.c.Close)
	if err := e.c.Resume(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

// run creates a run of mlp:4 on the tiny data with cfg's other settings.
func (e *engine) run(cfg coord.Config) *coord.Run {
	e.t.Helper()
	if cfg.Model == "" {
		cfg.Model = "mlp:4"
	}
	if cfg.Clients == 0 {
		cfg.Clients = 10
	}
	cfg.Seed = 3
	r, err := e.c.CreateRun(e.ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// client speaks the protocol by hand over an in-memory pipe.
type client struct {
	e       *engine
	run     *coord.Run
	conn    link.Conn
	welcome *wire.Welcome
	secret  string
	shapes  [][]int
	done    chan error
}

// join connects a newcomer (as nil) or as's client again.
func (e *engine) join(run *coord.Run, as *client) *client {
	e.t.Helper()
	cl := e.dial(run, as, "")
	m := cl.next()
	w, ok := m.(*wire.Welcome)
	if !ok {
		e.t.Fatalf("answer to a hello is %+v, not a welcome", m)
	}
	cl.welcome, cl.secret = w, w.Secret
	if w.Secret == "" && as != nil {
		cl.secret = as.secret
	}
	return cl
}

// dial connects and says hello (with as's id and secret, or with id and
// secret given raw when as is nil and claim is not empty).
func (e *engine) dial(run *coord.Run, as *client, claim string) *client {
	e.t.Helper()
	a, b := link.Pipe(64)
	cl := &client{e: e, run: run, conn: b, done: make(chan error, 1)}
	go func() { cl.done <- e.c.Serve(e.ctx, a, coord.PeerInfo{Remote: "test", Kind: store.KindVirtual}) }()
	h := &wire.Hello{V: wire.Version, Run: run.ID(), Token: run.Token(), ClientID: claim,
		Device: wire.Device{Kind: wire.DeviceHeadless, UserAgent: "test"}}
	if as != nil {
		h.ClientID, h.Secret = as.welcome.ClientID, as.secret
	}
	cl.send(h)
	m, _ := nn.New("mlp:4", nn.Shape{H: 28, W: 28, C: 1}, 10, 0)
	cl.shapes = m.TensorShapes()
	e.t.Cleanup(func() { b.Close() })
	return cl
}

func (cl *client) id() string { return cl.welcome.ClientID }

func (cl *client) send(m wire.Message) {
	cl.e.t.Helper()
	b, err := wire.Marshal(m)
	if err != nil {
		cl.e.t.Fatal(err)
	}
	if err := cl.conn.Send(cl.e.ctx, link.Message{Data: b}); err != nil {
		cl.e.t.Fatal(err)
	}
}

// next returns the next message (a wire.Message, or []byte for a frame).
func (cl *client) next() any {
	cl.e.t.Helper()
	m, err := cl.recv(5 * time.Second)
	if err != nil {
		cl.e.t.Fatalf("client: %v", err)
	}
	return m
}

func (cl *client) recv(wait time.Duration) (any, error) {
	ctx, cancel := context.WithTimeout(cl.e.ctx, wait)
	defer cancel()
	m, err := cl.conn.Recv(ctx)
	if err != nil {
		return nil, err
	}
	if m.Binary {
		return m.Data, nil
	}
	return wire.ParseMessage(m.Data, wire.MaxMessageBytes)
}

// expect skips messages until one of type T arrives.
func expect[T any](cl *client) T {
	cl.e.t.Helper()
	for {
		if v, ok := cl.next().(T); ok {
			return v
		}
	}
}

// task waits for a round_start and its model, decoded.
func (cl *client) task() (*wire.RoundStart, []float32) {
	cl.e.t.Helper()
	rs := expect[*wire.RoundStart](cl)
	frame := expect[[]byte](cl)
	h, payload, err := wire.ParseFrame(frame, wire.DefaultLimits())
	if err != nil {
		cl.e.t.Fatal(err)
	}
	p, _ := h.Pipeline()
	w, err := wire.Decode(p, payload, cl.shapes, nil, nil, wire.DefaultLimits())
	if err != nil {
		cl.e.t.Fatal(err)
	}
	return rs, w
}

// frame encodes an update of weights w for round rs.
func (cl *client) frame(rs *wire.RoundStart, w []float32) []byte {
	cl.e.t.Helper()
	p, _ := wire.ParsePipeline("float32+zstd")
	payload, err := wire.NewEncoder(p, cl.shapes, 1).Encode(nil, w, nil)
	if err != nil {
		cl.e.t.Fatal(err)
	}
	f, err := wire.AppendFrame(nil, &wire.FrameHeader{Kind: wire.KindUpdate, Run: cl.run.ID(), Round: rs.Round,
		ModelVersion: rs.ModelVersion, Codec: p.String(), Params: len(w), Samples: 40}, payload)
	if err != nil {
		cl.e.t.Fatal(err)
	}
	return f
}

// update sends a small step from w for round rs.
func (cl *client) update(rs *wire.RoundStart, w []float32) {
	cl.e.t.Helper()
	next := make([]float32, len(w))
	for i, v := range w {
		next[i] = v + 0.001
	}
	if err := cl.conn.Send(cl.e.ctx, link.Message{Binary: true, Data: cl.frame(rs, next)}); err != nil {
		cl.e.t.Fatal(err)
	}
}

func (cl *client) close() { cl.conn.Close() }

// rounds returns the run's stored rounds.
func (e *engine) rounds(run *coord.Run) []store.Round {
	e.t.Helper()
	rs, err := e.st.Rounds(e.ctx, run.ID())
	if err != nil {
		e.t.Fatal(err)
	}
	return rs
}

// waitRound waits until round n of run is closed in the store.
func (e *engine) waitRound(run *coord.Run, n int) store.Round {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range e.rounds(run) {
			if r.Round == n && r.Status != store.RoundOpen {
				return r
			}
		}
		time.Sleep(time.Millisecond)
	}
	e.t.Fatalf("round %d did not close", n)
	return store.Round{}
}

// waitFor polls cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// updates returns the stored updates of a round, sorted by client.
func (e *engine) updates(run *coord.Run, round int) []store.Update {
	e.t.Helper()
	ups, err := e.st.Updates(e.ctx, run.ID(), round)
	if err != nil {
		e.t.Fatal(err)
	}
	sort.Slice(ups, func(i, j int) bool { return ups[i].ClientID < ups[j].ClientID })
	return ups
}

func describe(ups []store.Update) string {
	s := ""
	for _, u := range ups {
		s += fmt.Sprintf("[%s accepted=%v code=%s] ", u.ClientID, u.Accepted, u.Code)
	}
	return s
}
