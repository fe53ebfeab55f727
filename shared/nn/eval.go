package nn

import (
	"fmt"
	"sync"

	"github.com/qflare/qflare/shared/data"
)

// Evaluator runs forward passes of a Model without changing it. It owns its
// buffers; it is not safe for concurrent use (make one per goroutine).
type Evaluator struct {
	m     *Model
	batch int
	bufs  [2][]float32
	x     []float32
	scr   []scratch
}

// NewEvaluator returns an Evaluator for m working in batches of up to batch.
func NewEvaluator(m *Model, batch int) *Evaluator {
	if batch < 1 {
		panic("nn: evaluator batch must be positive")
	}
	e := &Evaluator{m: m, batch: batch, scr: m.newScratch(batch, nil)}
	for i := range e.bufs {
		e.bufs[i] = make([]float32, batch*m.maxAct())
	}
	return e
}

// Logits runs the model on n = len(x)/Input.Size() ≤ batch samples and
// returns the logits (n×Classes), valid until the next call.
func (e *Evaluator) Logits(x []float32) []float32 {
	m := e.m
	n := len(x) / m.Input.Size()
	if n < 1 || n > e.batch {
		panic(fmt.Sprintf("nn: %d samples do not fit evaluator batch %d", n, e.batch))
	}
	in := x[:n*m.Input.Size()]
	for i, l := range m.layers {
		out := e.bufs[i%2][:n*m.shapes[i+1].Size()]
		l.forward(&e.scr[i], m.weights(m.Params, i), in, out, n)
		in = out
	}
	return in
}

// Evaluate returns the mean loss and the accuracy of the model on the
// samples idx of set (nil = all).
func (e *Evaluator) Evaluate(set *data.Set, idx []int) (loss, acc float64, err error) {
	r, err := e.Report(set, idx)
	return r.Loss, r.Accuracy, err
}

// Report is a model's evaluation: mean loss, accuracy, and per label the
// samples of that label and how many of them were classified right.
type Report struct {
	Loss, Accuracy float64
	Total, Correct []int // by label
}

// LabelAccuracy returns the accuracy on each label (0 for a label without
// samples).
func (r Report) LabelAccuracy() []float64 {
	accs := make([]float64, len(r.Total))
	for i, n := range r.Total {
		if n > 0 {
			accs[i] = float64(r.Correct[i]) / float64(n)
		}
	}
	return accs
}

// Report evaluates the model on the samples idx of set (nil = all), with
// per-label counts.
func (e *Evaluator) Report(set *data.Set, idx []int) (Report, error) {
	r := Report{Total: make([]int, e.m.Classes), Correct: make([]int, e.m.Classes)}
	if in := (Shape{set.H, set.W, set.C}); in != e.m.Input || set.Classes != e.m.Classes {
		return r, fmt.Errorf("nn: dataset %q (%v) does not fit model %q (%v)", set.Name, in, e.m.Name, e.m.Input)
	}
	n := set.Len()
	if idx != nil {
		n = len(idx)
	}
	if n == 0 {
		return r, fmt.Errorf("nn: no samples to evaluate")
	}
	if e.x == nil {
		e.x = make([]float32, e.batch*e.m.Input.Size())
	}
	var part []int
	var labels []uint8
	correct := 0
	k := e.m.Classes
	for s := 0; s < n; s += e.batch {
		part = part[:0]
		labels = labels[:0]
		for i := s; i < min(s+e.batch, n); i++ {
			j := i
			if idx != nil {
				j = idx[i]
			}
			part = append(part, j)
			labels = append(labels, set.Labels[j])
		}
		x := e.x[:len(part)*e.m.Input.Size()]
		set.Fill(x, part)
		logits := e.Logits(x)
		for i, y := range labels {
			row := logits[i*k : (i+1)*k]
			best := 0
			for j, v := range row {
				if v > row[best] {
					best = j
				}
			}
			r.Total[y]++
			if best == int(y) {
				r.Correct[y]++
			}
		}
		l, c := softmaxCE(logits, labels, k, nil)
		r.Loss += l * float64(len(part))
		correct += c
	}
	r.Loss /= float64(n)
	r.Accuracy = float64(correct) / float64(n)
	return r, nil
}

// Evaluate measures m on all of set with up to workers goroutines, each with
// its own Evaluator, and returns the mean loss and the accuracy.
func Evaluate(m *Model, set *data.Set, workers int) (loss, acc float64, err error) {
	r, err := EvaluateReport(m, set, workers)
	return r.Loss, r.Accuracy, err
}

// EvaluateReport is Evaluate with per-label counts.
func EvaluateReport(m *Model, set *data.Set, workers int) (Report, error) {
	const batch = 250
	n := set.Len()
	workers = max(1, min(workers, (n+batch-1)/batch))
	type part struct {
		r   Report
		n   int
		err error
	}
	parts := make([]part, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx := make([]int, hi-lo)
			for i := range idx {
				idx[i] = lo + i
			}
			r, err := NewEvaluator(m, batch).Report(set, idx)
			parts[w] = part{r, len(idx), err}
		}()
	}
	wg.Wait()
	out := Report{Total: make([]int, m.Classes), Correct: make([]int, m.Classes)}
	for _, p := range parts {
		if p.err != nil {
			return out, p.err
		}
		out.Loss += p.r.Loss * float64(p.n)
		out.Accuracy += p.r.Accuracy * float64(p.n)
		for i := range out.Total {
			out.Total[i] += p.r.Total[i]
			out.Correct[i] += p.r.Correct[i]
		}
	}
	out.Loss /= float64(n)
	out.Accuracy /= float64(n)
	return out, nil
}
