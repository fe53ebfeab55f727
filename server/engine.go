package main

// This file is the server's one adapter between the round engine
// (server/internal/coord) and the metrics package: it reads the engine's
// exported views and events and turns them into metrics calls. Re-wiring to
// another engine means rewriting these two functions.

import (
	"sync"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/metrics"
)

// runStates lists the coordinator's runs for a metrics scrape (nil before
// the coordinator exists).
func runStates(c *coord.Coordinator) []metrics.Run {
	if c == nil {
		return nil
	}
	runs := c.Runs()
	out := make([]metrics.Run, 0, len(runs))
	for _, r := range runs {
		v := r.View()
		out = append(out, metrics.Run{ID: v.ID, Status: v.Status, Connected: v.Connected, Clients: len(v.Clients),
			Round: v.Round, ModelVersion: v.ModelVersion, TestAccuracy: v.TestAccuracy})
	}
	return out
}

// engineBuffer is how many events the metrics subscriber may fall behind
// before it misses some (it only increments counters, so it does not).
const engineBuffer = 1024

// watchEngine counts the coordinator's events into m: rounds closed (and
// how long they took), updates by verdict, updates the aggregator
// excluded, runs that ended. It returns the function that stops it.
func watchEngine(c *coord.Coordinator, m *metrics.Metrics) (stop func()) {
	events, unsubscribe := c.Bus().Subscribe(engineBuffer, false)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case ev := <-events:
				countEvent(m, ev)
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			unsubscribe()
			close(done)
			wg.Wait()
		})
	}
}

func countEvent(m *metrics.Metrics, ev coord.Event) {
	switch ev.Type {
	case coord.EvRoundEnded:
		rv, ok := ev.Data.(*coord.RoundView)
		if !ok {
			return
		}
		m.RoundEnded(time.Duration(rv.Seconds*float64(time.Second)), rv.Failed != "")
		excluded := 0
		for _, v := range rv.Verdicts {
			if v.Excluded {
				excluded++
			}
		}
		m.Excluded(excluded)
	case coord.EvUpdate:
		u, ok := ev.Data.(coord.UpdateView)
		if !ok {
			return
		}
		switch {
		case u.Accepted:
			m.Update("accepted", "")
		case u.Code == "declined":
			m.Update("declined", "")
		default:
			m.Update("rejected", u.Code)
		}
	case coord.EvRunStatus:
		if v, ok := ev.Data.(coord.RunView); ok && v.Status != coord.StatusWaiting && v.Status != coord.StatusRunning {
			m.RunEnded(v.Status)
		}
	}
}
