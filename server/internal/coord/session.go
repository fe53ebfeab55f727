package coord

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// Connection limits.
const (
	helloWait    = 15 * time.Second // a client must say hello within this
	writeWait    = 30 * time.Second // one message must be written within this
	outQueue     = 64               // messages queued to a client before it counts as too slow
	maxRejects   = 8                // rejected updates a connection may send before it is closed
	peerKindSim  = "virtual"
	maxHelloSize = 16 << 10
)

// PeerInfo describes a connection's far end.
type PeerInfo struct {
	Remote string // address, for logs
	// Kind overrides the device kind the client claims ("virtual" for
	// simulated clients).
	Kind string
}

// peer is one connection of a client. Its writer goroutine owns conn's
// sending side; the loop and the session queue messages with send.
type peer struct {
	conn     link.Conn
	info     PeerInfo
	clientID string // set by the loop on join

	out    chan link.Message
	closed chan struct{}
	once   sync.Once
	final  wire.Message // sent last when the writer drains on close
	mu     sync.Mutex
	log    *slog.Logger
}

func newPeer(conn link.Conn, info PeerInfo, log *slog.Logger) *peer {
	return &peer{conn: conn, info: info, log: log, out: make(chan link.Message, outQueue), closed: make(chan struct{})}
}

func (p *peer) kind(h *wire.Hello) string {
	if p.info.Kind != "" {
		return p.info.Kind
	}
	return h.Device.Kind
}

// send queues m; a full queue means the client does not keep up, and it is
// disconnected rather than allowed to hold up the run.
func (p *peer) send(m link.Message) {
	select {
	case <-p.closed:
		return
	default:
	}
	select {
	case p.out <- m:
	default:
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
	p.send(link.Message{Data: b})
}

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

// write is the peer's writer goroutine: it sends queued messages until the
// peer is closed, flushes what is queued and the final message, then closes
// the connection.
func (p *peer) write(ctx context.Context) {
	defer p.conn.Close()
	put := func(m link.Message) bool {
		wctx, cancel := context.WithTimeout(ctx, writeWait)
		defer cancel()
		return p.conn.Send(wctx, m) == nil
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
				put(link.Message{Data: b})
			}
			return
		case <-ctx.Done():
			return
		}
	}
}

// Serve runs one client connection: hello, join, then the client's
// messages until it leaves or the connection fails. It closes conn before
// it returns.
func (c *Coordinator) Serve(ctx context.Context, conn link.Conn, info PeerInfo) error {
	defer conn.Close()
	h, err := c.readHello(ctx, conn)
	if err != nil {
		sendNow(ctx, conn, &wire.Rejected{Code: wire.CodeBadFrame, Reason: err.Error()})
		return err
	}
	r, err := c.Run(h.Run)
	if err != nil {
		sendNow(ctx, conn, &wire.Rejected{Code: wire.CodeAuth, Reason: fmt.Sprintf("there is no run %q on this server", h.Run)})
		return err
	}
	if subtle.ConstantTimeCompare([]byte(h.Token), []byte(r.token)) != 1 {
		sendNow(ctx, conn, &wire.Rejected{Code: wire.CodeAuth, Reason: "wrong join token for this run: open the join link the host shared"})
		return fmt.Errorf("coord: wrong join token for run %s from %s", r.id, info.Remote)
	}
	p := newPeer(conn, info, c.deps.Log)
	wctx, cancelWriter := context.WithCancel(ctx)
	defer cancelWriter()
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); p.write(wctx) }()
	defer func() {
		p.closeWith(nil)
		select { // let the writer flush (a bye, a rejection) before returning
		case <-writerDone:
		case <-time.After(writeWait):
		}
	}()

	reply := make(chan joinReply, 1)
	if err := r.post(ctx, evJoin{p: p, hello: h, reply: reply}); err != nil {
		p.sendMsg(&wire.Rejected{Code: wire.CodeRunOver, Reason: err.Error()})
		return err
	}
	var jr joinReply
	select {
	case jr = <-reply:
	case <-r.done:
		return fmt.Errorf("coord: run %s ended", r.id)
	case <-ctx.Done():
		return ctx.Err()
	}
	if jr.reject != nil {
		p.closeWith(jr.reject)
		return fmt.Errorf("coord: join refused: %s", jr.reject.Reason)
	}
	defer r.post(context.Background(), evLeave{p: p})
	// Now that the run is known, allow messages up to its largest update (a
	// WebSocket stops reading a larger one before buffering it).
	if l, ok := conn.(interface{ SetReadLimit(int64) }); ok {
		l.SetReadLimit(int64(r.limits.MaxFrameBytes))
	}
	return r.session(ctx, p)
}

