//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall/js"
	"time"

	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// WebSocket limits of the browser transport.
const (
	// maxIncoming caps one message from the server (a model frame); a
	// larger one closes the connection before it is copied into Go.
	maxIncoming = wire.DefaultMaxFrameBytes
	// maxIncomingText caps a control message, in UTF-16 code units.
	maxIncomingText = wire.MaxMessageBytes
	// inQueue is how many received messages may wait for the reader; the
	// server sends a few at a time, so a full queue means a stuck reader.
	inQueue = 256
	// maxBuffered is how much unsent data Send lets the browser hold before
	// it waits for the socket to drain.
	maxBuffered = 16 << 20
	// drainPoll is how often a waiting Send and the upload meter look at
	// the socket's buffer.
	drainPoll = 50 * time.Millisecond
)

// wsConn is a link.Conn over the worker's own WebSocket. The browser calls
// its handlers on the event loop; they only queue and never block. Send is
// safe for concurrent use; Recv is called by one reader. Close may be
// called at any time, more than once; the socket is closed by Close or by
// the browser (network drop, server close), whichever comes first.
type wsConn struct {
	ws    js.Value
	in    chan link.Message
	open  chan struct{}
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex // serialises Send
	err   error      // why the connection ended; set before done is closed
	funcs []js.Func

	// sent, when set, is told how far a binary message has gone out: bytes
	// handed to the network of total (for the upload progress bar).
	sent func(done, total int)
}

// dial opens a WebSocket to url and waits until it is open.
func dial(ctx context.Context, url string) (*wsConn, error) {
	c := &wsConn{in: make(chan link.Message, inQueue), open: make(chan struct{}), done: make(chan struct{})}
	if err := try(func() { c.ws = js.Global().Get("WebSocket").New(url) }); err != nil {
		return nil, fmt.Errorf("wasmclient: opening %s: %w", url, err)
	}
	c.ws.Set("binaryType", "arraybuffer")
	c.handle("onopen", func(js.Value) { close(c.open) })
	c.handle("onmessage", func(ev js.Value) { c.receive(ev.Get("data")) })
	c.handle("onclose", func(ev js.Value) {
		c.shut(fmt.Errorf("websocket closed with code %d%s", ev.Get("code").Int(), reasonSuffix(ev.Get("reason").String())))
	})
	c.handle("onerror", func(js.Value) {}) // onclose follows with the code
	select {
	case <-c.open:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("wasmclient: cannot connect to %s: %v", url, c.err)
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

func (c *wsConn) handle(name string, f func(ev js.Value)) {
	fn := js.FuncOf(func(_ js.Value, args []js.Value) any {
		f(arg(args, 0))
		return nil
	})
	c.funcs = append(c.funcs, fn)
	c.ws.Set(name, fn)
}

// receive queues one message, checking its size before copying it.
func (c *wsConn) receive(d js.Value) {
	var m link.Message
	if d.Type() == js.TypeString {
		if n := jsObject.New(d).Get("length").Int(); n > maxIncomingText { // String wrapper: no copy
			c.fail(fmt.Errorf("wasmclient: control message of %d characters exceeds the limit of %d", n, maxIncomingText))
			return
		}
		m.Data = []byte(d.String())
	} else {
		b, err := bytesFromJS(d, maxIncoming)
		if err != nil {
			c.fail(fmt.Errorf("wasmclient: binary message: %w", err))
			return
		}
		m = link.Message{Binary: true, Data: b}
	}
	select {
	case c.in <- m:
	default:
		c.fail(errors.New("wasmclient: receive queue full: the client is not keeping up"))
	}
}

// fail closes the connection because of err.
func (c *wsConn) fail(err error) {
	c.shut(err)
	try(func() { c.ws.Call("close", 1008, "client refused a message") })
}

// shut marks the connection ended with err and detaches the handlers.
func (c *wsConn) shut(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		for _, name := range []string{"onopen", "onmessage", "onclose", "onerror"} {
			c.ws.Set(name, js.Null())
		}
		// Release later: this may run inside one of the handlers.
		funcs := c.funcs
		time.AfterFunc(time.Second, func() {
			for _, f := range funcs {
				f.Release()
			}
		})
	})
}

// Send writes m, waiting (up to ctx) while the browser holds more than
// maxBuffered unsent bytes.
func (c *wsConn) Send(ctx context.Context, m link.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.ws.Get("bufferedAmount").Int() > maxBuffered {
		select {
		case <-c.done:
			return c.closedErr()
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(drainPoll):
		}
	}
	select {
	case <-c.done:
		return c.closedErr()
	default:
	}
	if c.ws.Get("readyState").Int() != 1 { // closing: onclose follows
		return link.ErrClosed
	}
	var err error
	if m.Binary {
		before := c.ws.Get("bufferedAmount").Int()
		err = try(func() { c.ws.Call("send", bytesToJS(m.Data)) })
		if err == nil && c.sent != nil {
			go c.meter(before, len(m.Data))
		}
	} else {
		err = try(func() { c.ws.Call("send", string(m.Data)) })
	}
	if err != nil {
		c.fail(err)
		return fmt.Errorf("%w: %v", link.ErrClosed, err)
	}
	return nil
}

// drained waits until everything sent has left the browser's buffer, the
// connection ends or ctx is done.
func (c *wsConn) drained(ctx context.Context) {
	for c.ws.Get("bufferedAmount").Int() > 0 {
		select {
		case <-c.done:
			return
		case <-ctx.Done():
			return
		case <-time.After(drainPoll):
		}
	}
}

// meter reports how much of a binary message of total bytes, queued behind
// ahead bytes, has left the browser's buffer.
func (c *wsConn) meter(ahead, total int) {
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for {
		left := c.ws.Get("bufferedAmount").Int()
		done := min(total, max(0, ahead+total-left))
		c.sent(done, total)
		if left == 0 {
			return
		}
		select {
		case <-c.done:
			return
		case <-t.C:
		}
	}
}

// Recv returns the next message; after the connection ends it returns what
// was still queued, then an error wrapping link.ErrClosed.
func (c *wsConn) Recv(ctx context.Context) (link.Message, error) {
	select {
	case m := <-c.in:
		return m, nil
	case <-c.done:
		select {
		case m := <-c.in:
			return m, nil
		default:
			return link.Message{}, c.closedErr()
		}
	case <-ctx.Done():
		return link.Message{}, ctx.Err()
	}
}

func (c *wsConn) closedErr() error {
	if c.err == nil || errors.Is(c.err, link.ErrClosed) {
		return link.ErrClosed
	}
	return fmt.Errorf("%w: %v", link.ErrClosed, c.err)
}

// Close closes the socket with a normal closure.
func (c *wsConn) Close() error {
	c.shut(link.ErrClosed)
	try(func() { c.ws.Call("close", 1000) })
	return nil
}
