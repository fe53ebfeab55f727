package coord_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/secagg"
	"github.com/qflare/qflare/shared/wire"
)

// Secure rounds, driven by scripted members that run package secagg's
// client by hand, so that each can drop at a chosen phase.

// Phases at which a scripted member drops (closes its connection).
const (
	stayAll = iota
	dropAtKeys
	dropAtShares
	dropAtMasked
	dropAtUnmask
)

// member is a scripted client of a secure run.
type member struct {
	*client
	sa     *secagg.Client
	rs     *wire.RoundStart
	base   []float32
	input  []uint32 // its quantized input, unmasked
	drop   int
	silent bool // at its drop phase it stays connected and says nothing
	// declines: at its drop phase it stays connected and declines the
	// round (as a participant whose training the guard refused does).
	declines bool
}

// sendSA writes a secure aggregation message.
func (m *member) sendSA(msg wire.SecAggMessage) {
	m.e.t.Helper()
	b, err := wire.AppendSecAgg(nil, msg)
	if err != nil {
		m.e.t.Fatal(err)
	}
	if err := m.conn.Send(m.e.ctx, link.Message{Binary: true, Data: b}); err != nil {
		m.e.t.Fatal(err)
	}
}

// nextSA skips control messages until a secure aggregation message; ok is
// false when a wait comes first (the round failed).
func nextSA[T wire.SecAggMessage](m *member) (_ T, ok bool) {
	m.e.t.Helper()
	for {
		msg := m.next()
		if _, ok := msg.(*wire.Wait); ok {
			var zero T
			return zero, false
		}
		if b, ok := msg.([]byte); ok && wire.IsSecAgg(b) {
			msg, err := wire.ParseSecAgg(b, wire.SecAggLimits{})
			if err != nil {
				m.e.t.Fatal(err)
			}
			v, ok := msg.(T)
			if !ok {
				m.e.t.Fatalf("got %s; want another secure aggregation message", msg.Type())
			}
			return v, true
		}
	}
}

// secureConfig is a run of mlp:4 whose rounds are secure.
func secureConfig(n int, graph string, threshold float64) coord.Config {
	return coord.Config{Fraction: 1, StartClients: n, MinClients: 2, Rounds: 3, RoundDeadline: coord.Duration(time.Hour),
		SecureAgg: &coord.SecureAggSettings{Threshold: threshold, Graph: graph, PhaseTimeout: coord.Duration(time.Minute)}}
}

