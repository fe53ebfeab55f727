// Package link is the connection between a participant and the server: the
// Conn interface both ends are written against, and Pipe, an in-memory Conn
// pair that simulations use in place of a WebSocket.
//
// The browser implements Conn with the page's WebSocket (syscall/js), the
// headless client and the server with gorilla/websocket, and a simulation
// with Pipe, so the participant and the server's session code are the same
// in all three.
package link

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by a Conn used after it was closed, by either end.
var ErrClosed = errors.New("link: connection closed")

// Message is one WebSocket-style message: a JSON control message (Binary
// false) or a binary frame.
type Message struct {
	Binary bool
	Data   []byte
	// release, when set, hands Data's buffer back to the connection's pool
	// (see Release).
	release func()
}

// Release tells the connection that the receiver is done with m.Data: the
// buffer may be reused for a later message. It is optional (a message not
// released is simply collected) and m.Data must not be used after it.
func (m Message) Release() {
	if m.release != nil {
		m.release()
	}
}

// Conn carries one connection's messages in order. Send and Recv may be
// called from different goroutines; Send is safe for concurrent use, Recv is
// called by one reader. Close may be called at any time, more than once.
type Conn interface {
	// Send queues or writes m; it returns ErrClosed after Close.
	Send(ctx context.Context, m Message) error
	// Recv blocks for the next message; ErrClosed once the connection is
	// closed and drained.
	Recv(ctx context.Context) (Message, error)
	// Close closes both directions.
	Close() error
}

// Pipe returns the two ends of an in-memory connection. Each direction
// buffers up to buffer messages; Send blocks when the buffer is full (like a
// socket whose peer is slow) until ctx is done or either end closes. Data
// slices are handed over, not copied: a sender must not modify them later.
func Pipe(buffer int) (a, b Conn) {
	p := &pipe{done: make(chan struct{})}
	ab, ba := make(chan Message, buffer), make(chan Message, buffer)
	return &pipeEnd{p, ab, ba}, &pipeEnd{p, ba, ab}
}

type pipe struct {
	once sync.Once
	done chan struct{}
}

type pipeEnd struct {
	p   *pipe
	out chan<- Message
	in  <-chan Message
}

func (e *pipeEnd) Send(ctx context.Context, m Message) error {
	select {
	case <-e.p.done:
		return ErrClosed
	default:
	}
	select {
	case e.out <- m:
		return nil
	case <-e.p.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *pipeEnd) Recv(ctx context.Context) (Message, error) {
	select {
	case m := <-e.in:
		return m, nil
	case <-e.p.done:
		select { // drain what was sent before the close
		case m := <-e.in:
			return m, nil
		default:
			return Message{}, ErrClosed
		}
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

func (e *pipeEnd) Close() error {
	e.p.once.Do(func() { close(e.p.done) })
	return nil
}
