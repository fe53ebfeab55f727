package participant

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/secagg"
	"github.com/qflare/qflare/shared/wire"
)

// Secure rounds. In a run with secure aggregation (Welcome's
// Run.SecureAgg), a selected client follows the four phases of package
// secagg instead of uploading an update:
//
//	round_start        → advertise fresh round keys, signed with its identity (SAKeys)
//	model frame        → decode the model
//	SARoster           → check the neighbours' signatures and pinned identities; send sealed shares (SAShares)
//	SAInbox            → open its neighbours' envelopes
//	                     train; quantize the delta; mask it; send it (SAMasked)
//	SAUnmask           → reveal the shares the server needs (SAReveal)
//
// Any other message in between (round_end, wait, run_end) ends the secure
// round and is handled as usual; a client that cannot go on (a bad
// signature, too few members left) declines, so that the round does not
// wait for it.

// errSecureOver reports that the secure round ended while the client waited
// for its next message (the message has been handled).
var errSecureOver = errors.New("participant: the secure round is over")

// Drop points of the flaky-device emulation in a secure round.
const (
	dropNone = iota
	dropBeforeKeys
	dropBeforeShares
	dropWhileTraining
	dropBeforeReveal
)

// identityKey returns the client's identity, making one the first time
// (and announcing its seed, so that a tab can keep it with its id).
func (c *Client) identityKey() (*secagg.Identity, error) {
	if c.identity != nil {
		return c.identity, nil
	}
	if id, err := secagg.NewIdentity(c.opt.IdentitySeed); err == nil {
		c.identity = id
		return id, nil
	} else if len(c.opt.IdentitySeed) > 0 {
		c.opt.Log.Warn("the kept identity seed is unusable; making a new identity", "err", err)
	}
	id, err := secagg.GenerateIdentity(crand.Reader)
	if err != nil {
		return nil, err
	}
	c.identity = id
	c.emit(Event{Type: EventIdentity, IdentitySeed: id.Seed(), Fingerprint: secagg.Fingerprint(id.Public())})
	return id, nil
}

// pin checks a member's identity key against the one this client saw first
// for its client id (trust on first use).
func (c *Client) pin(id string, pub []byte) error {
	if c.pins == nil {
		c.pins = map[string][]byte{}
	}
	if old, ok := c.pins[id]; ok {
		if !slices.Equal(old, pub) {
			return fmt.Errorf("client %s's identity key changed from %s to %s", id, secagg.Fingerprint(old), secagg.Fingerprint(pub))
		}
		return nil
	}
	if len(c.pins) >= maxPins {
		for k := range c.pins { // forget one at random; pins are a cache
			delete(c.pins, k)
			break
		}
	}
	c.pins[id] = slices.Clone(pub)
	return nil
}

// maxPins bounds the identities a client remembers.
const maxPins = 10000

// secCost is what a secure round costs the client.
type secCost struct {
	work     time.Duration
	up, down int
}

// timed adds the time f takes to the round's work.
func (k *secCost) timed(f func() error) error {
	start := time.Now()
	err := f()
	k.work += time.Since(start)
	return err
}

// sendSA writes a secure aggregation message.
func (c *Client) sendSA(ctx context.Context, conn link.Conn, m wire.SecAggMessage, cost *secCost) error {
	var b []byte
	if err := cost.timed(func() (err error) { b, err = wire.AppendSecAgg(nil, m); return err }); err != nil {
		return err
	}
	cost.up += len(b)
	return conn.Send(ctx, link.Message{Binary: true, Data: b})
}

