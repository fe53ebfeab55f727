package shard

import (
	"sync"
	"testing"
	"time"

	"github.com/qflare/qflare/server/internal/shardwire"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// The shard's own rules, with a recording host and a hand-driven clock;
// its work with the origin is tested in server/internal/coord (in
// process) and server/edge (under workerd).

// recorder is a Host that records what the shard does.
type recorder struct {
	mu     sync.Mutex
	tabs   map[uint32][]link.Message
	closed map[uint32]int // close codes
	origin []shardwire.Msg
}

func newRecorder() *recorder {
	return &recorder{tabs: map[uint32][]link.Message{}, closed: map[uint32]int{}}
}

func (r *recorder) SendTab(id uint32, m link.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tabs[id] = append(r.tabs[id], m)
}

func (r *recorder) SendTabFrame(id, _ uint32, f []byte) {
	r.SendTab(id, link.Message{Binary: true, Data: f})
}

func (r *recorder) CloseTab(id uint32, code int, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed[id] = code
}

func (r *recorder) SendOrigin(b []byte) error {
	m, err := shardwire.Parse(append([]byte(nil), b...))
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.origin = append(r.origin, m)
	return nil
}

// kinds returns the kinds of the messages sent to the origin.
func (r *recorder) kinds() []shardwire.Kind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ks []shardwire.Kind
	for _, m := range r.origin {
		ks = append(ks, m.Kind)
	}
	return ks
}

// clock is a Clock moved by hand.
type clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

type timer struct {
	at   time.Time
	f    func()
	done bool
}

func (t *timer) Stop() bool { was := !t.done; t.done = true; return was }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) AfterFunc(d time.Duration, f func()) Stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

