package secagg

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/wire"
)

// memberRound prepares a round of n members in which member 0 is to do its
// share of the work: the roster it gets, and the inbox its neighbours
// would send it (built directly, sealed to its keys, so that preparing a
// round of 100 does not take 100 members' work).
type memberRound struct {
	r      Round
	opt    ClientOptions
	roster *wire.SARoster
	inbox  func(c *Client) *wire.SAInbox
}

func newMemberRound(b *testing.B, n int, g Graph, params int) *memberRound {
	b.Helper()
	r := Round{Run: "run-cost", Round: 1, Length: params + 1, Threshold: 2.0 / 3, Graph: g, Clip: 1, MaxWeight: 600}
	ids, err := NewIdentities(n)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(r)
	type peer struct {
		root, enc []byte
	}
	peers := make([]peer, n)
	var opt0 ClientOptions
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("c-%04d", i)
		opt := ClientOptions{Round: r, ClientID: names[i], Identity: ids[i], Rand: seeded(uint64(i) + 1)}
		c, keys, err := NewClient(opt)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			opt0 = opt
			opt0.Rand = seeded(1) // member 0 draws the same keys again when timed
		}
		peers[i] = peer{root: c.rootB}
		if err := srv.AddKeys(names[i], keys); err != nil {
			b.Fatal(err)
		}
	}
	if err := srv.FixRoster(names); err != nil {
		b.Fatal(err)
	}
	mr := &memberRound{r: r, opt: opt0, roster: srv.RosterFor(0)}
	mr.inbox = func(c *Client) *wire.SAInbox {
		in := &wire.SAInbox{Round: 1}
		rnd := seeded(99)
		for _, v := range c.topo.neighbours(0) {
			// Member 0 opens and keeps its shares without checking them,
			// so one share of a random secret each is enough: splitting
			// among all of v's holders, as v does, would make preparing a
			// round of 1,000 cost a thousand members' sharing.
			s1, _ := randomScalar(rnd)
			s2, _ := randomScalar(rnd)
			a, _ := split(rnd, s1, 1, []int{0})
			bb, _ := split(rnd, s2, 1, []int{0})
			env := wire.SAEnvelope{Peer: v}
			env.Shares, _ = seal(c.keys.EncKey, envelopeInfo("shares", r.Run, 1, v, 0), append(a[0], bb[0]...))
			if owner(0, v) == v {
				env.Seed, _ = seal(c.keys.MaskKey, envelopeInfo("seed", r.Run, 1, v, 0), pairSeed(peers[v].root, r.Run, 1, v, 0))
			}
			in.Envelopes = append(in.Envelopes, env)
		}
		return in
	}
	return mr
}

// BenchmarkMember is one member's secure aggregation work in a round of n
// (all of it but training: round keys and their signature, the roster's
// signatures, sharing and sealing, opening its inbox, quantizing and
// masking a mnist-2nn update, unmasking, and encoding what it sends), with
// the bytes it sends and receives besides the model. QFLARE_SECAGG_MEMBERS
// (e.g. "10,100") and QFLARE_SECAGG_PARAMS choose the sizes; make test runs
// it once with the smallest.
func BenchmarkMember(b *testing.B) {
	sizes, params := []int{10}, 199210
	if s := os.Getenv("QFLARE_SECAGG_MEMBERS"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, _ := strconv.Atoi(f)
			sizes = append(sizes, n)
		}
	}
	if p, err := strconv.Atoi(os.Getenv("QFLARE_SECAGG_PARAMS")); err == nil && p > 0 {
		params = p
	}
	delta := make([]float32, params)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range delta {
		delta[i] = float32(rng.NormFloat64() * 0.01)
	}
	for _, n := range sizes {
		for _, g := range []Graph{{}, {K: 8}} {
			if g.K >= n-1 && g.K != 0 {
				continue
			}
			b.Run(fmt.Sprintf("n=%d/%s", n, g), func(b *testing.B) {
				mr := newMemberRound(b, n, g, params)
				var up, down int
				rosterBytes, _ := wire.AppendSecAgg(nil, mr.roster)
				survivors := &wire.SAUnmask{Round: 1}
				for i := range n {
					survivors.Survivors = append(survivors.Survivors, i)
				}
				for b.Loop() {
					b.StopTimer()
					opt := mr.opt
					opt.Rand = seeded(1)
					b.StartTimer()
					c, keys, err := NewClient(opt)
					if err != nil {
						b.Fatal(err)
					}
					kb, _ := wire.AppendSecAgg(nil, keys)
					roster, err := wire.ParseSecAgg(rosterBytes, wire.SecAggLimits{})
					if err != nil {
						b.Fatal(err)
					}
					sh, err := c.Share(roster.(*wire.SARoster))
					if err != nil {
						b.Fatal(err)
					}
					sb, _ := wire.AppendSecAgg(nil, sh)
					b.StopTimer()
					in := mr.inbox(c)
					ib, _ := wire.AppendSecAgg(nil, in)
					b.StartTimer()
					parsed, err := wire.ParseSecAgg(ib, wire.SecAggLimits{})
					if err != nil {
						b.Fatal(err)
					}
					if err := c.Receive(parsed.(*wire.SAInbox)); err != nil {
						b.Fatal(err)
					}
					x := make([]uint32, params+1)
					Quantize(x, delta, 600, 600, 1, c.Exponent(), rand.New(rand.NewPCG(3, 4)))
					if err := c.Mask(x); err != nil {
						b.Fatal(err)
					}
					mb, _ := wire.AppendSecAgg(nil, &wire.SAMasked{Round: 1, Values: x})
					ub, _ := wire.AppendSecAgg(nil, survivors)
					rv, err := c.Unmask(survivors)
					if err != nil {
						b.Fatal(err)
					}
					rb, _ := wire.AppendSecAgg(nil, rv)
					up = len(kb) + len(sb) + len(mb) + len(rb)
					down = len(rosterBytes) + len(ib) + len(ub)
				}
				b.ReportMetric(float64(up), "bytes_up")
				b.ReportMetric(float64(down), "bytes_down")
			})
		}
	}
}
