package participant_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qflare/qflare/shared/participant"
	"github.com/qflare/qflare/shared/profile"
	"github.com/qflare/qflare/shared/wire"
)

// fakeClock is a virtual clock: it stands still while the client computes
// and moves on by each Sleep. The Sleep numbered blockAt (from 0) blocks
// instead, until its context ends, after telling sleeping.
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	sleeps   []time.Duration
	blockAt  int
	sleeping chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1e9, 0), blockAt: -1, sleeping: make(chan struct{}, 1)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	n := len(f.sleeps)
	f.sleeps = append(f.sleeps, d)
	f.mu.Unlock()
	if n == f.blockAt {
		f.sleeping <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
	return nil
}

func (f *fakeClock) recorded() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

// paced is what one emulated round showed.
type paced struct {
	sleeps       []time.Duration // download, compute, upload
	modelBytes   int
	updateBytes  int
	timedBytes   int     // the update's bytes less its measured speed (the upload's timing)
	samplesPerS  float64 // from the update's header
	trainMS      int64   // from the update's header
	emulate      []participant.Event
	helloProfile string
}

// paceRound runs one two-epoch round of a client emulating p on a fake
// clock and returns what it waited.
func paceRound(t *testing.T, p profile.Profile) paced {
	t.Helper()
	clock := newFakeClock()
	var got paced
	var mu sync.Mutex
	srv, _, done := start(t, participant.Options{Profile: &p, Clock: clock, Events: func(e participant.Event) {
		if e.Type == participant.EventEmulate {
			mu.Lock()
			got.emulate = append(got.emulate, e)
			mu.Unlock()
		}
	}})
	hello, _ := srv.recv()
	got.helloProfile = hello.(*wire.Hello).Device.Profile
	srv.send(welcome("float32+zstd"))
	m := newModel(t)
	srv.send(&wire.RoundStart{Round: 1, ModelVersion: 1, Epochs: 2, Batch: 5, LR: 0.1, Seed: 3})
	got.modelBytes = srv.model(wire.KindModel, 1, 1, m.Params, nil, m.TensorShapes(), "float32+zstd")
	for got.updateBytes == 0 {
		msg, err := srv.conn.Recv(srv.ctx)
		if err != nil {
			t.Fatalf("server side: %v", err)
		}
		if msg.Binary {
			got.updateBytes = len(msg.Data)
			h, payload, err := wire.ParseFrame(msg.Data, wire.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			got.samplesPerS, got.trainMS = h.SamplesPerS, h.TrainMS
			h.SamplesPerS = 0
			if got.timedBytes, err = wire.FrameLen(&h, payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv.send(&wire.RunEnd{Reason: "done"})
	if err := <-done; !errors.Is(err, participant.ErrRunEnded) {
		t.Fatalf("Session = %v; want ErrRunEnded", err)
	}
	got.sleeps = clock.recorded()
	return got
}

// TestProfilePacing: on a virtual clock a client waits exactly the
// profile's download, compute and upload times (the update's bytes less
// the digits of its measured speed, which real time decides), a phone-low client waits
// 5x a laptop's compute time for the same round, and its update reports
// the emulated compute time beside the speed really measured.
func TestProfilePacing(t *testing.T) {
	flops := newModel(t).TrainFLOPs(30 * 2) // 30 samples, 2 epochs
	compute := map[string]time.Duration{}
	for _, name := range []string{"laptop", "phone-low"} {
		p, _ := profile.Lookup(name)
		got := paceRound(t, p)
		if got.helloProfile != name {
			t.Errorf("%s: hello.device.profile = %q; want %q", name, got.helloProfile, name)
		}
		want := []time.Duration{p.Download(got.modelBytes), p.Compute(flops), p.Upload(got.timedBytes)}
		if len(got.sleeps) != 3 || got.sleeps[0] != want[0] || got.sleeps[1] != want[1] || got.sleeps[2] != want[2] {
			t.Fatalf("%s: slept %v; want download, compute, upload %v", name, got.sleeps, want)
		}
		compute[name] = got.sleeps[1]
		if got.trainMS != want[1].Milliseconds() || !(got.samplesPerS > 0) {
			t.Errorf("%s: update reports train_ms %d, %g samples/s; want the emulated compute time %d ms and the speed measured", name, got.trainMS, got.samplesPerS, want[1].Milliseconds())
		}
		phases := []string{participant.PhaseDownload, participant.PhaseCompute, participant.PhaseUpload}
		if len(got.emulate) != 3 {
			t.Fatalf("%s: %d emulate events; want 3", name, len(got.emulate))
		}
		for i, e := range got.emulate {
			if e.Phase != phases[i] || e.Profile != name || e.WaitSeconds != want[i].Seconds() ||
				!strings.HasPrefix(e.Message, "emulating "+name+": ") || !strings.HasSuffix(e.Message, " of "+phases[i]+" left") {
				t.Errorf("%s: emulate event %d = %+v; want phase %s, %v", name, i, e, phases[i], want[i])
			}
		}
	}
	if r := float64(compute["phone-low"]) / float64(compute["laptop"]); math.Abs(r-5) > 1e-3 {
		t.Errorf("phone-low computed %v, laptop %v: ratio %.4f; want 5", compute["phone-low"], compute["laptop"], r)
	}
}

// TestCancelledRoundStopsWaiting: an emulated wait ends when the round
// does (round_end, run_end, a lost connection), and nothing is uploaded.
func TestCancelledRoundStopsWaiting(t *testing.T) {
	tests := []struct {
		name    string
		blockAt int // 0 download, 1 compute, 2 upload
		end     func(*server)
		want    string // in the session's error event, or "" when the session fails
	}{
		{"round_end during compute", 1, func(s *server) { s.send(&wire.RoundEnd{Round: 1, ModelVersion: 2}) }, "ended the round before training finished"},
		{"round_end during upload", 2, func(s *server) { s.send(&wire.RoundEnd{Round: 1, ModelVersion: 2}) }, "ended the round before the update was sent"},
		{"round_end during download", 0, func(s *server) { s.send(&wire.RoundEnd{Round: 1, ModelVersion: 2}) }, "ended the round before the model arrived"},
		{"run_end during compute", 1, func(s *server) { s.send(&wire.RunEnd{Reason: "stopped"}) }, ""},
		{"connection lost during compute", 1, func(s *server) { s.conn.Close() }, ""},
	}
	p, _ := profile.Lookup("phone-low")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			clock.blockAt = tt.blockAt
			var mu sync.Mutex
			var errs []string
			srv, _, done := start(t, participant.Options{Profile: &p, Clock: clock, Events: func(e participant.Event) {
				if e.Type == participant.EventError {
					mu.Lock()
					errs = append(errs, e.Message)
					mu.Unlock()
				}
			}})
			srv.recv()
			srv.send(welcome("float32+zstd"))
			m := newModel(t)
			srv.send(&wire.RoundStart{Round: 1, ModelVersion: 1, Epochs: 1, Batch: 5, LR: 0.1, Seed: 3})
			srv.model(wire.KindModel, 1, 1, m.Params, nil, m.TensorShapes(), "float32+zstd")
			select {
			case <-clock.sleeping:
			case <-time.After(20 * time.Second):
				t.Fatal("the client never started the blocking wait")
			}
			tt.end(srv)
			if tt.want != "" {
				srv.send(&wire.RunEnd{Reason: "done"})
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the session did not end: the wait did not stop")
			}
			if tt.name == "connection lost during compute" {
				if err == nil || errors.Is(err, participant.ErrRunEnded) {
					t.Errorf("Session = %v; want the connection's error", err)
				}
			} else if !errors.Is(err, participant.ErrRunEnded) {
				t.Errorf("Session = %v; want ErrRunEnded", err)
			}
			for {
				msg, err := srv.conn.Recv(srv.ctx)
				if err != nil {
					break
				}
				if msg.Binary {
					t.Errorf("the client uploaded %d bytes after the round ended", len(msg.Data))
				}
			}
			if n := len(clock.recorded()); n != tt.blockAt+1 {
				t.Errorf("the client waited %d times; want it to stop after wait %d", n, tt.blockAt+1)
			}
			if tt.want != "" {
				mu.Lock()
				defer mu.Unlock()
				if !strings.Contains(strings.Join(errs, "\n"), tt.want) {
					t.Errorf("error events %q; want one saying %q", errs, tt.want)
				}
			}
		})
	}
}

// TestProfileDrop: a profile that always drops waits part of its compute
// time, then closes the connection without uploading.
func TestProfileDrop(t *testing.T) {
	p := profile.Profile{Name: "flaky", TrainGFLOPS: 1e-3, DownMbps: 100, UpMbps: 100, DropProb: 1}
	clock := newFakeClock()
	srv, _, done := start(t, participant.Options{Profile: &p, Clock: clock, DropProb: 0})
	srv.recv()
	srv.send(welcome("float32+zstd"))
	m := newModel(t)
	srv.send(&wire.RoundStart{Round: 1, ModelVersion: 1, Epochs: 2, Batch: 5, LR: 0.1, Seed: 3})
	srv.model(wire.KindModel, 1, 1, m.Params, nil, m.TensorShapes(), "float32+zstd")
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "dropped on purpose") {
		t.Fatalf("Session = %v; want an emulated drop", err)
	}
	for {
		msg, err := srv.conn.Recv(srv.ctx)
		if err != nil {
			break
		}
		if msg.Binary {
			t.Fatal("a dropping client uploaded its update")
		}
	}
	sleeps := clock.recorded()
	work := p.Compute(m.TrainFLOPs(30 * 2))
	if len(sleeps) != 2 || !(sleeps[1] > 0 && sleeps[1] < work) {
		t.Errorf("slept %v; want the download, then part of the %v of compute", sleeps, work)
	}
}
