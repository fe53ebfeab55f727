package secagg

import (
	"bytes"
	"crypto/hpke"
	"crypto/rand"
	"fmt"
	"io"
	"slices"

	"github.com/cloudflare/circl/group"
	"github.com/qflare/qflare/shared/wire"
)

// Round describes a secure round as every party derives it: run, round,
// the length of an input (model parameters + 1), the threshold fraction,
// the graph, and the quantization's clip and largest weight.
type Round struct {
	Run       string
	Round     int
	Length    int
	Threshold float64 // fraction of a member's share holders needed to recover its secrets, in (0.5, 1]
	Graph     Graph
	Clip      float64
	MaxWeight int
}

// check validates r (a programmer's error otherwise: callers build it from
// a validated configuration).
func (r *Round) check() {
	if r.Length < 2 || !(r.Threshold > 0.5 && r.Threshold <= 1) || r.MaxWeight < 1 || !(r.Clip > 0) {
		panic(fmt.Sprintf("secagg: bad round parameters %+v", *r))
	}
}

// ClientOptions configures a member's side of one round.
type ClientOptions struct {
	Round
	ClientID string
	Identity *Identity
	// Pin checks a member's identity key against the one first seen for
	// its client id (and records it the first time); an error aborts the
	// round. Nil: no pinning (the signature is still checked against the
	// key the roster carries).
	Pin func(clientID string, identity []byte) error
	// Rand is the source of the member's secrets (default crypto/rand);
	// tests pass a seeded one.
	Rand io.Reader
}

// Client is one member's side of a secure round, driven phase by phase:
// NewClient (advertise keys), Share (share keys), Receive, Mask (masked
// input), Unmask (unmasking). Not safe for concurrent use.
type Client struct {
	opt    ClientOptions
	rnd    io.Reader
	enc    hpke.PrivateKey // seals shares to it; never leaves the member
	self   group.Scalar    // b_u, the self-mask seed
	root   group.Scalar    // the key root: mask key and owned pair seeds derive from it
	rootB  []byte
	keys   wire.RoundKeys
	me     int
	topo   *topology
	t      int
	exp    int
	peers  map[int]string // neighbours' client ids
	held   map[int][2][]byte
	seeds  map[int][]byte // pair seeds with the neighbours that shared (U2)
	shared []int          // neighbours that shared, increasing
	phase  int
}

// Client phases.
const (
	phaseKeys = iota
	phaseShared
	phaseReceived
	phaseMasked
	phaseDone
)

// NewClient draws the member's fresh secrets and round keys and returns
// the signed keys to advertise.
func NewClient(opt ClientOptions) (*Client, *wire.SAKeys, error) {
	opt.check()
	if opt.Identity == nil {
		panic("secagg: NewClient without an identity")
	}
	c := &Client{opt: opt, rnd: opt.Rand}
	if c.rnd == nil {
		c.rnd = rand.Reader
	}
	var err error
	if c.self, err = randomScalar(c.rnd); err != nil {
		return nil, nil, err
	}
	if c.root, err = randomScalar(c.rnd); err != nil {
		return nil, nil, err
	}
	c.rootB = scalarBytes(c.root)
	encSeed := make([]byte, 64)
	if _, err := io.ReadFull(c.rnd, encSeed); err != nil {
		return nil, nil, fmt.Errorf("secagg: reading randomness: %w", err)
	}
	if c.enc, err = kem.DeriveKeyPair(encSeed); err != nil {
		return nil, nil, err
	}
	mask, err := maskPrivate(c.rootB)
	if err != nil {
		return nil, nil, err
	}
	c.keys = wire.RoundKeys{EncKey: c.enc.PublicKey().Bytes(), MaskKey: mask.PublicKey().Bytes(), Identity: opt.Identity.Public()}
	if c.keys.Sig, err = opt.Identity.sign(signedMessage(opt.Run, opt.Round.Round, opt.ClientID, c.keys.EncKey, c.keys.MaskKey)); err != nil {
		return nil, nil, err
	}
	return c, &wire.SAKeys{Round: opt.Round.Round, Keys: c.keys}, nil
}

// Exponent returns the quantization exponent of the round (known once the
// roster is in).
func (c *Client) Exponent() int { return c.exp }

