package secagg

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/math/polynomial"
)

// Shamir secret sharing over the scalar field of ristretto255 (a prime
// field of order 2^252 + 27742317777372353535851937790883648493), with
// circl's field arithmetic and polynomials. A member's secrets (its
// self-mask seed and its key root) are uniform scalars; their 32-byte
// canonical encodings are the seeds the masks and keys derive from.
//
// The holder with round index h gets the share at x = h + 1 (never 0).

// field is the prime field of the shares.
var field = group.Ristretto255

// scalarDST separates the scalars this package samples from other uses of
// hash-to-scalar.
var scalarDST = []byte("qflare/secagg/v1/scalar")

// randomScalar reads 64 bytes from rnd and maps them to a uniform scalar.
// (circl's RandomScalar for ristretto255 ignores its reader; this one is
// repeatable with a seeded reader, which the golden tests rely on.)
func randomScalar(rnd io.Reader) (group.Scalar, error) {
	var b [64]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return nil, fmt.Errorf("secagg: reading randomness: %w", err)
	}
	return field.HashToScalar(b[:], scalarDST), nil
}

// scalarBytes returns s's canonical 32-byte encoding.
func scalarBytes(s group.Scalar) []byte {
	b, err := s.MarshalBinary()
	if err != nil {
		panic("secagg: marshalling a scalar: " + err.Error())
	}
	return b
}

// parseScalar decodes a canonical scalar (from outside: a share).
func parseScalar(b []byte) (group.Scalar, error) {
	s := field.NewScalar()
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("secagg: a share is not a canonical scalar")
	}
	return s, nil
}

// xOf is the share point of holder h.
func xOf(h int) group.Scalar { return field.NewScalar().SetUint64(uint64(h) + 1) }

// split shares secret among holders so that any t of them recover it: the
// secret is the constant term of a random polynomial of degree t−1, and
// holder h gets its value at xOf(h). It returns the shares' encodings in
// the order of holders.
func split(rnd io.Reader, secret group.Scalar, t int, holders []int) ([][]byte, error) {
	if t < 1 || t > len(holders) {
		panic(fmt.Sprintf("secagg: threshold %d for %d holders", t, len(holders)))
	}
	coeffs := make([]group.Scalar, t)
	coeffs[0] = secret.Copy()
	for i := 1; i < t; i++ {
		c, err := randomScalar(rnd)
		if err != nil {
			return nil, err
		}
		coeffs[i] = c
	}
	p := polynomial.New(coeffs)
	shares := make([][]byte, len(holders))
	for i, h := range holders {
		shares[i] = scalarBytes(p.Evaluate(xOf(h)))
	}
	return shares, nil
}

// lagrange caches the Lagrange coefficients at 0 of sets of share points:
// in a round where every member holds shares of every other (the complete
// graph), all secrets are recovered from the same points, and the
// coefficients are computed once. Not safe for concurrent use.
type lagrange struct {
	cache map[string][]group.Scalar
}

// coefficients returns λ_j = Π_{m≠j} x_m / (x_m − x_j) for the points of
// holders (distinct), so that the secret is Σ λ_j·y_j.
func (l *lagrange) coefficients(holders []int) []group.Scalar {
	var key strings.Builder
	for _, h := range holders {
		key.WriteString(strconv.Itoa(h))
		key.WriteByte(',')
	}
	if c, ok := l.cache[key.String()]; ok {
		return c
	}
	xs := make([]group.Scalar, len(holders))
	for i, h := range holders {
		xs[i] = xOf(h)
	}
	coef := make([]group.Scalar, len(xs))
	num, den, tmp := field.NewScalar(), field.NewScalar(), field.NewScalar()
	for j := range xs {
		num.SetUint64(1)
		den.SetUint64(1)
		for m := range xs {
			if m != j {
				num.Mul(num, xs[m])
				den.Mul(den, tmp.Sub(xs[m], xs[j]))
			}
		}
		coef[j] = field.NewScalar().Mul(num, den.Inv(den))
	}
	if l.cache == nil {
		l.cache = map[string][]group.Scalar{}
	}
	l.cache[key.String()] = coef
	return coef
}

// recoverSecret recovers a secret from shares (by holder) given a
// threshold t: it interpolates from the first t holders and, when more
// shares are there, checks that the last t give the same secret, so that a
// share that is not on the polynomial is noticed rather than silently
// producing a wrong mask.
func (l *lagrange) recoverSecret(shares map[int][]byte, t int) (group.Scalar, error) {
	if len(shares) < t {
		return nil, fmt.Errorf("%w: %d shares of a secret that needs %d", ErrBelowThreshold, len(shares), t)
	}
	holders := make([]int, 0, len(shares))
	for h := range shares {
		holders = append(holders, h)
	}
	slices.Sort(holders)
	first, err := l.interpolate(shares, holders[:t])
	if err != nil {
		return nil, err
	}
	if len(holders) > t {
		last, err := l.interpolate(shares, holders[len(holders)-t:])
		if err != nil {
			return nil, err
		}
		if !first.IsEqual(last) {
			return nil, fmt.Errorf("%w: the revealed shares of a secret do not lie on one polynomial", ErrBadShare)
		}
	}
	return first, nil
}

func (l *lagrange) interpolate(shares map[int][]byte, holders []int) (group.Scalar, error) {
	coef := l.coefficients(holders)
	sum, tmp := field.NewScalar(), field.NewScalar()
	for j, h := range holders {
		y, err := parseScalar(shares[h])
		if err != nil {
			return nil, fmt.Errorf("%w: from holder %d: %v", ErrBadShare, h, err)
		}
		sum.Add(sum, tmp.Mul(coef[j], y))
	}
	return sum, nil
}
