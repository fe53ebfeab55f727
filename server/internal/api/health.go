package api

import (
	"context"
	"net/http"
	"time"
)

// pingTimeout bounds the database check of a readiness probe.
const pingTimeout = 2 * time.Second

// health is the answer of /healthz and /readyz.
type health struct {
	Status string `json:"status"`           // "ok", "ready" or "not ready"
	Reason string `json:"reason,omitempty"` // why not ready
}

// MarkReady ends the start of a server made with Options.Starting: the
// coordinator has started (stored runs resumed, the demo run created), so
// /readyz answers 200 from now on while the database answers and the
// server is not draining, and participants are let in.
func (s *Server) MarkReady() { s.ready.Store(true) }

// Drain starts a shutdown: /readyz answers 503 so that load balancers stop
// sending traffic, new participant WebSockets, run creations and
// run_real_training are refused with 503, and participant connections that
// the coordinator closes from now on get a bye and WebSocket close code 1012
// (service restart), so that clients reconnect to the restarted server
// instead of giving up. Drain does not close anything itself.
func (s *Server) Drain() { s.draining.Store(true) }

// healthz answers whether the process is alive and serving HTTP: a liveness
// probe that fails only when the process is wedged.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, health{Status: "ok"})
}

// readyz answers whether the server should get traffic: the coordinator
// has started, the server is not shutting down, and the database answers
// within pingTimeout. Otherwise 503 with the reason.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	notReady := func(reason string) {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, health{Status: "not ready", Reason: reason})
	}
	switch {
	case s.draining.Load():
		notReady("shutting down")
		return
	case !s.ready.Load():
		notReady("starting: resuming runs")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), pingTimeout)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		notReady("database: " + err.Error())
		return
	}
	writeJSON(w, http.StatusOK, health{Status: "ready"})
}

// refuseUnlessServing wraps a handler that starts new work: while the
// server starts (Options.Starting, before MarkReady) or drains, it answers
// 503 with Retry-After instead, which clients treat as "try again".
func (s *Server) refuseUnlessServing(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		msg := ""
		switch {
		case s.draining.Load():
			msg = "the server is shutting down; try again in a moment"
		case !s.ready.Load():
			msg = "the server is starting; try again in a moment"
		default:
			h(w, r)
			return
		}
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, msg)
	}
}
