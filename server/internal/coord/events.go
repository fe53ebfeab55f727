package coord

import (
	"encoding/json"
	"sync"
	"time"
)

// EventType names what an Event reports.
type EventType string

// Event types. Each carries one payload field of Event (named beside it).
const (
	EvRunCreated   EventType = "run_created"   // Status
	EvRunStatus    EventType = "run_status"    // Status
	EvClient       EventType = "client"        // Client: joined, left, progress, speed
	EvRoundStarted EventType = "round_started" // Round
	EvUpdate       EventType = "update"        // Update: accepted or rejected
	EvRoundEnded   EventType = "round_ended"   // Round, with metrics or why it failed
	// EvEnd is the last event of a run's stream: the run is over
	// (finished, stopped or failed) or the server is shutting down. The
	// subscription's channel is closed after it.
	EvEnd EventType = "end" // Status
)

// Event is one thing that happened in a run. Exactly one of the payload
// fields is set, as its Type says.
type Event struct {
	Type   EventType
	Run    string
	Time   time.Time
	Status *RunView
	Client *ClientView
	Round  *RoundView
	Update *UpdateView
	// Missed is how many events the subscriber lost just before this one
	// because it fell behind; it should reload what it shows.
	Missed int
}

// MarshalJSON writes {"type", "run", "time", "data", "missed"}: data is the
// payload, whichever it is.
func (e Event) MarshalJSON() ([]byte, error) {
	var data any
	switch {
	case e.Status != nil:
		data = e.Status
	case e.Client != nil:
		data = e.Client
	case e.Round != nil:
		data = e.Round
	case e.Update != nil:
		data = e.Update
	}
	return json.Marshal(struct {
		Type   EventType `json:"type"`
		Run    string    `json:"run"`
		Time   time.Time `json:"time"`
		Data   any       `json:"data"`
		Missed int       `json:"missed,omitempty"`
	}{e.Type, e.Run, e.Time, data, e.Missed})
}

// Subscription receives a run's events in order. Events are never waited
// for: a subscriber that falls behind its buffer loses events, and the next
// event it gets says how many (Missed). C is closed after the run's EvEnd,
// or by Close. Safe for concurrent use.
type Subscription struct {
	C <-chan Event

	c      chan Event
	h      *hub
	mu     sync.Mutex
	missed int
	closed bool
}

// Close ends the subscription and closes C.
func (s *Subscription) Close() { s.h.remove(s) }

// hub fans one run's events out to its subscribers. Publishing never
// blocks, so no subscriber can hold up the run's loop, and each run has its
// own hub, so one run's traffic cannot make another run's subscribers lose
// events.
type hub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

func newHub() *hub { return &hub{subs: map[*Subscription]struct{}{}} }

// subscribe adds a subscriber with a buffer of size buffer (at least 1).
// On a closed hub the subscription's channel is closed at once.
func (h *hub) subscribe(buffer int) *Subscription {
	c := make(chan Event, max(1, buffer))
	s := &Subscription{C: c, c: c, h: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.closed = true
		close(c)
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

func (h *hub) remove(s *Subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.c)
	}
}

// publish hands e to every subscriber that has room.
func (h *hub) publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.offer(e)
	}
}

// offer queues e unless the buffer is full, counting what was lost.
func (s *Subscription) offer(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	e.Missed = s.missed
	select {
	case s.c <- e:
		s.missed = 0
	default:
		s.missed++
	}
}

// close publishes the final event (made room for, if need be: the end must
// arrive) and closes every subscription; later subscriptions start closed.
func (h *hub) close(final Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		s.mu.Lock()
		if !s.closed {
			final.Missed = s.missed
			select {
			case s.c <- final:
			default:
				select { // drop the oldest queued event to make room
				case <-s.c:
					final.Missed++
				default:
				}
				s.c <- final
			}
			s.closed = true
			close(s.c)
		}
		s.mu.Unlock()
	}
	clear(h.subs)
}