// progressEvery is the most often a client's progress reports are passed on.
const progressEvery = 250 * time.Millisecond

// session reads a joined client's messages.
func (r *Run) session(ctx context.Context, p *peer) error {
	rejects := 0
	var lastProgress time.Time
	for {
		m, err := p.conn.Recv(ctx)
		if err != nil {
			if errors.Is(err, link.ErrClosed) {
				return nil
			}
			return err
		}
		if !m.Binary {
			msg, err := wire.ParseMessage(m.Data, wire.MaxMessageBytes)
			if err != nil {
				p.closeWith(&wire.Bye{Reason: "bad message: " + err.Error()})
				return err
			}
			switch msg := msg.(type) {
			case *wire.Progress:
				if now := time.Now(); now.Sub(lastProgress) >= progressEvery {
					lastProgress = now
					r.post(ctx, evProgress{p: p, m: msg})
				}
			case *wire.Decline:
				r.post(ctx, evDecline{p: p, m: msg})
			case *wire.Bye:
				return nil
			default:
				p.sendMsg(&wire.Rejected{Code: wire.CodeBadFrame, Reason: fmt.Sprintf("a client may not send %q messages now", msg.Type())})
			}
			continue
		}
		u, rej := r.decode(ctx, m.Data)
		if rej != nil {
			if rejects++; rejects > maxRejects {
				p.closeWith(&wire.Bye{Reason: fmt.Sprintf("too many rejected updates (%d)", rejects)})
				return fmt.Errorf("coord: client %s sent %d rejected updates", p.clientID, rejects)
			}
		}
		if err := r.post(ctx, evUpdate{p: p, u: u, rejects: rej}); err != nil {
			u.release()
			return err
		}
	}
}

func (c *Coordinator) readHello(ctx context.Context, conn link.Conn) (*wire.Hello, error) {
	hctx, cancel := context.WithTimeout(ctx, helloWait)
	defer cancel()
	m, err := conn.Recv(hctx)
	if err != nil {
		return nil, fmt.Errorf("coord: no hello: %w", err)
	}
	if m.Binary {
		return nil, fmt.Errorf("coord: the first message must be a hello, got a binary frame")
	}
	msg, err := wire.ParseMessage(m.Data, maxHelloSize)
	if err != nil {
		return nil, err
	}
	h, ok := msg.(*wire.Hello)
	if !ok {
		return nil, fmt.Errorf("coord: the first message must be a hello, got %q", msg.Type())
	}
	if h.V != wire.Version {
		return nil, fmt.Errorf("coord: client speaks protocol version %d; this server speaks %d", h.V, wire.Version)
	}
	return h, nil
}

// sendNow writes m directly (before a writer goroutine exists).
func sendNow(ctx context.Context, conn link.Conn, m wire.Message) {
	b, _ := wire.Marshal(m)
	wctx, cancel := context.WithTimeout(ctx, writeWait)
	defer cancel()
	conn.Send(wctx, link.Message{Data: b})
}

// rejection is why an update was refused.
type rejection struct{ code, reason string }