// secureRound plays one secure round with the members: each takes its task
// and advertises keys, shares, trains (a delta of its own), masks and
// reveals, unless it drops at its phase. It reports false if the round
// failed on the way (the members were told to wait).
func secureRound(t *testing.T, e *engine, run *coord.Run, ms []*member, seed uint64) bool {
	t.Helper()
	ids := make([]*secagg.Identity, len(ms))
	for i, m := range ms {
		if m.rs, m.base = m.task(); m.drop == dropAtKeys {
			m.close()
			continue
		}
		id, err := secagg.GenerateIdentity(rand.NewChaCha8([32]byte{byte(i), byte(seed)}))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		info := m.welcome.Run.SecureAgg
		g, _ := secagg.ParseGraph(info.Graph)
		sa, keys, err := secagg.NewClient(secagg.ClientOptions{
			Round: secagg.Round{Run: run.ID(), Round: m.rs.Round, Length: len(m.base) + 1, Threshold: info.Threshold,
				Graph: g, Clip: info.Clip, MaxWeight: info.MaxWeight},
			ClientID: m.id(), Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		m.sa = sa
		m.sendSA(keys)
	}
	live := func(phase int) []*member {
		var l []*member
		for _, m := range ms {
			switch {
			case m.drop != phase || m.silent:
			case m.declines:
				m.send(&wire.Decline{Round: m.rs.Round, Reason: "local training made the model worse"})
			default:
				m.close()
			}
			if m.drop == stayAll || m.drop > phase {
				l = append(l, m)
			}
		}
		return l
	}
	for _, m := range live(dropAtShares) {
		ros, ok := nextSA[*wire.SARoster](m)
		if !ok {
			return false
		}
		sh, err := m.sa.Share(ros)
		if err != nil {
			t.Fatal(err)
		}
		m.sendSA(sh)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, m := range live(dropAtMasked) {
		in, ok := nextSA[*wire.SAInbox](m)
		if !ok {
			return false
		}
		if err := m.sa.Receive(in); err != nil {
			t.Fatal(err)
		}
		delta := make([]float32, len(m.base))
		for i := range delta {
			delta[i] = float32(rng.NormFloat64() * 0.01)
		}
		m.input = make([]uint32, len(delta)+1)
		secagg.Quantize(m.input, delta, 1+rng.IntN(40), m.welcome.Run.SecureAgg.MaxWeight, m.welcome.Run.SecureAgg.Clip,
			m.sa.Exponent(), rng)
		y := slices.Clone(m.input)
		if err := m.sa.Mask(y); err != nil {
			t.Fatal(err)
		}
		m.sendSA(&wire.SAMasked{Round: m.rs.Round, ModelVersion: m.rs.ModelVersion, Values: y})
		if acc := expect[*wire.Accepted](m.client); acc.Round != m.rs.Round {
			t.Errorf("masked input for round %d: accepted for round %d", m.rs.Round, acc.Round)
		}
	}
	for _, m := range live(dropAtUnmask) {
		req, ok := nextSA[*wire.SAUnmask](m)
		if !ok {
			return false
		}
		rv, err := m.sa.Unmask(req)
		if err != nil {
			t.Fatal(err)
		}
		m.sendSA(rv)
	}
	live(99)
	return true
}

// expectedModel is the model a round must produce from the plain sum of
// the survivors' quantized inputs: the same partial, through fedavg.
func expectedModel(t *testing.T, base []float32, survivors []*member, exp, maxWeight int) []float32 {
	t.Helper()
	sum := make([]uint32, len(base)+1)
	var names []string
	for _, m := range survivors {
		for i, v := range m.input {
			sum[i] += v
		}
		names = append(names, m.id())
	}
	num := make([]int64, len(base))
	weight := secagg.Decode(num, sum, maxWeight)
	p, err := fl.NewPartialFixed(num, exp, weight, len(survivors), names)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := fl.New("fedavg", fl.Options{})
	agg := s.Begin(1, slices.Clone(base))
	if err := agg.(fl.PartialAdder).AddPartial(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(base))
	if _, err := agg.Finish(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	return out
}

// storedModel reads a stored model version.
func (e *engine) storedModel(run *coord.Run, version int) []float32 {
	e.t.Helper()
	m, err := e.st.Model(e.ctx, run.ID(), version)
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := store.DecodeFloat32s(m.Weights, m.Params)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// TestSecureRoundExact: a secure round's model is bit for bit the model of
// the plain sum of the survivors' quantized inputs, with no dropouts and
// with 10% and 30% of the members dropping at each phase; the complete
// graph and k:4; and with members that decline after sharing instead of
// masking.
func TestSecureRoundExact(t *testing.T) {
	const n = 10
	type scenario struct {
		graph    string
		drops    int
		phase    int
		declines bool
	}
	cases := []scenario{{"complete", 0, stayAll, false}, {"k:4", 0, stayAll, false}}
	for _, drops := range []int{1, 3} {
		for phase := dropAtKeys; phase <= dropAtUnmask; phase++ {
			cases = append(cases, scenario{"complete", drops, phase, false})
		}
	}
	cases = append(cases, scenario{"k:4", 1, dropAtMasked, false}, scenario{"k:6", 1, dropAtShares, false},
		scenario{"complete", 3, dropAtMasked, true}, scenario{"k:4", 1, dropAtMasked, true})
	for _, c := range cases {
		name := fmt.Sprintf("%s/%d%%/phase%d", c.graph, 100*c.drops/n, c.phase)
		if c.declines {
			name += "/declined"
		}
		t.Run(name, func(t *testing.T) {
			e := newEngine(t)
			run := e.run(secureConfig(n, c.graph, 0.6))
			ms := make([]*member, n)
			for i := range ms {
				ms[i] = &member{client: e.join(run, nil)}
			}
			for _, i := range rand.New(rand.NewPCG(uint64(c.phase), uint64(c.drops))).Perm(n)[:c.drops] {
				ms[i].drop, ms[i].declines = c.phase, c.declines
			}
			if !secureRound(t, e, run, ms, uint64(c.phase)) {
				t.Fatalf("round 1 failed: %s", e.waitRound(run, 1).Error)
			}
			r1 := e.waitRound(run, 1)
			if r1.Status != store.RoundAggregated {
				t.Fatalf("round 1 is %s (%s); want aggregated", r1.Status, r1.Error)
			}
			var survivors []*member
			for _, m := range ms {
				if m.drop == stayAll || m.drop == dropAtUnmask {
					survivors = append(survivors, m)
				}
			}
			var metrics map[string]float64
			if err := jsonUnmarshal(r1.Metrics, &metrics); err != nil {
				t.Fatal(err)
			}
			if int(metrics["secagg_survivors"]) != len(survivors) {
				t.Errorf("metrics %v; want %d survivors", metrics, len(survivors))
			}
			// Each masked input is recorded as a task answered (for
			// selection), and only as metadata.
			ups, err := e.st.Updates(e.ctx, run.ID(), 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range ups {
				if u.Accepted && (u.TaskAt.IsZero() || u.Codec != "secagg" || len(u.Blob) != 0) {
					t.Errorf("stored masked input of %s: task at %v, codec %q, %d payload bytes; want its task time, secagg, none",
						u.ClientID, u.TaskAt, u.Codec, len(u.Blob))
				}
			}
			want := expectedModel(t, ms[0].base, survivors, int(metrics["secagg_exponent"]), ms[0].welcome.Run.SecureAgg.MaxWeight)
			got := e.storedModel(run, 1)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("model[%d] = %v; want %v, the model of the plain sum of %d survivors' inputs", i, got[i], want[i], len(survivors))
				}
			}
		})
	}
}

// TestSecureAbortCarriesOn: a round whose survivors fall below the
// threshold fails, saying why, and the run goes on: the next round
// completes with the members that are left.
func TestSecureAbortCarriesOn(t *testing.T) {
	e := newEngine(t)
	cfg := secureConfig(5, "complete", 0.8)
	cfg.StartClients = 5
	run := e.run(cfg)
	ms := make([]*member, 5)
	for i := range ms {
		ms[i] = &member{client: e.join(run, nil)}
	}
	ms[0].drop, ms[1].drop = dropAtMasked, dropAtMasked
	if secureRound(t, e, run, ms, 1) {
		t.Fatal("round 1 went on with 3 of 5 members and threshold 0.8")
	}
	r1 := e.waitRound(run, 1)
	if r1.Status != store.RoundFailed || !strings.Contains(r1.Error, "secure aggregation aborted") {
		t.Fatalf("round 1 is %s (%q); want failed: secure aggregation aborted", r1.Status, r1.Error)
	}
	if !secureRound(t, e, run, ms[2:], 2) {
		t.Fatalf("round 2 failed: %s", e.waitRound(run, 2).Error)
	}
	if r2 := e.waitRound(run, 2); r2.Status != store.RoundAggregated || r2.NAccepted != 3 {
		t.Fatalf("round 2 is %s with %d accepted (%q); want aggregated with 3", r2.Status, r2.NAccepted, r2.Error)
	}
}

// TestSecureAbortExcusesAnswered: a round that aborts in the share phase,
// because too many members left, counts no miss for the members that did
// share: the next round selects them again rather than passing them over
// (with a client that missed nothing beside them, passing over would pick
// it alone, plus one more).
func TestSecureAbortExcusesAnswered(t *testing.T) {
	e := newEngine(t)
	cfg := secureConfig(6, "complete", 0.8)
	cfg.StartClients, cfg.ClientsPerRound, cfg.MinClients = 6, 5, 1
	run := e.run(cfg)
	cs := make([]*client, 6)
	for i := range cs {
		cs[i] = e.join(run, nil)
	}
	waitFor(t, "round 1 to start", func() bool { v := run.View(); return v.Open != nil && v.Open.Round == 1 })
	var ms []*member
	for _, c := range cs {
		if slices.Contains(run.View().Open.Selected, c.id()) {
			ms = append(ms, &member{client: c})
		}
	}
	if len(ms) != 5 {
		t.Fatalf("round 1 selected %d clients; want 5", len(ms))
	}
	ms[0].drop, ms[1].drop = dropAtShares, dropAtShares
	if secureRound(t, e, run, ms, 1) {
		t.Fatal("round 1 went on with 3 of 5 members and threshold 0.8")
	}
	r1 := e.waitRound(run, 1)
	if r1.Status != store.RoundFailed || !strings.Contains(r1.Error, "shares phase") {
		t.Fatalf("round 1 is %s (%q); want failed in the shares phase", r1.Status, r1.Error)
	}
	waitFor(t, "round 2 to open", func() bool { v := run.View(); return v.Open != nil && v.Open.Round == 2 })
	sel := run.View().Open.Selected
	for _, m := range ms[2:] {
		if !slices.Contains(sel, m.id()) {
			t.Fatalf("round 2 selected %v; want the three members that shared in round 1 among them (none missed it)", sel)
		}
	}
}

// TestSecurePhaseTimeout: a member that stays connected but never shares
// is left out when the phase's deadline passes, and the round completes.
func TestSecurePhaseTimeout(t *testing.T) {
	e := newEngine(t)
	run := e.run(secureConfig(4, "complete", 0.6))
	ms := make([]*member, 4)
	for i := range ms {
		ms[i] = &member{client: e.join(run, nil)}
	}
	ms[3].drop, ms[3].silent = dropAtShares, true
	done := make(chan struct{})
	go func() {
		defer close(done)
		secureRound(t, e, run, ms, 3)
	}()
	waitFor(t, "the roster", func() bool {
		v := run.View()
		return v.Open != nil && v.Open.Secure != nil && v.Open.Secure.Phase == "shares"
	})
	time.Sleep(50 * time.Millisecond)
	e.clock.Advance(2 * time.Minute)
	<-done
	if r1 := e.waitRound(run, 1); r1.Status != store.RoundAggregated || r1.NAccepted != 3 {
		t.Fatalf("round 1 is %s with %d accepted (%q); want aggregated from the 3 that shared", r1.Status, r1.NAccepted, r1.Error)
	}
}

// TestSecureRefusesIndividualUpdates: configurations that need individual
// updates (or, for FedBuff, updates folded one by one across model
// versions) are refused with a clear error.
func TestSecureRefusesIndividualUpdates(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*coord.Config)
		want string
	}{
		{"krum", func(c *coord.Config) { c.Strategy = "krum" }, "needs individual updates"},
		{"median", func(c *coord.Config) { c.Strategy = "median" }, "needs individual updates"},
		{"detect", func(c *coord.Config) { c.Detect = new(true) }, "anomaly detection"},
		{"dp", func(c *coord.Config) { c.DP = &coord.DPSettings{NoiseMultiplier: 1, ClipNorm: 1} }, "differential privacy is unavailable"},
		{"norm", func(c *coord.Config) { c.MaxUpdateNorm = 10 }, "max_update_norm"},
		{"threshold", func(c *coord.Config) { c.SecureAgg.Threshold = 0.5 }, "threshold"},
		{"graph", func(c *coord.Config) { c.SecureAgg.Graph = "k:3" }, "even"},
		{"bits", func(c *coord.Config) { c.SecureAgg.Bits = 16 }, "bits"},
		{"over-select", func(c *coord.Config) { c.OverSelect = 1.5 }, "over_select"},
		{"async", func(c *coord.Config) { c.Mode, c.Buffer = coord.ModeAsync, 2 }, "mode async is not supported"},
	} {
		cfg := coord.Config{Model: "mlp:4", Clients: 10, SecureAgg: &coord.SecureAggSettings{}}
		c.set(&cfg)
		err := cfg.Normalize()
		if !errors.Is(err, coord.ErrBadConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Normalize = %v; want a bad configuration mentioning %q", c.name, err, c.want)
		}
	}
	ok := coord.Config{Model: "mlp:4", Clients: 10, Public: true, Strategy: "fedadam", SecureAgg: &coord.SecureAggSettings{Graph: "k:8"}}
	if err := ok.Normalize(); err != nil {
		t.Errorf("a public fedadam run with secure aggregation: %v", err)
	}
}

// TestSecureRefusesPlainUpdates: in a secure run, an update frame is
// refused before it is decoded.
func TestSecureRefusesPlainUpdates(t *testing.T) {
	e := newEngine(t)
	run := e.run(secureConfig(2, "complete", 0.6))
	a, b := e.join(run, nil), e.join(run, nil)
	rs, w := a.task()
	b.task()
	a.update(rs, w)
	if rej := expect[*wire.Rejected](a); !strings.Contains(rej.Reason, "aggregates securely") {
		t.Errorf("a plain update in a secure run got %+v; want it refused", rej)
	}
}

// TestSecureRoundAtRestart: a secure round open when the server stops
// fails at resume (its members' round keys are gone) and the next round
// runs.
func TestSecureRoundAtRestart(t *testing.T) {
	e := newEngine(t)
	cfg := secureConfig(3, "complete", 0.6)
	cfg.MinClients = 3 // round 2 starts once all three are back
	run := e.run(cfg)
	ms := make([]*member, 3)
	for i := range ms {
		ms[i] = &member{client: e.join(run, nil)}
	}
	for _, m := range ms {
		m.task()
	}
	// The round's row is written through the store's queue: let it land
	// before the restart reads the store.
	waitFor(t, "round 1 in the store", func() bool { return len(e.rounds(run)) == 1 })
	e.restart()
	if r1 := e.waitRound(run, 1); r1.Status != store.RoundFailed || !strings.Contains(r1.Error, "restarted") {
		t.Fatalf("round 1 after a restart is %s (%q); want failed", r1.Status, r1.Error)
	}
	run2, err := e.c.Run(run.ID())
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		ms[i] = &member{client: e.join(run2, m.client)}
	}
	if !secureRound(t, e, run2, ms, 4) {
		t.Fatal("round 2 failed")
	}
	if r2 := e.waitRound(run2, 2); r2.Status != store.RoundAggregated {
		t.Fatalf("round 2 is %s (%q); want aggregated", r2.Status, r2.Error)
	}
}

// TestNoUnmaskedUpdateStored: after a secure round, neither the database,
// nor its payload files, nor the server's log hold any member's input, in
// any of its forms (the quantized values, or the float32 weights it
// trained); the same search finds a plain round's update, so it can fail.
func TestNoUnmaskedUpdateStored(t *testing.T) {
	for _, secure := range []bool{true, false} {
		t.Run(fmt.Sprintf("secure=%v", secure), func(t *testing.T) {
			dir := t.TempDir()
			var logs bytes.Buffer
			e := newFileEngine(t, dir+"/q.db", &logs)
			cfg := secureConfig(3, "complete", 0.6)
			if !secure {
				// The control: a plain run keeping raw float32 payloads.
				cfg.SecureAgg, cfg.KeepBlobs, cfg.Codec = nil, true, "float32"
			}
			run := e.run(cfg)
			ms := make([]*member, 3)
			for i := range ms {
				ms[i] = &member{client: e.join(run, nil)}
			}
			var needles [][]byte
			if secure {
				if !secureRound(t, e, run, ms, 9) {
					t.Fatal("round 1 failed")
				}
				for _, m := range ms {
					for i := 0; i+4 < len(m.input)-1; i += 97 {
						needles = append(needles, u32bytes(m.input[i:i+4]))
					}
				}
			} else {
				for _, m := range ms {
					rs, w := m.task()
					next := make([]float32, len(w))
					for i := range next {
						next[i] = w[i] + float32(i%7)*0.001
					}
					p, _ := wire.ParsePipeline("float32")
					payload, err := wire.NewEncoder(p, m.shapes, 1).Encode(nil, next, nil)
					if err != nil {
						t.Fatal(err)
					}
					f, err := wire.AppendFrame(nil, &wire.FrameHeader{Kind: wire.KindUpdate, Run: run.ID(), Round: rs.Round,
						ModelVersion: rs.ModelVersion, Codec: "float32", Params: len(next), Samples: 40}, payload)
					if err != nil {
						t.Fatal(err)
					}
					m.conn.Send(e.ctx, link.Message{Binary: true, Data: f})
					for i := 0; i+4 < len(next); i += 97 {
						needles = append(needles, f32bytes(next[i:i+4]))
					}
				}
			}
			if r := e.waitRound(run, 1); r.Status != store.RoundAggregated {
				t.Fatalf("round 1 is %s (%s)", r.Status, r.Error)
			}
			e.c.Close()
			e.st.Close()
			hay := readTree(t, dir)
			hay = append(hay, logs.Bytes()...)
			found := 0
			for _, n := range needles {
				if bytes.Contains(hay, n) {
					found++
				}
			}
			// 16-byte windows of the members' inputs (SQLite splits a blob
			// over pages, so some windows of a stored one straddle pages).
			switch {
			case secure && found > 0:
				t.Errorf("%d of %d windows of the members' inputs are in the database, its payload files or the log", found, len(needles))
			case !secure && found < len(needles)/2:
				t.Errorf("the search finds %d of %d windows of the plain updates in the store: it could not fail", found, len(needles))
			}
		})
	}
}

var jsonUnmarshal = json.Unmarshal

// lockedBuffer is a bytes.Buffer safe for concurrent writes (a log).
type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// newFileEngine is newEngine on a database file (with its payload files),
// logging everything at debug level into logs.
func newFileEngine(t *testing.T, path string, logs *bytes.Buffer) *engine {
	t.Helper()
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(&lockedBuffer{b: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := &engine{t: t, st: st, clock: newFakeClock(), ctx: t.Context()}
	e.c = coord.New(coord.Deps{Store: st, Data: tinyData, Clock: e.clock, Log: log})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { e.c.Close(); st.Close() }) })
	return e
}