// awaitSA returns the secure round's next message, which must be a T for
// round. Accepted messages are reported on the way; a message that ends
// the round is handled and gives errSecureOver (or the handler's error).
func awaitSA[T wire.SecAggMessage](ctx context.Context, c *Client, conn link.Conn, round int, cost *secCost) (T, error) {
	var zero T
	for {
		it, err := c.next(ctx)
		if err != nil {
			return zero, err
		}
		switch m := it.msg.(type) {
		case T:
			if m.RoundNo() == round {
				cost.down += it.size
				return m, nil
			}
			continue // a stale message of an earlier round
		case wire.SecAggMessage:
			if m.RoundNo() != round {
				continue
			}
			return zero, fmt.Errorf("participant: got %s while waiting for %s in secure round %d", m.Type(), zero.Type(), round)
		case *wire.Accepted:
			c.emit(Event{Type: EventAccepted, Round: m.Round, Bytes: m.Bytes})
			continue
		case *wire.Rejected:
			c.emit(Event{Type: EventRejected, Round: m.Round, Message: m.Reason, Code: m.Code})
			if m.Round == round {
				return zero, errSecureOver // the server will not go on with this client
			}
			continue
		case nil:
			return zero, fmt.Errorf("participant: an unexpected binary frame in secure round %d", round)
		}
		if err := c.handle(ctx, conn, it); err != nil {
			return zero, err
		}
		return zero, errSecureOver
	}
}

// secureRound runs one secure round (see the top of this file).
func (c *Client) secureRound(ctx context.Context, conn link.Conn, rs *wire.RoundStart, seq uint64) error {
	defer c.between()
	info := c.welcome.Run.SecureAgg
	c.state(StateDownloading, rs.Round)
	c.emit(Event{Type: EventRoundStart, Round: rs.Round, ModelVersion: rs.ModelVersion})
	drop := dropNone
	if c.opt.DropProb > 0 && c.rng.Float64() < c.opt.DropProb {
		drop = dropBeforeKeys + c.rng.IntN(4)
	}
	dropNow := func(at int) bool {
		if drop != at {
			return false
		}
		conn.Close()
		return true
	}
	if dropNow(dropBeforeKeys) {
		return errDropped
	}
	graph, err := secagg.ParseGraph(info.Graph)
	if err != nil {
		return c.decline(ctx, conn, rs.Round, "secure aggregation: "+err.Error())
	}
	id, err := c.identityKey()
	if err != nil {
		return err
	}
	cost := &secCost{}
	var sa *secagg.Client
	var keys *wire.SAKeys
	if err := cost.timed(func() (err error) {
		sa, keys, err = secagg.NewClient(secagg.ClientOptions{
			Round: secagg.Round{Run: c.welcome.Run.ID, Round: rs.Round, Length: c.numParams() + 1, Threshold: info.Threshold,
				Graph: graph, Clip: info.Clip, MaxWeight: info.MaxWeight},
			ClientID: c.id, Identity: id, Pin: c.pin})
		return err
	}); err != nil {
		return err
	}
	if err := c.sendSA(ctx, conn, keys, cost); err != nil {
		return err
	}
	it, err := c.next(ctx)
	if err != nil {
		return err
	}
	if it.msg != nil { // the server moved on before sending the model
		return c.handle(ctx, conn, it)
	}
	if err := c.receiveModel(it.frame, rs); err != nil {
		return err
	}
	c.emit(Event{Type: EventDownload, Round: rs.Round, Bytes: len(it.frame)})
	err = c.secureShare(ctx, conn, sa, rs, drop, cost)
	if err == nil {
		err = c.secureMask(ctx, conn, sa, rs, seq, drop, cost)
	}
	if err == nil {
		if dropNow(dropBeforeReveal) {
			return errDropped
		}
		err = c.secureReveal(ctx, conn, sa, rs, cost)
	}
	if err == nil {
		c.emit(Event{Type: EventSecure, Round: rs.Round, SecureMS: float64(cost.work.Microseconds()) / 1000,
			BytesUp: cost.up, BytesDown: cost.down})
	}
	switch {
	case errors.Is(err, errSecureOver):
		return nil
	case errors.Is(err, secagg.ErrBelowThreshold), errors.Is(err, secagg.ErrSignature),
		errors.Is(err, secagg.ErrProtocol), errors.Is(err, secagg.ErrBadShare):
		return c.decline(ctx, conn, rs.Round, "secure aggregation: "+err.Error())
	}
	return err
}

