package data

import (
	"slices"
	"strings"
	"testing"
)

// tinySet returns n samples of shape 2x3x2 whose pixel bytes are
// (sample*16 + position) mod 256 and whose labels are sample mod classes.
func tinySet(n, classes int) *Set {
	s := &Set{Name: "tiny", H: 2, W: 3, C: 2, Classes: classes,
		Images: make([]uint8, n*12), Labels: make([]uint8, n)}
	for i := range n {
		for j := range 12 {
			s.Images[i*12+j] = uint8(i*16 + j)
		}
		s.Labels[i] = uint8(i % classes)
	}
	return s
}

func TestSetLenDim(t *testing.T) {
	s := tinySet(5, 3)
	if got := s.Len(); got != 5 {
		t.Errorf("Len() = %d; want 5", got)
	}
	if got := s.Dim(); got != 12 {
		t.Errorf("Dim() = %d; want 12", got)
	}
}

func TestSubset(t *testing.T) {
	s := tinySet(5, 3)
	orig := slices.Clone(s.Images)
	tests := []struct {
		idx    []int
		labels []uint8
	}{
		{nil, []uint8{}},
		{[]int{4, 0}, []uint8{1, 0}},
		{[]int{2, 2, 1}, []uint8{2, 2, 1}},
	}
	for _, tt := range tests {
		sub := s.Subset(tt.idx)
		if err := sub.Validate(); err != nil {
			t.Errorf("Subset(%v).Validate() = %v; want nil", tt.idx, err)
		}
		if !slices.Equal(sub.Labels, tt.labels) {
			t.Errorf("Subset(%v).Labels = %v; want %v", tt.idx, sub.Labels, tt.labels)
		}
		for j, i := range tt.idx {
			if got, want := sub.Images[j*12:(j+1)*12], s.Images[i*12:(i+1)*12]; !slices.Equal(got, want) {
				t.Errorf("Subset(%v) image %d = %v; want %v", tt.idx, j, got, want)
			}
		}
		if sub.Name != s.Name || sub.H != s.H || sub.W != s.W || sub.C != s.C || sub.Classes != s.Classes {
			t.Errorf("Subset(%v) metadata = %+v; want that of %+v", tt.idx, sub, s)
		}
	}
	sub := s.Subset([]int{1})
	sub.Images[0] = 99
	if !slices.Equal(s.Images, orig) {
		t.Errorf("writing to a Subset changed its source")
	}
}

func TestFill(t *testing.T) {
	s := tinySet(4, 2)
	s.Images[0], s.Images[1] = 0, 255
	dst := make([]float32, 2*12+3)
	dst[24] = -1
	s.Fill(dst, []int{0, 3})
	if dst[0] != 0 || dst[1] != 1 {
		t.Errorf("Fill pixels 0, 255 = %v, %v; want 0, 1", dst[0], dst[1])
	}
	for j, i := range []int{0, 3} {
		for k := range 12 {
			want := float32(s.Images[i*12+k]) / 255
			if got := dst[j*12+k]; got != want {
				t.Errorf("Fill sample %d pixel %d = %v; want %v", i, k, got, want)
			}
		}
	}
	if dst[24] != -1 {
		t.Errorf("Fill wrote past len(idx)*Dim(): dst[24] = %v; want -1", dst[24])
	}
	if n := testing.AllocsPerRun(10, func() { s.Fill(dst, []int{1, 2}) }); n != 0 {
		t.Errorf("Fill allocates %v times; want 0", n)
	}
}

func TestSetPanics(t *testing.T) {
	s := tinySet(3, 2)
	bad := tinySet(3, 2)
	bad.Labels[1] = 7
	tests := []struct {
		name string
		f    func()
		want string
	}{
		{"Fill short dst", func() { s.Fill(make([]float32, 23), []int{0, 1}) }, "data: Fill dst has 23 floats, want at least 24"},
		{"Fill bad index", func() { s.Fill(make([]float32, 12), []int{3}) }, "data: Fill index 3 out of range [0, 3)"},
		{"Subset negative", func() { s.Subset([]int{-1}) }, "data: Subset index -1 out of range [0, 3)"},
		{"LabelCounts bad label", func() { bad.LabelCounts() }, "data: LabelCounts label 7 at index 1 >= Classes 2"},
	}
	for _, tt := range tests {
		got := catchPanic(tt.f)
		if got != tt.want {
			t.Errorf("%s: panic %q; want %q", tt.name, got, tt.want)
		}
	}
}

// catchPanic runs f and returns the message it panicked with, or "".
func catchPanic(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg, _ = r.(string)
			if msg == "" {
				msg = "non-string panic"
			}
		}
	}()
	f()
	return ""
}

func TestLabelCounts(t *testing.T) {
	s := tinySet(7, 3)
	if got, want := s.LabelCounts(), []int{3, 2, 2}; !slices.Equal(got, want) {
		t.Errorf("LabelCounts() = %v; want %v", got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(s *Set)
		want   string // substring of the error; "" for nil
	}{
		{"ok", func(s *Set) {}, ""},
		{"empty", func(s *Set) { s.Images, s.Labels = nil, nil }, ""},
		{"short images", func(s *Set) { s.Images = s.Images[:len(s.Images)-1] }, "59 image bytes, want 60"},
		{"bad label", func(s *Set) { s.Labels[4] = 3 }, "label 3 at index 4 >= classes 3"},
		{"zero H", func(s *Set) { s.H = 0 }, "image shape 0x3x2 is not positive"},
		{"huge", func(s *Set) { s.H, s.W, s.C = 1<<20, 1<<20, 1 }, "exceeds limit"},
		{"no classes", func(s *Set) { s.Classes = 0 }, "0 classes"},
		{"too many classes", func(s *Set) { s.Classes = 257 }, "257 classes"},
		{"long name", func(s *Set) { s.Name = strings.Repeat("x", MaxNameLen+1) }, "exceeds limit 64"},
		{"control in name", func(s *Set) { s.Name = "a\nb" }, "control character"},
		{"bad utf8 name", func(s *Set) { s.Name = "\xff" }, "not valid UTF-8"},
	}
	for _, tt := range tests {
		s := tinySet(5, 3)
		tt.modify(s)
		err := s.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Validate(%s) = %v; want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Validate(%s) = %v; want error containing %q", tt.name, err, tt.want)
		case err != nil && !strings.HasPrefix(err.Error(), "data: "):
			t.Errorf("Validate(%s) = %q; want prefix \"data: \"", tt.name, err)
		}
	}
}

func TestFillStandardises(t *testing.T) {
	for name, n := range Normalizations {
		c := len(n.Mean)
		s := &Set{Name: name, H: 1, W: 2, C: c, Classes: 10, Images: make([]uint8, 2*c), Labels: []uint8{3}}
		for k := range s.Images {
			s.Images[k] = uint8(40 * k)
		}
		dst := make([]float32, s.Dim())
		s.Fill(dst, []int{0})
		for k, p := range s.Images {
			want := (float32(p)/255 - n.Mean[k%c]) / n.Std[k%c]
			if dst[k] != want {
				t.Errorf("%s: Fill value %d (channel %d, byte %d) = %v; want %v", name, k, k%c, p, dst[k], want)
			}
		}
	}
}
