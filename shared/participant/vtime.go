package participant

import (
	"context"
	"time"

	"github.com/qflare/qflare/shared/link"
)

// A participant on a virtual clock (Options.Clock implements
// link.Tracker) keeps the clock's count of work in flight true, so that
// virtual time moves exactly when every client and the server wait for it:
//
//   - the session's goroutine holds a unit while it works (held) and gives
//     it up when it waits for a message (next) or sleeps (sleep);
//   - a message the reader queues for it holds a unit (queued) until the
//     session's goroutine takes it: it is work to do at this instant;
//   - but while the session's goroutine sleeps (a device's compute or
//     transfer time), a message that does not wake it (an async step's
//     end, a wait) holds nothing: it is read when the sleep ends, and must
//     not stop the clock from getting there. Messages that wake it (the
//     round or run ends, the connection fails) always hold one.

// holdFor takes the unit a message about to be queued holds (see above).
func (c *Client) holdFor(wakes bool) {
	if c.track == nil {
		return
	}
	c.vmu.Lock()
	if wakes || !c.asleep {
		c.track.Hold()
		c.queued++
	}
	c.vmu.Unlock()
}

// pushTracked queues it for the session's goroutine (holdFor came first).
func (c *Client) pushTracked(ctx context.Context, items chan<- item, it item, wakes bool) bool {
	select {
	case items <- it:
		return true
	case <-ctx.Done():
		c.vmu.Lock()
		if c.queued > 0 {
			c.queued--
			c.track.Release()
		}
		c.vmu.Unlock()
		return false
	}
}

// take moves the unit a queued message holds, if any, to the session's
// goroutine; without one it takes one (it works on the message now).
func (c *Client) take() {
	c.vmu.Lock()
	switch {
	case c.queued > 0:
		c.queued--
		c.held++
	case c.held == 0:
		c.track.Hold()
		c.held = 1
	}
	c.vmu.Unlock()
}

// nextTracked is next on a virtual clock: what is queued is taken at once;
// only an empty queue makes the goroutine give up its units and wait.
func (c *Client) nextTracked(ctx context.Context) (item, error) {
	select {
	case it := <-c.items:
		c.take()
		return it, it.err
	default:
	}
	c.idle()
	select {
	case it := <-c.items:
		c.take()
		return it, it.err
	case <-ctx.Done():
		c.track.Hold()
		c.held = 1
		return item{}, ctx.Err()
	}
}

// idle gives up what the session's goroutine holds before it waits.
func (c *Client) idle() {
	for ; c.held > 0; c.held-- {
		c.track.Release()
	}
}

// sleep waits for d on the client's clock. On a virtual clock the queued
// messages stop holding the clock while the goroutine sleeps (they are
// read after it), and the goroutine comes back holding one unit.
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.track == nil {
		return c.opt.Clock.Sleep(ctx, d)
	}
	if err := ctx.Err(); err != nil {
		return err // ended already: no time passes, nothing is given up
	}
	for ; c.held > 1; c.held-- {
		c.track.Release()
	}
	if c.held == 0 {
		c.track.Hold()
	}
	c.vmu.Lock()
	c.asleep = true
	for ; c.queued > 0; c.queued-- {
		c.track.Release()
	}
	c.vmu.Unlock()
	err := c.opt.Clock.Sleep(ctx, d) // gives up one unit and returns holding one
	c.vmu.Lock()
	c.asleep = false
	c.vmu.Unlock()
	c.held = 1
	return err
}

// settle ends a tracked session: the reader is stopped, what it queued and
// will never be handled is released, and the caller holds one unit again.
func (c *Client) settle(cancel context.CancelFunc, conn link.Conn) {
	cancel()
	conn.Close()
	if c.readerDone != nil {
		<-c.readerDone
	}
	for {
		select {
		case <-c.items:
			continue
		default:
		}
		break
	}
	c.vmu.Lock()
	for ; c.queued > 0; c.queued-- {
		c.track.Release()
	}
	c.asleep = false
	c.vmu.Unlock()
	for ; c.held > 1; c.held-- {
		c.track.Release()
	}
	if c.held == 0 {
		c.track.Hold()
		c.held = 1
	}
}
