package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/ncruces/go-sqlite3"
)

// ErrInUse reports that a database file is open in another connection or
// process (a running server), so it cannot be replaced.
var ErrInUse = errors.New("store: database in use")

// BackupInfo describes a backup or a restored database.
type BackupInfo struct {
	Path          string        // the file written
	Bytes         int64         // its size
	SchemaVersion int           // its PRAGMA user_version
	Runs          int           // runs it holds
	Took          time.Duration // how long the copy took
}

// Backup writes a consistent copy of the store's database to the new file
// dst, while the store goes on serving (see BackupFile). An in-memory store
// cannot be backed up this way.
func (s *Store) Backup(ctx context.Context, dst string) (*BackupInfo, error) {
	if s.memName != "" {
		return nil, errors.New("store: backup: an in-memory database has no file to copy")
	}
	return backup(ctx, s.base, dst)
}

// BackupFile writes a consistent copy of the database file src to the new
// file dst. A server may be using src: the copy is one read transaction
// (SQLite's VACUUM INTO), which in WAL mode neither waits for the server's
// writes nor holds them up, and sees the database as of one commit. src is
// opened read-only and never migrated or changed; dst must not exist. The
// copy is written to a temporary file next to dst, checked with PRAGMA
// integrity_check, fsynced and renamed into place, so dst is either a
// complete, checked copy or absent.
func BackupFile(ctx context.Context, src, dst string) (*BackupInfo, error) {
	base, err := fileURI(src)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("store: backup: %w", err)
	}
	return backup(ctx, base, dst)
}

func backup(ctx context.Context, base url.URL, dst string) (*BackupInfo, error) {
	start := time.Now()
	dst, err := filepath.Abs(dst)
	if err != nil {
		return nil, fmt.Errorf("store: backup: %w", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return nil, fmt.Errorf("store: backup: %s already exists; give a new file name", dst)
	}
	q := base.Query()
	q.Set("mode", "ro")
	base.RawQuery = q.Encode()
	db, err := sql.Open("sqlite3", dsn(base))
	if err != nil {
		return nil, fmt.Errorf("store: backup: %w", err)
	}
	defer db.Close()
	tmp := tempName(dst)
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return nil, fmt.Errorf("store: backup: copying: %w", err)
	}
	info, err := check(ctx, tmp)
	if err != nil {
		return nil, fmt.Errorf("store: backup: the copy: %w", err)
	}
	// The payload files of the rounds open in the copy go with it. They are
	// copied after the snapshot, so they hold at least every payload its
	// rows point at (files only grow while their round is open).
	if err := copyPayloads(ctx, tmp, base.Path+"-payloads", dst+"-payloads"); err != nil {
		return nil, fmt.Errorf("store: backup: payload files: %w", err)
	}
	if err := syncRename(tmp, dst); err != nil {
		return nil, fmt.Errorf("store: backup: %w", err)
	}
	info.Path, info.Took = dst, time.Since(start)
	return info, nil
}

