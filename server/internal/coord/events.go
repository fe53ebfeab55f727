package coord

import (
	"sync"
	"time"
)

// Event types published on a Bus.
const (
	EvRunCreated   = "run_created"
	EvRunStatus    = "run_status"    // Data: RunStatus
	EvClient       = "client"        // Data: ClientView (joined, left, progress, speed)
	EvRoundStarted = "round_started" // Data: RoundView
	EvUpdate       = "update"        // Data: UpdateView (accepted or rejected)
	EvRoundEnded   = "round_ended"   // Data: RoundView with metrics
)

// Event is one thing that happened in a run, for dashboards and simulations.
type Event struct {
	Type string    `json:"type"`
	Run  string    `json:"run"`
	Time time.Time `json:"time"`
	Data any       `json:"data"`
}

// Bus fans events out to subscribers. Publish never blocks on a lossy
// subscriber (a dashboard that falls behind misses events; it reloads the
// state over REST when it reconnects); a lossless subscriber (an in-process
// simulation) is waited for until it unsubscribes. Safe for concurrent use.
type Bus struct {
	mu   sync.Mutex
	subs map[*sub]struct{}
}

type sub struct {
	ch       chan Event
	done     chan struct{}
	lossless bool
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[*sub]struct{}{}} }

// Subscribe returns a channel of events and a function that ends the
// subscription. The channel is never closed; select on it with your own
// context. buffer sizes the channel.
func (b *Bus) Subscribe(buffer int, lossless bool) (<-chan Event, func()) {
	s := &sub{ch: make(chan Event, buffer), done: make(chan struct{}), lossless: lossless}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
			close(s.done)
		})
	}
}

// Publish sends e to every subscriber.
func (b *Bus) Publish(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.mu.Lock()
	subs := make([]*sub, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		if s.lossless {
			select {
			case s.ch <- e:
			case <-s.done:
			}
			continue
		}
		select {
		case s.ch <- e:
		default: // a dashboard that falls behind misses events
		}
	}
}
