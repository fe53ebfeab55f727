//go:build race && !js

package main

// raceEnabled: the race detector slows the origin down several times.
const raceEnabled = true
