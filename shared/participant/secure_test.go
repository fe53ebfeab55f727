package participant_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/participant"
	"github.com/qflare/qflare/shared/secagg"
	"github.com/qflare/qflare/shared/wire"
)

// secureWelcome is welcome for a run with secure aggregation.
func secureWelcome() *wire.Welcome {
	w := welcome("float32+zstd")
	w.Run.Strategy = "fedavg"
	w.Run.SecureAgg = &wire.SecureAggInfo{Threshold: 0.6, Graph: "complete", Clip: 1, Bits: 32, MaxWeight: 30}
	return w
}

// sendSA writes a secure aggregation message to the client.
func (s *server) sendSA(m wire.SecAggMessage) {
	s.t.Helper()
	b, err := wire.AppendSecAgg(nil, m)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.conn.Send(s.ctx, link.Message{Binary: true, Data: b}); err != nil {
		s.t.Fatal(err)
	}
}

// nextSA returns the client's next secure aggregation message, skipping
// progress; a decline fails the test with its reason unless want is nil.
func nextSA(s *server) (wire.SecAggMessage, *wire.Decline) {
	s.t.Helper()
	for {
		msg, frame := s.recv()
		if d, ok := msg.(*wire.Decline); ok {
			return nil, d
		}
		if frame != nil {
			m, err := wire.ParseSecAgg(frame, wire.SecAggLimits{})
			if err != nil {
				s.t.Fatal(err)
			}
			return m, nil
		}
	}
}

// peers are the two other members, scripted with package secagg.
type peers struct {
	ids  []string
	keys []*secagg.Identity
	cs   []*secagg.Client
	in   [][]uint32
}

func newPeers(t *testing.T) *peers {
	p := &peers{ids: []string{"c-0", "c-2"}}
	for i := range p.ids {
		id, err := secagg.GenerateIdentity(rand.NewChaCha8([32]byte{byte(i + 1)}))
		if err != nil {
			t.Fatal(err)
		}
		p.keys = append(p.keys, id)
	}
	return p
}

// secureRound plays a secure round with the participant (client id c-1)
// and the two peers. swap, when set, changes what the roster says of
// member c-2. It returns the unmasked sum minus the peers' inputs (the
// participant's input), or the participant's decline.
func secureRound(t *testing.T, srv *server, p *peers, round int, swap func(*wire.SARoster)) ([]uint32, *wire.Decline) {
	t.Helper()
	rs := &wire.RoundStart{Round: round, ModelVersion: int64(round), Epochs: 1, Batch: 5, LR: 0.1, Seed: 3}
	return secureRoundFrom(t, srv, p, rs, newModel(t).Params, swap)
}

