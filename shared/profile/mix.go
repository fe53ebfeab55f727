package profile

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
)

// mixTolerance is how far a mix's shares may sum from 1.
const mixTolerance = 1e-6

// maxMixParts caps the entries of a mix spec.
const maxMixParts = 64

// Part is one profile's share of a Mix.
type Part struct {
	Profile Profile
	Share   float64 // in (0, 1]
}

// Mix is a population of devices given as shares of profiles, in the order
// they were given. The zero Mix is empty (no profiles).
type Mix struct {
	parts []Part
}

// ParseMix reads a mix spec: comma-separated NAME:SHARE entries of built-in
// profiles ("phone-low:0.3,laptop:0.5,desktop:0.2"), or one bare NAME for
// all devices ("laptop"). Shares must be positive and sum to 1 (within
// 1e-6); a profile may appear once.
func ParseMix(s string) (Mix, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Mix{}, fmt.Errorf("profile: empty mix; want NAME or NAME:SHARE,... (profiles: %s)", strings.Join(Names(), ", "))
	}
	items := strings.Split(s, ",")
	if len(items) > maxMixParts {
		return Mix{}, fmt.Errorf("profile: mix has %d entries; at most %d", len(items), maxMixParts)
	}
	var m Mix
	sum := 0.0
	for _, item := range items {
		part, err := parsePart(strings.TrimSpace(item), len(items) == 1)
		if err != nil {
			return Mix{}, err
		}
		for _, q := range m.parts {
			if q.Profile.Name == part.Profile.Name {
				return Mix{}, fmt.Errorf("profile: mix names %s twice", q.Profile.Name)
			}
		}
		m.parts = append(m.parts, part)
		sum += part.Share
	}
	if math.Abs(sum-1) > mixTolerance {
		return Mix{}, fmt.Errorf("profile: mix shares of %q sum to %g; want 1", s, sum)
	}
	return m, nil
}

// parsePart reads NAME:SHARE, or a bare NAME when alone is set.
func parsePart(item string, alone bool) (Part, error) {
	name, share, hasShare := strings.Cut(item, ":")
	name = strings.TrimSpace(name)
	p, err := Lookup(name)
	if err != nil {
		return Part{}, err
	}
	if !hasShare {
		if !alone {
			return Part{}, fmt.Errorf("profile: %s has no share; give every profile of a mix one, like %s:0.5", name, name)
		}
		return Part{Profile: p, Share: 1}, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(share), 64)
	if err != nil || !(v > 0 && v <= 1) {
		return Part{}, fmt.Errorf("profile: share %q of %s is not a number in (0, 1]", share, name)
	}
	return Part{Profile: p, Share: v}, nil
}

// Single returns the mix of one profile for all devices.
func Single(p Profile) Mix { return Mix{parts: []Part{{Profile: p, Share: 1}}} }

// Parts returns the mix's profiles and shares in order (a copy).
func (m Mix) Parts() []Part { return append([]Part(nil), m.parts...) }

// IsZero reports whether the mix is empty.
func (m Mix) IsZero() bool { return len(m.parts) == 0 }

// String formats the mix as ParseMix reads it: a bare name for a single
// profile, else NAME:SHARE entries in order.
func (m Mix) String() string {
	if len(m.parts) == 1 && m.parts[0].Share == 1 {
		return m.parts[0].Profile.Name
	}
	var b strings.Builder
	for i, p := range m.parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.Profile.Name + ":" + strconv.FormatFloat(p.Share, 'g', -1, 64))
	}
	return b.String()
}

// Counts returns how many of n devices get each part's profile, in Parts
// order: the largest-remainder apportionment of n by the shares, so the
// counts sum to n and each is its exact quota rounded down or up (ties go
// to the earlier part). It panics if n is negative.
func (m Mix) Counts(n int) []int {
	if n < 0 {
		panic("profile: negative device count")
	}
	total := 0.0
	for _, p := range m.parts {
		total += p.Share
	}
	counts := make([]int, len(m.parts))
	rem := make([]float64, len(m.parts))
	left := n
	for i, p := range m.parts {
		q := p.Share / total * float64(n)
		counts[i] = int(math.Floor(q))
		rem[i] = q - float64(counts[i])
		left -= counts[i]
	}
	order := make([]int, len(m.parts))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rem[order[a]] > rem[order[b]] })
	for i := 0; left > 0 && len(order) > 0; i = (i + 1) % len(order) {
		counts[order[i]]++
		left--
	}
	return counts
}

// Assign gives n devices profiles in the mix's exact proportions (Counts),
// in an order shuffled by seed: the same mix, n and seed give the same
// result on every platform. It panics if n is negative, or if n > 0 and
// the mix is empty.
func (m Mix) Assign(n int, seed uint64) []Profile {
	counts := m.Counts(n) // panics if n < 0
	if n > 0 && m.IsZero() {
		panic("profile: Assign on an empty Mix")
	}
	out := make([]Profile, 0, n)
	for i, c := range counts {
		for range c {
			out = append(out, m.parts[i].Profile)
		}
	}
	r := rand.New(rand.NewPCG(seed, 0x9f0f11e5))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
