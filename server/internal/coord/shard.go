package coord

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qflare/qflare/server/internal/shardwire"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// Edge shards (package shard, command server/edge) hold tabs' WebSockets
// at the edge and fold their updates into partials; each keeps one link to
// this coordinator (package shardwire). The coordinator treats a shard as
// a group of participants:
//
//   - every tab behind a shard is a client like any other: its control
//     messages travel over the link, and a shardConn (a link.Conn) carries
//     them to Coordinator.Serve, which admits, selects, tasks and accounts
//     for it exactly as for a direct connection;
//   - model frames go down once per shard (shardwire.KindFrame) and fan out
//     there; before a round's first task the link describes the round
//     (model version, the frame of its exact weights, deadline, DP clip);
//   - the shard validates each update exactly as a session does and tells
//     the loop: a refusal is recorded as any refusal; an accepted update
//     takes its seat to "storing" (the round waits for it) until the
//     partial that holds it is merged and durable, and only then does its
//     tab hear "accepted";
//   - a partial is decoded and checked against the updates the shard
//     announced, merged into the round's aggregation (fl.PartialAdder, or
//     fl.ClippedPartialAdder with DP: clipped at the shard, noised here),
//     and stored with its updates in one write (store.Tx.AddPartial);
//   - when a round would close but for a shard's pending updates, the
//     shard is asked to flush; if its partial is not in edgeGrace later, or
//     its link breaks, its pending updates are dropped: their clients go
//     back to "away" (they get the round again if they come back in time)
//     and are told why. A shard that misses the deadline thus counts as its
//     clients dropping out, and never stalls a round.
//
// Runs whose strategy needs each update (robust rules, anomaly detection),
// and asynchronous runs (mode async), refuse tabs that come through a
// shard, with wire.CodeShardRefused.

// ShardInfo describes an edge shard's link.
type ShardInfo struct {
	Remote string // the shard's address, for logs
	// TabWait, when set, returns how long a tab at address ip must wait
	// before it may say hello again (failed hellos); a tab that must wait
	// is refused with wire.CodeRateLimited.
	TabWait func(ip string) time.Duration
	// TabRefused, when set, is called when a tab's hello is refused for a
	// wrong join token or an unknown run.
	TabRefused func(ip string)
	// Draining, when set, reports that the server is shutting down: tabs
	// the coordinator closes then get code 1012 (reconnect).
	Draining func() bool
}

// Link limits.
const (
	// edgeGrace is how long a round waits, once it would close, for the
	// partials of shards that hold updates of it.
	edgeGrace = 10 * time.Second
	// tabInbox is how many control messages of one tab may wait for its
	// session; a tab that floods beyond it is closed.
	tabInbox = 64
	// maxAssemblies bounds the partials a link may be sending at once.
	maxAssemblies = 4
)

// ErrShardProtocol is wrapped by ServeShard's error when a shard broke the
// link's protocol.
var ErrShardProtocol = errors.New("coord: edge shard broke the protocol")

// shardLink is one edge shard's link. The reader goroutine (ServeShard)
// owns the receiving side; sends are serialised by sendMu, which also
// guards what the link has told the shard (frames, runs, rounds).
type shardLink struct {
	c      *Coordinator
	name   string
	conn   link.Conn
	info   ShardInfo
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	sendMu    sync.Mutex
	frames    []linkFrame // the frames the shard holds, oldest first
	nextFrame uint32
	runSent   map[string]bool
	roundSent map[string]int

	mu   sync.Mutex
	tabs map[uint32]*shardConn
	runs map[*Run]bool // runs it announced updates to
}

// linkFrame is a frame the shard holds: its header (which names its
// payload's checksum) and length identify it.
type linkFrame struct {
	key string
	id  uint32
}

