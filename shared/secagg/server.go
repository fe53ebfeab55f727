package secagg

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/qflare/qflare/shared/wire"
)

// Server is the server's side of a secure round: it collects the members'
// keys, fixes the roster, relays the sealed envelopes (which it cannot
// open), learns who sent masked inputs, collects the revealed shares and
// finally removes the masks from the sum of the masked inputs. It never
// holds an unmasked input, and never accepts both kinds of share for one
// member. Its methods are called from one goroutine (the run's loop);
// Unmask, the heavy part, may run on another once the collection is
// closed. Not safe for concurrent use.
type Server struct {
	r Round

	keys  map[string]*wire.RoundKeys // advertised, by client id
	order []string                   // client ids in the order they advertised

	members  []member
	index    map[string]int
	digests  [][]byte
	topo     *topology
	exp      int
	complete *wire.SARoster // the roster of a complete graph, shared by every member

	inbox  [][]wire.SAEnvelope // per recipient, by sender
	seeds  map[[2]int][]byte   // sealed pair seeds by (owner, recipient): needed if the recipient drops
	shared []bool              // U2

	masked    []bool // U3
	unmask    *wire.SAUnmask
	survivors []int
	asked     []bool           // members asked to reveal (survivors)
	shares    []map[int][]byte // shares revealed of member i's secret, by holder
	kinds     []uint8          // which secret of member i is revealed
	revealed  []bool           // members that answered the unmask request
	phase     int
}

// member is one member of the roster.
type member struct {
	id   string
	keys *wire.RoundKeys
}

// Server phases.
const (
	srvKeys = iota
	srvShares
	srvMasked
	srvUnmask
	srvDone
)

// NewServer starts the server's side of round r.
func NewServer(r Round) *Server {
	r.check()
	return &Server{r: r, keys: map[string]*wire.RoundKeys{}}
}

