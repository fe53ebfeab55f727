//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"syscall/js"
	"testing"

	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/participant"
	"github.com/qflare/qflare/shared/wire"
)

// Run with: PATH=$PATH:$(go env GOROOT)/lib/wasm GOOS=js GOARCH=wasm go test ./wasmclient
// (node provides MessageChannel, so a helper runs in-process).

func testSet(n int, seed uint64) *data.Set {
	r := rand.New(rand.NewPCG(seed, 1))
	s := &data.Set{Name: "mnist", H: 4, W: 4, C: 1, Classes: 3, Images: make([]uint8, n*16), Labels: make([]uint8, n)}
	for i := range s.Labels {
		s.Labels[i] = uint8(r.IntN(3))
		for j := 0; j < 16; j++ {
			s.Images[i*16+j] = uint8(r.IntN(64) + 64*int(s.Labels[i]))
		}
	}
	return s
}

func testModel(t *testing.T) *nn.Model {
	m, err := nn.New("mlp:8", nn.Shape{H: 4, W: 4, C: 1}, 3, 7)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var testCfg = participant.RoundConfig{Round: 1, Epochs: 2, Batch: 8, LR: 0.1, Seed: 42}

// TestPoolTrainerAlone checks that with no helpers the pool trainer trains
// exactly like participant.LocalTrainer.
func TestPoolTrainerAlone(t *testing.T) {
	m, set := testModel(t), testSet(64, 1)
	global := append([]float32(nil), m.Params...)
	want := make([]float32, len(global))
	wst, err := participant.NewLocalTrainer(m, set).Train(context.Background(), global, want, testCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, len(global))
	var last nn.Progress
	st, err := newPoolTrainer(m, set, nil).Train(context.Background(), global, got, testCfg, func(p nn.Progress) { last = p })
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pool weight %d = %g; want %g (LocalTrainer)", i, got[i], want[i])
		}
	}
	if st.Samples != wst.Samples || st.Loss != wst.Loss {
		t.Errorf("pool stats = %d samples, loss %g; want %d, %g", st.Samples, st.Loss, wst.Samples, wst.Loss)
	}
	if last.Epoch != last.Epochs || last.Batch != last.Batches {
		t.Errorf("last progress = epoch %d/%d batch %d/%d; want the end", last.Epoch, last.Epochs, last.Batch, last.Batches)
	}
}

// TestPoolTrainerWithHelper runs a helper over a MessageChannel and checks
// that the result is the sample-weighted average of the two shards trained
// separately, and that global is not modified.
func TestPoolTrainerWithHelper(t *testing.T) {
	m, set := testModel(t), testSet(64, 2)
	ch := js.Global().Get("MessageChannel").New()
	go runHelper(object(map[string]any{"port": ch.Get("port1")}))
	pool := newPoolTrainer(m, set, []js.Value{ch.Get("port2")})
	defer pool.close()
	global := append([]float32(nil), m.Params...)
	before := append([]float32(nil), global...)
	got := make([]float32, len(global))
	st, err := pool.Train(context.Background(), global, got, testCfg, func(nn.Progress) {})
	if err != nil {
		t.Fatal(err)
	}
	// The same work, shard by shard, in this goroutine.
	var shards [2][]int
	for i := range set.Len() {
		shards[i%2] = append(shards[i%2], i)
	}
	var w [2][]float32
	samples := 0
	for j := range shards {
		c := testCfg
		c.Seed = shardSeed(testCfg.Seed, j)
		w[j] = make([]float32, len(global))
		s, err := participant.NewLocalTrainer(m, set).TrainOn(context.Background(), set.Subset(shards[j]), global, w[j], c, nil)
		if err != nil {
			t.Fatal(err)
		}
		samples += s.Samples
	}
	for i := range got {
		want := float32(0.5*float64(w[0][i]) + 0.5*float64(w[1][i]))
		if got[i] != want {
			t.Fatalf("averaged weight %d = %g; want %g", i, got[i], want)
		}
		if global[i] != before[i] {
			t.Fatalf("Train modified global[%d]", i)
		}
	}
	if st.Samples != samples {
		t.Errorf("pool trained %d samples; want %d", st.Samples, samples)
	}
	// A second round reuses the helper's shard.
	if _, err := pool.Train(context.Background(), global, got, testCfg, func(nn.Progress) {}); err != nil {
		t.Fatalf("second round: %v", err)
	}
}

