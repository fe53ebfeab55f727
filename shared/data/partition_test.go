package data

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"testing"
)

// mnistCounts are the per-class counts of the MNIST training set.
var mnistCounts = []int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}

// mnistLikeLabels returns 60000 labels with MNIST's class counts, sorted by
// label or spread out by a fixed permutation (i -> i*7919 mod 60000).
func mnistLikeLabels(sorted bool) []uint8 {
	var s []uint8
	for k, n := range mnistCounts {
		for range n {
			s = append(s, uint8(k))
		}
	}
	if sorted {
		return s
	}
	out := make([]uint8, len(s))
	for i := range s {
		out[i*7919%len(s)] = s[i]
	}
	return out
}

// checkPartition checks that parts are increasing, in range and disjoint,
// and returns how many samples they hold in all.
func checkPartition(t *testing.T, name string, parts [][]int, n, clients int) int {
	t.Helper()
	if len(parts) != clients {
		t.Fatalf("%s: %d parts; want %d", name, len(parts), clients)
	}
	seen := make([]bool, n)
	total := 0
	for c, p := range parts {
		if !slices.IsSorted(p) {
			t.Errorf("%s: client %d indices not increasing", name, c)
		}
		for _, i := range p {
			if i < 0 || i >= n {
				t.Fatalf("%s: client %d has index %d out of range [0, %d)", name, c, i, n)
			}
			if seen[i] {
				t.Fatalf("%s: index %d appears twice", name, i)
			}
			seen[i] = true
		}
		total += len(p)
	}
	return total
}

// histogram returns the label shares of the samples idx.
func histogram(labels []uint8, idx []int, classes int) []float64 {
	h := make([]float64, classes)
	for _, i := range idx {
		h[labels[i]]++
	}
	for k := range h {
		h[k] /= float64(len(idx))
	}
	return h
}

func tvDistance(p, q []float64) float64 {
	d := 0.0
	for k := range p {
		d += max(p[k]-q[k], q[k]-p[k])
	}
	return d / 2
}

// skew returns the mean, over clients, of the total-variation distance
// between the client's label shares and the global ones, and the mean share
// of each client's most common label.
func skew(labels []uint8, parts [][]int, classes int) (meanTV, meanTop float64) {
	all := histogram(labels, indices(len(labels)), classes)
	for _, p := range parts {
		h := histogram(labels, p, classes)
		meanTV += tvDistance(h, all)
		meanTop += slices.Max(h)
	}
	return meanTV / float64(len(parts)), meanTop / float64(len(parts))
}

func TestPartitionIID(t *testing.T) {
	labels := mnistLikeLabels(true)
	for _, tt := range []struct{ n, clients int }{{60000, 100}, {60000, 7}, {10, 10}, {11, 3}} {
		parts, err := Partition(labels[:tt.n], 10, tt.clients, "iid", 1)
		if err != nil {
			t.Fatalf("Partition(%d, %d clients, iid) = %v", tt.n, tt.clients, err)
		}
		if total := checkPartition(t, "iid", parts, tt.n, tt.clients); total != tt.n {
			t.Errorf("Partition(%d, %d clients, iid) uses %d samples; want all %d", tt.n, tt.clients, total, tt.n)
		}
		sizes := make([]int, len(parts))
		for c, p := range parts {
			sizes[c] = len(p)
		}
		if lo, hi := slices.Min(sizes), slices.Max(sizes); hi-lo > 1 {
			t.Errorf("Partition(%d, %d clients, iid) sizes from %d to %d; want a spread of at most 1", tt.n, tt.clients, lo, hi)
		}
	}
	// With 600 samples a client's label shares are within a few percent
	// of the global ones: the expected TV distance is about 0.05.
	parts, _ := Partition(labels, 10, 100, "iid", 2)
	all := histogram(labels, indices(len(labels)), 10)
	for c, p := range parts {
		if d := tvDistance(histogram(labels, p, 10), all); d > 0.15 {
			t.Errorf("Partition(iid) client %d TV distance to global = %.3f; want < 0.15", c, d)
		}
	}
}

