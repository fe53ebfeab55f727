package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
)

// heartbeat keeps idle event streams (and proxies) open.
const heartbeat = 15 * time.Second

// events streams a run's events as server-sent events: first a "snapshot"
// with the run's state, then every event of the run as it happens, and a
// final "end" once the run is over, after which the stream closes. A
// subscriber that fell behind gets a fresh "snapshot" before the next
// event. A run that is no longer live gets its stored state and "end" at
// once, so pages stop reconnecting.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	run, err := s.c.Run(id)
	var sub *coord.Subscription
	var snap coord.RunView
	if err == nil {
		sub = run.Subscribe(512)
		defer sub.Close()
		snap, err = run.Snapshot(r.Context())
	}
	if err != nil { // not live: the stored run, then the end
		sr, serr := s.st.Run(r.Context(), id)
		if serr != nil {
			s.fail(w, r, serr)
			return
		}
		var cfg coord.Config
		json.Unmarshal(sr.Config, &cfg)
		snap, sub = coord.StoredView(sr, cfg), nil
	}
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
	if send("snapshot", snap) != nil {
		return
	}
	if sub == nil {
		send(string(coord.EvEnd), coord.Event{Type: coord.EvEnd, Run: id, Time: time.Now(), Status: &snap})
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			fl.Flush()
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			if ev.Missed > 0 && ev.Type != coord.EvEnd {
				if snap, err := run.Snapshot(r.Context()); err == nil && send("snapshot", snap) != nil {
					return
				}
			}
			if send(string(ev.Type), ev) != nil || ev.Type == coord.EvEnd {
				return
			}
		}
	}
}
