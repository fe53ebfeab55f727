package link

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// WebSocket message types, as in RFC 6455 (and gorilla/websocket).
const (
	TextMessage   = 1
	BinaryMessage = 2
	CloseMessage  = 8
	PingMessage   = 9
	PongMessage   = 10
)

// Socket is the part of a WebSocket connection Conn needs. A
// gorilla/websocket *Conn satisfies it, so this package does not import it
// (and stays buildable for the browser, which has its own WebSocket).
// WriteControl and Close must be safe to call concurrently with the other
// methods, as gorilla's are.
type Socket interface {
	// NextReader returns the next data message's type and a reader of its
	// payload, once its first frame has arrived.
	NextReader() (messageType int, r io.Reader, err error)
	WriteMessage(messageType int, data []byte) error
	WriteControl(messageType int, data []byte, deadline time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	SetPongHandler(h func(appData string) error)
	SetReadLimit(limit int64)
	Close() error
}

// SocketOptions are the keep-alive and size limits of a socket Conn.
type SocketOptions struct {
	// PongWait is how long the reader waits for any message or pong before
	// it gives up on the peer; pings go out every 9/10 of it. Zero disables
	// pings and read deadlines.
	PongWait time.Duration
	// MessageWait is how long a message may take to arrive whole once its
	// first frame is in; pongs do not extend it, so a peer cannot hold the
	// connection with an unfinished message. Zero: PongWait applies.
	MessageWait time.Duration
	// WriteWait bounds every write (default 30s).
	WriteWait time.Duration
	// ReadLimit caps one incoming message (0 = no cap).
	ReadLimit int64
}

// FromSocket adapts a WebSocket to Conn. When opt.PongWait > 0 it pings the
// peer every 9/10 of it from a timer (a goroutine only while a ping is
// written, so that an idle connection costs no stack for it); Close stops
// the pings and closes the socket. Recv must be called from one goroutine;
// Send is serialised.
func FromSocket(s Socket, opt SocketOptions) Conn {
	if opt.WriteWait <= 0 {
		opt.WriteWait = 30 * time.Second
	}
	c := &socketConn{s: s, opt: opt, done: make(chan struct{})}
	if opt.ReadLimit > 0 {
		s.SetReadLimit(opt.ReadLimit)
	}
	if opt.PongWait > 0 {
		s.SetReadDeadline(time.Now().Add(opt.PongWait))
		// The pong handler runs in the reading goroutine, so inMessage
		// needs no lock.
		s.SetPongHandler(func(string) error {
			if c.inMessage {
				return nil
			}
			return s.SetReadDeadline(time.Now().Add(opt.PongWait))
		})
		c.pingMu.Lock()
		c.pinger = time.AfterFunc(opt.PongWait*9/10, c.ping)
		c.pingMu.Unlock()
	}
	return c
}

// readBuffers are the buffers messages are read into. A receiver that
// releases its messages (Message.Release) lets the next message reuse the
// buffer instead of allocating (and the collector freeing) a new one each
// time; an idle connection holds none.
var readBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

type socketConn struct {
	s         Socket
	opt       SocketOptions
	wmu       sync.Mutex
	once      sync.Once
	done      chan struct{}
	pingMu    sync.Mutex
	pinger    *time.Timer // nil without pings; set under pingMu
	inMessage bool        // a message is being read (reading goroutine only)
}

// ping writes one ping and arms the timer for the next; it runs on the
// timer's goroutine.
func (c *socketConn) ping() {
	select {
	case <-c.done:
		return
	default:
	}
	if err := c.s.WriteControl(PingMessage, nil, time.Now().Add(c.opt.WriteWait)); err != nil {
		c.Close()
		return
	}
	c.pingMu.Lock()
	c.pinger.Reset(c.opt.PongWait * 9 / 10)
	c.pingMu.Unlock()
}

func (c *socketConn) Send(ctx context.Context, m Message) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	deadline := time.Now().Add(c.opt.WriteWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.s.SetWriteDeadline(deadline)
	typ := TextMessage
	if m.Binary {
		typ = BinaryMessage
	}
	if err := c.s.WriteMessage(typ, m.Data); err != nil {
		c.Close()
		return err
	}
	return nil
}

// Recv reads the next data message. Context cancellation closes the
// connection (a blocked socket read cannot be interrupted otherwise).
func (c *socketConn) Recv(ctx context.Context) (Message, error) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	fail := func(err error) (Message, error) {
		c.Close()
		select {
		case <-c.done:
			if ctx.Err() != nil {
				return Message{}, ctx.Err()
			}
		default:
		}
		return Message{}, errors.Join(ErrClosed, err)
	}
	for {
		typ, rd, err := c.s.NextReader()
		if err != nil {
			return fail(err)
		}
		if c.opt.MessageWait > 0 {
			c.inMessage = true
			c.s.SetReadDeadline(time.Now().Add(c.opt.MessageWait))
		}
		buf := readBuffers.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(rd)
		c.inMessage = false
		if err != nil {
			readBuffers.Put(buf)
			return fail(err)
		}
		b, release := buf.Bytes(), func() { readBuffers.Put(buf) }
		if c.opt.PongWait > 0 {
			c.s.SetReadDeadline(time.Now().Add(c.opt.PongWait))
		}
		switch typ {
		case TextMessage:
			return Message{Data: b, release: release}, nil
		case BinaryMessage:
			return Message{Binary: true, Data: b, release: release}, nil
		}
		release()
	}
}

func (c *socketConn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		c.pingMu.Lock()
		if c.pinger != nil {
			c.pinger.Stop()
		}
		c.pingMu.Unlock()
		// WriteControl and Close may run concurrently with a blocked write.
		c.s.WriteControl(CloseMessage, []byte{3, 232}, time.Now().Add(time.Second)) // 1000: normal closure
		err = c.s.Close()
	})
	return err
}

// SetReadLimit narrows the largest message the connection accepts.
func (c *socketConn) SetReadLimit(limit int64) { c.s.SetReadLimit(limit) }
