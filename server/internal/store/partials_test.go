package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func mustAddPartial(t *testing.T, s *Store, p *Partial, clients ...string) error {
	t.Helper()
	var ups []*Update
	for _, c := range clients {
		ups = append(ups, &Update{RunID: p.RunID, Round: p.Round, ClientID: c, Accepted: true, Bytes: 100, Samples: 10})
	}
	p.Count = len(ups)
	return s.Do(context.Background(), "add_partial", func(tx *Tx) error { return tx.AddPartial(p, ups) })
}

// TestPartialDurableWithItsUpdates: a file database keeps a partial's
// payload in the round's payload file and its updates as rows without
// payloads; after a restart PendingPartials gives both back, PendingUpdates
// leaves the partial's updates out (they have nothing to decode), and the
// round's commit forgets the payload with the file.
func TestPartialDurableWithItsUpdates(t *testing.T) {
	ctx := context.Background()
	path := tempDB(t)
	s := openPath(t, path)
	mustRun(t, s, "r")
	mustClients(t, s, "r", "a", "b", "c", "d")
	mustOpenRound(t, s, "r", 1)
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Bytes: 7, Blob: blob(1, 700)})
	payload := blob(2, 30000)
	p := &Partial{RunID: "r", Round: 1, Shard: "eu", Weight: 20, Blob: payload, Clipped: []bool{true, false}}
	if err := mustAddPartial(t, s, p, "b", "c"); err != nil {
		t.Fatal(err)
	}
	var inRow int
	s.r.QueryRow(`SELECT count(*) FROM partials WHERE blob IS NOT NULL`).Scan(&inRow)
	if inRow != 0 {
		t.Errorf("%d partial payloads are in rows; want them in the payload file", inRow)
	}
	s.Close()
	s = openPath(t, path) // a restart
	ps, err := s.PendingPartials(ctx, "r", 1)
	if err != nil || len(ps) != 1 {
		t.Fatalf("PendingPartials = %d, %v; want 1", len(ps), err)
	}
	got := ps[0]
	if got.Lost != nil || !bytes.Equal(got.Blob, payload) || got.Shard != "eu" || got.Count != 2 || got.Weight != 20 ||
		!slices.Equal(got.Clipped, []bool{true, false}) || len(got.Updates) != 2 || got.Updates[0].ClientID != "b" {
		t.Errorf("PendingPartials after a restart = %+v; want the stored partial with updates b, c", got)
	}
	ups, err := s.PendingUpdates(ctx, "r", 1)
	if err != nil || len(ups) != 1 || ups[0].ClientID != "a" {
		t.Errorf("PendingUpdates = %d rows, %v; want only a's (the partial's updates have no payload)", len(ups), err)
	}
	r, _ := s.Round(ctx, "r", 1)
	if r.NAccepted != 3 || r.NReceived != 3 || r.BytesUp != 207 {
		t.Errorf("round 1: %d accepted, %d received, %d bytes up; want 3, 3, 207", r.NAccepted, r.NReceived, r.BytesUp)
	}
	if err := s.CommitRound(ctx, &Commit{RunID: "r", Round: 1, Model: Model{Version: 1, Params: 1, Weights: make([]byte, 4)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(path+"-payloads", "r", "1.log")); !os.IsNotExist(err) {
		t.Errorf("round 1's payload file after the commit: %v; want it deleted", err)
	}
	meta, err := s.Partials(ctx, "r", 1)
	if err != nil || len(meta) != 1 || meta[0].Bytes != len(payload) {
		t.Errorf("Partials after the commit = %+v, %v; want the row, %d bytes", meta, err, len(payload))
	}
	var left int
	s.r.QueryRow(`SELECT count(*) FROM partials WHERE payload_offset IS NOT NULL OR blob IS NOT NULL`).Scan(&left)
	if left != 0 {
		t.Errorf("%d partials still point at a payload after their round closed", left)
	}
}

// TestPartialAllOrNothing: a partial whose second update cannot be stored
// (it carries a payload of its own) is refused whole, the first update
// too; a round that is not open takes none; a lost payload gives its
// clients back.
func TestPartialAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustClients(t, s, "r", "a", "b")
	mustOpenRound(t, s, "r", 1)
	ups := []*Update{
		{RunID: "r", Round: 1, ClientID: "b", Accepted: true, Samples: 10},
		{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Samples: 10, Blob: []byte{1}},
	}
	err := s.Do(ctx, "add_partial", func(tx *Tx) error {
		return tx.AddPartial(&Partial{RunID: "r", Round: 1, Shard: "eu", Count: 2, Weight: 20, Blob: []byte{9}}, ups)
	})
	if err == nil {
		t.Errorf("AddPartial with an update that has its own payload = nil; want an error")
	}
	var n int
	s.r.QueryRow(`SELECT count(*) FROM updates WHERE client_id = 'b'`).Scan(&n)
	if ps, _ := s.PendingPartials(ctx, "r", 1); len(ps) != 0 || n != 0 {
		t.Errorf("a refused partial left %d partials and %d updates of b", len(ps), n)
	}
	if err := mustAddPartial(t, s, &Partial{RunID: "r", Round: 2, Shard: "eu", Weight: 1, Blob: []byte{9}}, "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddPartial to a round that does not exist = %v; want ErrNotFound", err)
	}
	p := &Partial{RunID: "r", Round: 1, Shard: "eu", Weight: 1, Blob: []byte{9}}
	if err := mustAddPartial(t, s, p, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Do(ctx, "lose_partial", func(tx *Tx) error { return tx.LosePartial(p.ID, "payload lost") }); err != nil {
		t.Fatal(err)
	}
	ps, _ := s.PendingPartials(ctx, "r", 1)
	if len(ps) != 1 || ps[0].Lost == nil || len(ps[0].Updates) != 0 {
		t.Errorf("after LosePartial: %+v; want the partial lost, with no accepted update", ps)
	}
	// b may now send another update for the round.
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "b", Accepted: true, Blob: []byte{2}})
}
