// Package profile describes kinds of client devices (a desktop, a laptop, a
// fast and a slow phone, an IoT board) by how fast they train, how fast
// their network is, and how reliably they stay online, so that a fast
// machine can emulate a federation of slow and flaky ones.
//
// A Profile turns work into time: Compute for training FLOPs (see
// nn.Model.TrainFLOPs), Download and Upload for frames. Its availability
// figures draw online and offline periods and mid-task drops from a seeded
// *rand.Rand, so a simulation is repeatable. A Mix gives shares of named
// profiles ("phone-low:0.3,laptop:0.5,desktop:0.2") and assigns them to a
// population of clients in exact proportions.
//
// # Where the figures come from
//
// Each built-in profile's Source says where its figures come from; the
// README's "Device profiles" section has the table with the full
// references. Compute speeds are estimates: the laptop's is our trainer's
// measured speed in a browser tab, and the others are scaled from it by
// published Geekbench 5 multi-core ratios. Network figures are Ookla
// Speedtest Global Index medians; drop chances are the range Google reports
// for its production federated learning (Bonawitz et al., 2019); online
// and offline period lengths are our own estimates.
//
// # Concurrency
//
// Profile and Mix are values; their methods are safe for concurrent use.
// A *rand.Rand passed in is not: give each goroutine its own.
package profile
