package data

import (
	"fmt"
	"slices"
)

// maxDirichletDraws bounds how often the Dirichlet scheme redraws when a
// client ends up with too few samples.
const maxDirichletDraws = 1000

// Partition splits the samples with the given labels among clients by the
// scheme named in scheme (see ParseScheme), seeded by seed. It returns, for
// each client, the indices of the samples it owns, in increasing order;
// no index appears twice. See Scheme.Partition.
func Partition(labels []uint8, classes, clients int, scheme string, seed uint64) ([][]int, error) {
	s, err := ParseScheme(scheme)
	if err != nil {
		return nil, err
	}
	return s.Partition(labels, classes, clients, seed)
}

// Partition splits the samples with the given labels among clients,
// returning for each client the indices of its samples in increasing order.
// Every sample goes to at most one client. The result depends only on the
// labels, classes, clients, scheme and seed, and is the same on every
// platform. labels is not modified.
//
//   - KindIID shuffles all samples and deals them into parts whose sizes
//     differ by at most one.
//   - KindDirichlet (label skew as in Hsu et al., 2019) shuffles each
//     class's samples and splits them among the clients in proportions drawn
//     from Dir(Alpha). If a client then has fewer than
//     min(10, len(labels)/clients/4) samples, the whole draw is repeated
//     with the generator's next numbers, up to 1000 times.
//   - KindShards (McMahan et al., 2017) sorts the samples by label
//     (stably), cuts the first clients*Shards*size of them into
//     clients*Shards shards of size = len(labels)/(clients*Shards) and
//     gives each client Shards random shards; the rest are left out.
//
// It returns an error if clients < 1, clients > len(labels), classes is
// not in [1, MaxClasses], a label is not below classes, a shard would be
// empty, or no Dirichlet draw satisfied the minimum.
func (s Scheme) Partition(labels []uint8, classes, clients int, seed uint64) ([][]int, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := checkPartitionArgs(labels, classes, clients); err != nil {
		return nil, fmt.Errorf("data: partition %s: %w", s, err)
	}
	g := newRNG(seed)
	var parts [][]int
	var err error
	switch s.Kind {
	case KindIID:
		parts = partitionIID(len(labels), clients, g)
	case KindDirichlet:
		parts, err = partitionDirichlet(labels, classes, clients, s.Alpha, g)
	case KindShards:
		parts, err = partitionShards(labels, classes, clients, s.Shards, g)
	}
	if err != nil {
		return nil, fmt.Errorf("data: partition %s: %w", s, err)
	}
	for _, p := range parts {
		slices.Sort(p)
	}
	return parts, nil
}

func checkPartitionArgs(labels []uint8, classes, clients int) error {
	if clients < 1 {
		return fmt.Errorf("%d clients, want at least 1", clients)
	}
	if clients > len(labels) {
		return fmt.Errorf("%d clients but only %d samples", clients, len(labels))
	}
	if classes < 1 || classes > MaxClasses {
		return fmt.Errorf("%d classes, want 1 to %d", classes, MaxClasses)
	}
	if i := firstBadLabel(labels, classes); i >= 0 {
		return fmt.Errorf("label %d at index %d >= classes %d", labels[i], i, classes)
	}
	return nil
}

// indices returns [0, 1, ..., n-1].
func indices(n int) []int {
	a := make([]int, n)
	for i := range a {
		a[i] = i
	}
	return a
}

// partitionIID deals a random permutation of [0, n) into clients parts
// whose sizes differ by at most one.
func partitionIID(n, clients int, g *rng) [][]int {
	perm := indices(n)
	g.shuffle(perm)
	parts := make([][]int, clients)
	start := 0
	for c := range parts {
		size := n / clients
		if c < n%clients {
			size++
		}
		parts[c] = perm[start : start+size : start+size]
		start += size
	}
	return parts
}

// byClass returns the sample indices of each class, in increasing order.
func byClass(labels []uint8, classes int) [][]int {
	counts := make([]int, classes)
	for _, l := range labels {
		counts[l]++
	}
	out := make([][]int, classes)
	for k := range out {
		out[k] = make([]int, 0, counts[k])
	}
	for i, l := range labels {
		out[l] = append(out[l], i)
	}
	return out
}

// partitionDirichlet splits each class among the clients in proportions
// drawn from Dir(alpha), redrawing until every client has the minimum.
func partitionDirichlet(labels []uint8, classes, clients int, alpha float64, g *rng) ([][]int, error) {
	minSize := min(10, len(labels)/clients/4)
	classIdx := byClass(labels, classes)
	perm := make([]int, 0, len(labels))
	p := make([]float64, clients)
	smallest := 0
	for range maxDirichletDraws {
		parts := make([][]int, clients)
		for _, idx := range classIdx {
			perm = append(perm[:0], idx...)
			g.shuffle(perm)
			g.dirichlet(p, alpha)
			splitByProportions(parts, perm, p)
		}
		smallest = len(parts[0])
		for _, part := range parts {
			smallest = min(smallest, len(part))
		}
		if smallest >= minSize {
			return parts, nil
		}
	}
	return nil, fmt.Errorf("no draw in %d gave every client at least %d samples (smallest had %d); use a larger alpha or fewer clients",
		maxDirichletDraws, minSize, smallest)
}

// splitByProportions appends consecutive runs of idx to parts, run c
// holding about p[c]*len(idx) elements: the cut after client c is at
// floor(len(idx) * (p[0]+...+p[c])), and the last run ends at len(idx).
func splitByProportions(parts [][]int, idx []int, p []float64) {
	n := len(idx)
	cum, start := 0.0, 0
	for c := range parts {
		cum += p[c]
		end := min(int(cum*float64(n)), n)
		if c == len(parts)-1 {
			end = n
		}
		end = max(end, start)
		parts[c] = append(parts[c], idx[start:end]...)
		start = end
	}
}

// partitionShards gives each client k random shards of the label-sorted
// samples.
func partitionShards(labels []uint8, classes, clients, k int, g *rng) ([][]int, error) {
	size := len(labels) / clients / k // = len(labels) / (clients*k), without overflow
	if size == 0 {
		return nil, fmt.Errorf("%d clients * %d shards of %d samples would be empty", clients, k, len(labels))
	}
	shards := clients * k
	sorted := slices.Concat(byClass(labels, classes)...)
	order := indices(shards)
	g.shuffle(order)
	parts := make([][]int, clients)
	for c := range parts {
		parts[c] = make([]int, 0, k*size)
		for _, sh := range order[c*k : (c+1)*k] {
			parts[c] = append(parts[c], sorted[sh*size:(sh+1)*size]...)
		}
	}
	return parts, nil
}
