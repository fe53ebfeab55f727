package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestBackupWhileWriting copies a file database while another goroutine
// keeps writing to it: the copy is complete and consistent (integrity check,
// every run it holds has its model), the source is untouched, and the
// writer was not stopped.
func TestBackupWhileWriting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := tempDB(t)
	s := openPath(t, path)
	weights := EncodeFloat32s(nil, make([]float32, 50_000)) // 200 KB a model
	// Each run and its model are written in one transaction, so a
	// consistent copy holds both or neither.
	addRun := func(i int) error {
		id := fmt.Sprintf("r%03d", i)
		return s.tx(ctx, "test", func(t *Tx) error {
			if _, err := t.exec(`INSERT INTO runs (id, name, created_at) VALUES (?, ?, 0)`, id, id); err != nil {
				return err
			}
			return t.insertModel(&Model{RunID: id, Version: 0, Params: 50_000, Weights: weights})
		})
	}
	for i := range 20 {
		if err := addRun(i); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 20; ; i++ {
			select {
			case <-stop:
				written = i - 20
				return
			default:
			}
			if err := addRun(i); err != nil {
				t.Errorf("writing during the backup: %v", err)
				return
			}
		}
	}()
	out := filepath.Join(t.TempDir(), "backup.db")
	info, err := s.Backup(ctx, out)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	t.Logf("backup of %d runs, %d bytes in %v; %d runs written meanwhile", info.Runs, info.Bytes, info.Took, written)
	if info.Runs < 20 || info.SchemaVersion != SchemaVersion || info.Path != out {
		t.Errorf("Backup = %+v; want at least 20 runs, schema version %d, path %s", info, SchemaVersion, out)
	}
	b := openPath(t, out)
	runs, err := b.Runs(ctx)
	if err != nil || len(runs) != info.Runs {
		t.Fatalf("the backup holds %d runs (%v); Backup said %d", len(runs), err, info.Runs)
	}
	for _, r := range runs {
		if _, err := b.Model(ctx, r.ID, 0); err != nil {
			t.Errorf("run %s in the backup has no model: %v (the copy is not one snapshot)", r.ID, err)
		}
	}
	if _, err := s.Backup(ctx, out); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Backup over an existing file = %v; want an error saying it exists", err)
	}
	if left, _ := filepath.Glob(out + ".tmp-*"); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestBackupFileErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := BackupFile(ctx, filepath.Join(dir, "missing.db"), filepath.Join(dir, "out.db")); err == nil {
		t.Errorf("BackupFile(missing source) = nil; want an error")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); err == nil {
		t.Errorf("BackupFile created the missing source database")
	}
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte("not a database, just text that is long enough to look like a header......"), 0o600)
	if _, err := BackupFile(ctx, junk, filepath.Join(dir, "out2.db")); err == nil {
		t.Errorf("BackupFile(junk) = nil; want an error")
	}
	if _, err := openMem(t).Backup(ctx, filepath.Join(dir, "out3.db")); err == nil {
		t.Errorf("Backup of an in-memory store = nil; want an error")
	}
}

// TestRestore restores a backup over a database: refused while a store has
// it open, done once it is closed (the old file moved aside, not lost), and
// forced while open.
func TestRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	live := filepath.Join(dir, "qflare.db")
	s, err := Open(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, s, "before")
	backupPath := filepath.Join(dir, "backup.db")
	if _, err := s.Backup(ctx, backupPath); err != nil {
		t.Fatal(err)
	}
	mustRun(t, s, "after") // only in the live database

	if _, _, err := Restore(ctx, backupPath, live, false); !errors.Is(err, ErrInUse) {
		t.Fatalf("Restore over an open database = %v; want ErrInUse", err)
	}
	if _, err := s.Run(ctx, "after"); err != nil {
		t.Fatalf("the refused restore changed the live database: %v", err)
	}
	s.Close()

	info, aside, err := Restore(ctx, backupPath, live, false)
	if err != nil {
		t.Fatalf("Restore after Close: %v", err)
	}
	if info.Runs != 1 || aside == "" {
		t.Errorf("Restore = %+v, aside %q; want 1 run and the old file moved aside", info, aside)
	}
	r := openPath(t, live)
	if _, err := r.Run(ctx, "before"); err != nil {
		t.Errorf("restored database lacks run %q: %v", "before", err)
	}
	if _, err := r.Run(ctx, "after"); err == nil {
		t.Errorf("restored database has run %q, written after the backup", "after")
	}
	old := openPath(t, aside)
	if _, err := old.Run(ctx, "after"); err != nil {
		t.Errorf("the database moved aside lost run %q: %v", "after", err)
	}

	// r has live open: only force replaces it.
	if _, _, err := Restore(ctx, backupPath, live, false); !errors.Is(err, ErrInUse) {
		t.Errorf("second Restore over an open database = %v; want ErrInUse", err)
	}
	if _, _, err := Restore(ctx, backupPath, live, true); err != nil {
		t.Errorf("Restore with force = %v; want it done", err)
	}
}

func TestRestoreRefusesBadBackups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("x", 4096)), 0o600)
	newer := filepath.Join(dir, "newer.db")
	n := openPath(t, newer)
	if _, err := n.w.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, src, want string }{
		{"missing", filepath.Join(dir, "missing.db"), "no such file"},
		{"junk", junk, "not a readable SQLite database"},
		{"newer", newer, "schema version"},
	} {
		dst := filepath.Join(dir, tt.name+"-target.db")
		if _, _, err := Restore(ctx, tt.src, dst, false); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Restore(%s) = %v; want an error containing %q", tt.name, err, tt.want)
		}
		if _, err := os.Stat(dst); err == nil {
			t.Errorf("Restore(%s) created %s", tt.name, dst)
		}
	}
}