// ServeShard runs an edge shard's link: the shard's hello, then its
// messages until the link breaks, ctx is done or the coordinator closes.
// It closes conn before it returns, with every tab of the shard; their
// pending updates count as dropped.
func (c *Coordinator) ServeShard(ctx context.Context, conn link.Conn, info ShardInfo) error {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()
	l := &shardLink{c: c, conn: conn, info: info, log: c.deps.Log, ctx: ctx, cancel: cancel,
		runSent: map[string]bool{}, roundSent: map[string]int{}, tabs: map[uint32]*shardConn{}, runs: map[*Run]bool{}}
	defer l.end()
	if err := l.hello(); err != nil {
		return err
	}
	c.deps.Log.Info("edge shard linked", "shard", l.name, "remote", info.Remote)
	err := l.read()
	c.deps.Log.Info("edge shard link ended", "shard", l.name, "err", err)
	if errors.Is(err, link.ErrClosed) || ctx.Err() != nil {
		return nil
	}
	return err
}

// hello reads the shard's hello and welcomes it.
func (l *shardLink) hello() error {
	hctx, cancel := context.WithTimeout(l.ctx, helloWait)
	defer cancel()
	m, err := l.conn.Recv(hctx)
	if err != nil {
		return fmt.Errorf("coord: no hello from the edge shard: %w", err)
	}
	msg, err := shardwire.Parse(m.Data)
	if err == nil && msg.Kind != shardwire.KindHello {
		err = fmt.Errorf("the first message is %s, not hello", msg.Kind)
	}
	var h shardwire.Hello
	if err == nil {
		err = shardwire.Decode(msg.Body, &h)
	}
	if err != nil || !m.Binary {
		return fmt.Errorf("%w: %v", ErrShardProtocol, err)
	}
	l.name = h.Shard
	b, _ := shardwire.Encode(nil, shardwire.KindWelcome, 0, &shardwire.Welcome{V: shardwire.Version})
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	return l.write(b)
}

// write sends a message (sendMu held); a failure ends the link.
func (l *shardLink) write(b []byte) error {
	ctx, cancel := context.WithTimeout(l.ctx, writeWait)
	defer cancel()
	if err := l.conn.Send(ctx, link.Message{Binary: true, Data: b}); err != nil {
		l.cancel()
		return err
	}
	return nil
}

// send sends one message.
func (l *shardLink) send(b []byte) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	return l.write(b)
}

// end closes the link and every tab of it, and tells the runs it held
// updates for that they are gone.
func (l *shardLink) end() {
	l.cancel()
	l.conn.Close()
	l.mu.Lock()
	tabs, runs := l.tabs, l.runs
	l.tabs, l.runs = map[uint32]*shardConn{}, map[*Run]bool{}
	l.mu.Unlock()
	for _, vc := range tabs {
		vc.closeQuietly()
	}
	for r := range runs {
		r.post(evEdgeGone{l: l})
	}
}

// assembly is a partial arriving in chunks.
type assembly struct {
	h    shardwire.PartialHeader
	r    *Run
	buf  bytes.Buffer
	next int
}

// read handles the shard's messages until the link breaks.
func (l *shardLink) read() error {
	parts := map[uint32]*assembly{}
	for {
		m, err := l.conn.Recv(l.ctx)
		if err != nil {
			return err
		}
		if !m.Binary {
			return fmt.Errorf("%w: a text message", ErrShardProtocol)
		}
		msg, err := shardwire.Parse(m.Data)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrShardProtocol, err)
		}
		switch msg.Kind {
		case shardwire.KindTabOpen:
			var to shardwire.TabOpen
			if err := shardwire.Decode(msg.Body, &to); err != nil {
				return fmt.Errorf("%w: %w", ErrShardProtocol, err)
			}
			if err := l.openTab(msg.ID, to.Remote); err != nil {
				return err
			}
		case shardwire.KindTabText:
			if vc := l.tab(msg.ID); vc != nil {
				vc.push(bytes.Clone(msg.Body))
			}
		case shardwire.KindTabClose:
			if vc := l.tab(msg.ID); vc != nil {
				vc.closeQuietly()
			}
		case shardwire.KindUpdate:
			var u shardwire.Update
			if err := shardwire.Decode(msg.Body, &u); err != nil {
				return fmt.Errorf("%w: %w", ErrShardProtocol, err)
			}
			l.update(msg.ID, &u)
		case shardwire.KindPartial:
			if err := l.chunk(parts, msg.Body); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: a %s message", ErrShardProtocol, msg.Kind)
		}
	}
}

