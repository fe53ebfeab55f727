package nn

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/step.json from this platform's results")

// stepGolden is what one seeded training step produces for one model.
type stepGolden struct {
	InitHash string             // FNV-64a of the initial parameters' bits: must match exactly
	Loss     float64            // loss of the step's batch
	Sums     map[string]float64 // per tensor: Σ w after the step
	Heads    map[string][]float32
}

const goldenTol = 2e-5 // relative, for values after a step (GEMM summation order differs)

// TestStepMatchesAcrossPlatforms runs one seeded SGD step and compares it
// with testdata/step.json, which was written natively. The same test runs
// under GOOS=js GOARCH=wasm, so native and wasm agree to goldenTol, and the
// seeded initialisation agrees bit for bit.
func TestStepMatchesAcrossPlatforms(t *testing.T) {
	got := map[string]stepGolden{}
	for _, name := range []string{"mnist-2nn", "mnist-cnn", "mnist-net"} {
		got[name] = runGoldenStep(t, name)
	}
	const path = "testdata/step.json"
	if *update {
		b, _ := json.MarshalIndent(got, "", " ")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run StepMatches -update natively to create it)", err)
	}
	var want map[string]stepGolden
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	for name, g := range got {
		w := want[name]
		if g.InitHash != w.InitHash {
			t.Errorf("%s: initial parameters hash %s; want %s", name, g.InitHash, w.InitHash)
		}
		if !close(g.Loss, w.Loss) {
			t.Errorf("%s: step loss %.9g; want %.9g", name, g.Loss, w.Loss)
		}
		for tn, s := range w.Sums {
			if !close(g.Sums[tn], s) {
				t.Errorf("%s: Σ %s = %.9g; want %.9g", name, tn, g.Sums[tn], s)
			}
			for i, v := range w.Heads[tn] {
				if !close(float64(g.Heads[tn][i]), float64(v)) {
					t.Errorf("%s: %s[%d] = %.9g; want %.9g", name, tn, i, g.Heads[tn][i], v)
				}
			}
		}
	}
}

func close(a, b float64) bool {
	return math.Abs(a-b) <= goldenTol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func runGoldenStep(t *testing.T, name string) stepGolden {
	m, err := New(name, mnistShape, 10, 2026)
	if err != nil {
		t.Fatal(err)
	}
	h := fnv.New64a()
	for _, v := range m.Params {
		b := math.Float32bits(v)
		h.Write([]byte{byte(b), byte(b >> 8), byte(b >> 16), byte(b >> 24)})
	}
	g := stepGolden{InitHash: hex.EncodeToString(h.Sum(nil)), Sums: map[string]float64{}, Heads: map[string][]float32{}}
	const n = 4
	tr, err := NewTrainer(m, TrainConfig{Batch: n, LR: 0.05, Momentum: 0.9, WeightDecay: 1e-4, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, n*m.Input.Size())
	for i := range x {
		x[i] = rng.Float32()
	}
	g.Loss, _ = tr.Step(x, []uint8{3, 1, 4, 1})
	for _, tn := range m.Tensors {
		v := tn.View(m.Params)
		var s float64
		for _, f := range v {
			s += float64(f)
		}
		g.Sums[tn.Name] = s
		g.Heads[tn.Name] = append([]float32(nil), v[:min(4, len(v))]...)
	}
	return g
}
