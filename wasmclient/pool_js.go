//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall/js"
	"time"

	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/participant"
)

// helperSetupWait bounds how long a helper may take to load its shard.
const helperSetupWait = 60 * time.Second

// poolTrainer is the participant.Trainer of a tab with several workers: the
// lead worker (which runs the participant) trains one shard of the tab's
// data itself and each helper worker another, all from the round's global
// model; then the lead averages the trained weights, weighted by samples
// (local model averaging), and that average is the tab's update. With no
// helpers it is a plain local trainer that lets the event loop in while it
// trains.
//
// Shards are strided (sample i goes to shard i mod k), so a data set sorted
// by label still gives every shard every label. A helper that fails has its
// shard trained by the lead in the same round and gets none from the next.
//
// A poolTrainer is used by one participant.Client: Train is not called
// concurrently.
type poolTrainer struct {
	model   *nn.Model // shape and name; parameters unused
	set     *data.Set
	helpers []*helperPort
	msgs    chan helperMsg // from every helper

	trainer *participant.LocalTrainer // the lead's own
	shards  [][]int                   // shards[0] is the lead's
	sets    []*data.Set               // the lead's shard set, and any it took over
	holders []*helperPort             // holders[j] trains shards[j+1]
	batch   int                       // batch size the shards were cut for
	weights [][]float32               // per shard, trained weights
}

// lastJob numbers the jobs sent to helpers, across trainers (a new run's
// trainer talks to the same helpers), so a late answer to an old job is
// never taken for a new one. Only the participant's goroutine uses it.
var lastJob int

func nextJob() int {
	lastJob++
	return lastJob
}

// helperPort is the lead's end of a MessageChannel to a helper worker.
type helperPort struct {
	index int
	port  js.Value
	fn    js.Func
	dead  error
}

// helperMsg is a message from a helper.
type helperMsg struct {
	h *helperPort
	v js.Value
}

// newPoolTrainer returns a trainer for model on set over the given helper
// ports (MessagePorts; none for a single worker).
func newPoolTrainer(model *nn.Model, set *data.Set, ports []js.Value) *poolTrainer {
	t := &poolTrainer{model: model, set: set, trainer: participant.NewLocalTrainer(model, set), msgs: make(chan helperMsg, 1024)}
	for i, p := range ports {
		h := &helperPort{index: i + 1, port: p}
		h.fn = js.FuncOf(func(_ js.Value, args []js.Value) any {
			select {
			case t.msgs <- helperMsg{h, arg(args, 0).Get("data")}:
			default: // only throttled progress can pile up this far
			}
			return nil
		})
		p.Set("onmessage", h.fn)
		t.helpers = append(t.helpers, h)
	}
	return t
}

// close detaches the trainer from its helpers' ports.
func (t *poolTrainer) close() {
	for _, h := range t.helpers {
		h.port.Set("onmessage", js.Null())
		h.fn.Release()
	}
}

// shard cuts the data into one shard per live worker, each at least one
// batch, and hands the helpers theirs.
func (t *poolTrainer) shard(ctx context.Context, batch int) error {
	for {
		var live []*helperPort
		for _, h := range t.helpers {
			if h.dead == nil {
				live = append(live, h)
			}
		}
		k := min(1+len(live), max(1, t.set.Len()/max(1, batch)))
		t.shards = make([][]int, k)
		for i := range t.set.Len() {
			t.shards[i%k] = append(t.shards[i%k], i)
		}
		t.holders, t.batch = live[:k-1], batch
		t.sets = make([]*data.Set, k)
		t.sets[0] = t.set
		if k > 1 {
			t.sets[0] = t.set.Subset(t.shards[0])
		}
		t.weights = make([][]float32, k)
		for j := range t.weights {
			t.weights[j] = make([]float32, len(t.model.Params))
		}
		if k == 1 {
			return nil
		}
		if err := t.setupHelpers(ctx); err != nil {
			if ctx.Err() != nil {
				return err
			}
			continue // a helper died: cut again without it
		}
		return nil
	}
}

