package secagg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Graph is who masks with whom and who holds whose shares: the complete
// graph of Bonawitz et al. (2017), or a random k-regular graph as in
// SecAgg+ (Bell et al. 2020), so that a member's work and bytes grow with
// k (chosen about log n) rather than with n.
type Graph struct {
	// K is the degree of a k-regular graph; 0 is the complete graph.
	K int
}

// ParseGraph reads "complete" or "k:K" (K even, at least 2).
func ParseGraph(s string) (Graph, error) {
	if s == "complete" {
		return Graph{}, nil
	}
	v, ok := strings.CutPrefix(s, "k:")
	if !ok {
		return Graph{}, fmt.Errorf("secagg: graph %q is not \"complete\" or \"k:K\"", s)
	}
	k, err := strconv.Atoi(v)
	if err != nil || k < 2 || k%2 != 0 || k > maxDegree {
		return Graph{}, fmt.Errorf("secagg: graph %q: K must be an even number in 2..%d", s, maxDegree)
	}
	return Graph{K: k}, nil
}

// maxDegree bounds K.
const maxDegree = 1000

// String returns "complete" or "k:K".
func (g Graph) String() string {
	if g.K == 0 {
		return "complete"
	}
	return "k:" + strconv.Itoa(g.K)
}

// topology is a round's graph over its n members.
type topology struct {
	n   int
	adj [][]int // sorted neighbours; nil for the complete graph
}

// newTopology builds g over n members. A k-regular graph is the Harary
// graph on a ring of the members in an order shuffled with seed: each is
// joined to the K/2 nearest on either side. With K ≥ n−1 it is complete.
func newTopology(g Graph, n int, seed [32]byte) *topology {
	t := &topology{n: n}
	if g.K == 0 || g.K >= n-1 {
		return t
	}
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	rng := rand.New(rand.NewChaCha8(seed))
	rng.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	t.adj = make([][]int, n)
	for p, v := range perm {
		nb := make([]int, 0, g.K)
		for d := 1; d <= g.K/2; d++ {
			nb = append(nb, perm[(p+d)%n], perm[(p-d+n)%n])
		}
		slices.Sort(nb)
		t.adj[v] = slices.Compact(nb)
	}
	return t
}

// neighbours returns i's neighbours in increasing order (a fresh slice).
func (t *topology) neighbours(i int) []int {
	if t.adj != nil {
		return slices.Clone(t.adj[i])
	}
	nb := make([]int, 0, t.n-1)
	for j := range t.n {
		if j != i {
			nb = append(nb, j)
		}
	}
	return nb
}

// adjacent reports whether i and j are neighbours.
func (t *topology) adjacent(i, j int) bool {
	if i == j {
		return false
	}
	if t.adj == nil {
		return true
	}
	_, ok := slices.BinarySearch(t.adj[i], j)
	return ok
}

// degree is the number of neighbours of i.
func (t *topology) degree(i int) int {
	if t.adj == nil {
		return t.n - 1
	}
	return len(t.adj[i])
}

// holders returns who holds i's shares: its neighbours and itself, in
// increasing order.
func (t *topology) holders(i int) []int {
	h := append(t.neighbours(i), i)
	slices.Sort(h)
	return h
}

// owner returns which of the pair i, j picks their mask seed: the smaller
// index when i+j is even, else the larger, so that ownership is balanced
// in the complete graph.
func owner(i, j int) int {
	lo, hi := min(i, j), max(i, j)
	if (i+j)%2 == 0 {
		return lo
	}
	return hi
}

// Threshold returns how many of h holders must reveal a share to recover a
// secret: ⌈fraction·h⌉, at least 2 (one share would be the secret).
func Threshold(fraction float64, h int) int {
	return max(2, int(math.Ceil(fraction*float64(h)-1e-9)))
}
