package data

import (
	"fmt"
	"unicode/utf8"
)

// Limits enforced by every reader before it allocates.
const (
	// MaxSamples is the largest number of samples a Set may hold.
	MaxSamples = 1 << 20
	// MaxDim is the largest number of bytes in one image (H*W*C), enough
	// for 64x64 RGBA.
	MaxDim = 64 * 64 * 4
	// MaxBytes is the largest total size of a Set's images in bytes.
	MaxBytes = 1 << 30
	// MaxClasses is the largest number of classes; labels are uint8.
	MaxClasses = 256
	// MaxNameLen is the longest Set name in bytes.
	MaxNameLen = 64
)

// Set is a labelled image dataset. Not safe for concurrent mutation;
// read-only use is safe.
type Set struct {
	Name    string  // "mnist", "cifar10", ...
	H, W, C int     // image shape; layout per image is HWC (C fastest)
	Classes int     // number of classes; every label is < Classes
	Images  []uint8 // Len()*H*W*C bytes
	Labels  []uint8 // Len() labels, each < Classes
}

// Len returns the number of samples.
func (s *Set) Len() int { return len(s.Labels) }

// Dim returns the number of bytes (and of float32 values) in one image,
// H*W*C.
func (s *Set) Dim() int { return s.H * s.W * s.C }

// Subset returns a new Set holding copies of the samples idx, in that order.
// It panics if an index is out of range.
func (s *Set) Subset(idx []int) *Set {
	d := s.Dim()
	out := &Set{
		Name: s.Name, H: s.H, W: s.W, C: s.C, Classes: s.Classes,
		Images: make([]uint8, len(idx)*d),
		Labels: make([]uint8, len(idx)),
	}
	for j, i := range idx {
		s.checkIndex("Subset", i)
		copy(out.Images[j*d:(j+1)*d], s.Images[i*d:(i+1)*d])
		out.Labels[j] = s.Labels[i]
	}
	return out
}

// Normalization is a dataset's per-channel pixel statistics: Fill writes
// (p/255 − Mean[c]) / Std[c] for a pixel byte p of channel c.
type Normalization struct {
	Mean, Std []float32
}

// Normalizations are the standard statistics of the datasets QFLARE knows
// (torchvision's). A Set whose Name is not listed is scaled to [0, 1] only.
var Normalizations = map[string]Normalization{
	"mnist":   {Mean: []float32{0.1307}, Std: []float32{0.3081}},
	"cifar10": {Mean: []float32{0.4914, 0.4822, 0.4465}, Std: []float32{0.2470, 0.2435, 0.2616}},
}

// luts holds, per dataset name, one 256-entry table per channel.
var luts = func() map[string][][256]float32 {
	m := map[string][][256]float32{}
	for name, n := range Normalizations {
		t := make([][256]float32, len(n.Mean))
		for c := range t {
			for p := range t[c] {
				t[c][p] = (float32(p)/255 - n.Mean[c]) / n.Std[c]
			}
		}
		m[name] = t
	}
	return m
}()

// unit maps a pixel byte to float32(p)/255.
var unit = func() (t [1][256]float32) {
	for i := range t[0] {
		t[0][i] = float32(i) / 255
	}
	return t
}()

// lut returns the per-channel tables Fill uses for s.
func (s *Set) lut() [][256]float32 {
	if t, ok := luts[s.Name]; ok && len(t) == s.C {
		return t
	}
	return unit[:]
}

// Fill writes the pixels of the samples idx as float32 into
// dst[:len(idx)*Dim()], image after image in HWC order: standardised with
// the dataset's Normalization when Name has one, else p/255. It does not
// allocate. It panics if dst is too short or an index is out of range.
func (s *Set) Fill(dst []float32, idx []int) {
	d := s.Dim()
	if len(dst) < len(idx)*d {
		panic(fmt.Sprintf("data: Fill dst has %d floats, want at least %d", len(dst), len(idx)*d))
	}
	lut := s.lut()
	for j, i := range idx {
		s.checkIndex("Fill", i)
		out := dst[j*d : (j+1)*d]
		src := s.Images[i*d : (i+1)*d]
		if len(lut) == 1 {
			t := &lut[0]
			for k, p := range src {
				out[k] = t[p]
			}
			continue
		}
		for k, p := range src {
			out[k] = lut[k%len(lut)][p]
		}
	}
}

func (s *Set) checkIndex(op string, i int) {
	if i < 0 || i >= s.Len() {
		panic(fmt.Sprintf("data: %s index %d out of range [0, %d)", op, i, s.Len()))
	}
}

// LabelCounts returns how many samples carry each label; its length is
// Classes. It panics if a label is not below Classes (see Validate).
func (s *Set) LabelCounts() []int {
	counts := make([]int, s.Classes)
	for i, l := range s.Labels {
		if int(l) >= s.Classes {
			panic(fmt.Sprintf("data: LabelCounts label %d at index %d >= Classes %d", l, i, s.Classes))
		}
		counts[l]++
	}
	return counts
}

// Validate reports whether the Set is consistent: a valid name, a positive
// shape within MaxDim, 1 to MaxClasses classes, at most MaxSamples samples,
// Len()*Dim() image bytes and every label below Classes.
func (s *Set) Validate() error {
	if err := checkName(s.Name); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if _, err := checkShape(s.H, s.W, s.C); err != nil {
		return fmt.Errorf("data: set %q: %w", s.Name, err)
	}
	if s.Classes < 1 || s.Classes > MaxClasses {
		return fmt.Errorf("data: set %q: %d classes, want 1 to %d", s.Name, s.Classes, MaxClasses)
	}
	if s.Len() > MaxSamples {
		return fmt.Errorf("data: set %q: %d samples exceed limit %d", s.Name, s.Len(), MaxSamples)
	}
	if want := s.Len() * s.Dim(); len(s.Images) != want {
		return fmt.Errorf("data: set %q: %d image bytes, want %d (%d samples of %d)", s.Name, len(s.Images), want, s.Len(), s.Dim())
	}
	if i := firstBadLabel(s.Labels, s.Classes); i >= 0 {
		return fmt.Errorf("data: set %q: label %d at index %d >= classes %d", s.Name, s.Labels[i], i, s.Classes)
	}
	return nil
}

// firstBadLabel returns the index of the first label >= classes, or -1.
func firstBadLabel(labels []uint8, classes int) int {
	for i, l := range labels {
		if int(l) >= classes {
			return i
		}
	}
	return -1
}

// checkShape checks that h, w and c are positive and h*w*c <= MaxDim, and
// returns h*w*c. It does not overflow whatever the inputs.
func checkShape(h, w, c int) (int, error) {
	if h < 1 || w < 1 || c < 1 {
		return 0, fmt.Errorf("image shape %dx%dx%d is not positive", h, w, c)
	}
	if h > MaxDim || w > MaxDim || c > MaxDim || h*w > MaxDim || h*w*c > MaxDim {
		return 0, fmt.Errorf("image shape %dx%dx%d exceeds limit of %d bytes per image", h, w, c, MaxDim)
	}
	return h * w * c, nil
}

// checkName checks that name is at most MaxNameLen bytes of UTF-8 without
// control characters.
func checkName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("set name of %d bytes exceeds limit %d", len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("set name %q is not valid UTF-8", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("set name %q contains a control character", name)
		}
	}
	return nil
}
