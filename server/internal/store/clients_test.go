package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestUpsertClientKeepsFirstSeenAndCounters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustOpenRound(t, s, "r", 1)
	first := t0.Add(time.Hour)
	c := Client{RunID: "r", ID: "c1", Kind: KindBrowser, Device: json.RawMessage(`{"ua":"old"}`),
		SliceIndex: 4, Samples: 600, LabelCounts: []int{60, 540}, LastSeen: first}
	if err := s.UpsertClient(ctx, &c); err != nil {
		t.Fatal(err)
	}
	got, err := s.Client(ctx, "r", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.FirstSeen.Equal(first) || !got.LastSeen.Equal(first) {
		t.Errorf("new client first/last seen = %v/%v; want %v for both", got.FirstSeen, got.LastSeen, first)
	}
	if err := s.SaveClientStats(ctx, "r", []ClientStats{{ID: "c1", LastSeen: first.Add(time.Minute),
		Updates: 1, Accepted: 1, BytesUp: 100, SamplesPerS: 250}}); err != nil {
		t.Fatal(err)
	}

	later := first.Add(2 * time.Hour)
	again := Client{RunID: "r", ID: "c1", Kind: KindHeadless, Device: json.RawMessage(`{"ua":"new"}`),
		SliceIndex: 5, Samples: 700, LabelCounts: []int{7}, FirstSeen: later, LastSeen: later}
	if err := s.UpsertClient(ctx, &again); err != nil {
		t.Fatal(err)
	}
	got, err = s.Client(ctx, "r", "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := Client{RunID: "r", ID: "c1", Kind: KindHeadless, Device: json.RawMessage(`{"ua":"new"}`),
		SliceIndex: 5, Samples: 700, LabelCounts: []int{7}, FirstSeen: first, LastSeen: later,
		Updates: 1, Accepted: 1, BytesUp: 100, SamplesPerS: 250}
	if !clientEqual(*got, want) {
		t.Errorf("Client after second upsert = %+v; want %+v", *got, want)
	}
}

// clientEqual compares clients, times with Equal.
func clientEqual(a, b Client) bool {
	return a.RunID == b.RunID && a.ID == b.ID && a.Kind == b.Kind && string(a.Device) == string(b.Device) &&
		a.SliceIndex == b.SliceIndex && a.Samples == b.Samples && slices.Equal(a.LabelCounts, b.LabelCounts) &&
		a.FirstSeen.Equal(b.FirstSeen) && a.LastSeen.Equal(b.LastSeen) && a.Updates == b.Updates &&
		a.Accepted == b.Accepted && a.BytesUp == b.BytesUp && a.BytesDown == b.BytesDown &&
		a.SamplesPerS == b.SamplesPerS
}

func TestUpsertClientErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	tests := []struct {
		name   string
		client Client
		want   error // nil: any error
	}{
		{"empty ID", Client{RunID: "r", Kind: KindBrowser}, nil},
		{"bad kind", Client{RunID: "r", ID: "c", Kind: "phone"}, nil},
		{"bad device JSON", Client{RunID: "r", ID: "c", Kind: KindBrowser, Device: json.RawMessage(`{`)}, nil},
		{"unknown run", Client{RunID: "nosuch", ID: "c", Kind: KindVirtual}, ErrNotFound},
	}
	for _, tt := range tests {
		err := s.UpsertClient(ctx, &tt.client)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("UpsertClient(%s) = %v; want an error (%v)", tt.name, err, tt.want)
		}
	}
	if list, err := s.Clients(ctx, "r"); err != nil || len(list) != 0 {
		t.Errorf("Clients after failed upserts = %v, %v; want none", list, err)
	}
}

func TestSaveClientStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	base := t0.Add(time.Hour)
	if err := s.UpsertClient(ctx, &Client{RunID: "r", ID: "c", Kind: KindVirtual, LastSeen: base, SecretHash: []byte{1, 2}}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		stats    ClientStats
		wantSeen time.Time
		speed    float64
	}{
		{ClientStats{ID: "c", LastSeen: base.Add(time.Minute), Updates: 3, Accepted: 2, BytesUp: 100, BytesDown: 1000, SamplesPerS: 50}, base.Add(time.Minute), 50},
		// last_seen never moves back; a zero speed keeps the last one.
		{ClientStats{ID: "c", LastSeen: base, Updates: 4, Accepted: 2, BytesUp: 110, BytesDown: 1024}, base.Add(time.Minute), 50},
		{ClientStats{ID: "c", LastSeen: base.Add(time.Hour), Updates: 4, Accepted: 2, BytesUp: 110, BytesDown: 1024, Released: true}, base.Add(time.Hour), 50},
	}
	for i, st := range steps {
		// Unknown clients are skipped.
		if err := s.SaveClientStats(ctx, "r", []ClientStats{st.stats, {ID: "nosuch", Updates: 1}}); err != nil {
			t.Fatalf("step %d: SaveClientStats: %v", i, err)
		}
		c, err := s.Client(ctx, "r", "c")
		if err != nil {
			t.Fatal(err)
		}
		want := st.stats
		if !c.LastSeen.Equal(st.wantSeen) || c.Updates != want.Updates || c.Accepted != want.Accepted ||
			c.BytesUp != want.BytesUp || c.BytesDown != want.BytesDown || c.SamplesPerS != st.speed || c.Released != want.Released {
			t.Errorf("step %d: SaveClientStats(%+v) left %+v", i, want, c)
		}
		if !bytes.Equal(c.SecretHash, []byte{1, 2}) {
			t.Errorf("step %d: secret hash = %v; want it kept", i, c.SecretHash)
		}
	}
	if err := s.SaveClientStats(ctx, "r", []ClientStats{{ID: "c", BytesDown: -1}}); err == nil {
		t.Errorf("SaveClientStats(-1 bytes) succeeded; want an error")
	}
	// The key exchange of the latest connection is kept; "" keeps it.
	for _, kex := range []string{"X25519MLKEM768", ""} {
		if err := s.SaveClientStats(ctx, "r", []ClientStats{{ID: "c", KeyExchange: kex}}); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.Client(ctx, "r", "c"); c.KeyExchange != "X25519MLKEM768" {
			t.Errorf("after SaveClientStats(key exchange %q): %q; want X25519MLKEM768", kex, c.KeyExchange)
		}
	}
}

func TestClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustRun(t, s, "other")
	mustClients(t, s, "r", "zed", "amy", "bob") // first seen in this order (clock ticks)
	mustClients(t, s, "other", "x")
	list, err := s.Clients(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	if want := []string{"zed", "amy", "bob"}; !slices.Equal(ids, want) {
		t.Errorf("Clients(%q) IDs = %q; want %q", "r", ids, want)
	}
	if _, err := s.Client(ctx, "other", "amy"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Client(%q, %q) = %v; want ErrNotFound", "other", "amy", err)
	}
}