func TestPartitionDirichlet(t *testing.T) {
	labels := mnistLikeLabels(false)
	tests := []struct {
		scheme         string
		minTV, maxTV   float64 // bounds on the mean TV distance to the global shares
		minTop, maxTop float64 // bounds on the mean top-label share (IID: about 0.12)
	}{
		{"dirichlet:0.1", 0.5, 1, 0.5, 1},
		{"dirichlet:0.5", 0.3, 0.7, 0.25, 0.6},
		{"dirichlet:100", 0, 0.1, 0, 0.15},
	}
	for _, tt := range tests {
		for _, seed := range []uint64{1, 2} {
			parts, err := Partition(labels, 10, 100, tt.scheme, seed)
			if err != nil {
				t.Fatalf("Partition(%q, seed %d) = %v", tt.scheme, seed, err)
			}
			if total := checkPartition(t, tt.scheme, parts, len(labels), 100); total != len(labels) {
				t.Errorf("Partition(%q) uses %d samples; want all %d", tt.scheme, total, len(labels))
			}
			for c, p := range parts {
				if len(p) < 10 {
					t.Errorf("Partition(%q) client %d has %d samples; want at least 10", tt.scheme, c, len(p))
				}
			}
			tv, top := skew(labels, parts, 10)
			if tv < tt.minTV || tv > tt.maxTV || top < tt.minTop || top > tt.maxTop {
				t.Errorf("Partition(%q, seed %d) mean TV %.3f, mean top share %.3f; want TV in [%.2f, %.2f], top in [%.2f, %.2f]",
					tt.scheme, seed, tv, top, tt.minTV, tt.maxTV, tt.minTop, tt.maxTop)
			}
		}
	}
}

func TestPartitionDirichletTinyAlpha(t *testing.T) {
	// Alpha far below 1 must not underflow: each class goes almost wholly
	// to one client.
	labels := mnistLikeLabels(false)[:2000]
	parts, err := Partition(labels, 10, 4, "dirichlet:0.001", 3)
	if err != nil {
		t.Fatalf("Partition(dirichlet:0.001) = %v", err)
	}
	checkPartition(t, "dirichlet:0.001", parts, len(labels), 4)
	if _, top := skew(labels, parts, 10); top < 0.3 {
		t.Errorf("Partition(dirichlet:0.001) mean top share %.3f; want >= 0.3", top)
	}
}

func TestPartitionDirichletGivesUp(t *testing.T) {
	// At alpha 0.01 each class goes almost wholly to one client, so 100
	// clients cannot all get 5 of 2000 samples.
	_, err := Partition(mnistLikeLabels(false)[:2000], 10, 100, "dirichlet:0.01", 1)
	if err == nil || !strings.Contains(err.Error(), "no draw in 1000") {
		t.Errorf("Partition(1000 clients, dirichlet:0.01) = %v; want a no-draw error", err)
	}
}

func TestPartitionShards(t *testing.T) {
	labels := mnistLikeLabels(true)
	parts, err := Partition(labels, 10, 100, "shards:2", 1)
	if err != nil {
		t.Fatalf("Partition(shards:2) = %v", err)
	}
	checkPartition(t, "shards:2", parts, len(labels), 100)
	twoOrFewer := 0
	for c, p := range parts {
		if len(p) != 600 {
			t.Errorf("Partition(shards:2) client %d has %d samples; want 600", c, len(p))
		}
		distinct := 0
		for _, share := range histogram(labels, p, 10) {
			if share > 0 {
				distinct++
			}
		}
		if distinct > 4 {
			t.Errorf("Partition(shards:2) client %d has %d labels; want at most 4", c, distinct)
		}
		if distinct <= 2 {
			twoOrFewer++
		}
	}
	if twoOrFewer < 60 {
		t.Errorf("Partition(shards:2) %d clients have at most 2 labels; want most (>= 60)", twoOrFewer)
	}

	// 1001 samples, 10 clients, 3 shards of 33: 11 samples left out.
	parts, err = Partition(labels[:1001], 10, 10, "shards:3", 5)
	if err != nil {
		t.Fatalf("Partition(1001, shards:3) = %v", err)
	}
	if total := checkPartition(t, "shards:3", parts, 1001, 10); total != 990 {
		t.Errorf("Partition(1001, 10 clients, shards:3) uses %d samples; want 990", total)
	}
}

