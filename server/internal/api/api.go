// Package api is the server's HTTP surface: the REST API (JSON, with JSON
// errors and 4xx for bad input), the WebSocket endpoint participants join
// through, the dashboard's server-sent event feed, and the embedded pages.
package api

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/metrics"
	"github.com/qflare/qflare/server/internal/store"
)

// Options configures the HTTP handler.
type Options struct {
	Coord *coord.Coordinator
	// AdminToken guards run creation and stopping.
	AdminToken string
	// Assets serves the pages and static files (package www); nil serves none.
	Assets http.Handler
	Log    *slog.Logger
	// AllowedOrigins lists extra origins allowed to open WebSockets and to
	// send state-changing requests (the default allows only same-origin
	// pages).
	AllowedOrigins []string
	// PublicURL is the base URL the server is reached at (--public-url);
	// empty: join URLs are built from each request's Host. /api/info shows
	// it for the presenter view's QR code.
	PublicURL string
	// Metrics, when set, is served at /metrics, counts HTTP requests and
	// participant traffic.
	Metrics *metrics.Metrics
	// Starting makes the server start not ready: /readyz answers 503 and
	// new participants and runs are refused (503, so that clients retry)
	// until MarkReady, while the caller resumes stored runs.
	Starting bool
	// AllowedHosts are extra host names (without port) the server answers
	// to, besides localhost, IP addresses and PublicURL's host: requests
	// naming another host are refused (DNS rebinding).
	AllowedHosts []string
	// Routes are extra handlers by ServeMux pattern ("POST /api/..."),
	// behind the same host and cross-site checks.
	Routes map[string]http.Handler
	// Clock is the time source of the failed-hello limiter (default: the
	// system clock).
	Clock func() time.Time
	// MessageWait bounds how long a WebSocket message may take to arrive
	// once it has started (default DefaultMessageWait).
	MessageWait time.Duration
	// ShardToken, when set, lets edge shards link at GET /shard with it
	// (shard.go).
	ShardToken string
}

// Server is the HTTP handler. Safe for concurrent use.
type Server struct {
	opt     Options
	c       *coord.Coordinator
	st      *store.Store
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler
	hosts   hostPolicy
	hellos  *limiter // failed hellos per remote address

	ready, draining atomic.Bool // see MarkReady and Drain
}

// New returns the handler.
func New(opt Options) *Server {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Clock == nil {
		opt.Clock = time.Now
	}
	if opt.MessageWait <= 0 {
		opt.MessageWait = DefaultMessageWait
	}
	s := &Server{opt: opt, c: opt.Coord, st: opt.Coord.Store(), log: opt.Log, mux: http.NewServeMux(),
		hosts: newHostPolicy(opt.PublicURL, opt.AllowedHosts), hellos: newLimiter(opt.Clock)}
	s.ready.Store(!opt.Starting)
	s.routes()
	cop := http.NewCrossOriginProtection()
	for _, o := range opt.AllowedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			s.log.Warn("ignoring an allowed origin", "origin", o, "err", err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-site request refused: state-changing requests must come from this server's own pages or carry no browser origin")
	}))
	s.handler = opt.Metrics.HTTP(s.hosts.guard(cop.Handler(s.mux)))
	return s
}

// ServeHTTP checks the Host, refuses cross-site state-changing requests,
// counts the request (Metrics) and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /api/info", s.info)
	m.HandleFunc("GET /api/runs", s.listRuns)
	m.HandleFunc("POST /api/runs", s.admin(s.refuseUnlessServing(s.createRun)))
	m.HandleFunc("GET /api/runs/{id}", s.getRun)
	m.HandleFunc("POST /api/runs/{id}/stop", s.admin(s.stopRun))
	m.HandleFunc("GET /api/runs/{id}/rounds", s.listRounds)
	m.HandleFunc("GET /api/runs/{id}/clients", s.listClients)
	m.HandleFunc("GET /api/runs/{id}/updates", s.listUpdates)
	m.HandleFunc("GET /api/runs/{id}/model", s.getModel)
	m.HandleFunc("GET /api/runs/{id}/slice", s.getSlice)
	m.HandleFunc("GET /api/runs/{id}/events", s.events)
	m.HandleFunc("GET /ws", s.refuseUnlessServing(s.websocket))
	if s.opt.ShardToken != "" {
		m.HandleFunc("GET /shard", s.refuseUnlessServing(s.shard)) // edge shards (shard.go)
	}
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	if s.opt.Metrics != nil {
		m.Handle("GET /metrics", s.opt.Metrics.Handler())
	}
	// Profiles can reveal secrets held in memory (tokens): admin only.
	m.HandleFunc("GET /debug/pprof/", s.admin(pprof.Index))
	m.HandleFunc("GET /debug/pprof/cmdline", s.admin(pprof.Cmdline))
	m.HandleFunc("GET /debug/pprof/profile", s.admin(pprof.Profile))
	m.HandleFunc("GET /debug/pprof/symbol", s.admin(pprof.Symbol))
	m.HandleFunc("GET /debug/pprof/trace", s.admin(pprof.Trace))
	for pattern, h := range s.opt.Routes {
		m.Handle(pattern, s.refuseUnlessServing(h.ServeHTTP))
	}
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path))
	})
	if s.opt.Assets != nil {
		m.Handle("/", s.opt.Assets)
	}
}

// httpError is an error with the status it should be answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status, fmt.Sprintf(format, args...)}
}

// writeError answers with {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// fail answers err with its status: httpError's own, 404 for unknown runs
// and missing rows, 500 otherwise.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.msg)
	case errors.Is(err, coord.ErrUnknownRun), errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, coord.ErrBadConfig):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, coord.ErrNotRunning):
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// admin wraps a handler that needs the admin token, given as
// "Authorization: Bearer TOKEN".
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.isAdmin(r) {
			writeError(w, http.StatusUnauthorized, "this action needs the admin token printed at server start-up (Authorization: Bearer TOKEN)")
			return
		}
		h(w, r)
	}
}

func (s *Server) isAdmin(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && s.opt.AdminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.opt.AdminToken)) == 1
}
