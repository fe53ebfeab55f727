package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// IDX element type codes (the third byte of the magic number).
const idxUint8 = 0x08

var idxTypeNames = map[byte]string{
	0x08: "unsigned byte", 0x09: "signed byte", 0x0b: "int16",
	0x0c: "int32", 0x0d: "float32", 0x0e: "float64",
}

// ReadIDX reads an IDX file of unsigned bytes, raw or gzip-compressed (told
// apart by the gzip magic 0x1f 0x8b), and returns its dimensions and data.
// It checks the magic, the number of dimensions (1 to 4), that each is
// positive and that their product is at most maxElems before it allocates,
// and rejects truncated input and bytes after the data. It panics if
// maxElems is not positive.
func ReadIDX(r io.Reader, maxElems int) (dims []int, data []uint8, err error) {
	if maxElems <= 0 {
		panic(fmt.Sprintf("data: ReadIDX maxElems %d is not positive", maxElems))
	}
	dims, data, err = readIDX(r, func(dims []int) error {
		if _, ok := product(dims, maxElems); !ok {
			return fmt.Errorf("dims %v hold more than %d elements", dims, maxElems)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("data: %w", err)
	}
	return dims, data, nil
}

// readIDX reads an IDX stream, calling check on the dimensions before it
// allocates for the data. Errors start with "idx:".
func readIDX(r io.Reader, check func(dims []int) error) ([]int, []uint8, error) {
	br := bufio.NewReader(r)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("idx: gzip: %w", err)
		}
		defer zr.Close()
		zr.Multistream(false) // IDX files are one gzip member; more is trailing junk
		src = zr
	}
	dims, err := readIDXHeader(src)
	if err != nil {
		return nil, nil, fmt.Errorf("idx: %w", err)
	}
	if err := check(dims); err != nil {
		return nil, nil, fmt.Errorf("idx: %w", err)
	}
	n, _ := product(dims, math.MaxInt)
	data, err := readN(src, n)
	if err != nil {
		return nil, nil, fmt.Errorf("idx: data %v: %w", dims, err)
	}
	if err := expectEOF(src); err != nil {
		return nil, nil, fmt.Errorf("idx: after %d data bytes: %w", n, err)
	}
	if src != br {
		if err := expectEOF(br); err != nil {
			return nil, nil, fmt.Errorf("idx: after the gzip stream: %w", err)
		}
	}
	return dims, data, nil
}

// readIDXHeader reads the magic number and the dimensions.
func readIDXHeader(r io.Reader) ([]int, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, fmt.Errorf("bad magic % x, want 00 00 08 followed by the number of dimensions", magic)
	}
	if t := magic[2]; t != idxUint8 {
		name, ok := idxTypeNames[t]
		if !ok {
			name = "unknown"
		}
		return nil, fmt.Errorf("element type 0x%02x (%s) not supported, only 0x08 (unsigned byte)", t, name)
	}
	nd := int(magic[3])
	if nd < 1 || nd > 4 {
		return nil, fmt.Errorf("%d dimensions, want 1 to 4", nd)
	}
	var raw [16]byte
	if _, err := io.ReadFull(r, raw[:4*nd]); err != nil {
		return nil, fmt.Errorf("header: %d dimensions: %w", nd, err)
	}
	dims := make([]int, nd)
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(raw[4*i:]))
		if dims[i] == 0 {
			return nil, fmt.Errorf("dimension %d of %d is 0", i, nd)
		}
	}
	return dims, nil
}

// product returns the product of dims and true if it is at most limit;
// otherwise some value and false. It never overflows. Negative dims give
// false.
func product(dims []int, limit int) (int, bool) {
	p := 1
	for _, d := range dims {
		if d < 0 {
			return 0, false
		}
		if d != 0 && p > limit/d {
			return 0, false
		}
		p *= d
	}
	return p, p <= limit
}