// decoded is an update checked and decoded by its session.
type decoded struct {
	h       wire.FrameHeader
	size    int
	payload []byte
	delta   []float32 // w_client − w_global; nil when rejected
	pool    *sync.Pool
}

func (u *decoded) release() {
	if u != nil && u.pool != nil && u.delta != nil {
		b := u.delta
		u.pool.Put(&b)
		u.delta = nil
	}
}

// decode parses and decodes an update frame against the open round's model.
// The header is returned even for a rejected frame when it could be read,
// so the rejection is stored with what the client claimed.
func (r *Run) decode(ctx context.Context, frame []byte) (*decoded, *rejection) {
	u := &decoded{size: len(frame)}
	h, payload, err := wire.ParseFrame(frame, r.limits)
	if err != nil {
		return u, &rejection{code: wire.RejectCode(err), reason: err.Error()}
	}
	u.h = h
	ref := r.cur.Load()
	switch {
	case h.Kind != wire.KindUpdate:
		return u, &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("expected an update frame, got %q", h.Kind)}
	case h.Run != r.id:
		return u, &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("update for run %q sent to run %q", h.Run, r.id)}
	case ref == nil || h.Round < ref.round:
		return u, &rejection{code: wire.CodeLate, reason: fmt.Sprintf("late: round %d is already closed", h.Round)}
	case h.Round > ref.round:
		return u, &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("round %d has not started (the open round is %d)", h.Round, ref.round)}
	case h.ModelVersion != ref.version:
		return u, &rejection{code: wire.CodeLate, reason: fmt.Sprintf("trained from model version %d, but round %d trains version %d", h.ModelVersion, ref.round, ref.version)}
	case h.Params != r.numParams:
		return u, &rejection{code: wire.CodeShape, reason: fmt.Sprintf("update has %d parameters; the model has %d", h.Params, r.numParams)}
	case h.Samples < 1 || h.Samples > data.MaxSamples:
		return u, &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("sample count %d is not in 1..%d", h.Samples, data.MaxSamples)}
	}
	// A client training on its own data may have more samples than any
	// slice, but its weight in the average is capped at the largest slice,
	// so that no client can buy influence by claiming a large count.
	u.h.Samples = min(h.Samples, r.maxSamples)
	p, err := h.Pipeline()
	if err != nil {
		return u, &rejection{code: wire.CodeBadFrame, reason: err.Error()}
	}
	select {
	case r.c.decodeSem <- struct{}{}:
		defer func() { <-r.c.decodeSem }()
	case <-ctx.Done():
		return u, &rejection{code: "shutdown", reason: "the server is shutting down"}
	}
	buf := r.deltaBuf()
	w, err := wire.Decode(p, payload, r.shapes, ref.global, *buf, r.limits)
	if err != nil {
		r.deltas.Put(buf)
		return u, &rejection{code: wire.RejectCode(err), reason: err.Error()}
	}
	var norm float64
	for i, v := range w {
		d := v - ref.global[i]
		w[i] = d
		norm += float64(d) * float64(d)
	}
	norm = math.Sqrt(norm)
	if math.IsInf(norm, 0) || math.IsNaN(norm) {
		r.deltas.Put(buf)
		return u, &rejection{code: wire.CodeNotFinite, reason: "the update's difference from the global model overflows float32"}
	}
	if lim := r.cfg.MaxUpdateNorm; lim > 0 && norm > lim {
		r.deltas.Put(buf)
		return u, &rejection{code: "norm", reason: fmt.Sprintf("update norm %.4g exceeds the run's limit %.4g", norm, lim)}
	}
	u.payload, u.delta, u.pool = payload, w, &r.deltas
	return u, nil
}

func (r *Run) deltaBuf() *[]float32 {
	if b, ok := r.deltas.Get().(*[]float32); ok {
		return b
	}
	b := make([]float32, r.numParams)
	return &b
}

func jsonRaw(v any) (json.RawMessage, error) { return json.Marshal(v) }