// openTab starts serving a tab of the shard.
func (l *shardLink) openTab(id uint32, remote string) error {
	l.mu.Lock()
	if l.tabs[id] != nil || len(l.tabs) >= shardwire.MaxTabs {
		l.mu.Unlock()
		return fmt.Errorf("%w: tab %d opened twice, or beyond %d tabs", ErrShardProtocol, id, shardwire.MaxTabs)
	}
	vc := &shardConn{l: l, id: id, remote: remote, in: make(chan []byte, tabInbox), closed: make(chan struct{})}
	l.tabs[id] = vc
	l.mu.Unlock()
	if l.info.TabWait != nil && remote != "" { // a shard that cannot tell its tabs' addresses apart is not limited per tab
		if wait := l.info.TabWait(remote); wait > 0 {
			sendNow(l.ctx, vc, &wire.Rejected{Code: wire.CodeRateLimited,
				Reason: fmt.Sprintf("too many failed joins from this address; try again in %d s", int(wait.Seconds())+1)})
			vc.Close()
			return nil
		}
	}
	go l.serveTab(vc)
	return nil
}

func (l *shardLink) tab(id uint32) *shardConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tabs[id]
}

// serveTab runs a tab's session: it reads the tab's hello first, refuses
// it for a run that cannot take clients through a shard, and otherwise
// hands the connection (hello included) to Serve.
func (l *shardLink) serveTab(vc *shardConn) {
	defer vc.Close()
	hctx, cancel := context.WithTimeout(l.ctx, helloWait)
	first, err := vc.Recv(hctx)
	cancel()
	if err != nil {
		return
	}
	vc.unread = &first
	if msg, err := wire.ParseMessage(first.Data, maxHelloSize); err == nil {
		if h, ok := msg.(*wire.Hello); ok {
			if r, err := l.c.Run(h.Run); err == nil {
				if err := r.edgeAllowed(); err != nil {
					sendNow(l.ctx, vc, &wire.Rejected{Code: wire.CodeShardRefused, Reason: err.Error()})
					l.log.Warn("a tab came through an edge shard to a run that cannot take shards", "run", r.sp.id, "shard", l.name, "err", err)
					return
				}
				vc.run.Store(r)
			}
		}
	}
	info := PeerInfo{Remote: vc.remote + " via edge shard " + l.name}
	if l.info.TabRefused != nil && vc.remote != "" {
		info.Refused = func() { l.info.TabRefused(vc.remote) }
	}
	if err := l.c.Serve(l.ctx, vc, info); err != nil {
		l.log.Info("a tab's connection through an edge shard ended", "shard", l.name, "remote", vc.remote, "err", err)
	}
}

// update passes an update the shard validated to its run's loop.
func (l *shardLink) update(id uint32, u *shardwire.Update) {
	r, err := l.c.Run(u.Run)
	if err != nil {
		return // a run that ended; its rounds are closed
	}
	if u.Accepted {
		l.mu.Lock()
		l.runs[r] = true
		l.mu.Unlock()
	}
	r.post(evEdgeUpdate{l: l, vc: l.tab(id), u: u})
}

// chunk takes a chunk of a partial; the last one hands the partial on.
func (l *shardLink) chunk(parts map[uint32]*assembly, body []byte) error {
	h, chunk, err := shardwire.ParsePartial(body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrShardProtocol, err)
	}
	a := parts[h.Seq]
	if a == nil {
		if h.Part != 0 || len(parts) >= maxAssemblies {
			return fmt.Errorf("%w: partial %d starts at chunk %d, or too many partials at once", ErrShardProtocol, h.Seq, h.Part)
		}
		a = &assembly{h: h}
		a.r, _ = l.c.Run(h.Run) // nil: a run that ended; the partial is read and dropped
		parts[h.Seq] = a
	}
	if h.Part != a.next || h.Run != a.h.Run || h.Round != a.h.Round || h.Count != a.h.Count {
		return fmt.Errorf("%w: partial %d: chunk %d out of order or changed its header", ErrShardProtocol, h.Seq, h.Part)
	}
	a.next++
	if a.r != nil {
		if a.buf.Len()+len(chunk) > shardwire.MaxCompressed(a.r.sp.numParams, h.Count) {
			return fmt.Errorf("%w: partial %d is larger than a partial of %d updates can be", ErrShardProtocol, h.Seq, h.Count)
		}
		a.buf.Write(chunk)
	}
	if h.Last {
		delete(parts, h.Seq)
		if a.r != nil {
			go l.takePartial(a)
		}
	}
	return nil
}

