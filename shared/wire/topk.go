package wire

// kthLargest returns the k-th largest value of a (1 <= k <= len(a)),
// reordering a. It is a quickselect with median-of-three pivots and
// three-way partitioning, so runs of equal values (zeros) stay linear.
func kthLargest(a []float32, k int) float32 {
	if k < 1 || k > len(a) {
		panic("wire: kthLargest rank out of range")
	}
	target := len(a) - k // index in ascending order
	lo, hi := 0, len(a)  // search in a[lo:hi]
	for hi-lo > 1 {
		p := medianOf3(a[lo], a[lo+(hi-lo)/2], a[hi-1])
		// Partition a[lo:hi] into < p, == p, > p.
		lt, i, gt := lo, lo, hi
		for i < gt {
			switch v := a[i]; {
			case v < p:
				a[lt], a[i] = a[i], a[lt]
				lt++
				i++
			case v > p:
				gt--
				a[gt], a[i] = a[i], a[gt]
			default:
				i++
			}
		}
		switch {
		case target < lt:
			hi = lt
		case target >= gt:
			lo = gt
		default:
			return p
		}
	}
	return a[lo]
}

func medianOf3(a, b, c float32) float32 {
	if a > b {
		a, b = b, a
	}
	if b > c {
		b = c
	}
	if a > b {
		return a
	}
	return b
}

// selectTopK appends to idx the indices of the k entries of v with the
// largest magnitude, in increasing order; ties at the threshold go to the
// lowest indices. mag is scratch of len(v) (overwritten).
func selectTopK(idx []int32, v, mag []float32, k int) []int32 {
	for i, x := range v {
		mag[i] = abs32(x)
	}
	t := kthLargest(mag, k)
	above := 0
	for _, x := range v {
		if abs32(x) > t {
			above++
		}
	}
	ties := k - above
	for i, x := range v {
		if a := abs32(x); a > t || a == t && ties > 0 {
			if a == t {
				ties--
			}
			idx = append(idx, int32(i))
		}
	}
	return idx
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
