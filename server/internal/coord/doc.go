// Package coord is QFLARE's round engine: it owns runs, their clients and
// rounds, talks the wire protocol with participants over link.Conn, folds
// updates into a strategy's aggregation, evaluates, persists every step in
// the store and publishes events for dashboards.
//
// # Concurrency
//
// Each run has one loop goroutine that owns all of its state (clients, the
// open round, the global model); connections talk to it through events. A
// connection has one reader (Coordinator.Serve's goroutine, which also
// decodes updates, so decoding runs in parallel) and one writer goroutine
// with a bounded queue: a client that does not keep up is disconnected
// rather than allowed to block the loop. The global model of a round is
// never modified in place: aggregation writes a new vector.
//
// # Durability
//
// An update is stored (fsynced, with its payload) before it is folded into
// the aggregate and acknowledged. A round's model, metrics and verdicts are
// committed in one transaction. A restarted coordinator resumes each
// unfinished run from its latest model and replays the accepted updates of
// the open round into a fresh aggregation, so nothing accepted is lost.
package coord
