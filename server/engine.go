package main

// This file is the server's one adapter between the round engine
// (server/internal/coord) and the metrics package: the engine reports what
// it does through coord.Deps.Observer, which *metrics.Metrics implements,
// and runStates reads the live runs' views for a scrape.

import (
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/metrics"
)

// runStates lists the coordinator's live runs for a metrics scrape (nil
// before the coordinator exists).
func runStates(c *coord.Coordinator) []metrics.Run {
	if c == nil {
		return nil
	}
	runs := c.Runs()
	out := make([]metrics.Run, 0, len(runs))
	for _, r := range runs {
		v := r.View()
		out = append(out, metrics.Run{ID: v.ID, Status: v.Status, Connected: v.Connected, Clients: v.Known,
			Round: v.Round, ModelVersion: v.ModelVersion, TestAccuracy: v.TestAccuracy})
	}
	return out
}

// The engine's observer is the metrics.
var _ coord.Observer = (*metrics.Metrics)(nil)
