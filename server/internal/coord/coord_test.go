package coord_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/sim"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
)

// newCoordinator returns a coordinator on a private in-memory store.
func newCoordinator(t *testing.T) (*coord.Coordinator, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), store.MemoryPath)
	if err != nil {
		t.Fatal(err)
	}
	c := coord.New(coord.Deps{Store: st,
		Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, "") }})
	t.Cleanup(func() { c.Close(); st.Close() })
	return c, st
}

// simulate runs cfg to the end with n virtual clients.
func simulate(t *testing.T, c *coord.Coordinator, cfg coord.Config, n int) *coord.Run {
	t.Helper()
	cfg.StartClients, cfg.MinClients, cfg.NoDeadline = n, 1, true
	run, err := c.CreateRun(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	wait := sim.Join(ctx, c, run, n, sim.Options{})
	select {
	case <-run.Done():
	case <-ctx.Done():
		t.Fatal("the run did not finish")
	}
	cancel()
	wait()
	return run
}

// TestDownlinkDelta: with a delta down codec, a client that holds the
// previous version gets the change, smaller than the whole model; training
// proceeds as usual.
func TestDownlinkDelta(t *testing.T) {
	c, st := newCoordinator(t)
	run := simulate(t, c, coord.Config{Model: "mlp:64", Clients: 4, ClientsPerRound: 4, Rounds: 3, Batch: 20, EvalLimit: 500,
		DownCodec: "delta+int8+zstd", Seed: 3}, 4)
	ctx := context.Background()
	first, err := st.Updates(ctx, run.ID(), 1)
	if err != nil || len(first) != 4 {
		t.Fatalf("round 1 updates: %d, %v; want 4", len(first), err)
	}
	full := first[0].BytesDown
	for round := 2; round <= 3; round++ {
		ups, _ := st.Updates(ctx, run.ID(), round)
		for _, u := range ups {
			if u.BytesDown == 0 || u.BytesDown >= full {
				t.Errorf("round %d: client %s got %d model bytes; want a delta smaller than the full %d", round, u.ClientID, u.BytesDown, full)
			}
		}
	}
	rounds, _ := st.Rounds(ctx, run.ID())
	if last := rounds[len(rounds)-1]; last.TestAccuracy < 0.85 {
		t.Errorf("accuracy after 3 rounds with delta downlink = %.4f; want ≥ 0.85", last.TestAccuracy)
	}
}

// TestSelectionFollowsFraction: a round selects ceil(fraction × connected)
// clients, at least min_clients. (With a model and a strategy given as
// parameterised specs, which travel in every welcome and update.)
func TestSelectionFollowsFraction(t *testing.T) {
	c, st := newCoordinator(t)
	run := simulate(t, c, coord.Config{Clients: 100, Fraction: 0.03, Rounds: 2, Batch: 50, EvalLimit: 200, Seed: 5,
		Model: "mlp:64,32", Strategy: "trimmed-mean:0.2"}, 100)
	rounds, err := st.Rounds(context.Background(), run.ID())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rounds {
		if r.NSelected != 3 || r.NAccepted != 3 {
			t.Errorf("round %d selected %d, accepted %d; want 3 of 100 at fraction 0.03", r.Round, r.NSelected, r.NAccepted)
		}
	}
}

// TestStopShowsStopped: once Stop returns, the run's view says stopped, and
// so does the status event the dashboard gets.
func TestStopShowsStopped(t *testing.T) {
	c, _ := newCoordinator(t)
	run, err := c.CreateRun(context.Background(), coord.Config{Clients: 10, Rounds: 2, EvalLimit: 200, Model: "mlp:16"})
	if err != nil {
		t.Fatal(err)
	}
	sub := run.Subscribe(16)
	defer sub.Close()
	if err := run.Stop(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if got := run.View().Status; got != coord.StatusStopped {
		t.Errorf("View().Status after Stop = %q; want %q", got, coord.StatusStopped)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-sub.C:
			if ev.Type != coord.EvRunStatus || ev.Run != run.ID() {
				continue
			}
			if got := ev.Status.Status; got != coord.StatusStopped {
				t.Errorf("run status event says %q; want %q", got, coord.StatusStopped)
			}
			return
		case <-timeout:
			t.Fatal("no run status event after Stop")
		}
	}
}

// TestConfigErrors: a bad configuration is refused with every problem named.
func TestConfigErrors(t *testing.T) {
	cfg := coord.Config{Model: "mnist-cnn", Dataset: "cifar10", Rounds: -2, Fraction: 2, Codec: "gzip", Strategy: "krum:x"}
	err := cfg.Normalize()
	if err == nil {
		t.Fatal("Normalize accepted a bad configuration")
	}
	for _, want := range []string{"rounds", "fraction", "codec", "model", "strategy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestAsyncConfig: mode async gets FedBuff's defaults, and its settings
// are checked with reasons a person can act on.
func TestAsyncConfig(t *testing.T) {
	cfg := coord.Config{Mode: coord.ModeAsync}
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	if cfg.Buffer != 10 || cfg.Concurrency != 20 || cfg.Staleness != "sqrt" || cfg.StalenessNorm != coord.StaleNormSamples || cfg.MaxStaleness != 32 || cfg.Selection != coord.SelectRandom {
		t.Errorf("async defaults %+v; want buffer 10, concurrency 20, sqrt, staleness_norm samples, max 32, random", cfg)
	}
	tests := []struct {
		cfg  coord.Config
		want string
	}{
		{coord.Config{Mode: "fast"}, `mode "fast"`},
		{coord.Config{Buffer: 5}, "settings of mode async"},
		{coord.Config{Mode: coord.ModeAsync, Concurrency: 500}, "concurrency 500"},
		{coord.Config{Mode: coord.ModeAsync, Staleness: "hinge:1"}, "hinge:A,B"},
		{coord.Config{Mode: coord.ModeAsync, Staleness: "poly"}, `staleness "poly"`},
		{coord.Config{Mode: coord.ModeAsync, StalenessNorm: "buffer"}, `staleness_norm "buffer"`},
		{coord.Config{StalenessNorm: coord.StaleNormWeights}, "settings of mode async"},
		{coord.Config{Mode: coord.ModeAsync, OverSelect: 1.3}, "over_select is a setting of mode sync"},
		{coord.Config{Selection: "fastest"}, `selection "fastest"`},
		{coord.Config{Selection: coord.SelectDeadline, NoDeadline: true}, "needs a round_deadline"},
		{coord.Config{Strategy: "median", ServerLR: 2}, "takes no server learning rate"},
		{coord.Config{Strategy: "fedavg:2", ServerLR: 3}, "differs from the strategy's eta"},
	}
	for _, tt := range tests {
		err := tt.cfg.Normalize()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Normalize(%+v) = %v; want an error about %q", tt.cfg, err, tt.want)
		}
	}
	for _, s := range []struct {
		spec string
		tau  int
		want float64
	}{{"sqrt", 3, 0.5}, {"constant", 9, 1}, {"hinge:1,2", 2, 1}, {"hinge:0.5,2", 6, 1.0 / 3}} {
		st, err := coord.ParseStaleness(s.spec)
		if err != nil || math.Abs(st.Weight(s.tau)-s.want) > 1e-12 {
			t.Errorf("%s weight at τ=%d = %v, %v; want %v", s.spec, s.tau, st.Weight(s.tau), err, s.want)
		}
	}
}
