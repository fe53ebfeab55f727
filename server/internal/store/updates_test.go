package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestAddUpdateCounters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustClients(t, s, "r", "a", "b")
	mustOpenRound(t, s, "r", 1)
	late := t0.Add(time.Hour)
	adds := []Update{
		{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Bytes: 1000, SamplesPerS: 50, ReceivedAt: late},
		{RunID: "r", Round: 1, ClientID: "a", Accepted: false, Reason: "duplicate", Code: "dup", Bytes: 10},
		{RunID: "r", Round: 1, ClientID: "b", Accepted: true, Bytes: 2000},
		{RunID: "r", Round: 1, ClientID: "b", Accepted: false, Reason: "stale", Bytes: 7, SamplesPerS: 80},
		{RunID: "r", Round: 7, ClientID: "b", Accepted: false, Reason: "no such round", Bytes: 3},
		{RunID: "r", Round: 1, ClientID: "ghost", Accepted: false, Reason: "unknown client"},
	}
	var last int64
	for _, u := range adds {
		id := mustAdd(t, s, u)
		if id <= last {
			t.Errorf("AddUpdate(%q) = id %d; want one above %d", u.ClientID, id, last)
		}
		last = id
	}
	r, err := s.Round(ctx, "r", 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.NReceived != 5 || r.NAccepted != 2 || r.BytesUp != 3000 {
		t.Errorf("round 1 n_received %d n_accepted %d bytes_up %d; want 5 2 3000", r.NReceived, r.NAccepted, r.BytesUp)
	}
	// Client counters are the coordinator's telemetry (SaveClientStats):
	// AddUpdate leaves them alone.
	for _, id := range []string{"a", "b"} {
		c, err := s.Client(ctx, "r", id)
		if err != nil || c.Updates != 0 || c.Accepted != 0 || c.BytesUp != 0 {
			t.Errorf("client %q after AddUpdate = %+v, %v; want its counters untouched", id, c, err)
		}
	}
}

func TestAddUpdateSeveralAcceptedOfAClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustClients(t, s, "r", "a")
	mustOpenRound(t, s, "r", 1)
	// An asynchronous step's buffer takes a client's updates of successive
	// tasks: each is stored and counted.
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Bytes: 5, Blob: []byte{1}})
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Bytes: 6, Blob: []byte{2}, Staleness: 2})
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "a", Reason: "late"})
	r, err := s.Round(ctx, "r", 1)
	if err != nil || r.NReceived != 3 || r.NAccepted != 2 || r.BytesUp != 11 {
		t.Errorf("round 1 = %+v, %v; want n_received 3 n_accepted 2 bytes_up 11", r, err)
	}
	pending, err := s.PendingUpdates(ctx, "r", 1)
	if err != nil || len(pending) != 2 || !bytes.Equal(pending[1].Blob, []byte{2}) || pending[1].Staleness != 2 {
		t.Errorf("PendingUpdates(1) = %+v, %v; want both accepted updates, the second 2 steps stale", pending, err)
	}
}

func TestAddUpdateErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustOpenRound(t, s, "r", 1)
	if err := s.FailRound(ctx, "r", 1, "x"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		u    Update
		want error // nil: any error
	}{
		{"accepted, no round", Update{RunID: "r", Round: 2, ClientID: "a", Accepted: true}, ErrNotFound},
		{"accepted, failed round", Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true}, ErrNotOpen},
		{"unknown run", Update{RunID: "nosuch", Round: 1, ClientID: "a"}, ErrNotFound},
		{"no client ID", Update{RunID: "r", Round: 1}, nil},
		{"negative bytes", Update{RunID: "r", Round: 1, ClientID: "a", Bytes: -1}, nil},
	}
	for _, tt := range tests {
		id, err := s.AddUpdate(ctx, &tt.u)
		if err == nil || id != 0 || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("AddUpdate(%s) = %d, %v; want an error (%v)", tt.name, id, err, tt.want)
		}
	}
	if list, err := s.Updates(ctx, "r", -1); err != nil || len(list) != 0 {
		t.Errorf("Updates after failed adds = %d, %v; want none", len(list), err)
	}
}

func TestUpdatesAndPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustClients(t, s, "r", "a", "b", "c")
	mustOpenRound(t, s, "r", 1)
	mustOpenRound(t, s, "r", 2)
	in := []Update{
		{RunID: "r", Round: 1, ClientID: "b", Accepted: true, Samples: 600, Bytes: 40, Codec: "f16",
			BaseVersion: 0, Loss: 0.5, Accuracy: 0.8, TrainMS: 1234, SamplesPerS: 486.2, Blob: blob(1, 40)},
		{RunID: "r", Round: 1, ClientID: "a", Accepted: false, Reason: "base version too old", Code: "stale",
			Bytes: 40, Blob: blob(2, 40)},
		{RunID: "r", Round: 2, ClientID: "a", Accepted: true, Samples: 10, Bytes: 8, Blob: blob(3, 8)},
		{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Samples: 300, Bytes: 16, Blob: blob(4, 16)},
	}
	for i := range in {
		in[i].ReceivedAt = t0.Add(time.Duration(i) * time.Minute)
		in[i].ID = mustAdd(t, s, in[i])
	}
	tests := []struct {
		name  string
		get   func() ([]Update, error)
		want  []int // indexes into in
		blobs bool
	}{
		{"Updates(1)", func() ([]Update, error) { return s.Updates(ctx, "r", 1) }, []int{0, 1, 3}, false},
		{"Updates(2)", func() ([]Update, error) { return s.Updates(ctx, "r", 2) }, []int{2}, false},
		{"Updates(-1)", func() ([]Update, error) { return s.Updates(ctx, "r", -1) }, []int{0, 1, 2, 3}, false},
		{"Updates(3)", func() ([]Update, error) { return s.Updates(ctx, "r", 3) }, nil, false},
		{"PendingUpdates(1)", func() ([]Update, error) { return s.PendingUpdates(ctx, "r", 1) }, []int{0, 3}, true},
		{"PendingUpdates(2)", func() ([]Update, error) { return s.PendingUpdates(ctx, "r", 2) }, []int{2}, true},
	}
	for _, tt := range tests {
		got, err := tt.get()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s = %d updates; want %d", tt.name, len(got), len(tt.want))
			continue
		}
		for i, k := range tt.want {
			want := in[k]
			if !tt.blobs {
				want.Blob = nil
			}
			if !updateEqual(got[i], want) {
				t.Errorf("%s[%d] = %+v; want %+v", tt.name, i, got[i], want)
			}
		}
	}
}

// updateEqual compares updates, times with Equal.
func updateEqual(a, b Update) bool {
	ta, tb := a.ReceivedAt, b.ReceivedAt
	a.ReceivedAt, b.ReceivedAt = time.Time{}, time.Time{}
	ba, bb := a.Blob, b.Blob
	a.Blob, b.Blob = nil, nil
	return ta.Equal(tb) && bytes.Equal(ba, bb) && (ba == nil) == (bb == nil) && reflect.DeepEqual(a, b)
}

