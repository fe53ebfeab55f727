package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/qflare/qflare/server/internal/store"
)

// runBackup copies the database (which a running server may be using) to a
// new file.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "qflare.db", "the server's SQLite database `FILE`")
	out := fs.String("out", "", "the backup `FILE` to write (must not exist)")
	envUsage(fs, "usage: server backup --db qflare.db --out FILE\n\n"+
		"Writes a consistent copy of the database, as of one moment, while the server\n"+
		"goes on serving (SQLite's VACUUM INTO: one read transaction, which does not\n"+
		"hold up the server's writes). The copy is checked and written atomically.", "db")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := applyEnv(fs, os.LookupEnv, "db"); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("backup: unexpected argument %q", fs.Arg(0))
	case *out == "":
		return errors.New("backup: give --out FILE")
	}
	info, err := store.BackupFile(ctx, *db, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup: %s: %d bytes, %d runs, schema version %d, in %v\n",
		info.Path, info.Bytes, info.Runs, info.SchemaVersion, info.Took.Round(1e6))
	return nil
}

// runRestore puts a backup back as the server's database.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the backup `FILE` (written by backup)")
	db := fs.String("db", "qflare.db", "the database `FILE` to replace (moved aside, not deleted)")
	force := fs.Bool("force", false, "replace the database even if a process has it open (only when you are sure no server uses it)")
	envUsage(fs, "usage: server restore --from FILE --db qflare.db [--force]\n\n"+
		"Checks the backup, moves the current database (and its -wal and -shm files)\n"+
		"aside to DB.before-restore-TIME, and puts the backup in its place. Stop the\n"+
		"server first: a database in use is refused. Unfinished runs resume when the\n"+
		"server starts again.", "db")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := applyEnv(fs, os.LookupEnv, "db"); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("restore: unexpected argument %q", fs.Arg(0))
	case *from == "":
		return errors.New("restore: give --from FILE")
	}
	info, aside, err := store.Restore(ctx, *from, *db, *force)
	if err != nil {
		return err
	}
	if aside != "" {
		fmt.Fprintf(stdout, "restore: the previous database is now %s\n", aside)
	}
	fmt.Fprintf(stdout, "restore: %s: %d bytes, %d runs, schema version %d\n", info.Path, info.Bytes, info.Runs, info.SchemaVersion)
	return nil
}
