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
	tests := []struct {
		id                  string
		updates, accepted   int
		bytesUp             int64
		speed               float64
		lastSeenAtLeastLate bool
	}{
		{"a", 2, 1, 1010, 50, true},
		{"b", 3, 1, 2010, 80, false},
	}
	for _, tt := range tests {
		c, err := s.Client(ctx, "r", tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Updates != tt.updates || c.Accepted != tt.accepted || c.BytesUp != tt.bytesUp || c.SamplesPerS != tt.speed {
			t.Errorf("client %q counters = updates %d accepted %d bytes_up %d samples_per_s %v; want %d %d %d %v",
				tt.id, c.Updates, c.Accepted, c.BytesUp, c.SamplesPerS, tt.updates, tt.accepted, tt.bytesUp, tt.speed)
		}
		if tt.lastSeenAtLeastLate && !c.LastSeen.Equal(late) {
			t.Errorf("client %q last_seen = %v; want %v from its update", tt.id, c.LastSeen, late)
		}
	}
}

func TestAddUpdateDuplicateAccepted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustClients(t, s, "r", "a")
	mustOpenRound(t, s, "r", 1)
	mustOpenRound(t, s, "r", 2)
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Bytes: 5, Blob: []byte{1}})

	tests := []struct {
		name string
		u    Update
		want error
	}{
		{"second accepted, same round", Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Bytes: 5, Blob: []byte{2}}, ErrDuplicate},
		{"rejected, same round", Update{RunID: "r", Round: 1, ClientID: "a", Reason: "duplicate"}, nil},
		{"rejected again", Update{RunID: "r", Round: 1, ClientID: "a", Reason: "duplicate"}, nil},
		{"accepted, next round", Update{RunID: "r", Round: 2, ClientID: "a", Accepted: true}, nil},
	}
	for _, tt := range tests {
		_, err := s.AddUpdate(ctx, &tt.u)
		wantErr(t, "AddUpdate("+tt.name+")", err, tt.want)
	}
	// The refused duplicate left no trace: not in updates, not in counters.
	r, err := s.Round(ctx, "r", 1)
	if err != nil || r.NReceived != 3 || r.NAccepted != 1 || r.BytesUp != 5 {
		t.Errorf("round 1 after duplicate = %+v, %v; want n_received 3 n_accepted 1 bytes_up 5", r, err)
	}
	c, err := s.Client(ctx, "r", "a")
	if err != nil || c.Updates != 4 || c.Accepted != 2 {
		t.Errorf("client after duplicate = %+v, %v; want updates 4 accepted 2", c, err)
	}
	pending, err := s.PendingUpdates(ctx, "r", 1)
	if err != nil || len(pending) != 1 || !bytes.Equal(pending[0].Blob, []byte{1}) {
		t.Errorf("PendingUpdates(1) = %+v, %v; want only the first accepted update", pending, err)
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
	clients, err := s.Clients(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if c.Updates != each || c.Accepted != 1 || c.BytesUp != each*1024 {
			t.Errorf("client %q counters = %d %d %d; want %d 1 %d", c.ID, c.Updates, c.Accepted, c.BytesUp, each, each*1024)
		}
	}
}