func TestPartitionDeterministic(t *testing.T) {
	labels := mnistLikeLabels(false)
	orig := slices.Clone(labels)
	for _, scheme := range []string{"iid", "dirichlet:0.5", "shards:2"} {
		a, err1 := Partition(labels, 10, 50, scheme, 42)
		b, err2 := Partition(labels, 10, 50, scheme, 42)
		c, err3 := Partition(labels, 10, 50, scheme, 43)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("Partition(%q) = %v, %v, %v", scheme, err1, err2, err3)
		}
		if !equalParts(a, b) {
			t.Errorf("Partition(%q, seed 42) twice gave different results", scheme)
		}
		if equalParts(a, c) {
			t.Errorf("Partition(%q) gave the same result for seeds 42 and 43", scheme)
		}
		if !slices.Equal(labels, orig) {
			t.Fatalf("Partition(%q) modified its labels", scheme)
		}
	}
}

func equalParts(a, b [][]int) bool {
	return slices.EqualFunc(a, b, func(x, y []int) bool { return slices.Equal(x, y) })
}

// TestPartitionGolden pins the exact output, so that a change of platform
// (this test also runs under js/wasm) or of Go release that altered it
// would be caught.
func TestPartitionGolden(t *testing.T) {
	labels := mnistLikeLabels(false)
	tests := []struct {
		scheme string
		want   string
	}{
		{"iid", "3000,3000,3000,3000/be3a918463814315"},
		{"dirichlet:0.3", "1869,2296,4717,3073/74b797f8d7356a9b"},
		{"dirichlet:3", "2986,2980,2922,3723/4610e941c6e5d4f7"},
		{"shards:2", "3000,3000,3000,3000/4602222a9b5f4a51"},
	}
	for _, tt := range tests {
		parts, err := Partition(labels, 10, 20, tt.scheme, 7)
		if err != nil {
			t.Fatalf("Partition(%q) = %v", tt.scheme, err)
		}
		if got := digest(parts); got != tt.want {
			t.Errorf("digest(Partition(%q, seed 7)) = %s; want %s", tt.scheme, got, tt.want)
		}
	}
}

// digest returns the sizes of the first parts and an FNV-1a hash of all.
func digest(parts [][]int) string {
	h := fnv.New64a()
	var sizes []string
	for c, p := range parts {
		fmt.Fprint(h, p, ";")
		if c < 4 {
			sizes = append(sizes, fmt.Sprint(len(p)))
		}
	}
	return fmt.Sprintf("%s/%016x", strings.Join(sizes, ","), h.Sum64())
}

func TestPartitionErrors(t *testing.T) {
	labels := mnistLikeLabels(false)[:100]
	tests := []struct {
		labels           []uint8
		classes, clients int
		scheme           string
		want             string
	}{
		{labels, 10, 0, "iid", "0 clients, want at least 1"},
		{labels, 10, 101, "iid", "101 clients but only 100 samples"},
		{labels, 0, 5, "iid", "0 classes"},
		{labels, 5, 5, "iid", "at index"},
		{labels, 10, 5, "foo", "unknown partition scheme"},
		{labels, 10, 30, "shards:4", "would be empty"},
		{nil, 10, 1, "iid", "1 clients but only 0 samples"},
	}
	for _, tt := range tests {
		_, err := Partition(tt.labels, tt.classes, tt.clients, tt.scheme, 1)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "data: ") {
			t.Errorf("Partition(%d labels, %d classes, %d clients, %q) = %v; want error containing %q",
				len(tt.labels), tt.classes, tt.clients, tt.scheme, err, tt.want)
		}
	}
	if _, err := (Scheme{}).Partition(labels, 10, 2, 1); err == nil {
		t.Errorf("Scheme{}.Partition = nil error; want invalid scheme")
	}
}
