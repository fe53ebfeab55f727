package coord

import "time"

// Clock is the coordinator's time source: deadlines, grace periods,
// back-offs and timestamps all read it, so tests can drive a run's state
// machine with a fake one in milliseconds.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed; Stop on
	// the returned timer cancels it.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop cancels the call; it reports whether it did (false: it already
	// ran or was stopped).
	Stop() bool
}

// noTrack is the Tracker of the real clock: time moves on its own.
type noTrack struct{}

func (noTrack) Hold()    {}
func (noTrack) Release() {}

// realClock is the system clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
