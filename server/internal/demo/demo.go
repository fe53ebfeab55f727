// Package demo is the public demo run that `serve --demo` keeps going: its
// configuration, sized so that a handful of browser tabs reaches 97% test
// accuracy on MNIST within minutes, and a keeper that starts a fresh run
// whenever the current one ends.
//
// It uses the round engine only through coord's exported API
// (Coordinator.Runs, CreateRun, Run.Config, View, Done, Stop).
package demo

import (
	"context"
	"log/slog"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
)

// Name is the demo run's name; with Public it identifies a demo run.
const Name = "demo: mnist-2nn on MNIST"

// RestartDelay is how long serve leaves a finished demo run on screen (its
// final accuracy on the presenter view and the tabs) before Keep starts the
// next one.
const RestartDelay = 10 * time.Second

// Config is the demo run: mnist-2nn on MNIST cut into 10 IID slices of
// 6,000 images, so that each tab trains on a tenth of the training set and
// three tabs together hold 18,000 images; every connected tab takes part in
// every round (fraction 1), the first tab starts the run alone, and the
// model is evaluated on all 10,000 test images, the figure centralized
// training is compared with. `sim --clients 10 --join 3 --fraction 1
// --rounds 30` with these settings reaches 0.97 in round 8 (README.md).
// At most 10 tabs can join: each holds its own slice.
func Config() coord.Config {
	return coord.Config{Name: Name, Model: "mnist-2nn", Dataset: "mnist", Partition: "iid",
		Clients: 10, Rounds: 30, Fraction: 1, MinClients: 1, StartClients: 1, LocalEpochs: 1, // batch and lr: the model's defaults
		RoundDeadline: coord.Duration(60 * time.Second), Seed: 1, Public: true}
}

// isDemo reports whether r is a demo run (of any configuration).
func isDemo(r *coord.Run) bool {
	cfg := r.Config()
	return cfg.Public && cfg.Name == Name
}

// active reports whether r's loop still runs (waiting or running).
func active(r *coord.Run) bool {
	s := r.View().Status
	return s == coord.StatusWaiting || s == coord.StatusRunning
}

// Ensure returns the active demo run, creating one if there is none. An
// active demo run whose configuration is not Config's (left by an older
// version of the server) is stopped and replaced.
func Ensure(ctx context.Context, c *coord.Coordinator, log *slog.Logger) (*coord.Run, error) {
	want := Config()
	if err := want.Normalize(); err != nil {
		return nil, err
	}
	for _, r := range c.Runs() {
		if !isDemo(r) || !active(r) {
			continue
		}
		if r.Config().Same(want) {
			return r, nil
		}
		log.Info("replacing a demo run of an older configuration", "run", r.ID())
		if err := r.Stop(ctx, "replaced by the current demo configuration"); err != nil {
			log.Warn("stopping an old demo run", "run", r.ID(), "err", err)
		}
	}
	return c.CreateRun(ctx, Config())
}

// Keep watches the demo run r and, each time it ends (finished, stopped
// from the dashboard, or failed), starts a fresh one after delay and calls
// started with it. It returns when ctx is done or the
// coordinator closes (a run whose loop ended while still active was closed,
// not finished).
func Keep(ctx context.Context, c *coord.Coordinator, r *coord.Run, delay time.Duration, log *slog.Logger, started func(*coord.Run)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.Done():
		}
		if active(r) {
			return // the coordinator closed
		}
		log.Info("the demo run ended; starting a fresh one", "run", r.ID(), "status", r.View().Status, "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		next, err := Ensure(ctx, c, log)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("starting a fresh demo run", "err", err)
			}
			return
		}
		r = next
		started(r)
	}
}
