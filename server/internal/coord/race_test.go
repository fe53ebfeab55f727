//go:build race

package coord_test

// raceEnabled reports whether the race detector is on (everything runs
// several times slower).
const raceEnabled = true
