// Package store keeps the QFLARE server's state in an SQLite database: runs,
// the clients that joined them, rounds, the updates clients sent, and the
// versioned global models. The "Database schema" section of README.md
// documents every table and column for people who open the file with the
// sqlite3 shell.
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL: every committed
// transaction is fsynced to the write-ahead log before the call returns. When
// AddUpdate returns, the update is on disk and the server may acknowledge it
// to the client; a crash (of the process, the OS or the power) cannot lose
// it. synchronous=NORMAL would only survive a process crash.
//
// An update's encoded payload (the blob) is kept until its round is
// aggregated, so that a restarted server can rebuild the open round from
// PendingUpdates and the latest model; CommitRound then clears the blobs in
// the same transaction that stores the new model, unless the run keeps them.
//
// # Concurrency
//
// A Store is safe for concurrent use. Writes go through a pool of one
// connection, so they queue in Go (honouring their context) instead of
// contending for SQLite's write lock; reads use a separate pool of
// query-only connections and, in WAL mode, never wait for writers. A busy
// timeout of 10 s covers other processes (a sqlite3 shell) holding locks.
//
// # Values
//
// Times are stored as INTEGER unix milliseconds (sub-millisecond precision is
// dropped) and read back in UTC; a zero time.Time is stored as NULL where the
// column allows it, and NULL reads back as the zero time. JSON values are
// stored as TEXT and must be valid JSON. SQLite stores a floating-point NaN as
// NULL, and a NULL REAL reads back as 0.
//
// # Schema versions
//
// The schema is a list of numbered migrations applied in order, each in its
// own transaction, and tracked with PRAGMA user_version. Open migrates an
// older database and refuses, without changing it, a database written by a
// newer version.
package store
