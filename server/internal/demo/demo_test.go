package demo

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
)

func newCoord(t *testing.T) *coord.Coordinator {
	t.Helper()
	st, err := store.Open(context.Background(), store.MemoryPath)
	if err != nil {
		t.Fatal(err)
	}
	c := coord.New(coord.Deps{Store: st,
		Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, "") }})
	t.Cleanup(func() {
		c.Close()
		st.Close()
	})
	return c
}

func TestConfigIsValid(t *testing.T) {
	cfg := Config()
	if err := cfg.Normalize(); err != nil {
		t.Fatalf("Config().Normalize() = %v", err)
	}
	if !cfg.Public || cfg.Clients != 10 || cfg.Fraction != 1 || cfg.EvalLimit != 0 {
		t.Errorf("Config() = %+v; want a public run on 10 slices, every tab each round, evaluated on the whole test set", cfg)
	}
}

// TestEnsureAndKeep: Ensure creates the demo run once and then returns it;
// an active demo run of another configuration is replaced; when the demo
// run ends, Keep starts a fresh one.
func TestEnsureAndKeep(t *testing.T) {
	ctx := context.Background()
	c := newCoord(t)
	log := slog.New(slog.DiscardHandler)
	old := Config()
	old.Clients = 100
	stale, err := c.CreateRun(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Ensure(ctx, c, log)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID() == stale.ID() || r.Config().Clients != 10 {
		t.Fatalf("Ensure kept the demo run of the old configuration")
	}
	if s := stale.View().Status; s != coord.StatusStopped {
		t.Errorf("old demo run is %s; want stopped", s)
	}
	again, err := Ensure(ctx, c, log)
	if err != nil || again.ID() != r.ID() {
		t.Fatalf("second Ensure = %v, %v; want the same run %s", again, err, r.ID())
	}

	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started := make(chan *coord.Run, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Keep(kctx, c, r, 10*time.Millisecond, log, func(n *coord.Run) { started <- n })
	}()
	if err := r.Stop(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-started:
		if n.ID() == r.ID() || !active(n) || !isDemo(n) {
			t.Errorf("Keep started %s (%s); want a fresh, active demo run", n.ID(), n.View().Status)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Keep did not start a fresh demo run after the first one ended")
	}
	cancel()
	<-done
}
