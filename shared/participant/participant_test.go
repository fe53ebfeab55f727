package participant_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/qflare/qflare/shared/adversary"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/participant"
	"github.com/qflare/qflare/shared/wire"
)

// tinySet is a 4-feature, 3-class dataset the client trains on.
func tinySet() *data.Set {
	s := &data.Set{Name: "tiny", H: 1, W: 1, C: 4, Classes: 3}
	for i := 0; i < 30; i++ {
		y := uint8(i % 3)
		img := []uint8{10, 10, 10, 10}
		img[y] = 240
		s.Images = append(s.Images, img...)
		s.Labels = append(s.Labels, y)
	}
	return s
}

const model = "mlp:8,8" // a spec with characters beyond an identifier

// server plays the server's side of one session by hand.
type server struct {
	t    *testing.T
	conn link.Conn
	ctx  context.Context
}

func (s *server) send(m wire.Message) {
	s.t.Helper()
	b, err := wire.Marshal(m)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.conn.Send(s.ctx, link.Message{Data: b}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *server) recv() (wire.Message, []byte) {
	s.t.Helper()
	m, err := s.conn.Recv(s.ctx)
	if err != nil {
		s.t.Fatalf("server side: %v", err)
	}
	if m.Binary {
		return nil, m.Data
	}
	msg, err := wire.ParseMessage(m.Data, wire.MaxMessageBytes)
	if err != nil {
		s.t.Fatal(err)
	}
	return msg, nil
}

// update skips progress messages and returns the next update frame.
func (s *server) update() (wire.FrameHeader, []byte) {
	s.t.Helper()
	for {
		msg, frame := s.recv()
		if frame != nil {
			h, payload, err := wire.ParseFrame(frame, wire.DefaultLimits())
			if err != nil {
				s.t.Fatal(err)
			}
			return h, payload
		}
		if _, ok := msg.(*wire.Progress); !ok {
			s.t.Fatalf("server got %s; want progress or an update", msg.Type())
		}
	}
}

// model sends a model frame and returns its length.
func (s *server) model(kind string, round int, version int64, w, ref []float32, shapes [][]int, codec string) int {
	s.t.Helper()
	p, _ := wire.ParsePipeline(codec)
	payload, err := wire.NewEncoder(p, shapes, 1).Encode(nil, w, ref)
	if err != nil {
		s.t.Fatal(err)
	}
	base := version
	if kind == wire.KindModelDelta {
		base = version - 1
	}
	f, err := wire.AppendFrame(nil, &wire.FrameHeader{Kind: kind, Run: "run-1", Round: round, ModelVersion: base,
		Codec: codec, Params: len(w)}, payload)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.conn.Send(s.ctx, link.Message{Binary: true, Data: f}); err != nil {
		s.t.Fatal(err)
	}
	return len(f)
}

func welcome(codec string) *wire.Welcome {
	return &wire.Welcome{ClientID: "c-1", Run: wire.RunInfo{ID: "run-1", Model: model, Dataset: "tiny", Rounds: 2,
		LocalEpochs: 1, Batch: 5, LR: 0.1, Codec: codec, DownCodec: "float32+zstd", Strategy: "trimmed-mean:0.2", Seed: 1},
		Slice: wire.SliceInfo{Samples: 30, URL: "/slice"}, Limits: wire.UploadLimits{MaxUpdateBytes: 1 << 20}}
}

// start runs a client session on one end of a pipe and returns the other.
func start(t *testing.T, opt participant.Options) (*server, *participant.Client, chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	a, b := link.Pipe(8)
	if opt.Fetch == nil && opt.Data == nil {
		opt.Fetch = func(context.Context, *wire.Welcome) (*data.Set, error) { return tinySet(), nil }
	}
	opt.Run, opt.Token = "run-1", "tok"
	opt.Device = wire.Device{Kind: wire.DeviceHeadless, UserAgent: "test"}
	c := participant.New(opt)
	done := make(chan error, 1)
	go func() { done <- c.Session(ctx, b) }()
	return &server{t: t, conn: a, ctx: ctx}, c, done
}

func newModel(t *testing.T) *nn.Model {
	m, err := nn.New(model, nn.Shape{H: 1, W: 1, C: 4}, 3, 9)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSessionTrainsAndUploads walks one client through two rounds: hello,
// welcome, a full model, training, an update, a model delta, another update,
// the end of the run.
func TestSessionTrainsAndUploads(t *testing.T) {
	var events []participant.Event
	srv, c, done := start(t, participant.Options{Events: func(e participant.Event) { events = append(events, e) }})
	hello, _ := srv.recv()
	if h, ok := hello.(*wire.Hello); !ok || h.Run != "run-1" || h.Token != "tok" || h.ClientID != "" {
		t.Fatalf("first message = %+v; want a hello for run-1 with the token and no id", hello)
	}
	w := welcome("delta+float32")
	w.Run.DownCodec = "delta+float32+zstd" // so the client keeps version 1 as the base of round 2's delta
	srv.send(w)
	m := newModel(t)
	shapes := m.TensorShapes()
	global := append([]float32(nil), m.Params...)
	srv.send(&wire.RoundStart{Round: 1, ModelVersion: 1, Epochs: 2, Batch: 5, LR: 0.1, Seed: 3})
	srv.model(wire.KindModel, 1, 1, global, nil, shapes, "float32+zstd")
	h, payload := srv.update()
	if h.Kind != wire.KindUpdate || h.Round != 1 || h.ModelVersion != 1 || h.Samples != 30 || h.Params != len(global) {
		t.Errorf("update header = %+v; want round 1 from version 1, 30 samples", h)
	}
	p, _ := h.Pipeline()
	trained, err := wire.Decode(p, payload, shapes, global, nil, wire.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if d := dist(trained, global); d == 0 || math.IsNaN(d) {
		t.Errorf("the update equals the global model (distance %v); training did nothing", d)
	}
	srv.send(&wire.Accepted{Round: 1, Staleness: 2})
	srv.send(&wire.RoundEnd{Round: 1, TestAccuracy: 0.5, ModelVersion: 2})

	// Round 2 comes as a delta from version 1, which the client holds.
	next := append([]float32(nil), trained...)
	srv.send(&wire.RoundStart{Round: 2, ModelVersion: 2, Epochs: 1, Batch: 5, LR: 0.1, Seed: 4})
	srv.model(wire.KindModelDelta, 2, 2, next, global, shapes, "delta+float32")
	h2, payload2 := srv.update()
	got, err := wire.Decode(p, payload2, shapes, next, nil, wire.DefaultLimits())
	if err != nil || h2.ModelVersion != 2 {
		t.Fatalf("round 2 update: version %d, %v; want version 2", h2.ModelVersion, err)
	}
	if d := dist(got, next); d == 0 || d > 10 {
		t.Errorf("round 2 moved the model by %v from the delta-decoded base; want a small non-zero step", d)
	}
	srv.send(&wire.RunEnd{Reason: "done", FinalAccuracy: 0.9})
	if err := <-done; !errors.Is(err, participant.ErrRunEnded) {
		t.Errorf("Session = %v; want ErrRunEnded", err)
	}
	if c.ID() != "c-1" {
		t.Errorf("client id %q; want the welcome's c-1", c.ID())
	}
	for _, want := range []string{participant.EventWelcome, participant.EventSlice, participant.EventDownload,
		participant.EventProgress, participant.EventUpload, participant.EventAccepted, participant.EventRoundEnd, participant.EventRunEnd} {
		if !hasEvent(events, want) {
			t.Errorf("no %q event", want)
		}
	}
	// The page shows an async run's versions and staleness from these.
	for _, e := range events {
		switch {
		case e.Type == participant.EventRoundStart && e.Round == 2 && e.ModelVersion != 2,
			e.Type == participant.EventAccepted && e.Round == 1 && e.Staleness != 2,
			e.Type == participant.EventRoundEnd && e.Round == 1 && e.ModelVersion != 2:
			t.Errorf("%s event = %+v; want the message's model version and staleness", e.Type, e)
		}
	}
}

// TestRefusedBeforeWelcome: a rejection instead of a welcome ends the session
// with the server's reason.
func TestRefusedBeforeWelcome(t *testing.T) {
	srv, _, done := start(t, participant.Options{})
	srv.recv()
	srv.send(&wire.Rejected{Code: wire.CodeAuth, Reason: "wrong join token"})
	var refused *participant.RefusedError
	if err := <-done; !errors.As(err, &refused) || refused.Reason != "wrong join token" {
		t.Errorf("Session = %v; want a RefusedError with the server's reason", err)
	}
}

// TestRefusedOnRejoin: a client that joined in an earlier session and comes
// back after the run ended is refused, and stops instead of reconnecting.
func TestRefusedOnRejoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := participant.New(participant.Options{Run: "run-1", Token: "tok", Device: wire.Device{Kind: wire.DeviceHeadless, UserAgent: "test"},
		Fetch: func(context.Context, *wire.Welcome) (*data.Set, error) { return tinySet(), nil }})
	session := func() (*server, chan error) {
		a, b := link.Pipe(8)
		done := make(chan error, 1)
		go func() { done <- c.Session(ctx, b) }()
		return &server{t: t, conn: a, ctx: ctx}, done
	}
	srv, done := session()
	srv.recv()
	srv.send(welcome("float32+zstd"))
	srv.conn.Close() // the connection drops
	if err := <-done; err == nil || errors.Is(err, participant.ErrRunEnded) {
		t.Fatalf("first Session = %v; want a connection error", err)
	}
	srv, done = session()
	if h, _ := srv.recv(); h.(*wire.Hello).ClientID != "c-1" {
		t.Fatalf("second hello = %+v; want client id c-1", h)
	}
	srv.send(&wire.Rejected{Code: wire.CodeRunOver, Reason: "run run-1 is stopped"})
	var refused *participant.RefusedError
	if err := <-done; !errors.As(err, &refused) || refused.Code != wire.CodeRunOver {
		t.Errorf("second Session = %v; want a RefusedError with code run_over", err)
	}
}

// blockingTrainer trains until its context ends, or for at most 5 s.
type blockingTrainer struct{ finished chan bool }

func (b blockingTrainer) Train(ctx context.Context, global, local []float32, _ participant.RoundConfig, _ func(nn.Progress)) (nn.FitStats, error) {
	select {
	case <-ctx.Done():
		b.finished <- false
		return nn.FitStats{}, ctx.Err()
	case <-time.After(5 * time.Second):
		copy(local, global)
		b.finished <- true
		return nn.FitStats{Samples: 30}, nil
	}
}

// TestRunEndBeforeTraining: a run_end that arrives while the client is
// still decoding the round's model stops the round before it trains: the
// tab does not train a whole round for a run that is over.
func TestRunEndBeforeTraining(t *testing.T) {
	tr := blockingTrainer{finished: make(chan bool, 1)}
	runEndSent := make(chan struct{})
	opt := participant.Options{
		NewTrainer: func(*nn.Model, *data.Set) (participant.Trainer, error) { return tr, nil },
		Events: func(e participant.Event) {
			if e.Type == participant.EventDownload { // the model is decoded; training is next
				<-runEndSent
				time.Sleep(50 * time.Millisecond) // let the reader take the run_end
			}
		},
	}
	srv, _, done := start(t, opt)
	srv.recv()
	srv.send(welcome("float32+zstd"))
	m := newModel(t)
	srv.send(&wire.RoundStart{Round: 1, ModelVersion: 1, Epochs: 1, Batch: 5, LR: 0.1, Seed: 3})
	srv.model(wire.KindModel, 1, 1, m.Params, nil, m.TensorShapes(), "float32+zstd")
	srv.send(&wire.RunEnd{Reason: "stopped by the host"})
	close(runEndSent)
	if err := <-done; !errors.Is(err, participant.ErrRunEnded) {
		t.Errorf("Session = %v; want ErrRunEnded", err)
	}
	if <-tr.finished {
		t.Errorf("the client trained the whole round after the run ended; want training cancelled")
	}
	for {
		msg, err := srv.conn.Recv(srv.ctx)
		if err != nil {
			break
		}
		if msg.Binary {
			t.Errorf("the client uploaded %d bytes after the run ended", len(msg.Data))
		}
	}
}

// TestMissedDeadlineSkipsUpload: training that cannot finish before the
// round's deadline uploads nothing and says why.
func TestMissedDeadlineSkipsUpload(t *testing.T) {
	var events []participant.Event
	srv, _, done := start(t, participant.Options{Events: func(e participant.Event) { events = append(events, e) }})
	srv.recv()
	srv.send(welcome("float32+zstd"))
	m := newModel(t)
	srv.send(&wire.RoundStart{Round: 1, ModelVersion: 1, Epochs: 1, Batch: 5, LR: 0.1, Seed: 3,
		DeadlineUnixMS: time.Now().Add(-time.Second).UnixMilli()})
	srv.model(wire.KindModel, 1, 1, m.Params, nil, m.TensorShapes(), "float32+zstd")
	srv.send(&wire.RunEnd{Reason: "done"})
	if err := <-done; !errors.Is(err, participant.ErrRunEnded) {
		t.Fatalf("Session = %v; want ErrRunEnded", err)
	}
	for {
		m, err := srv.conn.Recv(srv.ctx)
		if err != nil {
			break // the client closed the connection
		}
		if m.Binary {
			t.Fatal("the client uploaded after the deadline")
		}
	}
	missed := false
	for _, e := range events {
		missed = missed || (e.Type == participant.EventError && strings.Contains(e.Message, "deadline"))
	}
	if !missed {
		t.Error("no event says the round's deadline passed")
	}
}

// TestSignFlipAttack: an attacking client sends the negated, amplified
// update of an honest one with the same seed.
func TestSignFlipAttack(t *testing.T) {
	attack, _ := adversary.Parse("sign-flip:3")
	deltas := make([][]float32, 2)
	for i, opt := range []participant.Options{{}, {Attack: attack}} {
		srv, _, _ := start(t, opt)
		srv.recv()
		srv.send(welcome("delta+float32"))
		m := newModel(t)
		srv.send(&wire.RoundStart{Round: 1, ModelVersion: 1, Epochs: 1, Batch: 5, LR: 0.1, Seed: 3})
		srv.model(wire.KindModel, 1, 1, m.Params, nil, m.TensorShapes(), "float32+zstd")
		h, payload := srv.update()
		p, _ := h.Pipeline()
		zero := make([]float32, len(m.Params))
		deltas[i], _ = wire.Decode(p, payload, m.TensorShapes(), zero, nil, wire.DefaultLimits())
	}
	for i := range deltas[0] {
		if math.Abs(float64(3*deltas[0][i]+deltas[1][i])) > 1e-5 {
			t.Fatalf("delta[%d]: honest %g, sign-flip:3 %g; want -3 times it", i, deltas[0][i], deltas[1][i])
		}
	}
}

func dist(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

func hasEvent(events []participant.Event, typ string) bool {
	for _, e := range events {
		if e.Type == typ {
			return true
		}
	}
	return false
}

// TestDivergedTrainingDeclines: when training ends in non-finite weights
// (here from a model of 1e30s) the client tells the server it declines the
// round instead of failing the session or staying silent.
func TestDivergedTrainingDeclines(t *testing.T) {
	srv, _, done := start(t, participant.Options{})
	srv.recv()
	srv.send(welcome("float32+zstd"))
	m := newModel(t)
	huge := make([]float32, len(m.Params))
	for i := range huge {
		huge[i] = 1e30
	}
	srv.send(&wire.RoundStart{Round: 1, ModelVersion: 1, Epochs: 1, Batch: 5, LR: 0.1, Seed: 3})
	srv.model(wire.KindModel, 1, 1, huge, nil, m.TensorShapes(), "float32+zstd")
	for {
		msg, frame := srv.recv()
		if frame != nil {
			t.Fatal("the client uploaded non-finite weights")
		}
		if d, ok := msg.(*wire.Decline); ok {
			if d.Round != 1 || !strings.Contains(d.Reason, "not finite") {
				t.Errorf("decline = %+v; want round 1, saying the weights are not finite", d)
			}
			break
		}
	}
	srv.send(&wire.RunEnd{Reason: "done"})
	if err := <-done; !errors.Is(err, participant.ErrRunEnded) {
		t.Errorf("Session = %v; want it to carry on to ErrRunEnded", err)
	}
}

// TestTrainingThatMakesTheModelWorseDeclines: a client whose local training
// leaves the model worse on its own data (finite weights, a higher loss: a
// learning rate too large for a model that is already good) declines the
// round, saying so, instead of uploading the worse model.
func TestTrainingThatMakesTheModelWorseDeclines(t *testing.T) {
	set := noisySet()
	m := newModel(t)
	good := trainedOn(t, m, set)
	rs := &wire.RoundStart{Round: 1, ModelVersion: 1, Epochs: 1, Batch: 1, LR: 1, Seed: 3}
	// The scenario must be real: the same training, done here, is worse.
	before, after := lossBeforeAfter(t, m, set, good, participant.RoundConfig{Epochs: rs.Epochs, Batch: rs.Batch, LR: rs.LR, Seed: rs.Seed})
	if !(after > before) || math.IsInf(after, 0) || math.IsNaN(after) {
		t.Fatalf("training at lr %g takes the loss from %g to %g; the test needs a finite, higher loss", rs.LR, before, after)
	}

	srv, _, done := start(t, participant.Options{Data: set})
	srv.recv()
	srv.send(welcome("float32+zstd"))
	srv.send(rs)
	srv.model(wire.KindModel, 1, 1, good, nil, m.TensorShapes(), "float32+zstd")
	for {
		msg, frame := srv.recv()
		if frame != nil {
			t.Fatalf("the client uploaded a model whose loss on its data rose from %.4g to %.4g", before, after)
		}
		if d, ok := msg.(*wire.Decline); ok {
			if d.Round != 1 || !strings.Contains(d.Reason, "worse") {
				t.Errorf("decline = %+v; want round 1, saying training made the model worse", d)
			}
			break
		}
	}
	srv.send(&wire.RunEnd{Reason: "done"})
	if err := <-done; !errors.Is(err, participant.ErrRunEnded) {
		t.Errorf("Session = %v; want it to carry on to ErrRunEnded", err)
	}
}

// noisySet is tinySet with 4 in 10 labels of each class wrong: no model fits it,
// so large steps on single samples throw a good model off its optimum.
func noisySet() *data.Set {
	s := tinySet()
	for i := range s.Labels {
		if i/3%3 == 0 { // the same image as other samples, another label
			s.Labels[i] = (s.Labels[i] + 1) % 3
		}
	}
	return s
}

// trainedOn returns m's parameters after training them well on set.
func trainedOn(t *testing.T, m *nn.Model, set *data.Set) []float32 {
	t.Helper()
	c := m.Clone()
	tr, err := nn.NewTrainer(c, nn.TrainConfig{Batch: 5, LR: 0.1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Fit(context.Background(), set, nil, nn.FitOptions{Epochs: 200, LR: func(step, steps int) float32 {
		return 0.1 * float32(steps-step) / float32(steps)
	}}); err != nil {
		t.Fatal(err)
	}
	return c.Params
}

// lossBeforeAfter trains from global as a client would and returns the
// mean loss on set before and after.
func lossBeforeAfter(t *testing.T, m *nn.Model, set *data.Set, global []float32, cfg participant.RoundConfig) (before, after float64) {
	t.Helper()
	local := make([]float32, len(global))
	if _, err := participant.NewLocalTrainer(m, set).Train(context.Background(), global, local, cfg, nil); err != nil {
		t.Fatal(err)
	}
	loss := func(p []float32) float64 {
		c := m.Clone()
		copy(c.Params, p)
		l, _, err := nn.NewEvaluator(c, 8).Evaluate(set, nil)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	return loss(global), loss(local)
}
