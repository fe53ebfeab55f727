package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// heartbeat keeps idle event streams (and proxies) open.
const heartbeat = 15 * time.Second

// events streams a run's events as server-sent events: first a "snapshot"
// with the run's live state, then every event of the run as it happens. A
// client that falls behind misses events; it reloads the state over REST
// when it reconnects (EventSource reconnects by itself).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	run, err := s.c.Run(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	ch, cancel := s.c.Bus().Subscribe(512, false)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(typ string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, b); err != nil {
			return err
		}
		fl.Flush()
		return nil
	}
	if send("snapshot", run.View()) != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-run.Done():
			send("snapshot", run.View())
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			fl.Flush()
		case ev := <-ch:
			if ev.Run != run.ID() {
				continue
			}
			if send(ev.Type, ev) != nil {
				return
			}
		}
	}
}
