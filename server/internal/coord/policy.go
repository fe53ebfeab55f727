package coord

import (
	"math"
	"math/rand/v2"
	"time"
)

// Policy decides how a run's rounds go, at the points where round modes
// differ: when a round opens and with whom (Open), who gets work while it
// is open (Assign for a client that connects, Fill for idle clients), and
// when the round is over (Due). The loop drives it and does everything
// else the same way for every mode: sessions only ever see a client's task
// (which model version to train, for which round), so a mode never touches
// them.
//
// The synchronous policy (SyncPolicy) is FedAvg's: select a fraction of the
// connected clients, wait for their updates until the deadline, aggregate.
// The asynchronous buffered policy (AsyncPolicy, FedBuff) opens a buffer
// without selecting, hands idle clients the current version up to the
// concurrency, and closes the buffer, a server step, once it holds K
// updates; tasks outlive the step they were given in.
type Policy interface {
	// Name returns the mode's name, as in Config.Mode.
	Name() string
	// Open returns the clients to select for round n, and the number of
	// updates that close it early (0: wait for all), or ok false to keep
	// waiting. It is called when no round is open or closing.
	Open(st *state, n int, now time.Time) (selected []string, target int, ok bool)
	// Assign reports whether a connected client that holds no task gets
	// one in the open round o now (a selected client reconnecting, say).
	Assign(o *round, cl *client) bool
	// Fill returns idle clients that get a task in the open round o now
	// (nil for policies that give work only when a round opens).
	Fill(st *state, o *round, now time.Time) []string
	// Due reports whether o is over, and why.
	Due(o *round, now time.Time) (bool, string)
}

// newPolicy returns the policy of the run's mode.
func newPolicy(cfg *Config) Policy {
	sel := selector{cfg: cfg}
	if cfg.Async() {
		return &AsyncPolicy{cfg: cfg, sel: sel}
	}
	return SyncPolicy{cfg: cfg, sel: sel}
}

// SyncPolicy is synchronous rounds: select ceil(fraction × connected)
// clients (at least min_clients; clients_per_round when set), with
// over-selection when configured, skipping clients that keep missing
// rounds; wait until every selected client answered or left, the target
// is in, or the deadline passed.
type SyncPolicy struct {
	cfg *Config
	sel selector
}

// Name returns "sync".
func (SyncPolicy) Name() string { return ModeSync }

// maxSkip is the most rounds a client that keeps missing rounds is passed
// over for: it is skipped 1, 2, 4, ... rounds after each miss in a row.
const maxSkip = 64

// skipFor returns how many rounds a client that missed missed rounds in a
// row is passed over for.
func skipFor(missed int) int {
	if missed <= 0 {
		return 0
	}
	return min(maxSkip, 1<<min(missed-1, 10))
}

// Open selects round n's clients with the run's seed.
func (p SyncPolicy) Open(st *state, n int, now time.Time) ([]string, int, bool) {
	c := p.cfg
	ids := st.connected()
	need := c.MinClients
	if n == 1 {
		need = c.StartClients
	}
	if len(ids) < need {
		return nil, 0, false
	}
	k := c.ClientsPerRound
	if k == 0 {
		k = max(int(math.Ceil(c.Fraction*float64(len(ids)))), c.MinClients)
	}
	// Clients that keep missing rounds are passed over while enough others
	// are there to start the round.
	eligible := ids[:0:0]
	for _, id := range ids {
		if st.clients[id].skipUntil < n {
			eligible = append(eligible, id)
		}
	}
	if len(eligible) < need {
		eligible = ids
	}
	k = min(k, len(eligible))
	sel, target := k, 0
	if c.OverSelect > 1 {
		sel = min(len(eligible), int(math.Ceil(float64(k)*c.OverSelect)))
		target = k
	}
	rng := rand.New(rand.NewPCG(c.Seed, uint64(n)))
	chosen := p.sel.pick(st, eligible, sel, n, need, rng)
	st.inSliceOrder(chosen)
	return chosen, target, true
}

// Assign gives the task again to a selected client that comes back before
// it answered.
func (SyncPolicy) Assign(o *round, cl *client) bool { return o.back(cl.id) }

// Fill gives no work between a round's start and its end.
func (SyncPolicy) Fill(*state, *round, time.Time) []string { return nil }

// Due is the round's own rule: answered, target, deadline.
func (SyncPolicy) Due(o *round, now time.Time) (bool, string) { return o.due(now) }

// AsyncPolicy is FedBuff (Nguyen et al., AISTATS 2022): every idle
// connected client trains the current version, up to Concurrency at once,
// and the server takes a step once Buffer updates are in, whatever version
// each was trained from (each weighted by its staleness, see Staleness).
type AsyncPolicy struct {
	cfg   *Config
	sel   selector
	fills uint64 // Fill calls, for the seeded choice among idle clients
}

// Name returns "async".
func (*AsyncPolicy) Name() string { return ModeAsync }

// Open opens step n's buffer: the first once StartClients are connected,
// the others at once.
func (p *AsyncPolicy) Open(st *state, n int, now time.Time) ([]string, int, bool) {
	if n == 1 && st.online < p.cfg.StartClients {
		return nil, 0, false
	}
	return nil, p.cfg.Buffer, true
}

// Assign gives nothing directly: Fill hands out the free slots.
func (*AsyncPolicy) Assign(*round, *client) bool { return false }

// Fill hands the free training slots to idle clients: connected, holding
// no task, not waiting for their last update to be stored, not passed over
// for missing tasks, and, with DP, not already in this step's buffer (one
// update per client and step bounds its influence, as the accountant
// assumes).
func (p *AsyncPolicy) Fill(st *state, o *round, now time.Time) []string {
	free := p.cfg.Concurrency - st.busy
	if free <= 0 || o == nil {
		return nil
	}
	dp := p.cfg.DP != nil
	var idle []string
	for _, id := range st.bySlice {
		if id == "" {
			continue
		}
		cl := st.clients[id]
		if cl.peer == nil || cl.task != nil || cl.storing || cl.skipUntil >= o.n || (dp && o.contributed[id]) {
			continue
		}
		idle = append(idle, id)
	}
	if len(idle) == 0 {
		return nil
	}
	p.fills++
	rng := rand.New(rand.NewPCG(p.cfg.Seed^0xa5, uint64(o.n)<<32|p.fills&0xffffffff))
	return p.sel.pick(st, idle, min(free, len(idle)), o.n, 0, rng)
}

// Due closes the step once its buffer holds Buffer stored updates.
func (*AsyncPolicy) Due(o *round, now time.Time) (bool, string) {
	if o.storing == 0 && o.accepted >= o.target {
		return true, "the buffer is full"
	}
	return false, ""
}
