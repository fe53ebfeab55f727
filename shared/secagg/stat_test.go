package secagg

import (
	"math"
	"slices"
	"testing"

	"github.com/qflare/qflare/shared/wire"
)

// maskedOf returns member 0's masked input in a fresh 3-member round whose
// members hold input x (fresh secrets each call: the seeds are unknown to
// whoever looks at the result).
func maskedOf(t *testing.T, x []uint32, seed uint64) []uint32 {
	t.Helper()
	r := Round{Run: "run-stat", Round: 1, Length: len(x), Threshold: 0.6, Clip: 1, MaxWeight: 600}
	ids, _ := NewIdentities(3)
	srv := NewServer(r)
	cs := make([]*Client, 3)
	names := []string{"a", "b", "c"}
	for i := range cs {
		c, keys, err := NewClient(ClientOptions{Round: r, ClientID: names[i], Identity: ids[i], Rand: seeded(seed*7 + uint64(i))})
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = c
		if err := srv.AddKeys(names[i], keys); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.FixRoster(names); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		sh, err := c.Share(srv.RosterFor(i))
		if err != nil {
			t.Fatal(err)
		}
		srv.AddShares(i, sh)
	}
	if err := srv.CloseShares(); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		if err := c.Receive(srv.InboxFor(i)); err != nil {
			t.Fatal(err)
		}
	}
	y := slices.Clone(x)
	if err := cs[0].Mask(y); err != nil {
		t.Fatal(err)
	}
	return y
}

// ksTwoSample returns the two-sample Kolmogorov–Smirnov statistic D of a
// and b (sorted in place) and its critical value at significance 0.001.
func ksTwoSample(a, b []uint32) (d, crit float64) {
	slices.Sort(a)
	slices.Sort(b)
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		v := min(a[i], b[j])
		for i < len(a) && a[i] == v {
			i++
		}
		for j < len(b) && b[j] == v {
			j++
		}
		d = math.Max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	n, m := float64(len(a)), float64(len(b))
	return d, 1.949 * math.Sqrt((n+m)/(n*m))
}

// chiSquareBytes returns the chi-square statistic of byte k of the values
// against the uniform distribution over 256 bins, and its critical value at
// significance 0.001 (255 degrees of freedom).
func chiSquareBytes(v []uint32, k int) (chi, crit float64) {
	var counts [256]float64
	for _, x := range v {
		counts[byte(x>>(8*k))]++
	}
	e := float64(len(v)) / 256
	for _, c := range counts {
		chi += (c - e) * (c - e) / e
	}
	return chi, 330.5
}

// TestMaskedIndistinguishable: the masked inputs of two very different
// updates (all zeros, and the largest values the quantization produces)
// are indistinguishable: a two-sample Kolmogorov–Smirnov test does not
// tell them apart, and every byte of each is uniform by a chi-square test,
// at significance 0.001. The same tests tell the unmasked inputs apart,
// so they have the power to fail.
func TestMaskedIndistinguishable(t *testing.T) {
	const n = 40000
	zero := make([]uint32, n)
	big := make([]uint32, n)
	hi, lo := int32(1<<29), int32(-1<<29)
	for i := range big {
		big[i] = uint32(hi)
		if i%2 == 1 {
			big[i] = uint32(lo)
		}
	}
	ya, yb := maskedOf(t, zero, 1), maskedOf(t, big, 2)
	if d, crit := ksTwoSample(slices.Clone(ya), slices.Clone(yb)); d > crit {
		t.Errorf("KS two-sample D = %.5f between the masked zeros and the masked large values; critical %.5f", d, crit)
	}
	for name, y := range map[string][]uint32{"zeros": ya, "large values": yb} {
		for k := range 4 {
			if chi, crit := chiSquareBytes(y, k); chi > crit {
				t.Errorf("masked %s: byte %d chi-square %.1f > %.1f: not uniform", name, k, chi, crit)
			}
		}
	}
	// Power: the unmasked inputs fail both tests.
	if d, crit := ksTwoSample(slices.Clone(zero), slices.Clone(big)); d <= crit {
		t.Errorf("KS does not tell the unmasked inputs apart (D = %.5f, critical %.5f): the test has no power", d, crit)
	}
	if chi, crit := chiSquareBytes(big, 3); chi <= crit {
		t.Errorf("chi-square finds the unmasked large values uniform (%.1f ≤ %.1f): the test has no power", chi, crit)
	}
	// And a mask folded to 16 bits would be caught.
	weak := slices.Clone(big)
	for i := range weak {
		weak[i] += ya[i] & 0xffff
	}
	if chi, crit := chiSquareBytes(weak, 3); chi <= crit {
		t.Errorf("chi-square finds a 16-bit mask uniform in the top byte (%.1f ≤ %.1f)", chi, crit)
	}
}

// wireSizes: the sizes wire checks are the primitives'.
func TestWireSizes(t *testing.T) {
	id, _ := GenerateIdentity(seeded(1))
	r := Round{Run: "r", Round: 1, Length: 10, Threshold: 0.6, Clip: 1, MaxWeight: 600}
	_, keys, err := NewClient(ClientOptions{Round: r, ClientID: "c", Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	k := keys.Keys
	if len(k.EncKey) != wire.MLKEMKeySize || len(k.MaskKey) != wire.MLKEMKeySize || len(k.Identity) != wire.IdentityKeySize || len(k.Sig) != wire.SignatureSize {
		t.Errorf("key sizes %d %d %d %d; wire expects %d %d %d %d", len(k.EncKey), len(k.MaskKey), len(k.Identity), len(k.Sig),
			wire.MLKEMKeySize, wire.MLKEMKeySize, wire.IdentityKeySize, wire.SignatureSize)
	}
	ct, err := seal(k.EncKey, nil, make([]byte, 64))
	if err != nil || len(ct) != wire.SealedSharesSize {
		t.Errorf("sealed shares of %d bytes (%v); wire expects %d", len(ct), err, wire.SealedSharesSize)
	}
	ct, err = seal(k.EncKey, nil, make([]byte, 32))
	if err != nil || len(ct) != wire.SealedSeedSize {
		t.Errorf("sealed seed of %d bytes (%v); wire expects %d", len(ct), err, wire.SealedSeedSize)
	}
}