// secureRoundFrom is secureRound with the given round start and global
// model.
func secureRoundFrom(t *testing.T, srv *server, p *peers, rs *wire.RoundStart, global []float32, swap func(*wire.SARoster)) ([]uint32, *wire.Decline) {
	t.Helper()
	m, round := newModel(t), rs.Round
	r := secagg.Round{Run: "run-1", Round: round, Length: len(m.Params) + 1, Threshold: 0.6, Clip: 1, MaxWeight: 30}
	sa := secagg.NewServer(r)
	srv.send(rs)
	keys, d := nextSA(srv)
	if d != nil {
		return nil, d
	}
	srv.model(wire.KindModel, round, rs.ModelVersion, global, nil, m.TensorShapes(), "float32+zstd")
	if err := sa.AddKeys("c-1", keys.(*wire.SAKeys)); err != nil {
		t.Fatal(err)
	}
	p.cs = make([]*secagg.Client, 2)
	for i, id := range p.ids {
		c, k, err := secagg.NewClient(secagg.ClientOptions{Round: r, ClientID: id, Identity: p.keys[i]})
		if err != nil {
			t.Fatal(err)
		}
		p.cs[i] = c
		if err := sa.AddKeys(id, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := sa.FixRoster([]string{"c-0", "c-1", "c-2"}); err != nil {
		t.Fatal(err)
	}
	ros := sa.RosterFor(1)
	if swap != nil {
		cp := *ros
		cp.Members = slices.Clone(ros.Members)
		swap(&cp)
		ros = &cp
	}
	srv.sendSA(ros)
	shares, d := nextSA(srv)
	if d != nil {
		return nil, d
	}
	if err := sa.AddShares(1, shares.(*wire.SAShares)); err != nil {
		t.Fatal(err)
	}
	for i, c := range p.cs {
		sh, err := c.Share(sa.RosterFor(2 * i))
		if err != nil {
			t.Fatal(err)
		}
		sa.AddShares(2*i, sh)
	}
	if err := sa.CloseShares(); err != nil {
		t.Fatal(err)
	}
	srv.sendSA(sa.InboxFor(1))
	sum := secagg.NewSum(r.Length)
	p.in = nil
	rng := rand.New(rand.NewPCG(1, uint64(round)))
	for i, c := range p.cs {
		if err := c.Receive(sa.InboxFor(2 * i)); err != nil {
			t.Fatal(err)
		}
		x := make([]uint32, r.Length)
		delta := make([]float32, r.Length-1)
		for j := range delta {
			delta[j] = float32(rng.NormFloat64() * 0.01)
		}
		secagg.Quantize(x, delta, 10, 30, 1, c.Exponent(), rng)
		p.in = append(p.in, slices.Clone(x))
		c.Mask(x)
		sum.Add(x)
		sa.Masked(2 * i)
	}
	masked, d := nextSA(srv)
	if d != nil {
		return nil, d
	}
	sum.Add(masked.(*wire.SAMasked).Values)
	sa.Masked(1)
	srv.send(&wire.Accepted{Round: round})
	if err := sa.CloseMasked(); err != nil {
		t.Fatal(err)
	}
	srv.sendSA(sa.UnmaskFor(1))
	rv, d := nextSA(srv)
	if d != nil {
		return nil, d
	}
	if err := sa.AddReveal(1, rv.(*wire.SAReveal)); err != nil {
		t.Fatal(err)
	}
	for i, c := range p.cs {
		rv, err := c.Unmask(sa.UnmaskFor(2 * i))
		if err != nil {
			t.Fatal(err)
		}
		sa.AddReveal(2*i, rv)
	}
	v, _ := sum.Values()
	if err := sa.Unmask(v); err != nil {
		t.Fatal(err)
	}
	for _, x := range p.in {
		for j := range v {
			v[j] -= x[j]
		}
	}
	srv.send(&wire.RoundEnd{Round: round, ModelVersion: int64(round + 1)})
	return v, nil
}

// TestSecureRound: a participant in a secure run advertises keys, shares,
// trains, masks and reveals; the server unmasks the sum, and what is left
// after the other members' inputs is the participant's quantized update:
// its weight (30 samples) and a trained, non-zero delta. It announces its
// new identity once and reuses it.
func TestSecureRound(t *testing.T) {
	var events []participant.Event
	srv, _, done := start(t, participant.Options{Events: func(e participant.Event) { events = append(events, e) }})
	srv.recv()
	srv.send(secureWelcome())
	p := newPeers(t)
	for round := 1; round <= 2; round++ {
		x, d := secureRound(t, srv, p, round, nil)
		if d != nil {
			t.Fatalf("round %d: the participant declined: %s", round, d.Reason)
		}
		if w := x[len(x)-1]; w != 30 {
			t.Errorf("round %d: the participant's weight in the sum is %d; want its 30 samples", round, w)
		}
		nonzero := 0
		for _, v := range x[:len(x)-1] {
			if v != 0 {
				nonzero++
			}
		}
		if nonzero < len(x)/4 {
			t.Errorf("round %d: only %d of %d values of the participant's input are non-zero", round, nonzero, len(x)-1)
		}
	}
	srv.send(&wire.RunEnd{Reason: "done"})
	if err := <-done; !errors.Is(err, participant.ErrRunEnded) {
		t.Errorf("Session = %v; want ErrRunEnded", err)
	}
	identities, secure := 0, 0
	for _, e := range events {
		switch e.Type {
		case participant.EventIdentity:
			identities++
			if len(e.IdentitySeed) != secagg.IdentitySeedSize || e.Fingerprint == "" {
				t.Errorf("identity event %+v; want a seed and a fingerprint", e)
			}
		case participant.EventSecure:
			secure++
			if e.SecureMS <= 0 || e.BytesUp <= 0 || e.BytesDown <= 0 {
				t.Errorf("secure event %+v; want its cost", e)
			}
		}
	}
	if identities != 1 || secure != 2 {
		t.Errorf("%d identity and %d secure events; want 1 and 2", identities, secure)
	}
}

// TestSecureSwappedKeyDeclined: a server that swaps a member's keys is
// caught. Keeping the member's signature fails its verification; re-signing
// with another identity, after the participant pinned the member's real one
// in an earlier round, fails the pin. Either way the participant declines
// the round, saying why, and reveals nothing.
func TestSecureSwappedKeyDeclined(t *testing.T) {
	evil, _ := secagg.GenerateIdentity(rand.NewChaCha8([32]byte{66}))
	m := newModel(t)
	_, forged, err := secagg.NewClient(secagg.ClientOptions{
		Round:    secagg.Round{Run: "run-1", Round: 2, Length: len(m.Params) + 1, Threshold: 0.6, Clip: 1, MaxWeight: 30},
		ClientID: "c-2", Identity: evil})
	if err != nil {
		t.Fatal(err)
	}
	// The server changes what the roster says of c-2, digest included (the
	// graph then changes too, which a server is free to cause).
	swapped := func(change func(k *wire.RoundKeys)) func(*wire.SARoster) {
		return func(r *wire.SARoster) {
			r.Digests = slices.Clone(r.Digests)
			for i := range r.Members {
				if e := &r.Members[i]; e.ClientID == "c-2" {
					change(&e.Keys)
					r.Digests[e.Index] = secagg.Digest("c-2", &e.Keys)
				}
			}
		}
	}
	swapMask := swapped(func(k *wire.RoundKeys) { k.MaskKey = forged.Keys.MaskKey })
	resign := swapped(func(k *wire.RoundKeys) { *k = forged.Keys })
	for _, c := range []struct {
		name  string
		round int // the round the swap happens in (round 1 pins)
		swap  func(*wire.SARoster)
		want  string
	}{
		{"same signature", 1, swapMask, "signature"},
		{"re-signed", 2, resign, "identity key changed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, _, _ := start(t, participant.Options{})
			srv.recv()
			srv.send(secureWelcome())
			p := newPeers(t)
			for round := 1; round <= c.round; round++ {
				swap := c.swap
				if round < c.round {
					swap = nil
				}
				_, d := secureRound(t, srv, p, round, swap)
				if round < c.round {
					if d != nil {
						t.Fatalf("round %d declined: %s", round, d.Reason)
					}
					continue
				}
				if d == nil || !strings.Contains(d.Reason, c.want) {
					t.Fatalf("round %d with a swapped key: decline %+v; want one that says %q", round, d, c.want)
				}
			}
		})
	}
}

// TestSecureWorseTrainingDeclines: in a secure round, a member whose local
// training makes the model worse on its own data (the guard) sends no
// masked input: it declines the round after sharing, saying why, and goes
// on to the next round.
func TestSecureWorseTrainingDeclines(t *testing.T) {
	set := noisySet()
	m := newModel(t)
	good := trainedOn(t, m, set)
	rs := &wire.RoundStart{Round: 1, ModelVersion: 1, Epochs: 1, Batch: 1, LR: 1, Seed: 3}
	// The scenario must be real: the same training, done here, is worse.
	before, after := lossBeforeAfter(t, m, set, good, participant.RoundConfig{Epochs: rs.Epochs, Batch: rs.Batch, LR: rs.LR, Seed: rs.Seed})
	if !(after > before) {
		t.Fatalf("training at lr %g takes the loss from %g to %g; the test needs a higher loss", rs.LR, before, after)
	}
	srv, _, done := start(t, participant.Options{Data: set})
	srv.recv()
	srv.send(secureWelcome())
	p := newPeers(t)
	x, d := secureRoundFrom(t, srv, p, rs, good, nil)
	if d == nil || d.Round != 1 || !strings.Contains(d.Reason, "worse") {
		t.Fatalf("round 1 with training that makes the model worse: input %d values, decline %+v; want a decline saying so", len(x), d)
	}
	// It takes part in the next round as usual.
	if _, d := secureRound(t, srv, p, 2, nil); d != nil {
		t.Fatalf("round 2: the participant declined: %s", d.Reason)
	}
	srv.send(&wire.RunEnd{Reason: "done"})
	if err := <-done; !errors.Is(err, participant.ErrRunEnded) {
		t.Errorf("Session = %v; want ErrRunEnded", err)
	}
}
