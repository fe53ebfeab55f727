package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/qflare/qflare/shared/link"
)

// Conns runs a shard over link.Conn values: the link to the origin and
// each tab's connection, each with a writer goroutine and a bounded queue
// (a connection whose queue fills is closed rather than waited for). The
// engine's tests run shards this way, in-process; a native shard server
// would too. Safe for concurrent use.
type Conns struct {
	s *Shard

	mu     sync.Mutex
	next   uint32
	tabs   map[uint32]*connOut
	origin *connOut
}

// connOut is a connection's sending side.
type connOut struct {
	conn   link.Conn
	out    chan outMsg
	closed chan struct{}
	once   sync.Once
}

type outMsg struct {
	m     link.Message
	close bool // close after what came before
}

// Queue sizes: a tab's messages; the origin link's (a partial of a large
// model is a few 4 MiB chunks).
const (
	tabQueue    = 64
	originQueue = 1024
	writeWait   = 30 * time.Second
)

// NewConns returns a shard served over link.Conn values.
func NewConns(opt Options) *Conns {
	c := &Conns{tabs: map[uint32]*connOut{}}
	c.s = New(c, opt)
	return c
}

// Shard returns the shard.
func (c *Conns) Shard() *Shard { return c.s }

func newConnOut(conn link.Conn, queue int) *connOut {
	o := &connOut{conn: conn, out: make(chan outMsg, queue), closed: make(chan struct{})}
	go o.write()
	return o
}

func (o *connOut) send(m outMsg) bool {
	select {
	case <-o.closed:
		return false
	default:
	}
	select {
	case o.out <- m:
		return true
	default:
		o.stop()
		return false
	}
}

func (o *connOut) stop() {
	o.once.Do(func() { close(o.closed); o.conn.Close() })
}

func (o *connOut) write() {
	for {
		select {
		case m := <-o.out:
			if m.close {
				o.stop()
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), writeWait)
			err := o.conn.Send(ctx, m.m)
			cancel()
			if err != nil {
				o.stop()
				return
			}
		case <-o.closed:
			return
		}
	}
}

// Link runs the link to the origin over conn until it breaks or ctx ends;
// the shard then forgets it (OriginDown). It closes conn.
func (c *Conns) Link(ctx context.Context, conn link.Conn) error {
	o := newConnOut(conn, originQueue)
	c.mu.Lock()
	c.origin = o
	c.mu.Unlock()
	defer func() {
		o.stop()
		c.mu.Lock()
		if c.origin == o {
			c.origin = nil
		}
		c.mu.Unlock()
	}()
	if err := c.s.OriginUp(); err != nil {
		return err
	}
	var err error
	for {
		var m link.Message
		if m, err = conn.Recv(ctx); err != nil {
			break
		}
		if !m.Binary {
			err = fmt.Errorf("shard: the origin sent a text message")
			break
		}
		if err = c.s.OriginMessage(m.Data); err != nil {
			break
		}
	}
	c.s.OriginDown(err.Error())
	if errors.Is(err, link.ErrClosed) || ctx.Err() != nil {
		return nil
	}
	return err
}

// Tab serves one tab's connection until it ends; it closes conn.
func (c *Conns) Tab(ctx context.Context, conn link.Conn, remote string) {
	o := newConnOut(conn, tabQueue)
	c.mu.Lock()
	c.next++
	id := c.next
	c.tabs[id] = o
	c.mu.Unlock()
	defer func() {
		o.stop()
		c.mu.Lock()
		delete(c.tabs, id)
		c.mu.Unlock()
		c.s.TabClosed(id)
	}()
	if ok, _, _ := c.s.TabOpened(id, remote); !ok {
		return
	}
	for {
		m, err := conn.Recv(ctx)
		if err != nil {
			return
		}
		if len(m.Data) > c.s.Limit(id) {
			return // as a WebSocket read limit: closed (1009)
		}
		c.s.TabMessage(id, m)
	}
}

func (c *Conns) tab(id uint32) *connOut {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tabs[id]
}

// SendTab queues a message to a tab.
func (c *Conns) SendTab(id uint32, m link.Message) {
	if o := c.tab(id); o != nil {
		o.send(outMsg{m: m})
	}
}

// SendTabFrame queues a model frame to a tab.
func (c *Conns) SendTabFrame(id, _ uint32, f []byte) {
	c.SendTab(id, link.Message{Binary: true, Data: f})
}

// CloseTab closes a tab after what was queued to it.
func (c *Conns) CloseTab(id uint32, _ int, _ string) {
	if o := c.tab(id); o != nil {
		o.send(outMsg{close: true})
	}
}

// SendOrigin queues a link message.
func (c *Conns) SendOrigin(b []byte) error {
	c.mu.Lock()
	o := c.origin
	c.mu.Unlock()
	if o == nil || !o.send(outMsg{m: link.Message{Binary: true, Data: bytes.Clone(b)}}) {
		return errors.New("shard: no link to the origin")
	}
	return nil
}