func (c *Client) protocol(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// Share takes the roster: it checks that the member's own keys are listed
// unchanged, derives the graph, verifies each neighbour's keys against its
// digest, signature and pinned identity, then Shamir-shares the member's
// self-mask seed and key root among its neighbours and itself and seals
// each neighbour's shares (and, for the pairs it owns, the pair's mask
// seed) to that neighbour's keys.
func (c *Client) Share(r *wire.SARoster) (*wire.SAShares, error) {
	if c.phase != phaseKeys {
		return nil, c.protocol("a roster after the keys phase")
	}
	o := &c.opt
	if r.Round != o.Round.Round {
		return nil, c.protocol("roster for round %d in round %d", r.Round, o.Round.Round)
	}
	n := len(r.Digests)
	if n < 2 {
		return nil, fmt.Errorf("%w: the round has %d member", ErrBelowThreshold, n)
	}
	if uint64(n)*uint64(o.MaxWeight) >= 1<<32 {
		return nil, c.protocol("%d members of weight up to %d could wrap the weight sum", n, o.MaxWeight)
	}
	own := Digest(o.ClientID, &c.keys)
	c.me = slices.IndexFunc(r.Digests, func(d []byte) bool { return bytes.Equal(d, own) })
	if c.me < 0 {
		return nil, fmt.Errorf("%w: the roster does not list this member's own keys", ErrSignature)
	}
	var err error
	if c.exp, err = Exponent(n, o.Clip); err != nil {
		return nil, err
	}
	c.topo = newTopology(o.Graph, n, graphSeed(o.Run, o.Round.Round, r.Digests))
	nb := c.topo.neighbours(c.me)
	keys := make(map[int]*wire.RoundKeys, len(nb))
	c.peers = make(map[int]string, len(nb))
	for i := range r.Members {
		m := &r.Members[i]
		if m.Index == c.me {
			continue
		}
		if !c.topo.adjacent(c.me, m.Index) {
			return nil, c.protocol("the roster gives the keys of member %d, not a neighbour", m.Index)
		}
		if !bytes.Equal(r.Digests[m.Index], Digest(m.ClientID, &m.Keys)) {
			return nil, fmt.Errorf("%w: member %d's keys do not match its digest", ErrSignature, m.Index)
		}
		if err := verifyKeys(o.Run, o.Round.Round, m.ClientID, &m.Keys); err != nil {
			return nil, err
		}
		if o.Pin != nil {
			if err := o.Pin(m.ClientID, m.Keys.Identity); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrSignature, err)
			}
		}
		keys[m.Index], c.peers[m.Index] = &m.Keys, m.ClientID
	}
	if len(keys) != len(nb) {
		return nil, c.protocol("the roster gives the keys of %d of this member's %d neighbours", len(keys), len(nb))
	}
	holders := c.topo.holders(c.me)
	c.t = Threshold(o.Threshold, len(holders))
	selfShares, err := split(c.rnd, c.self, c.t, holders)
	if err != nil {
		return nil, err
	}
	rootShares, err := split(c.rnd, c.root, c.t, holders)
	if err != nil {
		return nil, err
	}
	c.held = map[int][2][]byte{}
	c.seeds = map[int][]byte{}
	out := &wire.SAShares{Round: o.Round.Round, Envelopes: make([]wire.SAEnvelope, 0, len(nb))}
	for i, h := range holders {
		if h == c.me {
			c.held[h] = [2][]byte{selfShares[i], rootShares[i]}
			continue
		}
		k := keys[h]
		env := wire.SAEnvelope{Peer: h}
		pt := append(slices.Clip(selfShares[i]), rootShares[i]...)
		if env.Shares, err = seal(k.EncKey, envelopeInfo("shares", o.Run, o.Round.Round, c.me, h), pt); err != nil {
			return nil, err
		}
		if owner(c.me, h) == c.me {
			seed := pairSeed(c.rootB, o.Run, o.Round.Round, c.me, h)
			c.seeds[h] = seed
			if env.Seed, err = seal(k.MaskKey, envelopeInfo("seed", o.Run, o.Round.Round, c.me, h), seed); err != nil {
				return nil, err
			}
		}
		out.Envelopes = append(out.Envelopes, env)
	}
	c.phase = phaseShared
	return out, nil
}

