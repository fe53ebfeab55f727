package secagg

import (
	"fmt"
	"testing"
)

// The costs a member pays, per primitive: run natively and in wasm
// (`GOOS=js GOARCH=wasm go test -bench .`).

func BenchmarkMask199211(b *testing.B) {
	dst := make([]uint32, 199211)
	key := maskKey(maskPair, make([]byte, 32))
	b.SetBytes(4 * int64(len(dst)))
	for b.Loop() {
		addMask(dst, key, false)
	}
}

func BenchmarkAdvertise(b *testing.B) {
	id, _ := GenerateIdentity(seeded(1))
	r := Round{Run: "r", Round: 1, Length: 10, Threshold: 0.6, Clip: 1, MaxWeight: 600}
	for b.Loop() {
		if _, _, err := NewClient(ClientOptions{Round: r, ClientID: "c", Identity: id}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	id, _ := GenerateIdentity(seeded(1))
	r := Round{Run: "r", Round: 1, Length: 10, Threshold: 0.6, Clip: 1, MaxWeight: 600}
	_, keys, _ := NewClient(ClientOptions{Round: r, ClientID: "c", Identity: id})
	for b.Loop() {
		if err := verifyKeys("r", 1, "c", &keys.Keys); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpen(b *testing.B) {
	priv, _ := kem.DeriveKeyPair(make([]byte, 64))
	pub := priv.PublicKey().Bytes()
	pt := make([]byte, 64)
	for b.Loop() {
		ct, err := seal(pub, []byte("info"), pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := open(priv, []byte("info"), ct); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRound is a whole round among n members (all of them, plus the
// server) on a 1,000-value input.
func BenchmarkRound(b *testing.B) {
	for _, c := range []struct {
		n int
		g Graph
	}{{10, Graph{}}, {30, Graph{}}, {30, Graph{K: 8}}} {
		b.Run(fmt.Sprintf("n=%d/%s", c.n, c.g), func(b *testing.B) {
			for b.Loop() {
				s := newSim(b, c.n, c.g, 0.6, 1000)
				if _, _, err := s.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
