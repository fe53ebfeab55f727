package link

import (
	"context"
	"sync"
)

// Tracker counts work in flight, for a virtual clock that moves only when
// nothing is in flight (a discrete-event simulation): a goroutine Holds
// while it works on something and Releases when it is done and about to
// wait. A message in a TrackedPipe is held from Send until its reader asks
// for the next one (or calls Done): the reader works on it in between.
type Tracker interface {
	Hold()
	Release()
}

// TrackedPipe is Pipe for a simulation on a virtual clock: every message
// counts as work held on t (see Tracker), and queues are unbounded (Send
// never blocks), so that nothing in the simulation waits on anything but
// the clock and its own work.
//
// A close is work too: it holds one unit for each end's reader until that
// reader calls Done, so that the clock cannot move between a device
// dropping its connection and the other side noticing (the server frees
// the dropped task's slot at the instant of the drop, whatever real time
// its reader takes to wake). Both ends' readers must therefore call Done
// once they stop reading.
func TrackedPipe(t Tracker) (a, b Conn) {
	p := &tpipe{t: t}
	ab, ba := &tdir{p: p}, &tdir{p: p}
	ab.cond.L, ba.cond.L = &p.mu, &p.mu
	return &tend{p, ab, ba}, &tend{p, ba, ab}
}

type tpipe struct {
	t      Tracker
	mu     sync.Mutex
	closed bool
}

// tdir is one direction: its queue, the message its reader holds, and
// whether its reader is done.
type tdir struct {
	p        *tpipe
	cond     sync.Cond
	q        []Message
	held     bool // the reader holds the last message it received
	finished bool // the reader called Done: nothing more is read
	closing  bool // a close holds a unit until the reader calls Done
}

type tend struct {
	p       *tpipe
	out, in *tdir
}

func (e *tend) Send(ctx context.Context, m Message) error {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	if e.p.closed {
		return ErrClosed
	}
	if e.out.finished {
		return nil // nobody will read it: dropped, as by a socket whose reader left
	}
	e.p.t.Hold()
	e.out.q = append(e.out.q, m)
	e.out.cond.Signal()
	return nil
}

func (e *tend) Recv(ctx context.Context) (Message, error) {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	in := e.in
	if in.held {
		in.held = false
		e.p.t.Release()
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			e.p.mu.Lock()
			in.cond.Broadcast()
			e.p.mu.Unlock()
		})
		defer stop()
	}
	for len(in.q) == 0 && !e.p.closed && ctx.Err() == nil {
		in.cond.Wait()
	}
	if len(in.q) > 0 { // what was sent before a close is still delivered
		m := in.q[0]
		in.q[0] = Message{}
		in.q = in.q[1:]
		in.held = true
		return m, nil
	}
	if err := ctx.Err(); err != nil {
		return Message{}, err
	}
	return Message{}, ErrClosed
}

func (e *tend) Close() error {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	if !e.p.closed {
		for _, d := range []*tdir{e.in, e.out} {
			if !d.finished {
				e.p.t.Hold() // until d's reader has seen the close (Done)
				d.closing = true
			}
		}
	}
	e.p.closed = true
	e.in.cond.Broadcast()
	e.out.cond.Broadcast()
	return nil
}

// done releases what the reader of this end holds, all it will never
// read, and the close's unit for it.
func (e *tend) done() {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	in := e.in
	if in.held {
		in.held = false
		e.p.t.Release()
	}
	for range in.q {
		e.p.t.Release()
	}
	if in.closing {
		in.closing = false
		e.p.t.Release()
	}
	in.q, in.finished = nil, true
}

// Done tells c, when it is a TrackedPipe end, that its reader will read no
// more: the message it holds and those queued for it are released. The
// reader calls it when it stops reading for any reason. A no-op for other
// connections.
func Done(c Conn) {
	if e, ok := c.(*tend); ok {
		e.done()
	}
}
