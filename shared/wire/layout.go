package wire

import "fmt"

// maxElements bounds the element count of any shape list, so sizes and byte
// counts never overflow an int on 32-bit platforms (js/wasm has 64-bit ints,
// but the bound keeps the arithmetic obvious).
const maxElements = 1 << 28

// shapeSize returns the number of elements the shapes describe. Every
// dimension must be at least 1 (a rank-0 tensor is a scalar) and the total
// between 1 and maxElements.
func shapeSize(shapes [][]int) (int, error) {
	if len(shapes) == 0 {
		return 0, fmt.Errorf("wire: no tensor shapes")
	}
	n := 0
	for i, s := range shapes {
		size := 1
		for _, d := range s {
			if d < 1 || d > maxElements {
				return 0, fmt.Errorf("wire: tensor %d has dimension %d; want 1..%d", i, d, maxElements)
			}
			size *= d
			if size > maxElements {
				return 0, fmt.Errorf("wire: tensor %d has more than %d elements", i, maxElements)
			}
		}
		n += size
		if n > maxElements {
			return 0, fmt.Errorf("wire: shapes hold more than %d elements", maxElements)
		}
	}
	return n, nil
}

// groupCount returns the number of int8 scale groups: one per tensor, or
// with perRow one per row, where a tensor of rank 2 or more has shape[0]
// rows and a tensor of rank 0 or 1 is a single row.
func groupCount(shapes [][]int, perRow bool) int {
	if !perRow {
		return len(shapes)
	}
	g := 0
	for _, s := range shapes {
		g += rowsOf(s)
	}
	return g
}

// rowsOf returns the number of rows of a tensor.
func rowsOf(s []int) int {
	if len(s) < 2 {
		return 1
	}
	return s[0]
}

// groups walks the scale groups of a shape list in flat order. Shapes must
// have passed shapeSize.
type groups struct {
	shapes [][]int
	perRow bool
	tensor int // index of the current tensor
	row    int // row within the current tensor
	start  int // flat index of the current group's first element
	size   int // elements in the current group
}

func newGroups(shapes [][]int, perRow bool) groups {
	return groups{shapes: shapes, perRow: perRow, tensor: -1}
}

// next advances to the next group and reports whether there was one.
func (g *groups) next() bool {
	g.start += g.size
	if g.tensor >= 0 && g.perRow && g.row+1 < rowsOf(g.shapes[g.tensor]) {
		g.row++
		return true
	}
	g.tensor++
	if g.tensor >= len(g.shapes) {
		g.size = 0
		return false
	}
	s := g.shapes[g.tensor]
	size := 1
	for _, d := range s {
		size *= d
	}
	g.row = 0
	g.size = size
	if g.perRow {
		g.size = size / rowsOf(s)
	}
	return true
}
