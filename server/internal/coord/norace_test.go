//go:build !race

package coord_test

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
