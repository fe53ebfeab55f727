package nn

import (
	"context"
	"fmt"
	"time"

	"github.com/qflare/qflare/shared/data"
)

// Progress reports a running Fit.
type Progress struct {
	Epoch, Epochs  int     // 1-based epoch
	Batch, Batches int     // 1-based batch within the epoch
	Loss           float64 // mean training loss so far in this epoch
	Samples        int     // samples processed so far in this Fit
	Elapsed        time.Duration
}

// SamplesPerSecond is the training speed so far.
func (p Progress) SamplesPerSecond() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Samples) / p.Elapsed.Seconds()
}

// FitStats summarises a finished Fit.
type FitStats struct {
	Loss     float64 // mean training loss of the last epoch
	Accuracy float64 // training accuracy of the last epoch (during training)
	Samples  int     // samples processed over all epochs
	Duration time.Duration
}

// SamplesPerSecond is the training speed of the whole Fit.
func (s FitStats) SamplesPerSecond() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Samples) / s.Duration.Seconds()
}

// FitOptions tunes Fit.
type FitOptions struct {
	Epochs int
	// Progress, when set, is called after every batch; keep it cheap.
	Progress func(Progress)
	// Label, when set, maps each label before training (label-flip attacks).
	Label func(uint8) uint8
	// LR, when set, gives the learning rate of each step (step counts from 0
	// over all epochs of this Fit; steps is their total), for schedules.
	LR func(step, steps int) float32
}

// Fit trains for opt.Epochs epochs over the samples idx of set (nil = all),
// shuffling each epoch, in batches of the trainer's batch size (the last one
// may be smaller). It stops early with ctx's error when ctx is done.
func (t *Trainer) Fit(ctx context.Context, set *data.Set, idx []int, opt FitOptions) (FitStats, error) {
	if err := t.checkSet(set); err != nil {
		return FitStats{}, err
	}
	if idx == nil {
		idx = t.allIndices(set.Len())
	}
	if len(idx) == 0 || opt.Epochs < 1 {
		return FitStats{}, fmt.Errorf("nn: nothing to train: %d samples, %d epochs", len(idx), opt.Epochs)
	}
	t.ensureBatchBuffers()
	if cap(t.perm) < len(idx) {
		t.perm = make([]int, len(idx))
	}
	perm := t.perm[:len(idx)]
	bs := t.cfg.Batch
	batches := (len(idx) + bs - 1) / bs
	start := time.Now()
	var st FitStats
	for e := 1; e <= opt.Epochs; e++ {
		copy(perm, idx)
		t.rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		var lossSum float64
		correct, seen := 0, 0
		for b := 0; b < batches; b++ {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if opt.LR != nil {
				t.SetLR(opt.LR((e-1)*batches+b, opt.Epochs*batches))
			}
			part := perm[b*bs : min((b+1)*bs, len(perm))]
			x, y := t.fillBatch(set, part, opt.Label)
			l, c := t.Step(x, y)
			lossSum += l * float64(len(part))
			correct += c
			seen += len(part)
			st.Samples += len(part)
			if opt.Progress != nil {
				opt.Progress(Progress{Epoch: e, Epochs: opt.Epochs, Batch: b + 1, Batches: batches,
					Loss: lossSum / float64(seen), Samples: st.Samples, Elapsed: time.Since(start)})
			}
		}
		st.Loss, st.Accuracy = lossSum/float64(seen), float64(correct)/float64(seen)
	}
	st.Duration = time.Since(start)
	return st, nil
}

func (t *Trainer) checkSet(set *data.Set) error {
	in := Shape{set.H, set.W, set.C}
	if in != t.m.Input || set.Classes != t.m.Classes {
		return fmt.Errorf("nn: dataset %q (%v, %d classes) does not fit model %q (%v, %d classes)",
			set.Name, in, set.Classes, t.m.Name, t.m.Input, t.m.Classes)
	}
	return nil
}

func (t *Trainer) allIndices(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func (t *Trainer) ensureBatchBuffers() {
	if t.xbuf == nil {
		t.xbuf = make([]float32, t.cfg.Batch*t.m.Input.Size())
		t.ybuf = make([]uint8, t.cfg.Batch)
	}
}

func (t *Trainer) fillBatch(set *data.Set, part []int, label func(uint8) uint8) ([]float32, []uint8) {
	x, y := t.xbuf[:len(part)*t.m.Input.Size()], t.ybuf[:len(part)]
	set.Fill(x, part)
	for i, j := range part {
		y[i] = set.Labels[j]
		if label != nil {
			y[i] = label(y[i])
		}
	}
	return x, y
}
