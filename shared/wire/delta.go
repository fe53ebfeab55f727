package wire

import "math"

// ToDelta turns the decoded weights w of an update into its difference
// from base, in place, and checks it as every receiver of updates does (the
// origin and an edge shard alike, so that both refuse with the same codes):
// the difference must be finite (ErrNotFinite), move no weight by more
// than maxValue, and have an L2 norm of at most maxNorm (0: no limit)
// (ErrNorm). It returns the norm. w and base have the same length.
func ToDelta(w, base []float32, maxValue, maxNorm float64) (float64, error) {
	base = base[:len(w)]
	var norm float64
	for i, v := range w {
		d := v - base[i]
		w[i] = d
		norm += float64(d) * float64(d)
	}
	norm = math.Sqrt(norm)
	if math.IsInf(norm, 0) || math.IsNaN(norm) {
		return norm, errorf(ErrNotFinite, "the update's difference from the global model overflows float32")
	}
	// No coordinate can exceed the norm, so only a large norm needs the
	// look for the largest change.
	if norm > maxValue {
		peak := 0.0
		for _, d := range w {
			peak = max(peak, math.Abs(float64(d)))
		}
		if peak > maxValue {
			return norm, errorf(ErrNorm, "the update changes a weight by %.4g, beyond ±%g", peak, maxValue)
		}
	}
	if maxNorm > 0 && norm > maxNorm {
		return norm, errorf(ErrNorm, "update norm %.4g exceeds the run's limit %.4g", norm, maxNorm)
	}
	return norm, nil
}
