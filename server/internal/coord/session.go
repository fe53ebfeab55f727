package coord

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// PeerInfo describes a connection's far end.
type PeerInfo struct {
	Remote string // address, for logs
	// Kind overrides the device kind the client claims (store.KindVirtual
	// for simulated clients).
	Kind string
	// KeyExchange is the TLS key exchange the connection negotiated (a
	// tls.CurveID name such as X25519MLKEM768); empty without TLS. It is
	// recorded with the client and shown.
	KeyExchange string
	// Refused, when set, is called when the hello is refused for a wrong
	// join token or a run that does not exist, before the client is told
	// (so that a limit on failed hellos counts it before the client can try
	// again).
	Refused func()
}

func (i PeerInfo) refused() {
	if i.Refused != nil {
		i.Refused()
	}
}

// progressEvery is the most often a client's progress reports are passed on.
const progressEvery = 250 * time.Millisecond

// Serve runs one client connection: hello, join, then the client's
// messages until it leaves or the connection fails. It closes conn before
// it returns. A hello for an unknown run or with a wrong join token gives
// an error that wraps ErrAuth.
func (c *Coordinator) Serve(ctx context.Context, conn link.Conn, info PeerInfo) error {
	defer conn.Close()
	defer link.Done(conn) // nothing more is read
	h, err := c.readHello(ctx, conn)
	if err != nil {
		sendNow(ctx, conn, &wire.Rejected{Code: wire.CodeBadFrame, Reason: err.Error()})
		return err
	}
	r, err := c.Run(h.Run)
	if err != nil {
		// A run that is over has left memory: say so (it is no guess).
		if sr, serr := c.deps.Store.Run(ctx, h.Run); serr == nil && subtle.ConstantTimeCompare([]byte(h.Token), []byte(sr.JoinToken)) == 1 {
			sendNow(ctx, conn, &wire.Rejected{Code: wire.CodeRunOver, Reason: fmt.Sprintf("run %s is %s", sr.ID, sr.Status)})
			return fmt.Errorf("coord: run %s is %s", sr.ID, sr.Status)
		}
		info.refused()
		sendNow(ctx, conn, &wire.Rejected{Code: wire.CodeAuth, Reason: fmt.Sprintf("there is no active run %q on this server", h.Run)})
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	if subtle.ConstantTimeCompare([]byte(h.Token), []byte(r.sp.token)) != 1 {
		info.refused()
		sendNow(ctx, conn, &wire.Rejected{Code: wire.CodeAuth, Reason: "wrong join token for this run: open the join link the host shared"})
		return fmt.Errorf("%w: wrong join token for run %s from %s", ErrAuth, r.sp.id, info.Remote)
	}
	p := newPeer(conn, info, c.deps.Log, c.track)
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
	jr, err := ask(ctx, r, func(c chan joinReply) event { return evJoin{p: p, hello: h, reply: c} })
	if err != nil {
		p.sendMsg(&wire.Rejected{Code: wire.CodeRunOver, Reason: err.Error()})
		return err
	}
	if jr.reject != nil {
		p.closeWith(jr.reject)
		return fmt.Errorf("coord: join refused: %s", jr.reject.Reason)
	}
	defer r.post(evLeave{p: p})
	// Now that the run is known, allow messages up to its largest update (a
	// WebSocket stops reading a larger one before buffering it).
	if l, ok := conn.(interface{ SetReadLimit(int64) }); ok {
		l.SetReadLimit(int64(r.sp.limits.MaxFrameBytes))
	}
	return r.session(ctx, p)
}

// session reads a joined client's messages. Updates are checked against
// the client's task and refused before they are decoded when they cannot
// be taken; the others are decoded here (in parallel with other sessions,
// bounded by a semaphore), decided on by the loop, then stored (group
// commit) and folded here, off the loop.
func (r *Run) session(ctx context.Context, p *peer) error {
	var lastProgress time.Time
	answered := 0 // the last round this session sent an update for
	for {
		m, err := p.conn.Recv(ctx)
		if err != nil {
			if errors.Is(err, link.ErrClosed) || p.isClosed() {
				return nil
			}
			return err
		}
		if !m.Binary {
			msg, err := wire.ParseMessage(m.Data, wire.MaxMessageBytes)
			m.Release() // parsed into msg
			if err != nil {
				p.closeWith(&wire.Bye{Reason: "bad message: " + err.Error()})
				return err
			}
			switch msg := msg.(type) {
			case *wire.Progress:
				if now := time.Now(); now.Sub(lastProgress) >= progressEvery {
					lastProgress = now
					r.post(evProgress{p: p, m: msg})
				}
			case *wire.Decline:
				r.post(evDecline{p: p, m: msg})
			case *wire.Bye:
				return nil
			default:
				p.sendMsg(&wire.Rejected{Code: wire.CodeBadFrame, Reason: fmt.Sprintf("a client may not send %q messages now", msg.Type())})
				if p.reject() {
					return fmt.Errorf("coord: client %s sent too many refused messages", p.clientID)
				}
			}
			continue
		}
		if wire.IsSecAgg(m.Data) { // secure aggregation (secagg.go)
			if err := r.secureFrame(ctx, p, m); err != nil {
				return err
			}
			continue
		}
		// takeFrame is done with the frame when it returns (an accepted
		// payload is durable by then), so its buffer goes back.
		err = r.takeFrame(ctx, p, m.Data, &answered)
		m.Release()
		if err != nil {
			return err
		}
		if p.isClosed() {
			return fmt.Errorf("coord: client %s was disconnected: too many refusals", p.clientID)
		}
	}
}

// takeFrame handles one update frame: pre-checks, decode, the loop's
// verdict, then store and fold.
func (r *Run) takeFrame(ctx context.Context, p *peer, frame []byte, answered *int) error {
	u, rej := r.precheck(p, frame, *answered)
	if rej == nil {
		rej = r.decode(ctx, u)
	}
	if rej != nil {
		u.release()
		return r.post(evRefused{p: p, rec: u.record(r.sp.id, p.clientID, r.c.now()), rej: rej})
	}
	defer u.release()
	*answered = u.h.Round
	v, err := ask(ctx, r, func(c chan verdict) event { return evUpdate{p: p, u: u, reply: c} })
	if err != nil || v.rej != nil {
		return err
	}
	// Accepted: fold it in now, so its decode buffer goes back at once,
	// then make it durable; the client hears "accepted" only once it is,
	// and the round cannot close before. Should storing fail, the loop has
	// the round's aggregate rebuilt from the stored updates, so that it
	// holds exactly what is durable. Neither step is cancelled with the
	// connection: the loop must hear how both went.
	keep := context.WithoutCancel(ctx)
	// decode's check computed the norm, as Add would.
	up := fl.Update{Client: p.clientID, Samples: u.h.Samples, Delta: u.delta, Norm: u.norm}
	r.weigh(&up, v.scale)
	if err = v.agg.Add(keep, up); err != nil {
		// decode validated the update; Add can only refuse what it let
		// through by mistake, or a round stopped under it.
		r.c.deps.Log.Error("aggregation refused an accepted update", "run", r.sp.id, "client", p.clientID, "err", err)
		err = fmt.Errorf("folding: %w", err)
	} else {
		u.release()
		_, err = r.c.deps.Store.AddUpdate(keep, v.rec)
	}
	v.rec.Blob = nil // the frame's buffer is reused once this returns
	return r.post(evFolded{p: p, round: v.rec.Round, task: u.h.Round, rec: v.rec, err: err})
}

// precheck parses an update frame and checks it against the client's task
// before anything is decoded: an update that cannot be taken (not for this
// run, not selected, a second one, late) costs a header parse and a
// checksum, not a decode.
func (r *Run) precheck(p *peer, frame []byte, answered int) (*decoded, *rejection) {
	u := &decoded{size: len(frame), pool: r.deltas}
	h, payload, err := wire.ParseFrame(frame, r.sp.limits)
	if err != nil {
		return u, &rejection{code: wire.RejectCode(err), reason: err.Error()}
	}
	u.h, u.payload = h, payload
	t := p.task.Load()
	switch {
	case h.Kind != wire.KindUpdate:
		return u, &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("expected an update frame, got %q", h.Kind)}
	case r.sp.cfg.SecureAgg != nil: // secure aggregation (secagg.go)
		return u, &rejection{code: wire.CodeBadFrame, reason: "this run aggregates securely: send masked inputs, not update frames"}
	case h.Run != r.sp.id:
		return u, &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("update for run %q sent to run %q", h.Run, r.sp.id)}
	case answered > 0 && h.Round == answered && !r.sp.cfg.Async():
		return u, &rejection{code: wire.CodeDuplicate, reason: fmt.Sprintf("this client already sent an update for round %d", h.Round)}
	case t == nil || h.Round < t.round:
		switch last := int(p.lastTask.Load()); {
		case h.Round > r.View().Round:
			return u, &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("round %d has not started", h.Round)}
		case h.Round <= last:
			return u, &rejection{code: wire.CodeLate, reason: fmt.Sprintf("late: round %d is over for this client", h.Round)}
		}
		return u, &rejection{code: wire.CodeNotSelected, reason: fmt.Sprintf("this client was not selected for round %d", h.Round)}
	case h.Round > t.round:
		return u, &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("round %d has not started (this client trains round %d)", h.Round, t.round)}
	case h.ModelVersion != t.version:
		return u, &rejection{code: wire.CodeLate, reason: fmt.Sprintf("trained from model version %d, but round %d trains version %d", h.ModelVersion, t.round, t.version)}
	case h.Params != r.sp.numParams:
		return u, &rejection{code: wire.CodeShape, reason: fmt.Sprintf("update has %d parameters; the model has %d", h.Params, r.sp.numParams)}
	case h.Samples < 1 || h.Samples > data.MaxSamples:
		return u, &rejection{code: wire.CodeBadFrame, reason: fmt.Sprintf("sample count %d is not in 1..%d", h.Samples, data.MaxSamples)}
	}
	// A client training on its own data may have more samples than any
	// slice, but its weight in the average is capped at the largest slice,
	// so that no client can buy influence by claiming a large count.
	u.h.Samples = min(h.Samples, r.sp.maxSamples)
	u.base = t.base
	return u, nil
}