// TestResumeAfterReopen is the crash-recovery flow: updates accepted for an
// open round survive closing and reopening the database file.
func TestResumeAfterReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := tempDB(t)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, s, "r")
	mustClients(t, s, "r", "a", "b", "c", "d")
	if err := s.SaveModel(ctx, &Model{RunID: "r", Params: 3, Weights: EncodeFloat32s(nil, []float32{1, 2, 3})}); err != nil {
		t.Fatal(err)
	}
	mustOpenRound(t, s, "r", 1)
	var want []Update
	for i, c := range []string{"a", "b", "c", "d"} {
		u := Update{RunID: "r", Round: 1, ClientID: c, Accepted: c != "c", Samples: 100 + i,
			Bytes: 4096, Codec: "float32", Blob: blob(i, 4096)}
		if !u.Accepted {
			u.Reason = "norm too large"
		}
		id := mustAdd(t, s, u)
		if u.Accepted {
			u.ID = id
			want = append(want, u)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openPath(t, path)
	run, err := s.Run(ctx, "r")
	if err != nil || run.CurrentRound != 1 {
		t.Fatalf("Run after reopen = %+v, %v; want current_round 1", run, err)
	}
	r := Round{RunID: "r", Round: run.CurrentRound}
	if err := s.OpenRound(ctx, &r); !errors.Is(err, ErrResumed) || r.NAccepted != 3 || r.NReceived != 4 {
		t.Errorf("OpenRound after reopen = %v with %+v; want ErrResumed with 3 of 4 accepted", err, r)
	}
	got, err := s.PendingUpdates(ctx, "r", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("PendingUpdates after reopen = %d updates; want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].ClientID != want[i].ClientID || !bytes.Equal(got[i].Blob, want[i].Blob) {
			t.Errorf("PendingUpdates[%d] = id %d client %q (%d blob bytes); want id %d client %q with its identical blob",
				i, got[i].ID, got[i].ClientID, len(got[i].Blob), want[i].ID, want[i].ClientID)
		}
	}
	m, err := s.Model(ctx, "r", -1)
	if err != nil || m.Version != 0 {
		t.Errorf("Model(latest) after reopen = %+v, %v; want version 0", m, err)
	}
}

// TestConcurrentAddUpdate writes from 8 goroutines into a file database
// while others read; no SQLITE_BUSY (or any error) may surface.
func TestConcurrentAddUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openPath(t, tempDB(t))
	const writers, each = 8, 15
	mustRun(t, s, "r")
	mustOpenRound(t, s, "r", 1)
	for g := range writers {
		mustClients(t, s, "r", fmt.Sprintf("g%d", g))
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*each+writers)
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				// One accepted update per client and round: the first
				// of each goroutine; the rest are rejected.
				u := Update{RunID: "r", Round: 1, ClientID: fmt.Sprintf("g%d", g), Accepted: i == 0,
					Bytes: 1024, Blob: blob(g*each+i, 1024)}
				if _, err := s.AddUpdate(ctx, &u); err != nil {
					errs <- err
				}
			}
		})
		wg.Go(func() { // a reader beside each writer
			for range each {
				if _, err := s.Updates(ctx, "r", 1); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent AddUpdate/Updates: %v", err)
	}
	r, err := s.Round(ctx, "r", 1)
	if err != nil || r.NReceived != writers*each || r.NAccepted != writers || r.BytesUp != writers*1024 {
		t.Errorf("round after concurrent adds = %+v, %v; want n_received %d n_accepted %d", r, err, writers*each, writers)
	}
}

// TestGroupCommit: writes submitted together share one transaction, yet
// each keeps its own outcome (a failing one rolls back only itself), and
// they run in submission order.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustClients(t, s, "r", "a", "b")
	var mu sync.Mutex
	var order []int
	results := make([]error, 6)
	var wg sync.WaitGroup
	wg.Add(len(results))
	// Hold the writer with a slow first job so the rest queue up behind it.
	s.Submit(ctx, "test", func(t *Tx) error { time.Sleep(50 * time.Millisecond); return nil }, nil)
	submit := func(i int, fn func(*Tx) error) {
		s.Submit(ctx, "test", func(t *Tx) error {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			return fn(t)
		}, func(err error) { results[i] = err; wg.Done() })
	}
	submit(0, func(t *Tx) error { return t.OpenRound(&Round{RunID: "r", Round: 1}) })
	submit(1, func(t *Tx) error {
		_, err := t.AddUpdate(&Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Bytes: 5})
		return err
	})
	submit(2, func(t *Tx) error { // an accepted update for a round that does not exist: refused, alone
		_, err := t.AddUpdate(&Update{RunID: "r", Round: 9, ClientID: "a", Accepted: true, Bytes: 6})
		return err
	})
	submit(3, func(t *Tx) error { // writes, then fails: its write is rolled back
		if _, err := t.AddUpdate(&Update{RunID: "r", Round: 1, ClientID: "b", Accepted: true, Bytes: 7}); err != nil {
			return err
		}
		return errors.New("changed my mind")
	})
	submit(4, func(t *Tx) error {
		_, err := t.AddUpdate(&Update{RunID: "r", Round: 1, ClientID: "b", Accepted: false, Bytes: 8})
		return err
	})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	s.Submit(cancelled, "test", func(t *Tx) error { t.SetRunStatus("r", RunFailed, "must not happen"); return nil },
		func(err error) { results[5] = err; wg.Done() })
	wg.Wait()
	wantErr(t, "OpenRound", results[0], nil)
	wantErr(t, "AddUpdate(a)", results[1], nil)
	wantErr(t, "AddUpdate(round 9)", results[2], ErrNotFound)
	if results[3] == nil || errors.Is(results[3], ErrNotFound) {
		t.Errorf("failing job = %v; want its own error", results[3])
	}
	wantErr(t, "AddUpdate(b rejected)", results[4], nil)
	wantErr(t, "job with a cancelled context", results[5], context.Canceled)
	// The batch ran in order up to the failing job, then (rolled back)
	// each job again on its own, in order.
	first, last := map[int]int{}, map[int]int{}
	for i, j := range order {
		if _, ok := first[j]; !ok {
			first[j] = i
		}
		last[j] = i
	}
	for j := 1; j < 5; j++ {
		if first[j] < first[j-1] || last[j] < last[j-1] {
			t.Errorf("jobs ran in order %v; want submission order", order)
			break
		}
	}
	r, err := s.Round(ctx, "r", 1)
	if err != nil || r.NReceived != 2 || r.NAccepted != 1 || r.BytesUp != 5 {
		t.Errorf("round after the batch = %+v, %v; want n_received 2 n_accepted 1 bytes_up 5", r, err)
	}
	if run, _ := s.Run(ctx, "r"); run.Status == RunFailed {
		t.Errorf("a job whose context was cancelled before it ran still wrote")
	}
}

