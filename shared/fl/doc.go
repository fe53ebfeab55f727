// Package fl aggregates federated-learning updates: the strategies the server
// runs each round, over flat []float32 model vectors.
//
// # Model
//
// A Strategy configures rounds (ConfigureFit) and starts one Aggregation per
// round (Begin), given the round's global model. The coordinator Adds each
// client's Update, whose Delta is w_client − w_global, and calls Finish, which
// writes the new global model into dst and returns a Result with one Verdict per
// Add. The coordinator owns the round loop; strategies own only what persists
// across rounds (server optimizer moments, DP clip norm and privacy spent),
// which Stateful lets a restarted server save and restore.
//
// Strategies, by the names New and Parse accept:
//
//	fedavg        streaming sample-weighted mean (McMahan et al. 2017); fedavg:ETA
//	              scales the step by a server learning rate
//	fedprox       fedavg, and clients add mu·(w − w_global) (Li et al. 2020; ProximalGrad)
//	fedavgm       server momentum (Hsu et al. 2019)
//	fedadam       server Adam    (Reddi et al. 2021)
//	fedyogi       server Yogi    (Reddi et al. 2021)
//	fedadagrad    server Adagrad (Reddi et al. 2021)
//	krum          the update closest to its n−f−2 neighbours (Blanchard et al. 2017)
//	multi-krum    unweighted mean of the m best Krum scores
//	trimmed-mean  coordinate-wise mean without the beta fraction at each end (Yin et al. 2018)
//	median        coordinate-wise median (Yin et al. 2018)
//
// Two wrappers compose with them: Detector excludes anomalous updates (cosine
// to the coordinate-wise median and norm ratio), and DP implements user-level
// DP-FedAvg with clipping, Gaussian noise, optional adaptive clipping and an
// RDP accountant (package privacy). Attack simulates misbehaving clients.
//
// # Invariants
//
// Aggregators never modify their inputs: neither the global slice given to
// Begin nor any Update. Add never keeps a reference to u.Delta: the averaging
// strategies fold it into a float64 sum (memory independent of the number of
// clients) and the robust ones buffer a copy (one model copy per update), so
// callers may reuse decode buffers as soon as Add returns. Finish writes only
// dst, which may be the global slice itself. The one function that writes an
// argument is ProximalGrad, which accumulates into a gradient buffer by design.
//
// Averages accumulate in float64 and round to float32 once, at the end, so the
// result does not depend on the order in which updates arrive: exactly for
// median, trimmed mean and Krum (which sort), and in practice for the weighted
// mean (each n_i·delta_i is exact and the float64 sum carries 29 spare bits).
//
// Inputs from clients are validated by Add (length, a sample count in
// [1, MaxSamples], finite values) and rejected with an error, never a panic.
// Programmer errors (an empty global model, a dst of the wrong length) panic
// with messages starting with "fl: ".
//
// # Errors
//
// Finish returns ErrNoUpdates when nothing was added (dst untouched, the
// aggregation still open), and ErrFinished after a completed Finish. Krum with
// an explicit f returns an error wrapping ErrTooFewUpdates below 2f+3 updates.
//
// # Concurrency
//
// Strategies and aggregations are safe for concurrent use; an aggregation
// serialises its calls. Coordinate-wise rules and Krum's distances run on up
// to GOMAXPROCS goroutines over blocks of coordinates (one on js/wasm).
// Persistent state changes only when Finish succeeds.
package fl
