package participant

import "sync"

// Float buffers of model size, shared by all the clients of a process (a
// simulation's virtual clients, a tab's lead worker): a client holds one
// only while a round needs it.
var floatPools sync.Map // int → *sync.Pool of *[]float32

// getFloats returns a buffer of n float32s (contents undefined).
func getFloats(n int) []float32 {
	if p, ok := floatPools.Load(n); ok {
		if b, ok := p.(*sync.Pool).Get().(*[]float32); ok {
			return *b
		}
	}
	return make([]float32, n)
}

// putFloats hands b back (nil is ignored).
func putFloats(b []float32) {
	if b == nil {
		return
	}
	p, _ := floatPools.LoadOrStore(len(b), &sync.Pool{})
	p.(*sync.Pool).Put(&b)
}