// secureShare takes the roster and sends the sealed shares, then opens
// the inbox.
func (c *Client) secureShare(ctx context.Context, conn link.Conn, sa *secagg.Client, rs *wire.RoundStart, drop int, cost *secCost) error {
	roster, err := awaitSA[*wire.SARoster](ctx, c, conn, rs.Round, cost)
	if err != nil {
		return err
	}
	if drop == dropBeforeShares {
		conn.Close()
		return errDropped
	}
	var shares *wire.SAShares
	if err := cost.timed(func() (err error) { shares, err = sa.Share(roster); return err }); err != nil {
		return err
	}
	if err := c.sendSA(ctx, conn, shares, cost); err != nil {
		return err
	}
	inbox, err := awaitSA[*wire.SAInbox](ctx, c, conn, rs.Round, cost)
	if err != nil {
		return err
	}
	return cost.timed(func() error { return sa.Receive(inbox) })
}

// secureMask trains, quantizes the delta and sends it masked.
func (c *Client) secureMask(ctx context.Context, conn link.Conn, sa *secagg.Client, rs *wire.RoundStart, seq uint64, drop int, cost *secCost) error {
	if drop == dropWhileTraining {
		c.dropTraining = true
	}
	rctx, release := c.roundContext(ctx, rs, seq)
	st, err := c.train(rctx, conn, rs)
	release()
	c.dropTraining = false
	worse := (*worseError)(nil)
	switch {
	case errors.Is(err, errDropped):
		return err
	case errors.As(err, &worse):
		// The guard (guard.go): no masked input. The round goes on without
		// it, as for a member that left before masking: the others reveal
		// this member's key root and its pair masks are removed.
		if err := c.decline(ctx, conn, rs.Round, worse.Error()); err != nil {
			return err
		}
		return errSecureOver
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		c.emit(Event{Type: EventError, Round: rs.Round, Message: "the round ended before training finished"})
		return errSecureOver
	case err != nil:
		return err
	}
	c.state(StateUploading, rs.Round)
	var values []uint32
	if err := cost.timed(func() error {
		values = c.quantize(sa, rs, st)
		return sa.Mask(values)
	}); err != nil {
		return err
	}
	m := &wire.SAMasked{Round: rs.Round, ModelVersion: c.version, Loss: finite(st.Loss), Accuracy: st.Accuracy,
		TrainMS: st.Duration.Milliseconds(), SamplesPerS: st.SamplesPerSecond(), Values: values}
	up := cost.up
	if err := c.sendSA(ctx, conn, m, cost); err != nil {
		return err
	}
	c.emit(Event{Type: EventUpload, Round: rs.Round, Bytes: cost.up - up, LocalLoss: st.Loss,
		LocalAccuracy: st.Accuracy, SamplesPerS: st.SamplesPerSecond()})
	return nil
}

// quantize turns the trained model into the member's input: the delta from
// the round's model, clipped, weighted and stochastically rounded (seeded
// with the round's seed, as the other codecs' rounding is), then its
// weight.
func (c *Client) quantize(sa *secagg.Client, rs *wire.RoundStart, st nn.FitStats) []uint32 {
	info := c.welcome.Run.SecureAgg
	delta := getFloats(len(c.local))
	defer putFloats(delta)
	for i := range delta {
		delta[i] = c.local[i] - c.global[i]
	}
	weight := max(1, st.Samples/max(1, rs.Epochs))
	values := make([]uint32, len(delta)+1)
	secagg.Quantize(values, delta, weight, info.MaxWeight, info.Clip, sa.Exponent(), rand.New(rand.NewPCG(rs.Seed, 0x5ec0a99)))
	return values
}

// secureReveal answers the unmask request.
func (c *Client) secureReveal(ctx context.Context, conn link.Conn, sa *secagg.Client, rs *wire.RoundStart, cost *secCost) error {
	req, err := awaitSA[*wire.SAUnmask](ctx, c, conn, rs.Round, cost)
	if err != nil {
		return err
	}
	var rv *wire.SAReveal
	if err := cost.timed(func() (err error) { rv, err = sa.Unmask(req); return err }); err != nil {
		return err
	}
	c.state(StateWaiting, rs.Round)
	return c.sendSA(ctx, conn, rv, cost)
}
