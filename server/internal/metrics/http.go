package metrics

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ConnOpened records a new participant connection and returns the function
// that records its end (call it once).
func (m *Metrics) ConnOpened() (closed func()) {
	if m == nil {
		return func() {}
	}
	m.conns.Inc()
	m.connsAll.Inc()
	return m.conns.Dec
}

// Message records one participant WebSocket message of n payload bytes:
// up (from the client) or down, binary (a model or update frame) or control.
func (m *Metrics) Message(up, binary bool, n int) {
	if m == nil {
		return
	}
	dir, kind := "down", "control"
	if up {
		dir = "up"
	}
	if binary {
		kind = "binary"
	}
	m.wireBytes.WithLabelValues(dir).Add(float64(n))
	m.wireMsgs.WithLabelValues(dir, kind).Inc()
}

// untimed are the long-lived routes: counted, but not timed.
var untimed = map[string]bool{"GET /ws": true, "GET /api/runs/{id}/events": true, "GET /shard": true}

// HTTP wraps a handler (an http.ServeMux, or one that contains one) to
// count requests by route pattern and status and time them. The route is
// the ServeMux pattern that matched (Request.Pattern, which the mux sets on
// the request it is given), so the label set stays bounded; requests no
// pattern matched count as "unmatched".
func (m *Metrics) HTTP(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		m.httpRequests.WithLabelValues(route, strconv.Itoa(sw.code())).Inc()
		if !untimed[route] {
			m.httpSeconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
	})
}

// statusWriter remembers the status written. It passes Flush (server-sent
// events) and Hijack (WebSocket upgrades) through, as the handlers it wraps
// look for them with type assertions.
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	switch {
	case w.hijacked:
		return http.StatusSwitchingProtocols
	case w.status == 0:
		return http.StatusOK
	}
	return w.status
}