func TestProgressTrackerCombined(t *testing.T) {
	tests := []struct {
		shards               []counters
		epoch, batch, of, sa int
	}{
		{[]counters{{batches: 4}, {batches: 4}}, 1, 0, 8, 0},
		{[]counters{{epoch: 1, batch: 3, batches: 4, samples: 30}, {epoch: 1, batch: 4, batches: 4, samples: 40}}, 1, 7, 8, 70},
		{[]counters{{epoch: 2, batch: 1, batches: 4, samples: 50}, {epoch: 1, batch: 4, batches: 4, samples: 40}}, 2, 1, 8, 90},
		{[]counters{{epoch: 2, batch: 4, batches: 4}, {epoch: 2, batch: 4, batches: 4}}, 2, 8, 8, 0},
	}
	for i, tt := range tests {
		p := (&progressTracker{shards: tt.shards, epochs: 2}).combined()
		if p.Epoch != tt.epoch || p.Batch != tt.batch || p.Batches != tt.of || p.Samples != tt.sa {
			t.Errorf("combined(#%d) = epoch %d batch %d/%d samples %d; want %d %d/%d %d", i, p.Epoch, p.Batch, p.Batches, p.Samples, tt.epoch, tt.batch, tt.of, tt.sa)
		}
	}
}

func TestQDS1Size(t *testing.T) {
	var buf bytes.Buffer
	if err := data.WriteSet(&buf, testSet(10, 3)); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	tests := []struct {
		head []byte
		want int
	}{
		{b, len(b)},
		{b[:qds1Fixed+len("mnist")], len(b)},
		{b[:qds1Fixed], 0},
		{b[:3], 0},
		{append([]byte("QDS2"), b[4:]...), 0},
	}
	for _, tt := range tests {
		if got := qds1Size(tt.head); got != tt.want {
			t.Errorf("qds1Size(%d bytes) = %d; want %d", len(tt.head), got, tt.want)
		}
	}
	huge := append([]byte(nil), b[:qds1Fixed+5]...)
	binary.LittleEndian.PutUint32(huge[6+5+16:], 0xffffffff)
	binary.LittleEndian.PutUint32(huge[6+5:], 0xffffffff)
	if got := qds1Size(huge); got != 0 {
		t.Errorf("qds1Size(absurd header) = %d; want 0", got)
	}
}

func TestSliceURL(t *testing.T) {
	tests := []struct {
		base, rel, want, err string
	}{
		{"http://h:8080", "/api/runs/r1/slice?client=c1", "http://h:8080/api/runs/r1/slice?client=c1&token=t+k", ""},
		{"https://h", "/api/runs/r1/slice", "https://h/api/runs/r1/slice?token=t+k", ""},
		{"http://h:8080", "http://evil/api/runs/r1/slice", "", "not on this server"},
		{"http://h:8080", "", "", "bad slice URL"},
	}
	for _, tt := range tests {
		got, err := sliceURL(tt.base, "t k", &wire.Welcome{Slice: wire.SliceInfo{URL: tt.rel}})
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("sliceURL(%q, %q) = %q, %v; want %q, error containing %q", tt.base, tt.rel, got, err, tt.want, tt.err)
		}
	}
}

func TestOwnSet(t *testing.T) {
	src := testSet(5, 4)
	var img, lab bytes.Buffer
	data.WriteIDX(&img, []int{5, 4, 4}, src.Images)
	data.WriteIDX(&lab, []int{5}, src.Labels)
	shape := ownShape{Dataset: "mnist", H: 4, W: 4, C: 1, Classes: 3, maxSamples: 100}
	idx := func(a, b []byte) js.Value {
		files := jsArray.New()
		files.Call("push", bytesToJS(a))
		files.Call("push", bytesToJS(b))
		return object(map[string]any{"kind": "idx", "files": files})
	}
	pixels := func(images, labels []byte) js.Value {
		return object(map[string]any{"kind": "pixels", "images": bytesToJS(images), "labels": bytesToJS(labels)})
	}
	tests := []struct {
		name string
		own  js.Value
		want ownShape
		err  string
	}{
		{"idx", idx(img.Bytes(), lab.Bytes()), shape, ""},
		{"idx labels first", idx(lab.Bytes(), img.Bytes()), shape, ""},
		{"pixels", pixels(src.Images, src.Labels), shape, ""},
		{"wrong shape", idx(img.Bytes(), lab.Bytes()), ownShape{Dataset: "mnist", H: 28, W: 28, C: 1, Classes: 3, maxSamples: 100}, "needs 28x28x1"},
		{"too many", pixels(src.Images, src.Labels), ownShape{Dataset: "mnist", H: 4, W: 4, C: 1, Classes: 3, maxSamples: 4}, "1 to 4 images"},
		{"bad label", pixels(src.Images, []byte{0, 1, 2, 3, 0}), shape, "label 3"},
		{"short images", pixels(src.Images[:20], src.Labels), shape, "image bytes"},
		{"unknown", object(map[string]any{"kind": "csv"}), shape, "unknown kind"},
	}
	for _, tt := range tests {
		set, err := ownSet(tt.own, tt.want)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ownSet(%s) = %v; want an error containing %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ownSet(%s): %v", tt.name, err)
			continue
		}
		if set.Name != "mnist" || !bytes.Equal(set.Images, src.Images) || !bytes.Equal(set.Labels, src.Labels) {
			t.Errorf("ownSet(%s) = %q with %d samples; want the 5 mnist samples written", tt.name, set.Name, set.Len())
		}
	}
}