// takePartial decodes a partial, has the loop check it against the
// updates the shard announced, merges it into the round's aggregation and
// stores it with its updates; the loop then answers their clients.
func (l *shardLink) takePartial(a *assembly) {
	r, h := a.r, a.h
	z := a.buf.Bytes()
	part, err := shardwire.DecodePartial(z, r.sp.numParams, h.Count)
	if err != nil {
		l.log.Error("an edge shard's partial does not decode", "shard", l.name, "run", r.sp.id, "round", h.Round, "err", err)
	}
	v, err := ask(l.ctx, r, func(c chan edgeVerdict) event {
		return evEdgePartial{l: l, round: h.Round, part: part, reply: c}
	})
	if err != nil || v.refused != "" {
		if v.refused != "" {
			l.log.Warn("an edge shard's partial was refused", "shard", l.name, "run", r.sp.id, "round", h.Round, "why", v.refused)
		}
		return
	}
	keep := context.WithoutCancel(l.ctx)
	if v.clipped != nil {
		err = v.dp.AddClippedPartial(keep, part, v.clipped)
	} else {
		err = v.mean.AddPartial(keep, part)
	}
	if err != nil {
		err = fmt.Errorf("merging: %w", err)
	} else {
		row := &store.Partial{RunID: r.sp.id, Round: h.Round, Shard: l.name, ReceivedAt: r.c.now(), Count: part.Count,
			Weight: part.Weight, Clipped: v.clipped, Blob: bytes.Clone(z)}
		err = r.c.deps.Store.Do(keep, "add_partial", func(t *store.Tx) error { return t.AddPartial(row, v.rows) })
	}
	r.post(evEdgeFolded{round: h.Round, rows: v.rows, err: err})
}

// describeRound tells the shard, before a task of round n of r reaches
// one of its tabs, what it needs to take the round's updates: the run (once
// per link), the frame of the round's exact weights, and the round. sendMu
// is held.
func (l *shardLink) describeRound(r *Run, n int) error {
	er := r.edge.round.Load()
	if er == nil || er.n != n || l.roundSent[r.sp.id] == n {
		return nil
	}
	if !l.runSent[r.sp.id] {
		b, err := shardwire.Encode(nil, shardwire.KindRun, 0, r.edgeRun())
		if err != nil {
			return err
		}
		if err := l.write(b); err != nil {
			return err
		}
		l.runSent[r.sp.id] = true
	}
	frame, err := r.edgeBaseFrame(er.base)
	if err != nil {
		return err
	}
	fid, err := l.frameID(frame)
	if err != nil {
		return err
	}
	rd := &shardwire.Round{Run: r.sp.id, Round: n, Version: er.base.v, Frame: fid, Clip: er.clip}
	if !er.deadline.IsZero() {
		rd.DeadlineUnixMS = er.deadline.UnixMilli()
	}
	b, err := shardwire.Encode(nil, shardwire.KindRound, 0, rd)
	if err != nil {
		return err
	}
	if err := l.write(b); err != nil {
		return err
	}
	l.roundSent[r.sp.id] = n
	return nil
}

