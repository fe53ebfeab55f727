package coord

import (
	"math"
	"math/rand/v2"
	"time"
)

// Policy decides how a run's rounds go, at the points where round modes
// differ: when a round opens and with whom (Open), whether a client that
// connects during a round gets work in it (Assign), and when the round is
// over (Due). The loop drives it and does everything else the same way for
// every mode: sessions only ever see a client's task (which model version
// to train, for which round), so a mode never touches them.
//
// The synchronous policy (SyncPolicy) is FedAvg's: select a fraction of the
// connected clients, wait for their updates until the deadline, aggregate.
// An asynchronous buffered policy (FedBuff) fits the same hooks: Open opens
// a buffer without selecting, Assign hands any idle client the current
// version (up to the concurrency), and Due closes the buffer once it holds
// K updates.
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
	// Due reports whether o is over, and why.
	Due(o *round, now time.Time) (bool, string)
}

// SyncPolicy is synchronous rounds: select ceil(fraction × connected)
// clients (at least min_clients; clients_per_round when set), with
// over-selection when configured, skipping clients that keep missing
// rounds; wait until every selected client answered or left, the target
// is in, or the deadline passed.
type SyncPolicy struct {
	cfg *Config
}

// Name returns "sync".
func (SyncPolicy) Name() string { return "sync" }

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
	rng.Shuffle(len(eligible), func(i, j int) { eligible[i], eligible[j] = eligible[j], eligible[i] })
	chosen := eligible[:sel]
	st.inSliceOrder(chosen)
	return chosen, target, true
}

// Assign gives the task again to a selected client that comes back before
// it answered.
func (SyncPolicy) Assign(o *round, cl *client) bool { return o.back(cl.id) }

// Due is the round's own rule: answered, target, deadline.
func (SyncPolicy) Due(o *round, now time.Time) (bool, string) { return o.due(now) }
