package data

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// setMagic starts every QDS1 stream; see the package documentation.
const setMagic = "QDS1"

// WriteSet writes s in the QDS1 transport format. It returns an error if s
// fails Validate or w fails.
func WriteSet(w io.Writer, s *Set) error {
	if err := s.Validate(); err != nil {
		return err
	}
	hdr := make([]byte, 0, 4+2+len(s.Name)+5*4)
	hdr = append(hdr, setMagic...)
	hdr = binary.LittleEndian.AppendUint16(hdr, uint16(len(s.Name)))
	hdr = append(hdr, s.Name...)
	for _, v := range []int{s.H, s.W, s.C, s.Classes, s.Len()} {
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(v))
	}
	for _, b := range [][]byte{hdr, s.Images, s.Labels} {
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("data: WriteSet: %w", err)
		}
	}
	return nil
}

// ReadSet reads a Set in the QDS1 transport format, holding at most
// maxSamples samples (and never more than MaxSamples). Every header field
// is checked before anything is allocated; truncated input, labels not
// below the class count and bytes after the labels are errors. It panics if
// maxSamples is not positive.
func ReadSet(r io.Reader, maxSamples int) (*Set, error) {
	if maxSamples <= 0 {
		panic(fmt.Sprintf("data: ReadSet maxSamples %d is not positive", maxSamples))
	}
	s, err := readSet(r, min(maxSamples, MaxSamples))
	if err != nil {
		return nil, fmt.Errorf("data: qds1: %w", err)
	}
	return s, nil
}

func readSet(r io.Reader, maxSamples int) (*Set, error) {
	s, n, err := readSetHeader(r, maxSamples)
	if err != nil {
		return nil, err
	}
	if s.Images, err = readN(r, n*s.Dim()); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	if s.Labels, err = readN(r, n); err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	if i := firstBadLabel(s.Labels, s.Classes); i >= 0 {
		return nil, fmt.Errorf("label %d at index %d >= classes %d", s.Labels[i], i, s.Classes)
	}
	if err := expectEOF(r); err != nil {
		return nil, fmt.Errorf("after %d samples: %w", n, err)
	}
	return s, nil
}

// readSetHeader reads and checks the header, returning a Set without data
// and the announced number of samples.
func readSetHeader(r io.Reader, maxSamples int) (*Set, int, error) {
	var pre [6]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, 0, fmt.Errorf("header: %w", err)
	}
	if string(pre[:4]) != setMagic {
		return nil, 0, fmt.Errorf("bad magic %q, want %q", pre[:4], setMagic)
	}
	nameLen := int(binary.LittleEndian.Uint16(pre[4:]))
	if nameLen > MaxNameLen {
		return nil, 0, fmt.Errorf("name of %d bytes exceeds limit %d", nameLen, MaxNameLen)
	}
	var rest [MaxNameLen + 5*4]byte
	buf := rest[:nameLen+5*4]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, 0, fmt.Errorf("header: %w", err)
	}
	s := &Set{Name: string(buf[:nameLen])}
	if err := checkName(s.Name); err != nil {
		return nil, 0, err
	}
	var f [5]int
	for i := range f {
		v := binary.LittleEndian.Uint32(buf[nameLen+4*i:])
		f[i] = int(min(v, math.MaxInt32)) // keeps 32-bit platforms from wrapping
	}
	s.H, s.W, s.C, s.Classes = f[0], f[1], f[2], f[3]
	n := f[4]
	d, err := checkShape(s.H, s.W, s.C)
	if err != nil {
		return nil, 0, err
	}
	if s.Classes < 1 || s.Classes > MaxClasses {
		return nil, 0, fmt.Errorf("%d classes, want 1 to %d", s.Classes, MaxClasses)
	}
	if n > maxSamples {
		return nil, 0, fmt.Errorf("%d samples exceed limit %d", n, maxSamples)
	}
	if n > MaxBytes/d {
		return nil, 0, fmt.Errorf("%d samples of %d bytes exceed limit %d", n, d, MaxBytes)
	}
	return s, n, nil
}
