package secagg

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json")

// goldenDigests computes digests of what must be identical natively and in
// wasm: mask expansion, Shamir shares and recovery, quantization, graphs.
func goldenDigests(t *testing.T) map[string]string {
	d := map[string]string{}
	hash := func(name string, b []byte) { d[name] = fmt.Sprintf("%x", sha256.Sum256(b)) }
	u32 := func(v []uint32) []byte {
		b := make([]byte, 0, 4*len(v))
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, x)
		}
		return b
	}
	// Masks of a full-length seed, added and subtracted.
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(3 * i)
	}
	m := make([]uint32, 100003)
	Expand(m, seed)
	hash("expand", u32(m))
	addMask(m, maskKey(maskSelf, seed), true)
	hash("expand-self", u32(m))

	// Shamir: shares of a seeded secret, and what they recover.
	rnd := seeded(42)
	secret, err := randomScalar(rnd)
	if err != nil {
		t.Fatal(err)
	}
	holders := []int{0, 2, 3, 7, 11, 12, 40}
	shares, err := split(rnd, secret, 4, holders)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	all = append(all, scalarBytes(secret)...)
	for _, s := range shares {
		all = append(all, s...)
	}
	hash("shamir-shares", all)
	var lg lagrange
	got := map[int][]byte{}
	for i, h := range holders[2:6] {
		got[h] = shares[i+2]
	}
	rec, err := lg.recoverSecret(got, 4)
	if err != nil {
		t.Fatal(err)
	}
	hash("shamir-recovered", scalarBytes(rec))
	if !rec.IsEqual(secret) {
		t.Errorf("recovered secret %v; want %v", rec, secret)
	}

	// Quantization with stochastic rounding.
	delta := make([]float32, 5001)
	r := rand.New(rand.NewPCG(7, 8))
	for i := range delta {
		delta[i] = float32(r.NormFloat64() * 0.05)
	}
	delta[0], delta[1], delta[2] = 3, -3, float32(math.NaN())
	q := make([]uint32, len(delta)+1)
	e, err := Exponent(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	Quantize(q, delta, 371, 600, 1, e, rand.New(rand.NewPCG(1, 2)))
	hash("quantize", u32(q))

	// A k-regular graph.
	topo := newTopology(Graph{K: 8}, 101, [32]byte{9})
	var adj []byte
	for i := range 101 {
		for _, j := range topo.neighbours(i) {
			adj = binary.LittleEndian.AppendUint16(adj, uint16(j))
		}
	}
	hash("graph-k8", adj)
	return d
}

// TestGolden: the PRG, Shamir shares, quantization and graphs give the
// digests in testdata/golden.json, natively and in wasm (make test runs
// both), so a browser and the server derive the same masks and secrets.
func TestGolden(t *testing.T) {
	got := goldenDigests(t)
	const path = "testdata/golden.json"
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]string
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("digest %s = %s; want %s", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d digests; testdata has %d", len(got), len(want))
	}
}
