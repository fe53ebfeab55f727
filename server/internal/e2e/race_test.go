//go:build race

package e2e

// raceEnabled reports whether the race detector is on: the server under
// test runs in this process, several times slower, on the cores the
// browser shares.
const raceEnabled = true
