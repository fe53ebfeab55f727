// Package coord is QFLARE's round engine: it owns the live runs, their
// clients and rounds, talks the wire protocol with participants over
// link.Conn, folds updates into a strategy's aggregation, evaluates,
// persists every step in the store and publishes typed events for
// dashboards.
//
// # Shape
//
// A run is three things:
//
//   - its spec (spec.go): configuration, data, partition, model structure,
//     strategy, codecs. It never changes once built, and any goroutine may
//     read it;
//   - its state (state.go), owned by the run's loop goroutine (loop.go):
//     status, the global model, the clients, the open round;
//   - the open round (round.go): who was selected and where each client is.
//     Its methods are the only way a client is marked as answered and the
//     only way it is decided that the round is over.
//
// A Policy (policy.go) decides, at the points where round modes differ,
// when a round opens and with whom, who gets work during it, and when it
// is over; SyncPolicy is FedAvg's synchronous rounds. Sessions never see
// the policy: a client's session holds its task (which model version to
// train for which round), checks updates against it, and asks the loop.
//
// # Secure rounds
//
// A run with secure_agg (secagg.go) runs each round as a phase machine on
// the synchronous round: advertise keys, share keys, masked input, unmask
// (package secagg). Sessions fold masked inputs into a running sum modulo
// 2^32 instead of decoding updates; the closer unmasks the sum and folds it
// into the strategy's aggregation as one exact partial. The hooks into the
// loop, sessions, closer and resume are marked where they are.
//
// # Concurrency
//
// The loop only decides. Everything that takes disk or CPU time happens
// elsewhere and reports back through the run's mailbox:
//
//   - each connection has a reader (Coordinator.Serve's goroutine), which
//     refuses an update that cannot be taken before decoding it, decodes
//     the others (in parallel, bounded by a semaphore), and, once the loop
//     accepts one, stores it and folds it into the round's aggregation;
//   - each connection has a writer goroutine with a bounded queue (peer.go),
//     which also encodes model deltas on first use; a client that does not
//     keep up is disconnected rather than allowed to block the loop;
//   - writes go to the store's group commit (store.Submit): the loop never
//     waits for an fsync, and writes that arrive together share one;
//   - closing a round (closer.go) runs in its own goroutine: the strategy's
//     aggregate, the evaluation on all cores, the new model's frame (encoded
//     once per version) and the commit. Meanwhile the loop keeps answering
//     hellos and messages.
//
// Events go to each run's own hub (events.go): publishing never blocks, so
// no subscriber can hold up a loop, and one run's traffic cannot make
// another run's subscribers lose events. A run that has ended leaves the
// coordinator (and memory); the API serves it from the store.
//
// # Durability
//
// An accepted update is durable (stored with its payload, fsynced) before
// it is folded into the aggregate and acknowledged; a round cannot close
// while an accepted update is still being stored. A round's model,
// metrics, verdicts and the clients' telemetry are committed in one
// transaction. A restarted coordinator resumes each unfinished run from its
// latest model and replays the accepted updates of the open round into a
// fresh aggregation, so nothing acknowledged is lost. Client telemetry
// (bytes, last seen, speeds) lives in memory between commits: a crash loses
// at most a round of it.
//
// # Accountability
//
// A client id is not a credential: each newcomer gets a secret with its
// first welcome, and a hello that claims an id must show it (else it is a
// newcomer). Every refusal counts against the connection (maxRejects), and
// at most a few refused rows per client and round are stored. A slice
// whose client has been away longer than the run's slice grace returns to
// the pool. A client that keeps missing rounds is passed over for a while
// (1, 2, 4 … up to 64 rounds). Public runs get a norm bound and anomaly
// detection by default.
package coord