// frameID returns the id under which the shard holds frame, sending it
// first if the shard does not hold it (sendMu held).
func (l *shardLink) frameID(frame []byte) (uint32, error) {
	key := frameKey(frame)
	for _, f := range l.frames {
		if f.key == key {
			return f.id, nil
		}
	}
	l.nextFrame++
	id := l.nextFrame
	if err := l.write(shardwire.Append(make([]byte, 0, len(frame)+8), shardwire.KindFrame, id, frame)); err != nil {
		return 0, err
	}
	l.frames = append(l.frames, linkFrame{key: key, id: id})
	if len(l.frames) > shardwire.FrameCache {
		l.frames = append(l.frames[:0:0], l.frames[len(l.frames)-shardwire.FrameCache:]...)
	}
	return id, nil
}

// frameKey identifies a frame by its header (kind, version, codec, the
// payload's checksum) and length.
func frameKey(f []byte) string {
	if len(f) < 8 {
		return string(f)
	}
	hl := int(binary.LittleEndian.Uint32(f[4:8]))
	if hl > len(f)-8 {
		hl = len(f) - 8
	}
	return fmt.Sprintf("%d:%s", len(f), f[:8+hl])
}

// flush asks the shard for round n of r's partial.
func (l *shardLink) flush(r *Run, n int) {
	b, err := shardwire.Encode(nil, shardwire.KindFlush, 0, &shardwire.Flush{Run: r.sp.id, Round: n})
	if err == nil {
		l.send(b)
	}
}

// shardConn is one tab's connection through a shard, as Serve sees it:
// what the tab sends arrives over the link (push), and what Serve sends it
// goes over the link: control messages verbatim, model frames by
// reference to the frames the shard holds.
type shardConn struct {
	l      *shardLink
	id     uint32
	remote string
	run    atomic.Pointer[Run] // the run its hello names, once known
	in     chan []byte
	unread *link.Message // the hello, read by serveTab and handed to Serve
	closed chan struct{}
	once   sync.Once
	quiet  atomic.Bool // closed by the shard (or the link): nothing to tell it
}

// push queues a message from the tab; a tab that floods is closed.
func (vc *shardConn) push(b []byte) {
	select {
	case vc.in <- b:
	case <-vc.closed:
	default:
		vc.Close()
	}
}

// Send sends m to the tab through the shard.
func (vc *shardConn) Send(ctx context.Context, m link.Message) error {
	select {
	case <-vc.closed:
		return link.ErrClosed
	default:
	}
	l := vc.l
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	if m.Binary {
		fid, err := l.frameID(m.Data)
		if err != nil {
			return err
		}
		return l.write(binary.LittleEndian.AppendUint32(shardwire.Append(nil, shardwire.KindTabFrame, vc.id, nil), fid))
	}
	if bytes.HasPrefix(m.Data, []byte(`{"type":"round_start"`)) {
		if msg, err := wire.ParseMessage(m.Data, wire.MaxMessageBytes); err == nil {
			if r := vc.run.Load(); r != nil {
				if err := l.describeRound(r, msg.(*wire.RoundStart).Round); err != nil {
					return err
				}
			}
		}
	}
	return l.write(shardwire.Append(make([]byte, 0, len(m.Data)+8), shardwire.KindTabText, vc.id, m.Data))
}

// Recv returns the tab's next control message.
func (vc *shardConn) Recv(ctx context.Context) (link.Message, error) {
	if m := vc.unread; m != nil {
		vc.unread = nil
		return *m, nil
	}
	select {
	case b := <-vc.in:
		return link.Message{Data: b}, nil
	case <-vc.closed:
		select {
		case b := <-vc.in:
			return link.Message{Data: b}, nil
		default:
			return link.Message{}, link.ErrClosed
		}
	case <-ctx.Done():
		return link.Message{}, ctx.Err()
	}
}

// Close closes the tab's connection: the shard closes the tab's WebSocket
// (code 1000, or 1012 while the server drains).
func (vc *shardConn) Close() error {
	vc.once.Do(func() {
		close(vc.closed)
		l := vc.l
		l.mu.Lock()
		if l.tabs[vc.id] == vc {
			delete(l.tabs, vc.id)
		}
		l.mu.Unlock()
		if vc.quiet.Load() {
			return
		}
		c := &shardwire.Close{Code: 1000, Reason: "closed by the server"}
		if l.info.Draining != nil && l.info.Draining() {
			c = &shardwire.Close{Code: 1012, Reason: "server restarting"}
		}
		if b, err := shardwire.Encode(nil, shardwire.KindTabClose, vc.id, c); err == nil {
			l.send(b)
		}
	})
	return nil
}

