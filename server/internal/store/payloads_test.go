package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestPayloadLog: a file database keeps accepted payloads in the round's
// payload file, reads them back after a restart, and settles them when the
// round closes: dropped, or moved into the rows when the run keeps blobs.
func TestPayloadLog(t *testing.T) {
	ctx := context.Background()
	path := tempDB(t)
	s := openPath(t, path)
	mustRun(t, s, "r")
	mustClients(t, s, "r", "a", "b", "c")
	mustOpenRound(t, s, "r", 1)
	mustOpenRound(t, s, "r", 2)
	want := map[string][]byte{"a": blob(1, 5000), "b": blob(2, 70000)}
	for id, b := range want {
		mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: id, Accepted: true, Bytes: len(b), Blob: b})
	}
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "c", Code: "late", Blob: []byte("not kept")})
	mustAdd(t, s, Update{RunID: "r", Round: 2, ClientID: "a", Accepted: true, Blob: blob(3, 100)})
	var inRow int
	s.r.QueryRow(`SELECT count(*) FROM updates WHERE blob IS NOT NULL AND accepted = 1`).Scan(&inRow)
	if inRow != 0 {
		t.Errorf("%d accepted payloads are in rows; want them in the payload file", inRow)
	}
	file := filepath.Join(path+"-payloads", "r", "1.log")
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("round 1's payload file: %v", err)
	}
	s.Close()
	s = openPath(t, path) // a restart
	wantPending(t, s, "r", 1, want)
	if err := s.CommitRound(ctx, &Commit{RunID: "r", Round: 1, Model: Model{Version: 1, Params: 1, Weights: make([]byte, 4)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("round 1's payload file after its commit: %v; want it deleted", err)
	}
	if err := s.CommitRound(ctx, &Commit{RunID: "r", Round: 2, KeepBlobs: true, Model: Model{Version: 2, Params: 1, Weights: make([]byte, 4)}}); err != nil {
		t.Fatal(err)
	}
	var kept []byte
	s.r.QueryRow(`SELECT blob FROM updates WHERE round = 2`).Scan(&kept)
	if !bytes.Equal(kept, blob(3, 100)) {
		t.Errorf("a kept round's blob = %d bytes; want its payload moved into the row", len(kept))
	}
	// An update and its round's commit in one group commit: the payload is
	// still in the file's buffer when the commit moves it into the row.
	mustOpenRound(t, s, "r", 3)
	if err := s.Do(ctx, "add_and_commit", func(tx *Tx) error {
		if _, err := tx.AddUpdate(&Update{RunID: "r", Round: 3, ClientID: "a", Accepted: true, Blob: blob(4, 900)}); err != nil {
			return err
		}
		return tx.CommitRound(&Commit{RunID: "r", Round: 3, KeepBlobs: true, Model: Model{Version: 3, Params: 1, Weights: make([]byte, 4)}})
	}); err != nil {
		t.Fatal(err)
	}
	s.r.QueryRow(`SELECT blob FROM updates WHERE round = 3`).Scan(&kept)
	if !bytes.Equal(kept, blob(4, 900)) {
		t.Errorf("a blob kept in the commit that added it = %d bytes; want its payload", len(kept))
	}
}

// TestPayloadLost: a payload file cut short (a crash, a damaged disk) gives
// an update marked Lost; LoseUpdate then lets its client send another.
func TestPayloadLost(t *testing.T) {
	ctx := context.Background()
	s, path := roundOneStore(t)
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Blob: blob(1, 1000)})
	id := mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "b", Accepted: true, Blob: blob(2, 1000)})
	s.Close()
	file := filepath.Join(path+"-payloads", "r", "1.log")
	st, _ := os.Stat(file)
	os.Truncate(file, st.Size()-10)
	s = openPath(t, path)
	got, err := s.PendingUpdates(ctx, "r", 1)
	if err != nil || len(got) != 2 || got[0].Lost != nil || got[1].Lost == nil {
		t.Fatalf("PendingUpdates over a cut file = %+v, %v; want a readable and a lost update", got, err)
	}
	if err := s.Do(ctx, "lose_update", func(t *Tx) error { return t.LoseUpdate(id, "payload lost") }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUpdate(ctx, &Update{RunID: "r", Round: 1, ClientID: "b", Accepted: true, Blob: blob(3, 10)}); err != nil {
		t.Errorf("a new update after the lost one = %v; want it accepted", err)
	}
}

