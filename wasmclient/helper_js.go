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

// helper is a helper worker: it holds one shard of the tab's data and
// trains it from the global model whenever the lead asks, over a
// MessagePort to the lead (see poolTrainer for the messages). It does one
// job at a time; a "cancel" stops the current one at its next yield.
type helper struct {
	port    js.Value
	jobs    chan js.Value
	trainer *participant.LocalTrainer
	set     *data.Set
	global  []float32
	local   []float32

	mu      sync.Mutex
	running int
	cancel  context.CancelFunc
}

// runHelper serves the lead until the worker is terminated.
func runHelper(boot js.Value) {
	h := &helper{port: boot.Get("port"), jobs: make(chan js.Value, 64)}
	fn := js.FuncOf(func(_ js.Value, args []js.Value) any {
		m := arg(args, 0).Get("data")
		if m.Get("type").String() == "cancel" {
			h.stop(m.Get("job").Int())
			return nil
		}
		select {
		case h.jobs <- m:
		default:
			h.reply(m.Get("job").Int(), "error", map[string]any{"message": "helper queue full"})
		}
		return nil
	})
	h.port.Set("onmessage", fn)
	for m := range h.jobs {
		job := m.Get("job").Int()
		switch m.Get("type").String() {
		case "setup":
			if err := h.setup(m); err != nil {
				h.reply(job, "error", map[string]any{"message": err.Error()})
				continue
			}
			h.reply(job, "ready", nil)
		case "train":
			h.train(job, m)
		}
	}
}

func (h *helper) reply(job int, typ string, fields map[string]any, transfer ...js.Value) {
	o := object(fields)
	o.Set("type", typ)
	o.Set("job", job)
	postMessage(h.port, o, transfer...)
}

// stop cancels job if it is the one running.
func (h *helper) stop(job int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running == job && h.cancel != nil {
		h.cancel()
	}
}

// setup builds the model and the shard's data set.
func (h *helper) setup(m js.Value) error {
	shape := nn.Shape{H: m.Get("h").Int(), W: m.Get("w").Int(), C: m.Get("c").Int()}
	classes := m.Get("classes").Int()
	if shape.Size() < 1 || shape.Size() > data.MaxDim {
		return fmt.Errorf("wasmclient: shard shape %v is out of range", shape)
	}
	labels, err := bytesFromJS(m.Get("labels"), data.MaxSamples)
	if err != nil {
		return err
	}
	images, err := bytesFromJS(m.Get("images"), len(labels)*shape.Size())
	if err != nil {
		return err
	}
	set := &data.Set{Name: m.Get("dataset").String(), H: shape.H, W: shape.W, C: shape.C, Classes: classes, Images: images, Labels: labels}
	if err := set.Validate(); err != nil {
		return err
	}
	model, err := nn.New(m.Get("model").String(), shape, classes, 0)
	if err != nil {
		return err
	}
	h.set, h.trainer = set, participant.NewLocalTrainer(model, set)
	h.global, h.local = make([]float32, model.NumParams()), make([]float32, model.NumParams())
	return nil
}

// train runs one training job and answers with the weights or an error.
func (h *helper) train(job int, m js.Value) {
	fail := func(err error) { h.reply(job, "result", map[string]any{"error": err.Error()}) }
	if h.trainer == nil {
		fail(errors.New("train before setup"))
		return
	}
	if err := float32sFromJS(h.global, m.Get("weights")); err != nil {
		fail(err)
		return
	}
	seed, err := strconv.ParseUint(m.Get("seed").String(), 10, 64)
	if err != nil {
		fail(fmt.Errorf("wasmclient: bad seed: %w", err))
		return
	}
	cfg := participant.RoundConfig{Epochs: m.Get("epochs").Int(), Batch: m.Get("batch").Int(), LR: m.Get("lr").Float(),
		Momentum: m.Get("momentum").Float(), WeightDecay: m.Get("weight_decay").Float(), Mu: m.Get("mu").Float(),
		Seed: seed}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.mu.Lock()
	h.running, h.cancel = job, cancel
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.running, h.cancel = 0, nil
		h.mu.Unlock()
	}()
	var y yielder
	var last time.Time
	st, err := h.trainer.Train(ctx, h.global, h.local, cfg, func(p nn.Progress) {
		if now := time.Now(); now.Sub(last) >= progressEvery {
			last = now
			h.reply(job, "progress", map[string]any{"epoch": p.Epoch, "batch": p.Batch, "batches": p.Batches,
				"samples": p.Samples, "loss": p.Loss})
		}
		y.maybe()
	})
	if err != nil {
		fail(err)
		return
	}
	w := float32sToJS(h.local)
	h.reply(job, "result", map[string]any{"weights": w, "samples": st.Samples, "loss": st.Loss,
		"accuracy": st.Accuracy, "ms": float64(st.Duration) / float64(time.Millisecond)}, w)
}
