package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// t0 is the first time the test clock returns.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)

// testClock returns t0, t0+1s, t0+2s, ... and is safe for concurrent use.
type testClock struct {
	mu sync.Mutex
	n  int
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return t0.Add(time.Duration(c.n-1) * time.Second)
}

// openMem opens a private in-memory store (vfs/memdb) closed when t ends.
func openMem(t testing.TB) *Store {
	t.Helper()
	return openPath(t, MemoryPath)
}

// openPath opens the store at path, closed when t ends.
func openPath(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, WithClock((&testClock{}).now))
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// tempDB returns a database file name in a fresh temporary directory.
func tempDB(t testing.TB) string {
	return filepath.Join(t.TempDir(), "qflare.db")
}

// mustRun creates run id.
func mustRun(t testing.TB, s *Store, id string) {
	t.Helper()
	if err := s.CreateRun(context.Background(), &Run{ID: id, Name: "run " + id}); err != nil {
		t.Fatalf("CreateRun(%q): %v", id, err)
	}
}

// mustClients upserts browser clients with the given IDs into run.
func mustClients(t testing.TB, s *Store, run string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.UpsertClient(context.Background(), &Client{RunID: run, ID: id, Kind: KindBrowser}); err != nil {
			t.Fatalf("UpsertClient(%q): %v", id, err)
		}
	}
}

// mustOpenRound opens round n of run.
func mustOpenRound(t testing.TB, s *Store, run string, n int) {
	t.Helper()
	if err := s.OpenRound(context.Background(), &Round{RunID: run, Round: n}); err != nil {
		t.Fatalf("OpenRound(%q, %d): %v", run, n, err)
	}
}

// mustAdd adds u and returns its ID.
func mustAdd(t testing.TB, s *Store, u Update) int64 {
	t.Helper()
	id, err := s.AddUpdate(context.Background(), &u)
	if err != nil {
		t.Fatalf("AddUpdate(%q, round %d): %v", u.ClientID, u.Round, err)
	}
	return id
}

// blob returns n deterministic bytes derived from seed.
func blob(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*31 + i*7 + i>>8)
	}
	return b
}

// wantErr checks that err matches want (nil means no error).
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s = %v; want an error matching %v", what, err, want)
	}
}

func TestOpenMemoryIsPrivate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := openMem(t), openMem(t)
	mustRun(t, a, "r1")
	if _, err := b.Run(ctx, "r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Run(%q) on a second in-memory store = %v; want ErrNotFound", "r1", err)
	}
	if _, err := a.Run(ctx, "r1"); err != nil {
		t.Errorf("Run(%q) = %v", "r1", err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", filepath.Join(t.TempDir(), "no", "such", "dir", "q.db")} {
		if s, err := Open(context.Background(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded; want an error", path)
		}
	}
}

func TestOpenOddFileNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, name := range []string{"q flare.db", "100%.db", "what?.db", "a#b.db", "file:x.db"} {
		path := filepath.Join(t.TempDir(), name)
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("Open(%q): %v", path, err)
		}
		mustRun(t, s, "r")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("Open(%q) did not create that file: %v", path, err)
		}
		s = openPath(t, path)
		if _, err := s.Run(ctx, "r"); err != nil {
			t.Errorf("Run(%q) after reopening %q: %v", "r", path, err)
		}
	}
}

// TestWriteOutlivesCancellation: a write whose caller's context is
// cancelled (a request whose client hung up, a coordinator shutting down
// between evaluating a round and committing it) still completes.
func TestWriteOutlivesCancellation(t *testing.T) {
	t.Parallel()
	s := openMem(t)
	mustRun(t, s, "r")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.AddUpdate(ctx, &Update{RunID: "r", Round: 1, ClientID: "a"}); err != nil {
		t.Errorf("AddUpdate(canceled context) = %v; want the write done", err)
	}
	if list, err := s.Updates(context.Background(), "r", -1); err != nil || len(list) != 1 {
		t.Errorf("Updates after AddUpdate(canceled context) = %d, %v; want 1", len(list), err)
	}
	if err := s.SetRunStatus(ctx, "r", RunRunning, ""); err != nil {
		t.Errorf("SetRunStatus(canceled context) = %v; want the write done", err)
	}
}

func TestWriteObserver(t *testing.T) {
	t.Parallel()
	type call struct {
		op  string
		err bool
	}
	var mu sync.Mutex
	var calls []call
	s, err := Open(context.Background(), MemoryPath, WithWriteObserver(func(op string, d time.Duration, err error) {
		if d <= 0 {
			t.Errorf("observer: %s took %v; want > 0", op, d)
		}
		mu.Lock()
		calls = append(calls, call{op, err != nil})
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	mustRun(t, s, "r")
	s.CreateRun(ctx, &Run{ID: "r"}) // a duplicate: observed with its error
	s.AddUpdate(ctx, &Update{RunID: "r", Round: 1, ClientID: "a"})
	want := []call{{"create_run", false}, {"create_run", true}, {"add_update", false}}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("observed writes %v; want %v", calls, want)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, tempDB(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping = %v; want nil", err)
	}
	s.Close()
	if err := s.Ping(ctx); err == nil {
		t.Errorf("Ping after Close = nil; want an error")
	}
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file, mem := openPath(t, tempDB(t)), openMem(t)
	tests := []struct {
		name   string
		s      *Store
		reader bool
		pragma string
		want   string
	}{
		{"file", file, false, "busy_timeout", fmt.Sprint(busyTimeoutMS)},
		{"file", file, false, "journal_mode", "wal"},
		{"file", file, false, "synchronous", "2"}, // FULL
		{"file", file, false, "foreign_keys", "1"},
		{"file", file, false, "user_version", fmt.Sprint(SchemaVersion)},
		{"file", file, true, "journal_mode", "wal"},
		{"file", file, true, "busy_timeout", fmt.Sprint(busyTimeoutMS)},
		{"file", file, true, "query_only", "1"},
		{"memory", mem, false, "busy_timeout", fmt.Sprint(busyTimeoutMS)},
		{"memory", mem, false, "foreign_keys", "1"},
		{"memory", mem, false, "synchronous", "2"},
		{"memory", mem, true, "query_only", "1"},
	}
	for _, tt := range tests {
		db := tt.s.w
		if tt.reader {
			db = tt.s.r
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("%s PRAGMA %s: %v", tt.name, tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("%s (reader %v) PRAGMA %s = %q; want %q", tt.name, tt.reader, tt.pragma, got, tt.want)
		}
	}
}

func TestReaderIsQueryOnly(t *testing.T) {
	t.Parallel()
	s := openMem(t)
	if _, err := s.r.ExecContext(context.Background(), `INSERT INTO runs (id, created_at) VALUES ('x', 0)`); err == nil {
		t.Errorf("INSERT through the read pool succeeded; want an error")
	}
}