// TestPayloadWriteFails: payloads are buffered and written in groups; when
// a write fails, the transaction whose rows point at the lost records rolls
// back, and the next one appends at the file's true end, so its payload
// reads back whole after a restart.
func TestPayloadWriteFails(t *testing.T) {
	ctx := context.Background()
	s, path := roundOneStore(t)
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Blob: blob(1, 3000)})
	err := s.Do(ctx, "two_updates", func(tx *Tx) error {
		if _, err := tx.AddUpdate(&Update{RunID: "r", Round: 1, ClientID: "b", Accepted: true, Blob: blob(2, 5000)}); err != nil {
			return err
		}
		// The disk refuses the buffered records: the file now takes no
		// writes.
		for _, lf := range tx.s.log.files {
			ro, err := os.Open(lf.f.Name())
			if err != nil {
				return err
			}
			lf.f.Close()
			lf.f = ro
		}
		_, err := tx.AddUpdate(&Update{RunID: "r", Round: 1, ClientID: "c", Accepted: true, Blob: blob(3, 7000)})
		return err
	})
	if err == nil {
		t.Fatal("a group commit whose payloads could not be written succeeded")
	}
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "d", Accepted: true, Blob: blob(4, 2000)})
	s.Close()
	s = openPath(t, path)
	wantPending(t, s, "r", 1, map[string][]byte{"a": blob(1, 3000), "d": blob(4, 2000)})
}

// roundOneStore opens a file database with run "r" and its round 1 open.
func roundOneStore(t *testing.T) (*Store, string) {
	path := tempDB(t)
	s := openPath(t, path)
	mustRun(t, s, "r")
	mustOpenRound(t, s, "r", 1)
	return s, path
}

// wantPending checks that round's pending updates of run are exactly
// want's clients, each with its payload read back whole.
func wantPending(t *testing.T, s *Store, run string, round int, want map[string][]byte) {
	t.Helper()
	got, err := s.PendingUpdates(context.Background(), run, round)
	if err != nil || len(got) != len(want) {
		t.Fatalf("PendingUpdates = %d updates, %v; want %d", len(got), err, len(want))
	}
	for _, u := range got {
		if u.Lost != nil || !bytes.Equal(u.Blob, want[u.ClientID]) {
			t.Errorf("update of %s read back %d bytes (lost: %v); want its %d", u.ClientID, len(u.Blob), u.Lost, len(want[u.ClientID]))
		}
	}
}

// TestPayloadSweep: payload files of rounds that are no longer open are
// deleted when the database opens.
func TestPayloadSweep(t *testing.T) {
	ctx := context.Background()
	s, path := roundOneStore(t)
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Blob: blob(1, 10)})
	if err := s.FailRound(ctx, "r", 1, "test"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	stray := filepath.Join(path+"-payloads", "r", "1.log")
	os.MkdirAll(filepath.Dir(stray), 0o700)
	os.WriteFile(stray, []byte("left by a crash between commit and delete"), 0o600)
	dropped := filepath.Join(path+"-payloads", "r", "2.log"+droppedSuffix)
	os.WriteFile(dropped, []byte("left by a crash while being deleted"), 0o600)
	s = openPath(t, path)
	for _, f := range []string{stray, dropped} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s survived Open: %v", filepath.Base(f), err)
		}
	}
}

// TestBackupCarriesPayloads: a backup taken while a round is open carries
// the round's payload file, and a restore puts it back: the open round's
// accepted updates survive both.
func TestBackupCarriesPayloads(t *testing.T) {
	ctx := context.Background()
	s, _ := roundOneStore(t)
	want := blob(7, 3000)
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Blob: want})
	backupPath := filepath.Join(t.TempDir(), "backup.db")
	if _, err := s.Backup(ctx, backupPath); err != nil {
		t.Fatal(err)
	}
	s.Close()
	restored := filepath.Join(t.TempDir(), "restored.db")
	if _, _, err := Restore(ctx, backupPath, restored, false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{backupPath, restored} {
		b := openPath(t, p)
		got, err := b.PendingUpdates(ctx, "r", 1)
		if err != nil || len(got) != 1 || got[0].Lost != nil || !bytes.Equal(got[0].Blob, want) {
			t.Errorf("%s: the open round's update = %+v, %v; want its payload", filepath.Base(p), got, err)
		}
		b.Close()
	}
}
