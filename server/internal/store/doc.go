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
// # Group commit
//
// Every write (each method that changes the database) is a job on one FIFO
// queue served by one writer goroutine. The writer takes all the jobs queued
// while the previous transaction committed (up to 256), runs each in its own
// SAVEPOINT of one transaction, and commits once: writes that arrive
// together share one fsync, so durability does not cap ingest at one fsync
// per update. A job that fails rolls back only its savepoint; its caller
// gets its own error and the others commit. The synchronous methods wait
// for their job; Submit queues one without waiting (the coordinator's loop
// uses it and hears back through a callback), and the writer runs jobs in
// the order they were submitted, so a round is open before its updates
// arrive. The methods of Tx are the same writes, for use inside Submit.
//
// An update's encoded payload (the blob) is kept until its round is
// aggregated, so that a restarted server can rebuild the open round from
// PendingUpdates and the latest model; CommitRound then clears the blobs in
// the same transaction that stores the new model, unless the run keeps them.
//
// # Concurrency
//
// A Store is safe for concurrent use. Writes go through the writer
// goroutine's one connection, so they queue in Go instead of contending for
// SQLite's write lock; reads use a separate pool of query-only connections
// and, in WAL mode, never wait for writers. A busy timeout of 10 s covers
// other processes (a sqlite3 shell) holding locks.
//
// A synchronous write (the methods, Do) does not stop when its caller's
// context is cancelled: a request whose client hung up, or a coordinator
// shutting down between evaluating a round and committing it, must not leave
// a multi-step change half done or turn a good commit into a failed one; the
// wait is bounded by its own timeout instead. A write queued with Submit is
// skipped when its context is done before it starts; once started it runs to
// the end (an interrupted statement would roll back the whole shared
// transaction). WithWriteObserver reports every write's latency, from
// submission to durability.
//
// # Backups
//
// BackupFile (and Store.Backup) copy a database that a server is using,
// as one read transaction (VACUUM INTO), checked and renamed into place,
// with the payload files of its open rounds; Restore puts a backup back,
// refusing a database file that is still open.
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