func must(t *testing.T) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func text(t *testing.T, m wire.Message) []byte {
	t.Helper()
	b, err := wire.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// linked returns a shard linked to a scripted origin.
func linked(t *testing.T, c *clock) (*Shard, *recorder) {
	t.Helper()
	h := newRecorder()
	s := New(h, Options{Name: "test", Clock: c})
	if ok, code, _ := s.TabOpened(1, "x"); ok || code != CloseTryAgain {
		t.Errorf("a tab before the link: ok %v, code %d; want refused with %d (try again)", ok, code, CloseTryAgain)
	}
	if err := s.OriginUp(); err != nil {
		t.Fatal(err)
	}
	if err := s.OriginMessage(must(t)(shardwire.Encode(nil, shardwire.KindWelcome, 0, &shardwire.Welcome{V: shardwire.Version}))); err != nil {
		t.Fatal(err)
	}
	return s, h
}

// TestSealBeforeTheDeadline: a round's partial goes to the origin
// SealLead before the deadline even while a tab still trains; the update
// that comes after starts another partial of the round.
func TestSealBeforeTheDeadline(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	s, h := linked(t, c)
	const n = 6
	shapes := [][]int{{2, 3}}
	run := &shardwire.Run{Run: "r", Params: n, Shapes: shapes, MaxFrameBytes: 1 << 20, MaxSamples: 100}
	if err := s.OriginMessage(must(t)(shardwire.Encode(nil, shardwire.KindRun, 0, run))); err != nil {
		t.Fatal(err)
	}
	p, _ := wire.ParsePipeline("float32")
	w := make([]float32, n)
	payload, _ := wire.NewEncoder(p, shapes, 1).Encode(nil, w, nil)
	model, _ := wire.AppendFrame(nil, &wire.FrameHeader{Kind: wire.KindModel, Run: "r", ModelVersion: 0, Codec: "float32", Params: n}, payload)
	if err := s.OriginMessage(shardwire.Append(nil, shardwire.KindFrame, 1, model)); err != nil {
		t.Fatal(err)
	}
	deadline := c.now.Add(time.Minute)
	if err := s.OriginMessage(must(t)(shardwire.Encode(nil, shardwire.KindRound, 0, &shardwire.Round{Run: "r", Round: 1, Frame: 1,
		DeadlineUnixMS: deadline.UnixMilli()}))); err != nil {
		t.Fatal(err)
	}
	for id := uint32(1); id <= 2; id++ {
		if ok, _, _ := s.TabOpened(id, "x"); !ok {
			t.Fatal("a tab refused on a linked shard")
		}
		s.TabMessage(id, link.Message{Data: text(t, &wire.Hello{V: wire.Version, Run: "r", Device: wire.Device{Kind: wire.DeviceBrowser}})})
		s.OriginMessage(shardwire.Append(nil, shardwire.KindTabText, id, text(t, &wire.Welcome{ClientID: "c" + string(rune('0'+id)),
			Run: wire.RunInfo{ID: "r", Name: "r", Model: "m", Dataset: "d", Rounds: 1, LocalEpochs: 1, Batch: 1, LR: 0.1,
				Codec: "float32", DownCodec: "float32", Strategy: "fedavg"}, Slice: wire.SliceInfo{URL: "/s", Samples: 10}, Limits: wire.UploadLimits{MaxUpdateBytes: 1 << 20}})))
		s.OriginMessage(shardwire.Append(nil, shardwire.KindTabText, id, text(t, &wire.RoundStart{Round: 1, ModelVersion: 0,
			Epochs: 1, Batch: 1, LR: 0.1})))
	}
	if got := s.Limit(1); got != 1<<20 {
		t.Errorf("Limit of a joined tab = %d; want the run's frame limit", got)
	}
	update := func(id uint32) {
		step := make([]float32, n)
		step[0] = 0.5
		pl, _ := wire.NewEncoder(p, shapes, 1).Encode(nil, step, nil)
		f, _ := wire.AppendFrame(nil, &wire.FrameHeader{Kind: wire.KindUpdate, Run: "r", Round: 1, Codec: "float32", Params: n, Samples: 10}, pl)
		s.TabMessage(id, link.Message{Binary: true, Data: f})
	}
	update(1)
	partials := func() (k int) {
		for _, kind := range h.kinds() {
			if kind == shardwire.KindPartial {
				k++
			}
		}
		return k
	}
	if partials() != 0 {
		t.Fatal("a partial went out while tab 2 still trains, long before the deadline")
	}
	c.advance(time.Minute - DefaultSealLead)
	if partials() != 1 {
		t.Fatalf("%d partials %v before the deadline; want one", partials(), DefaultSealLead)
	}
	update(2)
	if partials() != 2 {
		t.Errorf("%d partials after tab 2's late update; want a second one (no tab holds the round any more)", partials())
	}
	if st := s.Stats(); st.Folded != 2 || st.Partials != 2 || st.Refused != 0 {
		t.Errorf("stats %+v; want 2 folded into 2 partials", st)
	}
}

// TestTabLimits: before its welcome a tab may send a hello's size and a
// few messages; a binary message then is refused and the tab closed; when
// the link to the origin breaks every tab is closed with 1012.
func TestTabLimits(t *testing.T) {
	c := &clock{now: time.Now()}
	s, h := linked(t, c)
	s.TabOpened(1, "x")
	if got := s.Limit(1); got != maxHelloBytes {
		t.Errorf("Limit before the welcome = %d; want %d", got, maxHelloBytes)
	}
	for range maxPendingHellos + 1 {
		s.TabMessage(1, link.Message{Data: []byte(`{"type":"hello"}`)})
	}
	if h.closed[1] != ClosePolicy {
		t.Errorf("a tab flooding before its welcome: closed with %d; want %d", h.closed[1], ClosePolicy)
	}
	s.TabOpened(2, "x")
	s.TabMessage(2, link.Message{Binary: true, Data: []byte("QFL")})
	if h.closed[2] != ClosePolicy {
		t.Errorf("a binary message before the welcome: closed with %d; want %d", h.closed[2], ClosePolicy)
	}
	s.TabOpened(3, "x")
	s.OriginDown("test")
	if h.closed[3] != CloseRestart || s.Stats().Tabs != 0 || s.Stats().Linked {
		t.Errorf("after the link broke: tab closed with %d, stats %+v; want 1012, no tabs, not linked", h.closed[3], s.Stats())
	}
}