// closeQuietly closes the connection without telling the shard (it closed
// the tab, or the link is gone).
func (vc *shardConn) closeQuietly() {
	vc.quiet.Store(true)
	vc.Close()
}

// edgeAllowed reports why a run cannot take clients through an edge
// shard: its strategy or anomaly detection needs each update, it is
// asynchronous, or it aggregates securely.
func (r *Run) edgeAllowed() error {
	r.edge.once.Do(func() {
		sp := r.sp
		switch agg := sp.strategy.Begin(0, make([]float32, 1)); {
		case sp.cfg.Async():
			// A partial is a sum over one round's model; an async step
			// weighs each update by its own staleness against the version
			// it was trained from, so a shard would have to keep one sum
			// per version and the origin one task per tab.
			r.edge.refusal = fmt.Sprintf("run %s is asynchronous (mode async): its steps weigh each update by its staleness; an edge shard sends sums over one round's model, which only mode sync uses: join the server directly", sp.id)
		case sp.cfg.Detecting():
			r.edge.refusal = fmt.Sprintf("run %s scores each update for anomalies (detect); an edge shard sends sums: join the server directly", sp.id)
		case sp.cfg.SecureAgg != nil:
			// Secure aggregation's masked inputs and key material are
			// binary frames between each member and the origin; a shard
			// keeps binary frames to fold them.
			r.edge.refusal = fmt.Sprintf("run %s aggregates securely (secure_agg): its members mask their updates for the origin, which an edge shard cannot fold: join the server directly", sp.id)
		case isMean(agg):
			r.edge.dp = isDP(agg)
		default:
			r.edge.refusal = fmt.Sprintf("run %s aggregates with %s, which needs each update; an edge shard sends sums, which only mean-based strategies use: join the server directly",
				sp.id, strings.SplitN(sp.strategy.Name(), "+", 2)[0])
		}
	})
	if r.edge.refusal != "" {
		return errors.New(r.edge.refusal)
	}
	return nil
}

// edgeRun describes r to a shard.
func (r *Run) edgeRun() *shardwire.Run {
	sp := r.sp
	r.edgeAllowed()
	return &shardwire.Run{Run: sp.id, Params: sp.numParams, Shapes: sp.shapes, MaxFrameBytes: sp.limits.MaxFrameBytes,
		MaxSamples: sp.maxSamples, MaxUpdateNorm: sp.cfg.MaxUpdateNorm, DP: r.edge.dp}
}

// edgeBaseFrame returns a frame that decodes to exactly the weights of
// ver: the whole-model frame tabs get when the down codec is lossless
// (float32, no top-k), else one encoded for shards (float32+zstd), once.
func (r *Run) edgeBaseFrame(ver *version) ([]byte, error) {
	if p := r.sp.downPipe; p.TopK == 0 && p.Format == wire.Float32 {
		return r.models.fullFrame(ver)
	}
	e := &r.edge
	e.exactMu.Lock()
	if e.exact == nil || e.exact.v != ver.v {
		e.exact = &exactFrame{v: ver.v}
	}
	f := e.exact
	e.exactMu.Unlock()
	f.once.Do(func() {
		p, _ := wire.ParsePipeline("float32+zstd")
		f.b, f.err = r.models.encode(p, wire.KindModel, ver.v, ver.w, nil)
	})
	return f.b, f.err
}

// isMean reports whether agg merges partials (the mean-based strategies,
// with or without DP).
func isMean(agg fl.Aggregation) bool {
	_, mean := agg.(fl.PartialAdder)
	return mean || isDP(agg)
}

// isDP reports whether agg merges partials clipped at the shard (DP).
func isDP(agg fl.Aggregation) bool {
	_, ok := agg.(fl.ClippedPartialAdder)
	return ok
}
