package nn

import "math"

// softmaxCE computes the mean softmax cross-entropy of n rows of logits
// against labels, writes d(loss)/d(logits) into dlogits when it is not nil,
// and counts the rows whose largest logit is the label.
func softmaxCE(logits []float32, labels []uint8, classes int, dlogits []float32) (loss float64, correct int) {
	n := len(labels)
	inv := 1 / float64(n)
	for r, y := range labels {
		row := logits[r*classes : (r+1)*classes]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == int(y) {
			correct++
		}
		mx := float64(row[best])
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - mx)
		}
		loss += math.Log(sum) - (float64(row[y]) - mx)
		if dlogits == nil {
			continue
		}
		d := dlogits[r*classes : (r+1)*classes]
		for j, v := range row {
			p := math.Exp(float64(v)-mx) / sum
			if j == int(y) {
				p--
			}
			d[j] = float32(p * inv)
		}
	}
	return loss * inv, correct
}
