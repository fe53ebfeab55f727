package secagg

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/qflare/qflare/shared/wire"
)

// seeded returns a repeatable randomness source.
func seeded(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return rand.NewChaCha8(s)
}

// Phases at which a test member drops.
const (
	dropNever = iota
	dropKeys
	dropShares
	dropMasked
	dropUnmask
)

// sim is one secure round among n members driven in memory, every message
// encoded and parsed as on the wire.
type sim struct {
	t       testing.TB
	r       Round
	ids     []string
	inputs  [][]uint32 // each member's quantized input
	drop    []int      // phase each member drops at
	tamper  func(i int, r *wire.SARoster)
	pins    map[string][]byte
	server  *Server
	clients []*Client
	reveals map[int]*wire.SAReveal
}

func newSim(t testing.TB, n int, g Graph, threshold float64, length int) *sim {
	s := &sim{t: t, r: Round{Run: "run-x", Round: 3, Length: length, Threshold: threshold, Graph: g, Clip: 1, MaxWeight: 600},
		drop: make([]int, n), pins: map[string][]byte{}}
	rng := rand.New(rand.NewPCG(uint64(n), uint64(length)))
	for i := range n {
		s.ids = append(s.ids, fmt.Sprintf("c-%03d", i))
		in := make([]uint32, length)
		for j := range in[:length-1] {
			in[j] = uint32(int32(rng.IntN(2001) - 1000))
		}
		in[length-1] = uint32(1 + rng.IntN(600))
		s.inputs = append(s.inputs, in)
	}
	return s
}

// wire round-trips a message through its encoding.
func roundTrip[T wire.SecAggMessage](t testing.TB, m T) T {
	t.Helper()
	b, err := wire.AppendSecAgg(nil, m)
	if err != nil {
		t.Fatalf("AppendSecAgg(%s) = %v", m.Type(), err)
	}
	got, err := wire.ParseSecAgg(b, wire.SecAggLimits{})
	if err != nil {
		t.Fatalf("ParseSecAgg(%s) = %v", m.Type(), err)
	}
	return got.(T)
}

