// Package sim runs in-process participants against the coordinator, through
// the same code path as real clients: each virtual client is a
// participant.Client talking the wire protocol to Coordinator.Serve over an
// in-memory link.Pipe instead of a WebSocket. Simulations, the seed
// system's one-round endpoint and integration tests use it.
package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/server/internal/vclock"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/participant"
	"github.com/qflare/qflare/shared/profile"
	"github.com/qflare/qflare/shared/wire"
)

// Options configures virtual clients.
type Options struct {
	// Parallel bounds how many clients train at once (default GOMAXPROCS),
	// which also bounds the memory their trainers take.
	Parallel int
	// Slowdown and DropProb emulate slow and flaky devices (see
	// participant.Options); Seed drives the drops.
	Slowdown float64
	DropProb float64
	Seed     uint64
	// Configure, when set, can adjust each client's options (attacks).
	Configure func(i int, o *participant.Options)
	Log       *slog.Logger
	// Clock, when set, is the virtual clock the simulation runs on (the
	// coordinator's too): clients connect through tracked pipes, and
	// every wait of theirs is virtual.
	Clock *vclock.Clock
	// Profiles, when set, gives client i the device profile Profiles[i]:
	// it takes the profile's download, compute and upload time (on Clock),
	// drops tasks with its drop chance and goes offline for the profile's
	// offline periods.
	Profiles []profile.Profile
}

