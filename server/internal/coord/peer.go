package coord

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// Connection limits.
const (
	helloWait = 15 * time.Second // a client must say hello within this
	writeWait = 30 * time.Second // one message must be written within this
	outQueue  = 32               // messages queued to a client before it counts as too slow
	// maxRejects is how many refusals (of updates or messages) a connection
	// may earn before it is closed.
	maxRejects   = 8
	maxHelloSize = 16 << 10
)

// task is the work a client holds: train model version for round. The
// loop sets it when it sends the work and clears it when the client has
// answered or the round is over; the client's session checks an update
// against it before decoding anything.
type task struct {
	round   int
	version int64
	base    []float32 // the weights of version: what the update is decoded against
}

// outMsg is one queued message: a marshalled one, or a model frame that
// the writer resolves (encoding it on first use, off the loop).
type outMsg struct {
	msg   link.Message
	model *modelSend
}

// modelSend asks the writer for the frame that brings a client from base to
// target, and to count its bytes.
type modelSend struct {
	models *models
	target *version
	base   int64
	// counts gets the frame's size added (the client's, the round's and the
	// seat's byte counters).
	counts []*atomic.Int64
}

// peer is one connection of a client. Its writer goroutine owns the
// connection's sending side; the loop and the session queue messages with
// send, which never blocks: a client whose queue is full is disconnected.
// The session's goroutine (Coordinator.Serve) owns the receiving side and
// closes the connection when it returns.
type peer struct {
	conn link.Conn
	info PeerInfo
	log  *slog.Logger
	// clientID is set by the loop when it admits the client, before the
	// session reads it.
	clientID string
	task     atomic.Pointer[task]
	lastTask atomic.Int64 // the round of the latest task it got
	rejects  atomic.Int32 // refusals earned (see maxRejects)

	out    chan outMsg
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	final  wire.Message // sent last when the writer drains on close
	// track holds a unit per queued message (virtual clocks); dead is set
	// once the writer has stopped, so that nothing is queued after.
	track link.Tracker
	dead  bool
}

func newPeer(conn link.Conn, info PeerInfo, log *slog.Logger, track link.Tracker) *peer {
	return &peer{conn: conn, info: info, log: log, out: make(chan outMsg, outQueue), closed: make(chan struct{}), track: track}
}

func (p *peer) kind(h *wire.Hello) string {
	if p.info.Kind != "" {
		return p.info.Kind
	}
	return h.Device.Kind
}

// send queues m; a full queue means the client does not keep up, and it is
// disconnected rather than allowed to hold up the run.
func (p *peer) send(m outMsg) {
	select {
	case <-p.closed:
		return
	default:
	}
	p.mu.Lock()
	if p.dead {
		p.mu.Unlock()
		return
	}
	p.track.Hold() // until the writer has sent it
	select {
	case p.out <- m:
		p.mu.Unlock()
	default:
		p.track.Release()
		p.mu.Unlock()
		p.closeWith(&wire.Bye{Reason: "too slow: the server's queue to this client is full"})
	}
}

// sendMsg queues a control message. A message that fails validation (a bug,
// or a value computed from hostile input that escaped sanitising) is logged
// and dropped: it must not take the server down.
func (p *peer) sendMsg(m wire.Message) {
	b, err := wire.Marshal(m)
	if err != nil {
		p.log.Error("dropping a message that does not validate", "type", m.Type(), "client", p.clientID, "err", err)
		return
	}
	p.send(outMsg{msg: link.Message{Data: b}})
}

// sendModel queues the model frame of ms.
func (p *peer) sendModel(ms *modelSend) { p.send(outMsg{model: ms}) }

// closeWith ends the connection after the queued messages and, if not nil,
// a final message.
func (p *peer) closeWith(final wire.Message) {
	p.once.Do(func() {
		p.mu.Lock()
		p.final = final
		p.mu.Unlock()
		close(p.closed)
	})
}

// isClosed reports whether closeWith was called.
func (p *peer) isClosed() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

// reject counts a refusal and closes the connection once it has earned
// more than maxRejects; it reports whether the peer was closed.
func (p *peer) reject() bool {
	if n := p.rejects.Add(1); n > maxRejects {
		p.closeWith(&wire.Bye{Reason: "too many refused updates or messages"})
		return true
	}
	return false
}

// write is the peer's writer goroutine: it sends queued messages until the
// peer is closed, flushes what is queued and the final message, then closes
// the connection.
func (p *peer) write(ctx context.Context) {
	defer p.conn.Close()
	defer func() { // what was not sent never will be
		p.mu.Lock()
		p.dead = true
		for {
			select {
			case <-p.out:
				p.track.Release()
				continue
			default:
			}
			break
		}
		p.mu.Unlock()
	}()
	put := func(m outMsg) bool {
		defer p.track.Release()
		msg := m.msg
		if ms := m.model; ms != nil {
			frame, err := ms.models.frame(ms.target, ms.base)
			if err != nil {
				p.log.Error("encoding a model frame", "client", p.clientID, "version", ms.target.v, "err", err)
				return false
			}
			for _, c := range ms.counts {
				c.Add(int64(len(frame)))
			}
			msg = link.Message{Binary: true, Data: frame}
		}
		wctx, cancel := context.WithTimeout(ctx, writeWait)
		defer cancel()
		return p.conn.Send(wctx, msg) == nil
	}
	for {
		select {
		case m := <-p.out:
			if !put(m) {
				p.closeWith(nil)
				return
			}
		case <-p.closed:
			for {
				select {
				case m := <-p.out:
					if !put(m) {
						return
					}
					continue
				default:
				}
				break
			}
			p.mu.Lock()
			final := p.final
			p.mu.Unlock()
			if final != nil {
				b, _ := wire.Marshal(final)
				p.track.Hold() // put releases it
				put(outMsg{msg: link.Message{Data: b}})
			}
			return
		case <-ctx.Done():
			return
		}
	}
}