// readTree concatenates every file under dir.
func readTree(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all = append(all, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func u32bytes(v []uint32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// TestSecureRoundAfterAbortOpens: after a round that aborts, its members
// count a miss and are passed over for a while; when that leaves a single
// eligible client, the next secure round still opens, with two or more
// members among the connected clients, instead of waiting for ever (the
// passing over counts in rounds, and no round would open).
func TestSecureRoundAfterAbortOpens(t *testing.T) {
	e := newEngine(t)
	cfg := secureConfig(3, "complete", 0.6)
	cfg.ClientsPerRound, cfg.MinClients = 2, 1
	run := e.run(cfg)
	cs := make([]*client, 3)
	for i := range cs {
		cs[i] = e.join(run, nil)
	}
	// Round 1: the two members advertise keys and then say nothing, so the
	// share phase times out below the threshold.
	waitFor(t, "round 1 to start", func() bool { v := run.View(); return v.Open != nil && v.Open.Round == 1 })
	var members []*member
	for _, c := range cs {
		if slices.Contains(run.View().Open.Selected, c.id()) {
			members = append(members, &member{client: c, drop: dropAtShares, silent: true})
		}
	}
	if len(members) != 2 {
		t.Fatalf("round 1 selected %d clients; want 2", len(members))
	}
	secureRound(t, e, run, members, 1)
	waitFor(t, "the roster", func() bool {
		v := run.View()
		return v.Open != nil && v.Open.Secure != nil && v.Open.Secure.Phase == "shares"
	})
	time.Sleep(50 * time.Millisecond)
	e.clock.Advance(2 * time.Minute)
	if r1 := e.waitRound(run, 1); r1.Status != store.RoundFailed {
		t.Fatalf("round 1 is %s (%q); want failed below the threshold", r1.Status, r1.Error)
	}
	waitFor(t, "round 2 to open with two members", func() bool {
		v := run.View()
		return v.Open != nil && v.Open.Round == 2 && len(v.Open.Selected) >= 2
	})
}
