//go:build js && wasm

package main

import "time"

// yieldEvery is how long training runs before it lets the event loop in.
// Go on js/wasm has one thread and no preemption: while a goroutine trains,
// no JavaScript event (a server message, a helper's result, the page's
// Leave) is handled. A short sleep hands control back to the event loop; it
// costs a few milliseconds (browsers clamp nested timers to 4 ms), about 2%.
const yieldEvery = 150 * time.Millisecond

// yielder lets the event loop run at most every yieldEvery; call it from
// training's progress callback.
type yielder struct{ last time.Time }

func (y *yielder) maybe() {
	now := time.Now()
	if y.last.IsZero() {
		y.last = now
		return
	}
	if now.Sub(y.last) >= yieldEvery {
		time.Sleep(time.Millisecond)
		y.last = time.Now()
	}
}