// Receive opens what the neighbours that shared sealed for this member:
// their shares (kept, to be revealed in the unmasking) and the seeds of the
// pairs they own. Neighbours that did not share drop out of the masking.
func (c *Client) Receive(in *wire.SAInbox) error {
	if c.phase != phaseShared {
		return c.protocol("an inbox outside the share phase")
	}
	o := &c.opt
	if in.Round != o.Round.Round {
		return c.protocol("inbox for round %d in round %d", in.Round, o.Round.Round)
	}
	c.shared = c.shared[:0]
	for _, e := range in.Envelopes {
		if !c.topo.adjacent(c.me, e.Peer) {
			return c.protocol("an envelope from member %d, not a neighbour", e.Peer)
		}
		pt, err := open(c.enc, envelopeInfo("shares", o.Run, o.Round.Round, e.Peer, c.me), e.Shares)
		if err != nil {
			return fmt.Errorf("from member %d: %w", e.Peer, err)
		}
		if len(pt) != 2*wire.ShareSize {
			return fmt.Errorf("%w: member %d sealed %d bytes of shares", ErrBadShare, e.Peer, len(pt))
		}
		for _, s := range [][]byte{pt[:wire.ShareSize], pt[wire.ShareSize:]} {
			if _, err := parseScalar(s); err != nil {
				return fmt.Errorf("from member %d: %w", e.Peer, err)
			}
		}
		c.held[e.Peer] = [2][]byte{pt[:wire.ShareSize:wire.ShareSize], pt[wire.ShareSize:]}
		owns := owner(c.me, e.Peer) == e.Peer
		switch {
		case owns && len(e.Seed) == 0:
			return c.protocol("member %d owns the pair's seed but sent none", e.Peer)
		case !owns && len(e.Seed) > 0:
			return c.protocol("member %d sent a seed for a pair this member owns", e.Peer)
		case owns:
			mask, err := maskPrivate(c.rootB)
			if err != nil {
				return err
			}
			seed, err := open(mask, envelopeInfo("seed", o.Run, o.Round.Round, e.Peer, c.me), e.Seed)
			if err != nil {
				return fmt.Errorf("from member %d: %w", e.Peer, err)
			}
			if len(seed) != 32 {
				return fmt.Errorf("%w: member %d sealed a seed of %d bytes", ErrBadShare, e.Peer, len(seed))
			}
			c.seeds[e.Peer] = seed
		}
		c.shared = append(c.shared, e.Peer)
	}
	for v := range c.seeds {
		if _, ok := slices.BinarySearch(c.shared, v); !ok {
			delete(c.seeds, v) // it never shared: no mask with it
			delete(c.held, v)
		}
	}
	if len(c.shared)+1 < c.t {
		return fmt.Errorf("%w: %d of this member's %d share holders are left; %d are needed", ErrBelowThreshold, len(c.shared)+1, c.topo.degree(c.me)+1, c.t)
	}
	c.phase = phaseReceived
	return nil
}

// Mask adds the member's masks to its quantized input in dst (Length
// values): its self mask, and for each neighbour that shared the pair's
// mask, added when this member's index is the smaller, else subtracted, so
// that the pair masks cancel in the sum.
func (c *Client) Mask(dst []uint32) error {
	if c.phase != phaseReceived {
		return c.protocol("masking before the inbox")
	}
	if len(dst) != c.opt.Length {
		panic(fmt.Sprintf("secagg: Mask of %d values; the round's inputs have %d", len(dst), c.opt.Length))
	}
	addMask(dst, maskKey(maskSelf, scalarBytes(c.self)), false)
	for _, v := range c.shared {
		addMask(dst, maskKey(maskPair, c.seeds[v]), c.me > v)
	}
	c.phase = phaseMasked
	return nil
}

// Unmask answers the server's list of the members whose masked inputs it
// holds: for each holder-neighbour that shared (and itself), the share of
// its self-mask seed if it survived, else the share of its key root; never
// both kinds for one member. A member the server did not count as a
// survivor, or one whose survivors are fewer than its threshold, reveals
// nothing.
func (c *Client) Unmask(u *wire.SAUnmask) (*wire.SAReveal, error) {
	if c.phase != phaseMasked {
		return nil, c.protocol("an unmask request before this member masked its input")
	}
	if u.Round != c.opt.Round.Round {
		return nil, c.protocol("unmask request for round %d in round %d", u.Round, c.opt.Round.Round)
	}
	c.phase = phaseDone
	alive := func(v int) bool { _, ok := slices.BinarySearch(u.Survivors, v); return ok }
	if !alive(c.me) {
		return nil, c.protocol("the server does not count this member's masked input")
	}
	if len(u.Survivors) < 2 {
		return nil, fmt.Errorf("%w: %d survivor", ErrBelowThreshold, len(u.Survivors))
	}
	live := 1
	for _, v := range c.shared {
		if alive(v) {
			live++
		}
	}
	if live < c.t {
		return nil, fmt.Errorf("%w: %d of this member's share holders survive; %d are needed", ErrBelowThreshold, live, c.t)
	}
	out := &wire.SAReveal{Round: u.Round}
	for _, v := range append(slices.Clone(c.shared), c.me) {
		h := c.held[v]
		if alive(v) {
			out.Shares = append(out.Shares, wire.SAShare{Of: v, Kind: wire.ShareSelf, Value: h[0]})
		} else {
			out.Shares = append(out.Shares, wire.SAShare{Of: v, Kind: wire.ShareRoot, Value: h[1]})
		}
	}
	slices.SortFunc(out.Shares, func(a, b wire.SAShare) int { return a.Of - b.Of })
	return out, nil
}
