// Package vclock is a virtual clock for discrete-event simulations: time
// moves only when every participant of the simulation is waiting for it.
//
// Work in flight is counted with Hold and Release (it implements
// link.Tracker): each goroutine that works on something holds one unit,
// and gives it up when it waits. When nothing is held, the clock jumps to
// the earliest pending timer and fires it, holding a unit on the timer's
// behalf: an AfterFunc callback releases it when it returns, a Sleep hands
// it to the goroutine it wakes. Training computed for real therefore takes
// no virtual time, and a device that would take 40 s to train takes 40 s
// of virtual time whatever the real machine does meanwhile.
package vclock

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
)

// Clock is a virtual clock. The zero value is not usable; call New.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	start  time.Time
	busy   int
	timers timerHeap
	seq    uint64
	wake   chan struct{}
	fired  int64
}

// New returns a clock that reads start; it moves once Run runs.
func New(start time.Time) *Clock {
	return &Clock{now: start, start: start, wake: make(chan struct{}, 1)}
}

// Now returns the virtual time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Elapsed returns the virtual time since the clock's start.
func (c *Clock) Elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now.Sub(c.start)
}

// Hold counts one unit of work in flight.
func (c *Clock) Hold() {
	c.mu.Lock()
	c.busy++
	c.mu.Unlock()
}

// Release ends one unit of work; the clock may move once none is left.
func (c *Clock) Release() {
	c.mu.Lock()
	c.busy--
	if c.busy < 0 {
		c.mu.Unlock()
		panic("vclock: Release without Hold")
	}
	idle := c.busy == 0
	c.mu.Unlock()
	if idle {
		c.signal()
	}
}

func (c *Clock) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// timer is a pending AfterFunc (f) or Sleep (ch).
type timer struct {
	c         *Clock
	at        time.Time
	name      string
	seq       uint64
	f         func()
	ch        chan struct{}
	fired     bool
	cancelled bool
	index     int
}

// Stop cancels an AfterFunc that has not fired.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.fired || t.cancelled {
		return false
	}
	t.cancelled = true
	if t.index >= 0 {
		heap.Remove(&t.c.timers, t.index)
	}
	return true
}

func (c *Clock) add(name string, d time.Duration, f func(), ch chan struct{}) *timer {
	c.seq++
	t := &timer{c: c, at: c.now.Add(max(d, 0)), name: name, seq: c.seq, f: f, ch: ch}
	heap.Push(&c.timers, t)
	return t
}

// AfterFunc calls f in its own goroutine once d of virtual time has
// passed; the call counts as work in flight until f returns.
func (c *Clock) AfterFunc(d time.Duration, f func()) coord.Timer {
	return c.afterFunc("", d, f)
}

func (c *Clock) afterFunc(name string, d time.Duration, f func()) coord.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.add(name, d, f, nil)
}

// Sleep waits for d of virtual time. The caller must hold exactly one unit
// (see Hold): Sleep gives it up while waiting and returns holding one
// again, also when ctx ends first (then with ctx's error).
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	return c.sleep(ctx, "", d)
}

func (c *Clock) sleep(ctx context.Context, name string, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	c.mu.Lock()
	t := c.add(name, d, nil, make(chan struct{}))
	c.busy--
	idle := c.busy == 0
	c.mu.Unlock()
	if idle {
		c.signal()
	}
	select {
	case <-t.ch:
		return nil // the clock handed us the unit it held to fire t
	case <-ctx.Done():
		c.mu.Lock()
		if !t.fired {
			t.cancelled = true
			if t.index >= 0 {
				heap.Remove(&c.timers, t.index)
			}
			c.busy++
		}
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Run moves the clock until ctx is done: whenever no work is in flight it
// fires the earliest timer. When no work is in flight and no timer is
// pending for stall of real time, nothing can ever happen again: Run
// returns an error that says so.
func (c *Clock) Run(ctx context.Context, stall time.Duration) error {
	check := time.NewTicker(stall / 4)
	defer check.Stop()
	var idleSince time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.wake:
		case <-check.C:
		}
		c.mu.Lock()
		for c.busy == 0 && c.timers.Len() > 0 {
			idleSince = time.Time{}
			t := heap.Pop(&c.timers).(*timer)
			if t.at.After(c.now) {
				c.now = t.at
			}
			t.fired = true
			c.busy++
			c.fired++
			if t.ch != nil {
				close(t.ch)
			} else {
				go func() {
					defer c.Release()
					t.f()
				}()
			}
		}
		stalled := c.busy == 0 && c.timers.Len() == 0
		now := c.now
		c.mu.Unlock()
		switch {
		case !stalled:
			idleSince = time.Time{}
		case idleSince.IsZero():
			idleSince = time.Now()
		case time.Since(idleSince) >= stall:
			return fmt.Errorf("vclock: the simulation stalled at virtual %s: nothing is in flight and nothing is scheduled", now.Sub(c.start).Round(time.Millisecond))
		}
	}
}

// Named is a view of a Clock for one participant of the simulation: its
// timers, among those due at the same virtual instant, fire after the
// clock's own (unnamed) ones and in the order of their names.
//
// Without names, timers due together fire in the order they were set, and
// that order is real time's: ten devices of one profile that start
// training at the same virtual instant finish at the same instant, in the
// order their training happened to end on the machine, and that order
// decides which updates fill an asynchronous buffer. With one name per
// participant, a seeded simulation repeats exactly.
type Named struct {
	*Clock
	name string
}

// Named returns the view of c for the participant called name.
func (c *Clock) Named(name string) *Named { return &Named{Clock: c, name: name} }

// Sleep is Clock.Sleep, with the view's name on the timer.
func (n *Named) Sleep(ctx context.Context, d time.Duration) error { return n.sleep(ctx, n.name, d) }

// AfterFunc is Clock.AfterFunc, with the view's name on the timer.
func (n *Named) AfterFunc(d time.Duration, f func()) coord.Timer { return n.afterFunc(n.name, d, f) }

// timerHeap orders timers by time, then by name, then by creation. The
// timers of one name are set by one participant's goroutines in an order
// of their own, so it is the same on every run.
type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	if h[i].name != h[j].name {
		return h[i].name < h[j].name
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *timerHeap) Push(x any)   { t := x.(*timer); t.index = len(*h); *h = append(*h, t) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