// setupHelpers sends every holder its shard and waits until all are ready.
func (t *poolTrainer) setupHelpers(ctx context.Context) error {
	job := nextJob()
	for j, h := range t.holders {
		sub := t.set.Subset(t.shards[j+1])
		images, labels := bytesToJS(sub.Images).Get("buffer"), bytesToJS(sub.Labels).Get("buffer")
		postMessage(h.port, object(map[string]any{"type": "setup", "job": job, "model": t.model.Name,
			"h": sub.H, "w": sub.W, "c": sub.C, "classes": sub.Classes, "dataset": sub.Name,
			"images": images, "labels": labels}), images, labels)
	}
	timeout := time.NewTimer(helperSetupWait)
	defer timeout.Stop()
	var failed error
	for waiting := len(t.holders); waiting > 0; {
		select {
		case m := <-t.msgs:
			if m.v.Get("job").Int() != job {
				continue
			}
			switch m.v.Get("type").String() {
			case "ready":
				waiting--
			case "error":
				m.h.dead = fmt.Errorf("wasmclient: helper %d: %s", m.h.index, m.v.Get("message").String())
				failed = m.h.dead
				waiting--
			}
		case <-timeout.C:
			for _, h := range t.holders {
				h.dead = errors.New("wasmclient: helper did not load its shard in time")
			}
			return errors.New("wasmclient: helpers did not load their shards in time")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return failed
}

// counters is one shard's training progress.
type counters struct {
	epoch, batch, batches, samples int
	loss                           float64
}

// progressTracker combines the shards' progress into one nn.Progress.
type progressTracker struct {
	mu     sync.Mutex
	shards []counters
	epochs int
	start  time.Time
}

func (p *progressTracker) set(j int, c counters) {
	p.mu.Lock()
	p.shards[j] = c
	p.mu.Unlock()
}

// combined adds up the shards: batches done over all, epoch and batch
// within the combined epoch, samples and a sample-weighted loss.
func (p *progressTracker) combined() nn.Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	var done, per, samples int
	var lossSum, lossW float64
	for _, c := range p.shards {
		per += c.batches
		if c.epoch > 0 {
			done += (c.epoch-1)*c.batches + c.batch
		}
		samples += c.samples
		lossSum += c.loss * float64(c.batches)
		lossW += float64(c.batches)
	}
	per = max(per, 1)
	epoch := min(max(done-1, 0)/per+1, p.epochs)
	pr := nn.Progress{Epoch: epoch, Epochs: p.epochs, Batch: done - (epoch-1)*per, Batches: per,
		Samples: samples, Elapsed: time.Since(p.start)}
	if lossW > 0 {
		pr.Loss = lossSum / lossW
	}
	return pr
}

// Train implements participant.Trainer.
func (t *poolTrainer) Train(ctx context.Context, global, local []float32, cfg participant.RoundConfig, progress func(nn.Progress)) (nn.FitStats, error) {
	if len(global) != len(t.model.Params) || len(local) != len(global) {
		return nn.FitStats{}, fmt.Errorf("wasmclient: model has %d parameters, got %d", len(t.model.Params), len(global))
	}
	if t.shards == nil || cfg.Batch != t.batch || t.anyHolderDead() {
		if err := t.shard(ctx, cfg.Batch); err != nil {
			return nn.FitStats{}, err
		}
	}
	job := nextJob()
	start := time.Now()
	tr := &progressTracker{shards: make([]counters, len(t.shards)), epochs: cfg.Epochs, start: start}
	for j := range t.shards {
		bs := max(1, cfg.Batch)
		tr.shards[j].batches = (len(t.shards[j]) + bs - 1) / bs
	}
	for j, h := range t.holders {
		w := float32sToJS(global)
		postMessage(h.port, object(map[string]any{"type": "train", "job": job, "weights": w,
			"epochs": cfg.Epochs, "batch": cfg.Batch, "lr": cfg.LR, "momentum": cfg.Momentum,
			"weight_decay": cfg.WeightDecay, "mu": cfg.Mu, "seed": strconv.FormatUint(shardSeed(cfg.Seed, j+1), 10)}), w)
	}
	localDone := make(chan localResult, 1)
	localBusy := true
	go t.trainLocal(ctx, 0, global, cfg, tr, localDone)
	// stop waits for the lead's own training (it shares buffers with the
	// next round) and tells the helpers to drop this job.
	stop := func(err error) (nn.FitStats, error) {
		if localBusy {
			<-localDone
		}
		t.abort(job)
		return nn.FitStats{}, err
	}

	stats := make([]nn.FitStats, len(t.shards))
	pending := len(t.shards)
	var orphans []int // shards whose helper failed this round, for the lead
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for pending > 0 {
		if !localBusy && len(orphans) > 0 {
			localBusy = true
			go t.trainLocal(ctx, orphans[0], global, cfg, tr, localDone)
			orphans = orphans[1:]
		}
		select {
		case r := <-localDone:
			localBusy = false
			if r.err != nil {
				return stop(r.err)
			}
			stats[r.shard] = r.st
			pending--
		case m := <-t.msgs:
			if m.v.Get("job").Int() != job {
				continue
			}
			j := t.shardOf(m.h)
			if j < 0 {
				continue
			}
			switch m.v.Get("type").String() {
			case "progress":
				tr.set(j, counters{epoch: m.v.Get("epoch").Int(), batch: m.v.Get("batch").Int(),
					batches: m.v.Get("batches").Int(), samples: m.v.Get("samples").Int(), loss: m.v.Get("loss").Float()})
			case "result":
				st, err := t.helperResult(j, m.v)
				if err != nil {
					m.h.dead = err
					orphans = append(orphans, j)
					continue
				}
				stats[j] = st
				pending--
			}
		case <-tick.C:
			if p := tr.combined(); p.Batch > 0 { // at least one batch done
				progress(p)
			}
		case <-ctx.Done():
			return stop(ctx.Err())
		}
	}
	final := tr.combined()
	final.Epoch, final.Batch = final.Epochs, final.Batches
	progress(final)
	return t.average(local, stats, time.Since(start)), nil
}

func (t *poolTrainer) anyHolderDead() bool {
	for _, h := range t.holders {
		if h.dead != nil {
			return true
		}
	}
	return false
}

func (t *poolTrainer) shardOf(h *helperPort) int {
	for j, x := range t.holders {
		if x == h {
			return j + 1
		}
	}
	return -1
}

// shardSeed gives each shard its own shuffling and dropout stream.
func shardSeed(seed uint64, j int) uint64 { return seed + uint64(j)*0x9e3779b97f4a7c15 }

type localResult struct {
	shard int
	st    nn.FitStats
	err   error
}

// trainLocal trains shard j in the lead's goroutine, yielding to the event
// loop as it goes.
func (t *poolTrainer) trainLocal(ctx context.Context, j int, global []float32, cfg participant.RoundConfig, tr *progressTracker, done chan<- localResult) {
	if t.sets[j] == nil {
		t.sets[j] = t.set.Subset(t.shards[j])
	}
	var y yielder
	c := cfg
	c.Seed = shardSeed(cfg.Seed, j)
	st, err := t.trainer.TrainOn(ctx, t.sets[j], global, t.weights[j], c, func(p nn.Progress) {
		tr.set(j, counters{epoch: p.Epoch, batch: p.Batch, batches: p.Batches, samples: p.Samples, loss: p.Loss})
		y.maybe()
	})
	done <- localResult{shard: j, st: st, err: err}
}

// helperResult takes a helper's trained weights for shard j.
func (t *poolTrainer) helperResult(j int, v js.Value) (nn.FitStats, error) {
	if e := v.Get("error"); e.Truthy() {
		return nn.FitStats{}, fmt.Errorf("wasmclient: helper %d: %s", j, e.String())
	}
	if err := float32sFromJS(t.weights[j], v.Get("weights")); err != nil {
		return nn.FitStats{}, err
	}
	st := nn.FitStats{Samples: v.Get("samples").Int(), Loss: v.Get("loss").Float(), Accuracy: v.Get("accuracy").Float(),
		Duration: time.Duration(v.Get("ms").Float() * float64(time.Millisecond))}
	return st, nil
}

// abort tells the helpers to stop working on job.
func (t *poolTrainer) abort(job int) {
	for _, h := range t.holders {
		postMessage(h.port, object(map[string]any{"type": "cancel", "job": job}))
	}
}

// average writes the sample-weighted mean of the shards' weights into dst
// (accumulating in float64) and returns the combined statistics.
func (t *poolTrainer) average(dst []float32, stats []nn.FitStats, elapsed time.Duration) nn.FitStats {
	out := nn.FitStats{Duration: elapsed}
	total := 0
	for _, s := range stats {
		total += s.Samples
	}
	if len(stats) == 1 || total == 0 {
		copy(dst, t.weights[0])
		s := stats[0]
		s.Duration = elapsed
		return s
	}
	acc := make([]float64, len(dst))
	for j, s := range stats {
		f := float64(s.Samples) / float64(total)
		for i, v := range t.weights[j] {
			acc[i] += f * float64(v)
		}
		out.Loss += f * s.Loss
		out.Accuracy += f * s.Accuracy
		out.Samples += s.Samples
	}
	for i, v := range acc {
		dst[i] = float32(v)
	}
	return out
}