// TestUpdatesPage pages through a run's updates both ways.
func TestUpdatesPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustOpenRound(t, s, "r", 1)
	mustOpenRound(t, s, "r", 2)
	var ids []int64
	for i := range 7 {
		ids = append(ids, mustAdd(t, s, Update{RunID: "r", Round: 1 + i%2, ClientID: fmt.Sprintf("c%d", i)}))
	}
	page := func(round int, after, before int64, limit int, desc bool) []int64 {
		list, err := s.UpdatesPage(ctx, "r", round, after, before, limit, desc)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, u := range list {
			got = append(got, u.ID)
		}
		return got
	}
	if got, want := page(0, 0, 0, 3, false), ids[:3]; !reflect.DeepEqual(got, want) {
		t.Errorf("first page = %v; want %v", got, want)
	}
	if got, want := page(0, ids[2], 0, 3, false), ids[3:6]; !reflect.DeepEqual(got, want) {
		t.Errorf("second page = %v; want %v", got, want)
	}
	if got, want := page(0, 0, 0, 2, true), []int64{ids[6], ids[5]}; !reflect.DeepEqual(got, want) {
		t.Errorf("newest first = %v; want %v", got, want)
	}
	if got, want := page(0, 0, ids[5], 2, true), []int64{ids[4], ids[3]}; !reflect.DeepEqual(got, want) {
		t.Errorf("newest first before %d = %v; want %v", ids[5], got, want)
	}
	if got, want := page(2, 0, 0, 10, false), []int64{ids[1], ids[3], ids[5]}; !reflect.DeepEqual(got, want) {
		t.Errorf("round 2 = %v; want %v", got, want)
	}
	if got := page(0, 0, 0, MaxUpdatesPage*10, false); len(got) != 7 {
		t.Errorf("a huge limit gives %d rows; want all 7", len(got))
	}
}