// decode decodes a prechecked update against its task's model into a
// pooled delta buffer and checks its values and norm.
func (r *Run) decode(ctx context.Context, u *decoded) *rejection {
	p, err := u.h.Pipeline()
	if err != nil {
		return &rejection{code: wire.CodeBadFrame, reason: err.Error()}
	}
	buf, err := r.deltas.get(ctx)
	if err != nil {
		return &rejection{code: wire.CodeShutdown, reason: "the server is shutting down"}
	}
	u.delta = *buf // release gives it back from here on
	select {
	case r.c.decodeSem <- struct{}{}:
		defer func() { <-r.c.decodeSem }()
	case <-ctx.Done():
		return &rejection{code: wire.CodeShutdown, reason: "the server is shutting down"}
	}
	start := time.Now()
	w, err := wire.Decode(p, u.payload, r.sp.shapes, u.base, u.delta, r.sp.limits)
	r.c.deps.Observer.ObserveDecode(time.Since(start))
	if err != nil {
		return &rejection{code: wire.RejectCode(err), reason: err.Error()}
	}
	u.delta = w
	if u.norm, err = wire.ToDelta(w, u.base, fl.MaxDeltaValue, r.sp.cfg.MaxUpdateNorm); err != nil {
		return &rejection{code: wire.RejectCode(err), reason: err.Error()}
	}
	return nil
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

// decoded is an update frame as its session read it: the header, and once
// decoded, its delta from the task's model in a pooled buffer.
type decoded struct {
	h       wire.FrameHeader
	size    int
	payload []byte
	base    []float32
	delta   []float32 // w_client − w_global; nil until decoded
	norm    float64   // delta's L2 norm, once decoded
	pool    *bufList  // where delta goes back
}

func (u *decoded) release() {
	if u != nil && u.pool != nil && u.delta != nil {
		b := u.delta[:u.pool.size]
		u.pool.put(&b)
		u.delta = nil
	}
}

// record is the update's row, with what the client claimed.
func (u *decoded) record(run, client string, now time.Time) *store.Update {
	return &store.Update{RunID: run, Round: u.h.Round, ClientID: client, ReceivedAt: now, Bytes: u.size,
		Codec: u.h.Codec, BaseVersion: int(u.h.ModelVersion), Samples: u.h.Samples, Loss: u.h.Loss,
		Accuracy: u.h.Accuracy, TrainMS: u.h.TrainMS, SamplesPerS: u.h.SamplesPerS}
}
