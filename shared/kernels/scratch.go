package kernels

// scratch holds the packing buffers of one Sgemm call.
type scratch struct {
	at    []float32 // a transposed block of A
	b     []float32 // a packed block of B
	panel []float32 // the last panel of a B read in place, packed
	tile  []float32 // a tile cut by the edge of C
}

// pool keeps a few scratch buffers between calls, so that Sgemm allocates only while
// the pool warms up. A channel rather than a sync.Pool, because a sync.Pool is emptied
// by the garbage collector and training loops collect often; the capacity bounds what
// is kept when many goroutines call Sgemm at once.
var pool = make(chan *scratch, 4)

// getScratch returns a scratch from the pool, or a new one if the pool is empty.
func getScratch() *scratch {
	select {
	case s := <-pool:
		return s
	default:
		return new(scratch)
	}
}

// putScratch returns s to the pool, or drops it if the pool is full.
func putScratch(s *scratch) {
	select {
	case pool <- s:
	default:
	}
}

// grow returns (*buf)[:n], replacing *buf by a larger buffer first if it is too short.
func grow(buf *[]float32, n int) []float32 {
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	return (*buf)[:n]
}