// copyPayloads copies, from the payload folder from to the new folder to,
// the files of the rounds that are open in the database at db. A file that
// is missing (its round closed after the snapshot) is skipped: resuming
// marks its updates lost and their clients answer again.
func copyPayloads(ctx context.Context, db, from, to string) error {
	base, err := fileURI(db)
	if err != nil {
		return err
	}
	q := base.Query()
	q.Set("mode", "ro")
	base.RawQuery = q.Encode()
	conn, err := sql.Open("sqlite3", dsn(base))
	if err != nil {
		return err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, `SELECT run_id, round FROM rounds WHERE status = 'open'`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var run string
		var round int
		if err := rows.Scan(&run, &round); err != nil {
			return err
		}
		name := filepath.Join(run, fmt.Sprintf("%d.log", round))
		if _, err := os.Stat(filepath.Join(from, name)); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := os.MkdirAll(filepath.Join(to, run), 0o700); err != nil {
			return err
		}
		if err := copyFile(filepath.Join(from, name), filepath.Join(to, name)); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Restore makes the backup src the database at dst: it checks src (an
// SQLite database that passes integrity_check, with a schema this version
// can open), moves an existing dst (and its -wal and -shm files) aside to
// dst.before-restore-TIMESTAMP, and copies src into place (through a
// temporary file, fsynced and renamed). A dst that another connection or
// process has open gives ErrInUse unless force is set: replacing the file
// under a running server would not stop it from writing to the old one. It
// returns the restored database's details and where the old file went ("" if
// there was none).
func Restore(ctx context.Context, src, dst string, force bool) (*BackupInfo, string, error) {
	start := time.Now()
	info, err := check(ctx, src)
	if err != nil {
		return nil, "", fmt.Errorf("store: restore: backup %s: %w", src, err)
	}
	if info.SchemaVersion > SchemaVersion {
		return nil, "", fmt.Errorf("store: restore: backup %s has schema version %d; this server knows versions up to %d",
			src, info.SchemaVersion, SchemaVersion)
	}
	dst, err = filepath.Abs(dst)
	if err != nil {
		return nil, "", fmt.Errorf("store: restore: %w", err)
	}
	aside := ""
	if _, err := os.Stat(dst); err == nil {
		if err := checkNotInUse(ctx, dst); err != nil && !force {
			return nil, "", err
		}
		aside = fmt.Sprintf("%s.before-restore-%s", dst, time.Now().UTC().Format("20060102T150405Z"))
		for _, suffix := range []string{"", "-wal", "-shm", "-payloads"} {
			if err := os.Rename(dst+suffix, aside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, "", fmt.Errorf("store: restore: moving the old database aside: %w", err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("store: restore: %w", err)
	}
	tmp := tempName(dst)
	defer os.Remove(tmp)
	if err := copyFile(src, tmp); err != nil {
		return nil, aside, fmt.Errorf("store: restore: %w", err)
	}
	if err := copyPayloads(ctx, src, src+"-payloads", dst+"-payloads"); err != nil {
		return nil, aside, fmt.Errorf("store: restore: payload files: %w", err)
	}
	if err := syncRename(tmp, dst); err != nil {
		return nil, aside, fmt.Errorf("store: restore: %w", err)
	}
	info.Path, info.Took = dst, time.Since(start)
	return info, aside, nil
}

// checkNotInUse returns ErrInUse when another connection has the database
// at path open. It asks SQLite to leave WAL mode, which needs the only
// connection to the file: a server's connections make it fail with
// SQLITE_BUSY at once (the probe does not wait). On success the database
// has been checkpointed into one file in rollback-journal mode, which is
// what a moved-aside copy should be anyway.
func checkNotInUse(ctx context.Context, path string) error {
	base, err := fileURI(path)
	if err != nil {
		return err
	}
	q := base.Query()
	q.Add("_pragma", "busy_timeout(0)")
	base.RawQuery = q.Encode()
	db, err := sql.Open("sqlite3", base.String())
	if err != nil {
		return fmt.Errorf("store: %s: %w", path, err)
	}
	defer db.Close()
	var mode string
	err = db.QueryRowContext(ctx, `PRAGMA journal_mode = delete`).Scan(&mode)
	switch {
	case errors.Is(err, sqlite3.BUSY), errors.Is(err, sqlite3.LOCKED):
		return fmt.Errorf("%w: %s is open in another process (a running server?); stop it first", ErrInUse, path)
	case err != nil:
		return fmt.Errorf("store: %s: %w", path, err)
	}
	return nil
}

// check opens the database file at path read-only and returns its schema
// version and run count after PRAGMA integrity_check passes.
func check(ctx context.Context, path string) (*BackupInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	base, err := fileURI(path)
	if err != nil {
		return nil, err
	}
	q := base.Query()
	q.Set("mode", "ro")
	base.RawQuery = q.Encode()
	db, err := sql.Open("sqlite3", dsn(base))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var ok string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check(1)`).Scan(&ok); err != nil {
		return nil, fmt.Errorf("not a readable SQLite database: %w", err)
	}
	if ok != "ok" {
		return nil, fmt.Errorf("integrity check failed: %s", ok)
	}
	info := &BackupInfo{Bytes: fi.Size()}
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&info.SchemaVersion); err != nil {
		return nil, err
	}
	if info.SchemaVersion < 1 {
		return nil, errors.New("not a QFLARE database (schema version 0)")
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM runs`).Scan(&info.Runs); err != nil {
		return nil, fmt.Errorf("not a QFLARE database: %w", err)
	}
	return info, nil
}

// fileURI is the "file:" URI of a database file (never an in-memory one).
func fileURI(path string) (url.URL, error) {
	if path == "" || path == MemoryPath {
		return url.URL{}, fmt.Errorf("store: %q is not a database file", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return url.URL{}, fmt.Errorf("store: database path %q: %w", path, err)
	}
	return url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(abs)}, nil
}

// tempName is a fresh name next to path, for writing a file that is then
// renamed over path.
func tempName(path string) string {
	return fmt.Sprintf("%s.tmp-%s", path, rand.Text()[:8])
}

// copyFile copies src to the new file dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// syncRename fsyncs the file tmp, renames it to dst and fsyncs dst's folder,
// so that after a crash dst is either absent or the whole file.
func syncRename(tmp, dst string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