func (s *Server) protocol(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// AddKeys takes a client's advertised round keys (phase 0), after checking
// their signature, so that a client with broken keys is refused at once.
func (s *Server) AddKeys(clientID string, m *wire.SAKeys) error {
	switch {
	case s.phase != srvKeys:
		return s.protocol("keys after the roster is fixed")
	case m.Round != s.r.Round:
		return s.protocol("keys for round %d in round %d", m.Round, s.r.Round)
	case s.keys[clientID] != nil:
		return s.protocol("client %s advertised keys twice", clientID)
	}
	if err := verifyKeys(s.r.Run, s.r.Round, clientID, &m.Keys); err != nil {
		return err
	}
	k := m.Keys
	s.keys[clientID] = &k
	s.order = append(s.order, clientID)
	return nil
}

// Advertised reports whether clientID's keys are in.
func (s *Server) Advertised(clientID string) bool { return s.keys[clientID] != nil }

// FixRoster closes phase 0: the members are the clients of order (the
// round's selection, in a fixed order) that advertised keys, indexed in
// that order. It fails with ErrBelowThreshold below two members.
func (s *Server) FixRoster(order []string) error {
	if s.phase != srvKeys {
		return s.protocol("the roster is fixed already")
	}
	for _, id := range order {
		if k := s.keys[id]; k != nil {
			s.members = append(s.members, member{id: id, keys: k})
		}
	}
	s.keys, s.order = nil, nil
	n := len(s.members)
	if n < 2 {
		return fmt.Errorf("%w: %d client(s) advertised keys; a secure round needs at least 2", ErrBelowThreshold, n)
	}
	if uint64(n)*uint64(s.r.MaxWeight) >= 1<<32 {
		return s.protocol("%d members of weight up to %d could wrap the weight sum", n, s.r.MaxWeight)
	}
	var err error
	if s.exp, err = Exponent(n, s.r.Clip); err != nil {
		return err
	}
	s.index = make(map[string]int, n)
	s.digests = make([][]byte, n)
	for i, m := range s.members {
		s.index[m.id] = i
		s.digests[i] = Digest(m.id, m.keys)
	}
	s.topo = newTopology(s.r.Graph, n, graphSeed(s.r.Run, s.r.Round, s.digests))
	s.inbox = make([][]wire.SAEnvelope, n)
	s.seeds = map[[2]int][]byte{}
	s.shared = make([]bool, n)
	s.phase = srvShares
	return nil
}

// Members returns the client ids of the roster, by index.
func (s *Server) Members() []string {
	ids := make([]string, len(s.members))
	for i, m := range s.members {
		ids[i] = m.id
	}
	return ids
}

// Index returns clientID's index in the roster.
func (s *Server) Index(clientID string) (int, bool) {
	i, ok := s.index[clientID]
	return i, ok
}

// Exponent returns the round's quantization exponent (once the roster is
// fixed).
func (s *Server) Exponent() int { return s.exp }

// Graph returns the number of neighbours of member i.
func (s *Server) Degree(i int) int { return s.topo.degree(i) }

// RosterFor returns member i's roster: every digest, and the keys of its
// neighbours. With the complete graph every member gets the same roster
// (the same pointer, so that a caller encodes it once), with every
// member's keys.
func (s *Server) RosterFor(i int) *wire.SARoster {
	if s.topo.adj == nil {
		if s.complete == nil {
			s.complete = &wire.SARoster{Round: s.r.Round, Digests: s.digests}
			for j, m := range s.members {
				s.complete.Members = append(s.complete.Members, wire.SAMember{Index: j, ClientID: m.id, Keys: *m.keys})
			}
		}
		return s.complete
	}
	r := &wire.SARoster{Round: s.r.Round, Digests: s.digests}
	for _, j := range s.topo.neighbours(i) {
		m := s.members[j]
		r.Members = append(r.Members, wire.SAMember{Index: j, ClientID: m.id, Keys: *m.keys})
	}
	return r
}

// AddShares takes member i's envelopes (phase 1): exactly one for each
// neighbour, with a sealed seed exactly for the pairs i owns.
func (s *Server) AddShares(i int, m *wire.SAShares) error {
	switch {
	case s.phase != srvShares:
		return s.protocol("shares outside the share phase")
	case m.Round != s.r.Round:
		return s.protocol("shares for round %d in round %d", m.Round, s.r.Round)
	case i < 0 || i >= len(s.members):
		return s.protocol("shares from member %d of %d", i, len(s.members))
	case s.shared[i]:
		return s.protocol("member %d shared twice", i)
	}
	nb := s.topo.neighbours(i)
	if len(m.Envelopes) != len(nb) {
		return s.protocol("member %d sent %d envelopes for its %d neighbours", i, len(m.Envelopes), len(nb))
	}
	for k, e := range m.Envelopes {
		if e.Peer != nb[k] {
			return s.protocol("member %d sent an envelope for member %d, not its neighbour %d", i, e.Peer, nb[k])
		}
		if owns := owner(i, e.Peer) == i; owns != (len(e.Seed) > 0) {
			return s.protocol("member %d: a pair seed for member %d must come from the pair's owner", i, e.Peer)
		}
	}
	for _, e := range m.Envelopes {
		s.inbox[e.Peer] = append(s.inbox[e.Peer], wire.SAEnvelope{Peer: i, Shares: e.Shares, Seed: e.Seed})
		if len(e.Seed) > 0 {
			s.seeds[[2]int{i, e.Peer}] = e.Seed
		}
	}
	s.shared[i] = true
	return nil
}

// Shared reports whether member i's envelopes are in.
func (s *Server) Shared(i int) bool { return s.phase >= srvShares && s.shared[i] }

// CloseShares closes phase 1: the members that shared (U2) go on. Every
// member of U2 must keep at least its threshold of share holders in U2,
// else the round aborts (ErrBelowThreshold).
func (s *Server) CloseShares() error {
	if s.phase != srvShares {
		return s.protocol("closing the share phase outside it")
	}
	s.phase = srvMasked
	s.masked = make([]bool, len(s.members))
	u2 := 0
	for i := range s.members {
		if !s.shared[i] {
			s.inbox[i] = nil
			continue
		}
		u2++
		live := 1
		kept := s.inbox[i][:0]
		for _, e := range s.inbox[i] {
			if s.shared[e.Peer] {
				kept = append(kept, e)
				live++
			}
		}
		s.inbox[i] = kept
		if t := s.threshold(i); live < t {
			return fmt.Errorf("%w: member %d keeps %d of its share holders after the share phase; %d are needed", ErrBelowThreshold, i, live, t)
		}
	}
	if u2 < 2 {
		return fmt.Errorf("%w: %d member(s) shared their keys", ErrBelowThreshold, u2)
	}
	return nil
}

// threshold is member i's: its share holders' count times the fraction.
func (s *Server) threshold(i int) int { return Threshold(s.r.Threshold, s.topo.degree(i)+1) }

// InboxFor returns what member i's neighbours sealed for it; nil for a
// member that did not share. Call it once per member: the envelopes are
// dropped afterwards (the server keeps only the sealed pair seeds).
func (s *Server) InboxFor(i int) *wire.SAInbox {
	if !s.shared[i] {
		return nil
	}
	in := &wire.SAInbox{Round: s.r.Round, Envelopes: s.inbox[i]}
	slices.SortFunc(in.Envelopes, func(a, b wire.SAEnvelope) int { return a.Peer - b.Peer })
	s.inbox[i] = nil
	return in
}

// MayMask reports whether member i may send a masked input now (it shared,
// and has not sent one).
func (s *Server) MayMask(i int) bool {
	return s.phase == srvMasked && i >= 0 && i < len(s.members) && s.shared[i] && !s.masked[i]
}

// Masked records that member i's masked input is in the sum.
func (s *Server) Masked(i int) error {
	if !s.MayMask(i) {
		return s.protocol("a masked input from member %d now", i)
	}
	s.masked[i] = true
	return nil
}

// CloseMasked closes phase 2: the members whose masked inputs are in the
// sum (U3) are the survivors; the members of U2 that sent none have
// dropped and their pair masks must be recovered. It aborts
// (ErrBelowThreshold) when fewer than two survive or some secret the sum
// needs has fewer surviving holders than its threshold.
func (s *Server) CloseMasked() error {
	if s.phase != srvMasked {
		return s.protocol("closing the masking phase outside it")
	}
	s.phase = srvUnmask
	n := len(s.members)
	s.shares = make([]map[int][]byte, n)
	s.kinds = make([]uint8, n)
	s.asked = make([]bool, n)
	s.revealed = make([]bool, n)
	for i := range n {
		if s.masked[i] {
			s.survivors = append(s.survivors, i)
			s.asked[i] = true
		}
	}
	if len(s.survivors) < 2 {
		return fmt.Errorf("%w: %d masked input(s) came in; a secure sum needs at least 2", ErrBelowThreshold, len(s.survivors))
	}
	for v := range n {
		if k := s.need(v); k != 0 {
			s.kinds[v] = k
			s.shares[v] = map[int][]byte{}
			if live := s.liveHolders(v); live < s.threshold(v) {
				return fmt.Errorf("%w: member %d has %d surviving share holders; %d are needed", ErrBelowThreshold, v, live, s.threshold(v))
			}
		}
	}
	return nil
}

// need returns which of member v's secrets the sum needs: its self-mask
// seed if it survived, its key root if it shared, dropped, and has a
// surviving neighbour (whose input holds a mask shared with v), else none.
func (s *Server) need(v int) uint8 {
	switch {
	case s.masked[v]:
		return wire.ShareSelf
	case !s.shared[v]:
		return 0
	}
	for _, u := range s.survivors {
		if s.topo.adjacent(u, v) {
			return wire.ShareRoot
		}
	}
	return 0
}

// liveHolders counts v's share holders that survived and shared.
func (s *Server) liveHolders(v int) int {
	live := 0
	for _, h := range s.topo.holders(v) {
		if s.masked[h] {
			live++
		}
	}
	return live
}

// UnmaskFor returns the unmask request for member i (a survivor): the
// survivors. Every survivor gets the same request (the same pointer).
func (s *Server) UnmaskFor(i int) *wire.SAUnmask {
	if s.phase != srvUnmask || !s.asked[i] {
		return nil
	}
	if s.unmask == nil {
		s.unmask = &wire.SAUnmask{Round: s.r.Round, Survivors: s.survivors}
	}
	return s.unmask
}

// Survivors returns the members whose masked inputs are in the sum.
func (s *Server) Survivors() []int { return s.survivors }

// AddReveal takes survivor i's shares (phase 3): one for each member it
// holds a needed share of, of the kind that member needs: never a key
// root of a survivor, never a self-mask seed of a member that dropped.
func (s *Server) AddReveal(i int, m *wire.SAReveal) error {
	switch {
	case s.phase != srvUnmask:
		return s.protocol("shares revealed outside the unmasking phase")
	case m.Round != s.r.Round:
		return s.protocol("shares for round %d in round %d", m.Round, s.r.Round)
	case i < 0 || i >= len(s.members) || !s.asked[i]:
		return s.protocol("shares revealed by member %d, which was not asked", i)
	case s.revealed[i]:
		return s.protocol("member %d revealed twice", i)
	}
	for _, sh := range m.Shares {
		v := sh.Of
		switch {
		case v >= len(s.members) || (v != i && !s.topo.adjacent(i, v)):
			return s.protocol("member %d revealed a share of member %d, whose shares it does not hold", i, v)
		case s.kinds[v] == 0:
			return s.protocol("member %d revealed a share of member %d, which the sum does not need", i, v)
		case sh.Kind != s.kinds[v]:
			return s.protocol("member %d revealed the wrong kind of share of member %d", i, v)
		}
	}
	for _, sh := range m.Shares {
		s.shares[sh.Of][i] = sh.Value
	}
	s.revealed[i] = true
	return nil
}

// Revealed reports whether survivor i has answered the unmask request.
func (s *Server) Revealed(i int) bool { return s.phase == srvUnmask && s.revealed[i] }

// Ready reports whether every secret the sum needs has its threshold of
// shares.
func (s *Server) Ready() error {
	if s.phase != srvUnmask {
		return s.protocol("the unmasking phase has not started")
	}
	for v, k := range s.kinds {
		if k != 0 && len(s.shares[v]) < s.threshold(v) {
			return fmt.Errorf("%w: %d share(s) of member %d's secret came in; %d are needed", ErrBelowThreshold, len(s.shares[v]), v, s.threshold(v))
		}
	}
	return nil
}

// ShareKinds returns, for tests, the kinds of shares revealed of each
// member (0: none).
func (s *Server) ShareKinds() []uint8 { return slices.Clone(s.kinds) }

// Unmask removes every mask from sum, the sum modulo 2^32 of the
// survivors' masked inputs, leaving the sum of their inputs: it recovers
// each survivor's self-mask seed and each dropped member's key root, and
// with the roots the pair masks the dropped members shared with survivors.
// The mask expansions run on up to GOMAXPROCS goroutines.
func (s *Server) Unmask(sum []uint32) error {
	if err := s.Ready(); err != nil {
		return err
	}
	if len(sum) != s.r.Length {
		panic(fmt.Sprintf("secagg: Unmask of %d values; the round's inputs have %d", len(sum), s.r.Length))
	}
	s.phase = srvDone
	type job struct {
		key [32]byte
		sub bool // subtract (the mask was added)
	}
	var jobs []job
	var lg lagrange
	for v, k := range s.kinds {
		if k == 0 {
			continue
		}
		secret, err := lg.recoverSecret(s.shares[v], s.threshold(v))
		if err != nil {
			return fmt.Errorf("member %d: %w", v, err)
		}
		b := scalarBytes(secret)
		if k == wire.ShareSelf {
			jobs = append(jobs, job{key: maskKey(maskSelf, b), sub: true})
			continue
		}
		// v dropped: the survivors it neighboured hold ±PRG(s_uv).
		priv, err := maskPrivate(b)
		if err != nil {
			return err
		}
		if !bytes.Equal(priv.PublicKey().Bytes(), s.members[v].keys.MaskKey) {
			return fmt.Errorf("%w: the recovered key root of member %d does not give its mask key", ErrBadShare, v)
		}
		for _, u := range s.survivors {
			if !s.topo.adjacent(u, v) {
				continue
			}
			var seed []byte
			if owner(u, v) == v {
				seed = pairSeed(b, s.r.Run, s.r.Round, v, u)
			} else {
				ct := s.seeds[[2]int{u, v}]
				if seed, err = open(priv, envelopeInfo("seed", s.r.Run, s.r.Round, u, v), ct); err != nil {
					return fmt.Errorf("the seed member %d sealed for member %d: %w", u, v, err)
				}
			}
			// u added the mask when u < v, subtracted it otherwise.
			jobs = append(jobs, job{key: maskKey(maskPair, seed), sub: u < v})
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	if workers <= 1 {
		for _, j := range jobs {
			addMask(sum, j.key, j.sub)
		}
		return nil
	}
	parts := make([][]uint32, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			acc := make([]uint32, len(sum))
			for k := w; k < len(jobs); k += workers {
				addMask(acc, jobs[k].key, jobs[k].sub)
			}
			parts[w] = acc
		})
	}
	wg.Wait()
	for _, acc := range parts {
		for i, v := range acc {
			sum[i] += v
		}
	}
	return nil
}

// Sum is a running sum modulo 2^32 of masked inputs, folded in as they
// arrive. Safe for concurrent use.
type Sum struct {
	mu sync.Mutex
	v  []uint32
	n  int
}

// NewSum returns an empty sum of inputs of length values.
func NewSum(length int) *Sum { return &Sum{v: make([]uint32, length)} }

// Add folds a masked input in.
func (s *Sum) Add(values []uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(values) != len(s.v) {
		return fmt.Errorf("%w: a masked input of %d values; the round's have %d", ErrProtocol, len(values), len(s.v))
	}
	for i, x := range values {
		s.v[i] += x
	}
	s.n++
	return nil
}

// Values returns the sum (its own slice: the caller unmasks it in place)
// and how many inputs it holds.
func (s *Sum) Values() ([]uint32, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v, s.n
}
