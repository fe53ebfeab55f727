package data

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// CIFAR-10 binary format: each record is one label byte followed by a 32x32
// image as 1024 red, 1024 green and 1024 blue bytes (CHW).
const (
	cifarSide    = 32
	cifarPlane   = cifarSide * cifarSide
	cifarDim     = 3 * cifarPlane
	cifarRecord  = 1 + cifarDim
	cifarClasses = 10
	// cifarInitial is the number of records ReadCIFAR10 allocates for
	// before any arrive; beyond it the buffers grow with the input.
	cifarInitial = 1024
)

// CIFAR10TrainFiles and CIFAR10TestFile name the binary batches of the
// CIFAR-10 "binary version" (cifar-10-binary.tar.gz).
var CIFAR10TrainFiles = []string{
	"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin",
}

// CIFAR10TestFile is the name of the CIFAR-10 test batch; see
// CIFAR10TrainFiles.
const CIFAR10TestFile = "test_batch.bin"

// ReadCIFAR10 reads CIFAR-10 binary records (1 label byte, then 3072 pixel
// bytes in CHW order) until the end of r and returns them as a Set named
// "cifar10" of shape 32x32x3 in HWC order with 10 classes. The input must be
// at least one and at most maxRecords whole records, and every label must
// be below 10. It panics if maxRecords is not positive.
func ReadCIFAR10(r io.Reader, maxRecords int) (*Set, error) {
	if maxRecords <= 0 {
		panic(fmt.Sprintf("data: ReadCIFAR10 maxRecords %d is not positive", maxRecords))
	}
	s, err := readCIFAR10(r, maxRecords)
	if err != nil {
		return nil, fmt.Errorf("data: cifar10: %w", err)
	}
	return s, nil
}

// readCIFAR10 is ReadCIFAR10 with errors that lack the "data: cifar10: " prefix.
func readCIFAR10(r io.Reader, maxRecords int) (*Set, error) {
	maxRecords = min(maxRecords, MaxSamples)
	first := min(maxRecords, cifarInitial)
	s := &Set{
		Name: "cifar10", H: cifarSide, W: cifarSide, C: 3, Classes: cifarClasses,
		Images: make([]uint8, 0, first*cifarDim),
		Labels: make([]uint8, 0, first),
	}
	var rec [cifarRecord]byte
	for {
		n, err := io.ReadFull(r, rec[:])
		if err == io.EOF {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%d trailing bytes after %d records, not a whole record of %d", n, s.Len(), cifarRecord)
		}
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", s.Len(), err)
		}
		if s.Len() == maxRecords {
			return nil, fmt.Errorf("more than %d records", maxRecords)
		}
		if rec[0] >= cifarClasses {
			return nil, fmt.Errorf("label %d of record %d >= %d", rec[0], s.Len(), cifarClasses)
		}
		s.Labels = append(s.Labels, rec[0])
		s.Images = appendHWC(s.Images, rec[1:])
	}
	if s.Len() == 0 {
		return nil, errors.New("no records")
	}
	return s, nil
}

// appendHWC appends a CHW 32x32x3 image to dst in HWC order.
func appendHWC(dst, chw []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, cifarDim)...)
	out := dst[n:]
	r, g, b := chw[:cifarPlane], chw[cifarPlane:2*cifarPlane], chw[2*cifarPlane:]
	for p := range cifarPlane {
		out[3*p], out[3*p+1], out[3*p+2] = r[p], g[p], b[p]
	}
	return dst
}

// LoadCIFAR10 loads the CIFAR-10 training set (the five data batches, in
// order) and test set (test_batch.bin) from dir, or from its subfolder
// cifar-10-batches-bin when dir itself lacks data_batch_1.bin. Errors name
// the file.
func LoadCIFAR10(dir string) (train, test *Set, err error) {
	if _, err := os.Stat(filepath.Join(dir, CIFAR10TrainFiles[0])); errors.Is(err, fs.ErrNotExist) {
		sub := filepath.Join(dir, "cifar-10-batches-bin")
		if _, err := os.Stat(filepath.Join(sub, CIFAR10TrainFiles[0])); err == nil {
			dir = sub
		}
	}
	var batches []*Set
	total := 0
	for _, name := range CIFAR10TrainFiles {
		b, err := readCIFAR10File(filepath.Join(dir, name), MaxSamples-total)
		if err != nil {
			return nil, nil, err
		}
		batches = append(batches, b)
		total += b.Len()
	}
	train = &Set{
		Name: "cifar10", H: cifarSide, W: cifarSide, C: 3, Classes: cifarClasses,
		Images: make([]uint8, 0, total*cifarDim),
		Labels: make([]uint8, 0, total),
	}
	for _, b := range batches {
		train.Images = append(train.Images, b.Images...)
		train.Labels = append(train.Labels, b.Labels...)
	}
	test, err = readCIFAR10File(filepath.Join(dir, CIFAR10TestFile), MaxSamples)
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// readCIFAR10File reads one batch file of at most maxRecords records.
func readCIFAR10File(path string, maxRecords int) (*Set, error) {
	if maxRecords <= 0 {
		return nil, fmt.Errorf("data: cifar10: %s: more than %d records in all", path, MaxSamples)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: cifar10: %w (CIFAR-10 must be provided locally as the binary batches)", err)
	}
	defer f.Close()
	s, err := readCIFAR10(bufio.NewReaderSize(f, 1<<16), maxRecords)
	if err != nil {
		return nil, fmt.Errorf("data: cifar10: %s: %w", path, err)
	}
	return s, nil
}