// WriteIDX writes data as a raw (uncompressed) IDX file of unsigned bytes
// with the given dimensions. It returns an error if there are not 1 to 4
// dimensions, a dimension is not in [1, 2^32), or len(data) is not their
// product.
func WriteIDX(w io.Writer, dims []int, data []uint8) error {
	if len(dims) < 1 || len(dims) > 4 {
		return fmt.Errorf("data: WriteIDX: %d dimensions, want 1 to 4", len(dims))
	}
	hdr := []byte{0, 0, idxUint8, byte(len(dims))}
	for _, d := range dims {
		if d < 1 || int64(d) > math.MaxUint32 {
			return fmt.Errorf("data: WriteIDX: dimension %d out of range [1, 2^32)", d)
		}
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(d))
	}
	if n, ok := product(dims, len(data)); !ok || n != len(data) {
		return fmt.Errorf("data: WriteIDX: dims %v do not match %d data bytes", dims, len(data))
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("data: WriteIDX: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("data: WriteIDX: %w", err)
	}
	return nil
}

// LoadIDX builds a Set from an IDX image file and an IDX label file, each
// raw or gzip-compressed. The images must be 3-D (N, H, W; one channel) or
// 4-D (N, H, W, C) and the labels 1-D with the same N; every label must be
// below classes. Sizes are checked against MaxSamples, MaxDim and MaxBytes
// before anything is allocated.
func LoadIDX(name string, images, labels io.Reader, classes int) (*Set, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("data: LoadIDX: %w", err)
	}
	if classes < 1 || classes > MaxClasses {
		return nil, fmt.Errorf("data: %s: %d classes, want 1 to %d", name, classes, MaxClasses)
	}
	s, err := readIDXImages(name, images, classes)
	if err != nil {
		return nil, fmt.Errorf("data: %s: images: %w", name, err)
	}
	if err := readIDXLabels(s, labels); err != nil {
		return nil, fmt.Errorf("data: %s: labels: %w", name, err)
	}
	return s, nil
}

// readIDXImages reads IDX images into a new Set without labels.
func readIDXImages(name string, r io.Reader, classes int) (*Set, error) {
	dims, pix, err := readIDX(r, checkImageDims)
	if err != nil {
		return nil, err
	}
	s := &Set{Name: name, H: dims[1], W: dims[2], C: 1, Classes: classes, Images: pix}
	if len(dims) == 4 {
		s.C = dims[3]
	}
	return s, nil
}

// readIDXLabels reads IDX labels into s, which must hold their images.
func readIDXLabels(s *Set, r io.Reader) error {
	n := len(s.Images) / s.Dim()
	_, labels, err := readIDX(r, func(dims []int) error {
		if len(dims) != 1 {
			return fmt.Errorf("labels have %d dimensions %v, want 1", len(dims), dims)
		}
		if dims[0] != n {
			return fmt.Errorf("%d labels for %d images", dims[0], n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if i := firstBadLabel(labels, s.Classes); i >= 0 {
		return fmt.Errorf("label %d at index %d >= classes %d", labels[i], i, s.Classes)
	}
	s.Labels = labels
	return nil
}

// checkImageDims checks IDX image dimensions against the Set limits.
func checkImageDims(dims []int) error {
	if len(dims) != 3 && len(dims) != 4 {
		return fmt.Errorf("images have %d dimensions %v, want 3 (N, H, W) or 4 (N, H, W, C)", len(dims), dims)
	}
	if dims[0] > MaxSamples {
		return fmt.Errorf("%d images exceed limit %d", dims[0], MaxSamples)
	}
	c := 1
	if len(dims) == 4 {
		c = dims[3]
	}
	d, err := checkShape(dims[1], dims[2], c)
	if err != nil {
		return err
	}
	if dims[0] > MaxBytes/d {
		return fmt.Errorf("%d images of %d bytes exceed limit %d", dims[0], d, MaxBytes)
	}
	return nil
}