// run plays the round and returns the unmasked sum of the survivors'
// inputs and the survivors, or the error that aborted it.
func (s *sim) run() ([]uint32, []int, error) {
	t := s.t
	n := len(s.ids)
	ids, err := NewIdentities(n)
	if err != nil {
		t.Fatal(err)
	}
	s.server = NewServer(s.r)
	s.clients = make([]*Client, n)
	for i := range n {
		if s.drop[i] == dropKeys {
			continue
		}
		opt := ClientOptions{Round: s.r, ClientID: s.ids[i], Identity: ids[i], Rand: seeded(uint64(i) + 1),
			Pin: s.pin}
		c, keys, err := NewClient(opt)
		if err != nil {
			t.Fatal(err)
		}
		s.clients[i] = c
		if err := s.server.AddKeys(s.ids[i], roundTrip(t, keys)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.server.FixRoster(s.ids); err != nil {
		return nil, nil, err
	}
	// Client i is member idx[i] (members keep the order of ids).
	idx := map[int]int{}
	for i := range n {
		if j, ok := s.server.Index(s.ids[i]); ok {
			idx[i] = j
		}
	}
	for i, c := range s.clients {
		if c == nil || s.drop[i] == dropShares {
			continue
		}
		r := s.server.RosterFor(idx[i])
		if s.tamper != nil {
			s.tamper(idx[i], r)
		}
		sh, err := c.Share(roundTrip(t, r))
		if err != nil {
			return nil, nil, fmt.Errorf("member %d: %w", idx[i], err)
		}
		if err := s.server.AddShares(idx[i], roundTrip(t, sh)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.server.CloseShares(); err != nil {
		return nil, nil, err
	}
	sum := NewSum(s.r.Length)
	for i, c := range s.clients {
		if c == nil || s.drop[i] == dropShares {
			continue
		}
		if err := c.Receive(roundTrip(t, s.server.InboxFor(idx[i]))); err != nil {
			return nil, nil, fmt.Errorf("member %d: %w", idx[i], err)
		}
		if s.drop[i] == dropMasked {
			continue
		}
		y := slices.Clone(s.inputs[i])
		if err := c.Mask(y); err != nil {
			t.Fatal(err)
		}
		y = roundTrip(t, &wire.SAMasked{Round: s.r.Round, Values: y}).Values
		if err := s.server.Masked(idx[i]); err != nil {
			t.Fatal(err)
		}
		sum.Add(y)
	}
	if err := s.server.CloseMasked(); err != nil {
		return nil, nil, err
	}
	s.reveals = map[int]*wire.SAReveal{}
	for i, c := range s.clients {
		if c == nil || s.drop[i] >= dropShares && s.drop[i] <= dropUnmask {
			continue
		}
		rv, err := c.Unmask(roundTrip(t, s.server.UnmaskFor(idx[i])))
		if err != nil {
			return nil, nil, fmt.Errorf("member %d: %w", idx[i], err)
		}
		s.reveals[idx[i]] = rv
		if err := s.server.AddReveal(idx[i], roundTrip(t, rv)); err != nil {
			t.Fatal(err)
		}
	}
	v, _ := sum.Values()
	if err := s.server.Unmask(v); err != nil {
		return nil, nil, err
	}
	var survivors []int
	for i := range n {
		if j, ok := idx[i]; ok && slices.Contains(s.server.Survivors(), j) {
			survivors = append(survivors, i)
		}
	}
	return v, survivors, nil
}

func (s *sim) pin(id string, pub []byte) error {
	if old, ok := s.pins[id]; ok && !slices.Equal(old, pub) {
		return fmt.Errorf("client %s's identity key changed", id)
	}
	s.pins[id] = slices.Clone(pub)
	return nil
}

// plainSum adds the inputs of members, modulo 2^32.
func (s *sim) plainSum(members []int) []uint32 {
	sum := make([]uint32, s.r.Length)
	for _, i := range members {
		for j, x := range s.inputs[i] {
			sum[j] += x
		}
	}
	return sum
}

// NewIdentities returns n identities from fixed seeds.
func NewIdentities(n int) ([]*Identity, error) {
	ids := make([]*Identity, n)
	for i := range ids {
		seed := make([]byte, IdentitySeedSize)
		seed[0], seed[1] = byte(i), byte(i>>8)
		var err error
		if ids[i], err = NewIdentity(seed); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// TestExactWithDropouts: the unmasked sum equals the plain sum of the
// survivors' inputs bit for bit, with no dropouts and with 10% and 30% of
// the members dropping at each phase, for the complete graph and k:6.
func TestExactWithDropouts(t *testing.T) {
	n := 20
	if testing.Short() || runtime.GOARCH == "wasm" {
		n = 12 // the same cases, a third of the work
	}
	for _, g := range []Graph{{}, {K: 6}} {
		for _, frac := range []float64{0, 0.1, 0.3} {
			for phase := dropKeys; phase <= dropUnmask; phase++ {
				if frac == 0 && phase > dropKeys {
					continue
				}
				name := fmt.Sprintf("%s/%g%%/phase%d", g, 100*frac, phase)
				t.Run(name, func(t *testing.T) {
					// A k-regular graph may leave a neighbourhood below its
					// threshold for some draws of who drops (the round then
					// aborts, as it must); try draws until one completes.
					for draw := range 10 {
						s := newSim(t, n, g, 0.55, 97)
						rng := rand.New(rand.NewPCG(uint64(phase), uint64(100*frac)+uint64(draw)<<8))
						for _, i := range rng.Perm(n)[:int(frac*float64(n))] {
							s.drop[i] = phase
						}
						sum, survivors, err := s.run()
						if errors.Is(err, ErrBelowThreshold) && g.K != 0 {
							continue
						}
						if err != nil {
							t.Fatal(err)
						}
						want := s.plainSum(survivors)
						if !slices.Equal(sum, want) {
							t.Fatalf("unmasked sum differs from the plain sum of %d survivors", len(survivors))
						}
						for i := range n {
							if (s.drop[i] == dropNever || s.drop[i] == dropUnmask) != slices.Contains(survivors, i) {
								t.Errorf("member %d (drops at phase %d) survivor = %v", i, s.drop[i], slices.Contains(survivors, i))
							}
						}
						return
					}
					t.Fatal("no draw of dropouts completed")
				})
			}
		}
	}
}

// TestNeverBothShares: the server never receives a self-mask share and a
// key-root share of the same member.
func TestNeverBothShares(t *testing.T) {
	s := newSim(t, 12, Graph{}, 0.6, 33)
	for _, i := range []int{2, 7} {
		s.drop[i] = dropMasked
	}
	if _, _, err := s.run(); err != nil {
		t.Fatal(err)
	}
	kinds := map[int]uint8{}
	for holder, rv := range s.reveals {
		for _, sh := range rv.Shares {
			if k, ok := kinds[sh.Of]; ok && k != sh.Kind {
				t.Fatalf("member %d revealed a kind-%d share of member %d; another holder revealed kind %d", holder, sh.Kind, sh.Of, k)
			}
			kinds[sh.Of] = sh.Kind
		}
	}
	if kinds[2] != wire.ShareRoot || kinds[0] != wire.ShareSelf {
		t.Errorf("kinds revealed %v; want roots of the dropped members and self seeds of the others", kinds)
	}
}

// TestAbortBelowThreshold: a round whose survivors fall below the
// threshold aborts with ErrBelowThreshold instead of revealing anything.
func TestAbortBelowThreshold(t *testing.T) {
	s := newSim(t, 10, Graph{}, 0.8, 17)
	for i := range 4 {
		s.drop[i] = dropMasked
	}
	_, _, err := s.run()
	if !errors.Is(err, ErrBelowThreshold) {
		t.Fatalf("round with 6 of 10 survivors and threshold 0.8 = %v; want ErrBelowThreshold", err)
	}
}

// TestSwappedKeyCaught: a server that swaps a member's mask key for one it
// holds (keeping the signature, or re-signing with another identity) is
// caught by the other members.
func TestSwappedKeyCaught(t *testing.T) {
	evil, err := GenerateIdentity(seeded(99))
	if err != nil {
		t.Fatal(err)
	}
	_, fake, err := NewClient(ClientOptions{Round: Round{Run: "run-x", Round: 3, Length: 17, Threshold: 0.6, Clip: 1, MaxWeight: 600},
		ClientID: "c-001", Identity: evil, Rand: seeded(7)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		swap func(k *wire.RoundKeys)
	}{
		{"same signature", func(k *wire.RoundKeys) { k.MaskKey = fake.Keys.MaskKey }},
		{"re-signed by another identity", func(k *wire.RoundKeys) { *k = fake.Keys }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSim(t, 5, Graph{}, 0.6, 17)
			// Members saw c-001's real identity in an earlier round.
			ids, _ := NewIdentities(5)
			s.pins["c-001"] = ids[1].Public()
			s.tamper = func(self int, r *wire.SARoster) {
				for i := range r.Members {
					if r.Members[i].ClientID == "c-001" {
						c.swap(&r.Members[i].Keys)
						r.Digests = slices.Clone(r.Digests)
						r.Digests[r.Members[i].Index] = Digest("c-001", &r.Members[i].Keys)
					}
				}
			}
			_, _, err := s.run()
			if !errors.Is(err, ErrSignature) {
				t.Fatalf("round with a swapped key = %v; want ErrSignature", err)
			}
		})
	}
}
