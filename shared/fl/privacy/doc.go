// Package privacy accounts for the privacy spent by the subsampled Gaussian
// mechanism, as used by DP-SGD and user-level DP-FedAvg.
//
// The accountant works in Rényi differential privacy (RDP, Mironov 2017). RDP
// computes the RDP of the sampled Gaussian mechanism (Mironov, Talwar and Zhang
// 2019) at a list of orders, following TensorFlow Privacy's rdp_accountant
// (_compute_log_a for integer and fractional orders), entirely in log space so
// that large orders and small noise do not overflow. RDP composes by addition,
// so the RDP of T identical steps is T times that of one step.
//
// Epsilon converts RDP into an (epsilon, delta) guarantee, either with the
// classic conversion (eps = rdp − log(delta)/(alpha−1), Mironov 2017) or with
// the tighter one of Balle et al. 2020 (eps = rdp + log1p(−1/alpha) −
// log(delta·alpha)/(alpha−1)), minimised over the orders.
//
// The tests reproduce published numbers: the TensorFlow Privacy MNIST tutorial
// table and its compute_dp_sgd_privacy and rdp_accountant tests.
//
// All functions are pure and safe for concurrent use. Invalid arguments
// (a sampling rate outside [0, 1], an order ≤ 1, a delta outside (0, 1), slices of
// different lengths) are programmer errors and panic with a message starting
// with "privacy: ".
package privacy