// Join connects n virtual clients to run and keeps them connected
// (reconnecting after drops) until the run ends or ctx is done. The returned
// function waits for all of them.
func Join(ctx context.Context, c *coord.Coordinator, run *coord.Run, n int, opt Options) (wait func()) {
	if opt.Parallel <= 0 {
		opt.Parallel = runtime.GOMAXPROCS(0)
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	pool := newTrainerPool(opt.Parallel)
	var wg sync.WaitGroup
	if opt.Clock != nil {
		// No virtual time passes while the clients join.
		opt.Clock.Hold()
		defer opt.Clock.Release()
	}
	for i := 0; i < n; i++ {
		po := participant.Options{
			Run: run.ID(), Token: run.Token(),
			Device:   wire.Device{Kind: wire.DeviceHeadless, UserAgent: "qflare-sim", Platform: runtime.GOOS + "/" + runtime.GOARCH, Cores: 1, Workers: 1},
			Fetch:    fetcher(run),
			Slowdown: opt.Slowdown, DropProb: opt.DropProb, Seed: opt.Seed + uint64(i),
			NewTrainer: func(m *nn.Model, set *data.Set) (participant.Trainer, error) {
				return &pooledTrainer{pool: pool, arch: archOf(m), set: set}, nil
			},
		}
		var prof *profile.Profile
		if i < len(opt.Profiles) {
			prof = &opt.Profiles[i]
			po.Profile, po.Device.Profile = prof, prof.Name
		}
		if opt.Configure != nil {
			opt.Configure(i, &po)
		}
		var clock *vclock.Named
		if opt.Clock != nil {
			clock = opt.Clock.Named(fmt.Sprintf("%08d", i)) // ties between clients resolve by i
			po.Clock = clock
			opt.Clock.Hold() // the client's goroutine's, released when it ends
		}
		wg.Add(1)
		avail := rand.New(rand.NewPCG(opt.Seed+uint64(i), 0xa7a11))
		// Clients join one after the other, so that client i gets slice i
		// and a seeded simulation gives every slice the same device
		// profile, drops and availability each time.
		welcomed := make(chan struct{})
		var once sync.Once
		events := po.Events
		po.Events = func(e participant.Event) {
			if e.Type == participant.EventWelcome {
				once.Do(func() { close(welcomed) })
			}
			if events != nil {
				events(e)
			}
		}
		cl := participant.New(po)
		go func() {
			defer wg.Done()
			defer once.Do(func() { close(welcomed) }) // refused, or ctx done
			keepConnected(ctx, c, cl, opt.Log, clock, prof, avail)
		}()
		select {
		case <-welcomed:
		case <-ctx.Done():
		}
	}
	return wg.Wait
}

// keepConnected runs sessions until the run ends, the server refuses the
// client, or ctx is done.
//
// A client whose profile has offline periods stays connected for an online
// period drawn from avail, then goes offline (its connection closes, as a
// tab closed or a phone out of coverage) for an offline period.
func keepConnected(ctx context.Context, c *coord.Coordinator, cl *participant.Client, log *slog.Logger, clock *vclock.Named,
	prof *profile.Profile, avail *rand.Rand) {
	sleep := func(d time.Duration) {
		if clock != nil {
			clock.Sleep(ctx, d)
			return
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	if clock != nil {
		defer clock.Release()
	}
	for ctx.Err() == nil {
		a, b := link.Pipe(16)
		if clock != nil {
			a, b = link.TrackedPipe(clock)
		}
		go c.Serve(ctx, a, coord.PeerInfo{Remote: "sim", Kind: store.KindVirtual})
		var offline *offlineTimer
		if prof != nil && !prof.AlwaysOnline() {
			offline = goOfflineAfter(clock, prof.OnlinePeriod(avail), b)
		}
		err := cl.Session(ctx, b)
		var refused *participant.RefusedError
		if errors.Is(err, participant.ErrRunEnded) || errors.As(err, &refused) {
			offline.stop()
			log.Info("virtual client done", "client", cl.ID(), "err", err)
			return
		}
		if offline.stop() {
			log.Info("virtual client reconnecting", "client", cl.ID(), "err", err)
			sleep(reconnectDelay)
			continue
		}
		log.Info("virtual client offline", "client", cl.ID(), "profile", prof.Name)
		sleep(prof.OfflinePeriod(avail))
	}
}

// offlineTimer closes a client's connection when its online period ends.
type offlineTimer struct {
	stopFn func() bool
}

// goOfflineAfter closes conn after d (on clock, or in real time).
func goOfflineAfter(clock *vclock.Named, d time.Duration, conn link.Conn) *offlineTimer {
	if clock != nil {
		t := clock.AfterFunc(d, func() { conn.Close() })
		return &offlineTimer{stopFn: t.Stop}
	}
	t := time.AfterFunc(d, func() { conn.Close() })
	return &offlineTimer{stopFn: t.Stop}
}

// stop cancels the timer; it reports whether the period had not ended
// (true for no timer).
func (t *offlineTimer) stop() bool { return t == nil || t.stopFn() }

// reconnectDelay is how long a virtual client waits before it reconnects.
const reconnectDelay = 20 * time.Millisecond

// fetcher returns the client's slice as a real client gets it: serialised
// by the server and parsed by the client.
func fetcher(run *coord.Run) func(ctx context.Context, w *wire.Welcome) (*data.Set, error) {
	return func(ctx context.Context, w *wire.Welcome) (*data.Set, error) {
		s, err := run.Slice(w.ClientID)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := data.WriteSet(&buf, s); err != nil {
			return nil, err
		}
		return data.ReadSet(&buf, data.MaxSamples)
	}
}

// trainerPool lends nn trainers to virtual clients, so that memory grows with
// the number of clients training at once, not with the number of clients.
type trainerPool struct {
	sem  chan struct{}
	mu   sync.Mutex
	free map[string][]*participant.LocalTrainer
}

func newTrainerPool(parallel int) *trainerPool {
	return &trainerPool{sem: make(chan struct{}, parallel), free: map[string][]*participant.LocalTrainer{}}
}

// arch names a model architecture: what a pooled trainer must match.
type arch struct {
	name    string
	in      nn.Shape
	classes int
}

func archOf(m *nn.Model) arch { return arch{m.Name, m.Input, m.Classes} }

// pooledTrainer trains a client's data with a trainer borrowed for the
// round. It keeps no model of its own, so an idle virtual client holds no
// weights.
type pooledTrainer struct {
	pool *trainerPool
	arch arch
	set  *data.Set
}

func (t *pooledTrainer) Train(ctx context.Context, global, local []float32, cfg participant.RoundConfig, progress func(nn.Progress)) (nn.FitStats, error) {
	select {
	case t.pool.sem <- struct{}{}:
	case <-ctx.Done():
		return nn.FitStats{}, ctx.Err()
	}
	defer func() { <-t.pool.sem }()
	key := fmt.Sprintf("%s/%v/%d", t.arch.name, t.arch.in, t.arch.classes)
	t.pool.mu.Lock()
	var lt *participant.LocalTrainer
	if free := t.pool.free[key]; len(free) > 0 {
		lt, t.pool.free[key] = free[len(free)-1], free[:len(free)-1]
	}
	t.pool.mu.Unlock()
	if lt == nil {
		m, err := nn.New(t.arch.name, t.arch.in, t.arch.classes, 0)
		if err != nil {
			return nn.FitStats{}, err
		}
		lt = participant.NewLocalTrainer(m, t.set)
	}
	defer func() {
		t.pool.mu.Lock()
		t.pool.free[key] = append(t.pool.free[key], lt)
		t.pool.mu.Unlock()
	}()
	return lt.TrainOn(ctx, t.set, global, local, cfg, progress)
}
